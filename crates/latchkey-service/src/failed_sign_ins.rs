//! Failed and refused sign-in attempts, on the audit log without flooding it. A wrong answer
//! is tallied on this node (no write on the request's path); every [`REPORT_EVERY`] the tally
//! becomes one `sign_in.failed` entry per account (how many wrong answers and refused
//! attempts, of each kind) and one for names that are no account. Under attack the log
//! grows by one entry per account attacked per period, never per attempt, and at most
//! [`MAX_ACCOUNTS`] accounts are named per period (the rest are counted together).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use latchkey_core::domain::{SubjectId, TenantId};
use latchkey_core::records::Actor;

use crate::{Latchkey, ServiceResult};

/// How often the tally is written to the audit log.
pub const REPORT_EVERY: Duration = Duration::from_secs(60);
/// Accounts named one by one per period and tenant; more are counted as `others`.
pub const MAX_ACCOUNTS: usize = 1_000;
/// The target of the entry that counts attempts at names that are no account.
pub const UNKNOWN_ACCOUNTS: &str = "unknown-accounts";

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Counts {
    failed: u64,
    refused: u64,
}

/// (tenant, account or none, guess kind) → counts.
type Key = (TenantId, Option<SubjectId>, &'static str);

#[derive(Debug, Default)]
pub struct FailureTally {
    counts: Mutex<HashMap<Key, Counts>>,
}

impl FailureTally {
    pub(crate) fn count(&self, tenant: &TenantId, sub: Option<&SubjectId>, guess: &'static str, refused: bool) {
        let Ok(mut counts) = self.counts.lock() else { return };
        let named = counts.keys().filter(|(t, s, _)| t == tenant && s.is_some()).count();
        let sub = sub
            .filter(|s| named < MAX_ACCOUNTS || counts.keys().any(|(t, k, _)| t == tenant && k.as_ref() == Some(*s)));
        let entry = counts.entry((tenant.clone(), sub.cloned(), guess)).or_default();
        if refused {
            entry.refused += 1;
        } else {
            entry.failed += 1;
        }
    }

    fn take(&self) -> HashMap<Key, Counts> {
        self.counts.lock().map(|mut c| std::mem::take(&mut *c)).unwrap_or_default()
    }
}

pub struct FailedSignIns<'a>(pub(crate) &'a Latchkey);

impl FailedSignIns<'_> {
    /// Writes what was tallied since the last report: one entry per account (and one for
    /// names that are no account) with the counts of each kind of guess. Returns how many
    /// entries. The server runs this every [`REPORT_EVERY`].
    pub async fn report(&self) -> ServiceResult<usize> {
        let tally = self.0.failed_sign_ins.take();
        let mut by_target: HashMap<(TenantId, Option<SubjectId>), serde_json::Map<String, serde_json::Value>> =
            HashMap::new();
        for ((tenant, sub, guess), counts) in tally {
            by_target
                .entry((tenant, sub))
                .or_default()
                .insert(guess.to_owned(), serde_json::json!({"failed": counts.failed, "refused": counts.refused}));
        }
        let written = by_target.len();
        let period = REPORT_EVERY.as_secs();
        for ((tenant, sub), kinds) in by_target {
            let target = sub.as_ref().map_or(UNKNOWN_ACCOUNTS, SubjectId::as_str);
            let details = serde_json::json!({"attempts": kinds, "period_seconds": period});
            if let Err(e) = self.0.audit().record(&tenant, &Actor::System, "sign_in.failed", target, details).await {
                tracing::error!(error = %e, "cannot record failed sign-ins on the audit log");
                return Err(e);
            }
        }
        Ok(written)
    }
}

/// Reports the tally every [`REPORT_EVERY`] (each node its own).
pub fn spawn_reporter(services: std::sync::Weak<Latchkey>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(REPORT_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(services) = services.upgrade() else { return };
            let _ = services.failed_sign_ins().report().await;
        }
    })
}
