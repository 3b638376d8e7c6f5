//! Checking a tenant's audit chain: every entry's MAC against its fields and the MAC before
//! it, the positions for gaps, the chain row's head against the newest entry, every
//! checkpoint's signature, and the base retention left.

use latchkey_core::crypto::{ChainLink, CheckpointStatement, verify_checkpoint, verify_retention_base};
use latchkey_core::domain::TenantId;
use latchkey_store::{CHECKPOINT_ACTION, ChainEntry, ChainHead};

use super::{Audit, CHECKPOINT_EVERY, WAITING_TOO_LONG};
use crate::ServiceResult;

/// Something `verify` found wrong, with where.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ChainProblem {
    /// The entry at `seq` does not match its MAC: it was changed, or put in the place of
    /// the one that was there.
    Changed { seq: i64 },
    /// No entry holds positions `from` to `to`: they were deleted.
    Missing { from: i64, to: i64 },
    /// The chain row says the newest entry is `head`, but the newest stored is `last`: the
    /// entries after `last` were cut off.
    TailCut { last: i64, head: i64 },
    /// Entries up to `last` are stored, past the head the chain row records (`head`): they
    /// were added outside the chain's writer.
    BeyondHead { head: i64, last: i64 },
    /// The chain row's MAC is not the newest entry's.
    HeadChanged { seq: i64 },
    /// The checkpoint entry at `seq` has a bad signature, or vouches for a head the chain
    /// does not have there.
    BadCheckpoint { seq: i64 },
    /// The point retention cut the chain at is not vouched for by a valid signature.
    BadBase { seq: i64 },
    /// The chain reaches `found`, but was seen at `expected` (from `--expect-seq`).
    ShorterThanSeen { expected: i64, found: i64 },
    /// A second entry at position `seq`.
    Duplicate { seq: i64 },
    /// The chain holds `stored` entries in the range walked, but only `checked` were read
    /// in order: rows were added out of order.
    Unaccounted { stored: u64, checked: u64 },
    /// `count` entries sit at positions the chain's base says were trimmed.
    BelowBase { count: u64 },
    /// Entries the chain's writer refused because their write-time MAC failed (forged or
    /// altered while they waited), by row id.
    Refused { ids: Vec<i64> },
    /// Chained entries exist, but the chain's head row is gone.
    HeadMissing,
}

impl std::fmt::Display for ChainProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChainProblem::Changed { seq } => write!(f, "entry {seq} was changed (its MAC does not match)"),
            ChainProblem::Missing { from, to } if from == to => write!(f, "entry {from} was deleted"),
            ChainProblem::Missing { from, to } => write!(f, "entries {from} to {to} were deleted"),
            ChainProblem::TailCut { last, head } => {
                write!(f, "the newest entries were cut off: the chain ends at {last} but its head was {head}")
            }
            ChainProblem::BeyondHead { head, last } => {
                write!(f, "entries {} to {last} were added past the chain's head ({head})", head + 1)
            }
            ChainProblem::HeadChanged { seq } => write!(f, "the chain's head does not match entry {seq}"),
            ChainProblem::BadCheckpoint { seq } => write!(f, "the checkpoint at entry {seq} does not verify"),
            ChainProblem::BadBase { seq } => {
                write!(f, "the retention cut at entry {seq} is not vouched for by a valid checkpoint")
            }
            ChainProblem::ShorterThanSeen { expected, found } => {
                write!(f, "the chain ends at {found}, but it was seen at {expected}: entries were cut off")
            }
            ChainProblem::Duplicate { seq } => write!(f, "a second entry was inserted at position {seq}"),
            ChainProblem::Unaccounted { stored, checked } => {
                write!(
                    f,
                    "{stored} entries are stored in the chain's range but {checked} were found in order: rows were inserted"
                )
            }
            ChainProblem::BelowBase { count } => {
                write!(f, "{count} entries were inserted at positions the chain's retention base says are gone")
            }
            ChainProblem::Refused { ids } => {
                write!(
                    f,
                    "entries with ids {ids:?} failed their write-time MAC (forged or altered) and were never chained"
                )
            }
            ChainProblem::HeadMissing => write!(f, "the chain has entries but its head row was deleted"),
        }
    }
}

/// What `verify` read and found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Verification {
    pub tenant: String,
    /// Chained entries checked.
    pub entries: u64,
    /// The first and newest position checked (0 and 0 for an empty chain).
    pub first_seq: i64,
    pub last_seq: i64,
    /// The newest entry's MAC: record it (with `last_seq`) to catch a later rewrite.
    pub head_mac: Option<String>,
    /// The newest checkpoint: its position and time.
    pub newest_checkpoint: Option<(i64, i64)>,
    /// Entries written but not yet chained, and when the oldest was written.
    pub waiting: u64,
    pub oldest_waiting_at: Option<i64>,
    pub problems: Vec<ChainProblem>,
    /// Not proof of tampering, but worth a look (a stopped server, a late checkpoint).
    pub warnings: Vec<String>,
}

impl Verification {
    pub fn intact(&self) -> bool {
        self.problems.is_empty()
    }
}

const PAGE: u32 = 2_000;

impl Audit<'_> {
    /// Walks the tenant's whole chain. `expect_seq` is a position the chain was seen at
    /// before (the `latchkey_audit_chain_head` metric, an earlier run): a chain that ends
    /// before it was cut off, even if what remains is consistent.
    pub async fn verify(&self, tenant: &TenantId, expect_seq: Option<i64>) -> ServiceResult<Verification> {
        let store = self.0.store();
        let keys = &self.0.audit_keys;
        let public_key = keys.checkpoint_public_key();
        let head = store.audit_chain_head(tenant).await?;
        let (waiting, oldest_waiting) = store.unsealed_audit_entries(tenant).await?;
        let now = self.0.clock.now().secs();
        let mut v = Verification {
            tenant: tenant.to_string(),
            entries: 0,
            first_seq: 0,
            last_seq: 0,
            head_mac: None,
            newest_checkpoint: None,
            waiting,
            oldest_waiting_at: oldest_waiting.map(|t| t.secs()),
            problems: Vec::new(),
            warnings: Vec::new(),
        };
        let (mut prev_mac, mut after) = start_of(keys, tenant, head.as_ref(), &public_key, &mut v.problems);
        let base = after;
        // The walk stops at the head as it was at the start: entries chained meanwhile (the
        // server's writer runs every second) are not taken for insertions.
        let upto = head.as_ref().map_or(i64::MAX, |h| h.seq);
        'walk: loop {
            let page = store.audit_chain_page(tenant, after, PAGE).await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            for entry in &page {
                if entry.seq > upto {
                    break 'walk;
                }
                check_entry(keys, tenant, entry, after_of(&v, head.as_ref()), &mut prev_mac, &public_key, &mut v);
            }
        }
        let counts = store.audit_chain_counts(tenant, base, upto).await?;
        if counts.in_range != v.entries {
            v.problems.push(ChainProblem::Unaccounted { stored: counts.in_range, checked: v.entries });
        }
        if counts.at_or_below_base > 0 && base > 0 {
            v.problems.push(ChainProblem::BelowBase { count: counts.at_or_below_base });
        }
        if !counts.refused_ids.is_empty() {
            v.problems.push(ChainProblem::Refused { ids: counts.refused_ids });
        }
        if head.is_none() && counts.in_range > 0 {
            v.problems.push(ChainProblem::HeadMissing);
        }
        // Rows past the head: re-read it, so an entry chained during the walk is not one.
        if let Some(start) = &head {
            let now_head = store.audit_chain_head(tenant).await?.map_or(start.seq, |h| h.seq);
            if let Some(past) = store.audit_chain_page(tenant, now_head.max(start.seq), 1).await?.first() {
                v.problems.push(ChainProblem::BeyondHead { head: now_head, last: past.seq });
            }
        }
        finish(&mut v, head.as_ref(), &prev_mac, expect_seq, now);
        Ok(v)
    }
}

/// Where checking starts: after the genesis value, or after the (signed) retention base.
fn start_of(
    keys: &latchkey_core::crypto::AuditKeys,
    tenant: &TenantId,
    head: Option<&ChainHead>,
    public_key: &str,
    problems: &mut Vec<ChainProblem>,
) -> (String, i64) {
    let Some(head) = head.filter(|h| h.base_seq > 0) else { return (keys.genesis(tenant.as_str()), 0) };
    let base_mac = head.base_mac.clone().unwrap_or_default();
    let vouched = match (&head.base_signature, head.base_at) {
        (Some(sig), Some(at)) => {
            let statement =
                CheckpointStatement { tenant: tenant.to_string(), seq: head.base_seq, mac: base_mac.clone(), at };
            verify_retention_base(public_key, &statement, sig)
        }
        _ => false,
    };
    if !vouched {
        problems.push(ChainProblem::BadBase { seq: head.base_seq });
    }
    (base_mac, head.base_seq)
}

/// The position the next entry must have.
fn after_of(v: &Verification, head: Option<&ChainHead>) -> i64 {
    if v.entries == 0 { head.map_or(0, |h| h.base_seq) + 1 } else { v.last_seq + 1 }
}

fn check_entry(
    keys: &latchkey_core::crypto::AuditKeys,
    tenant: &TenantId,
    entry: &ChainEntry,
    expected: i64,
    prev_mac: &mut String,
    public_key: &str,
    v: &mut Verification,
) {
    if entry.seq < expected {
        v.problems.push(ChainProblem::Duplicate { seq: entry.seq });
        return;
    }
    if entry.seq > expected {
        v.problems.push(ChainProblem::Missing { from: expected, to: entry.seq - 1 });
    }
    let link = ChainLink {
        tenant: tenant.as_str(),
        seq: entry.seq,
        at: entry.at,
        action: &entry.action,
        actor_ref: &entry.actor_ref,
        target_ref: &entry.target_ref,
        sealed: &entry.sealed,
    };
    // After a gap the predecessor is gone: the entry is only reported as the gap.
    if entry.seq == expected && !keys.verify_link(prev_mac, &link, &entry.mac) {
        v.problems.push(ChainProblem::Changed { seq: entry.seq });
    }
    if entry.action == CHECKPOINT_ACTION {
        if checkpoint_holds(tenant, entry, prev_mac, public_key) {
            v.newest_checkpoint = Some((entry.seq, entry.at));
        } else {
            v.problems.push(ChainProblem::BadCheckpoint { seq: entry.seq });
        }
    }
    if v.entries == 0 {
        v.first_seq = entry.seq;
    }
    v.entries += 1;
    v.last_seq = entry.seq;
    prev_mac.clone_from(&entry.mac);
}

/// A checkpoint vouches, under the checkpoint key, for the entry just before it.
fn checkpoint_holds(tenant: &TenantId, entry: &ChainEntry, prev_mac: &str, public_key: &str) -> bool {
    let Some(details) = &entry.checkpoint else { return false };
    let (Some(seq), Some(mac), Some(at), Some(sig)) = (
        details.get("seq").and_then(serde_json::Value::as_i64),
        details.get("mac").and_then(serde_json::Value::as_str),
        details.get("at").and_then(serde_json::Value::as_i64),
        details.get("signature").and_then(serde_json::Value::as_str),
    ) else {
        return false;
    };
    let statement = CheckpointStatement { tenant: tenant.to_string(), seq, mac: mac.to_owned(), at };
    seq == entry.seq - 1 && mac == prev_mac && at == entry.at && verify_checkpoint(public_key, &statement, sig)
}

fn finish(v: &mut Verification, head: Option<&ChainHead>, newest_mac: &str, expect_seq: Option<i64>, now: i64) {
    let last = if v.entries == 0 { head.map_or(0, |h| h.base_seq) } else { v.last_seq };
    if let Some(head) = head {
        if head.seq > last {
            v.problems.push(ChainProblem::TailCut { last, head: head.seq });
        } else if head.mac != newest_mac && last > head.base_seq {
            v.problems.push(ChainProblem::HeadChanged { seq: last });
        }
    }
    if let Some(expected) = expect_seq.filter(|e| *e > last) {
        v.problems.push(ChainProblem::ShorterThanSeen { expected, found: last });
    }
    v.head_mac = (v.entries > 0).then(|| newest_mac.to_owned());
    let every = CHECKPOINT_EVERY.as_secs().cast_signed();
    match v.newest_checkpoint {
        Some((_, at)) if now - at > 2 * every => v.warnings.push(format!(
            "the newest checkpoint is {} minutes old (one is written every {} minutes while a server runs): \
             if a server ran meanwhile, newer entries may have been cut off",
            (now - at) / 60,
            every / 60
        )),
        None if v.entries > 0 => v.warnings.push("the chain has no checkpoint yet".into()),
        _ => {}
    }
    if let Some(oldest) = v.oldest_waiting_at.filter(|t| now - t > WAITING_TOO_LONG.as_secs().cast_signed()) {
        v.warnings.push(format!(
            "{} entries wait to be chained, the oldest for {} s: no server has run the chain's writer since",
            v.waiting,
            now - oldest
        ));
    }
}
