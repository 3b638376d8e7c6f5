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
/// The target of the entry that counts attempts at names that are no account (targets that
/// are no person begin with `#`, which no subject id contains).
pub const UNKNOWN_ACCOUNTS: &str = "#unknown-accounts";
/// The target of the entry that counts attempts at accounts beyond [`MAX_ACCOUNTS`].
pub const OTHER_ACCOUNTS: &str = "#other-accounts";

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Counts {
    failed: u64,
    refused: u64,
}

/// Whom attempts were at.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Whom {
    Account(SubjectId),
    /// A name that is no account.
    Unknown,
    /// Accounts beyond [`MAX_ACCOUNTS`] in one period, counted together.
    Others,
}

#[derive(Debug, Default)]
struct Tally {
    /// (tenant, whom, guess kind) → counts.
    counts: HashMap<(TenantId, Whom, &'static str), Counts>,
    /// The accounts named one by one this period, per tenant.
    named: HashMap<TenantId, std::collections::HashSet<SubjectId>>,
}

#[derive(Debug, Default)]
pub struct FailureTally {
    tally: Mutex<Tally>,
}

impl FailureTally {
    pub(crate) fn count(&self, tenant: &TenantId, sub: Option<&SubjectId>, guess: &'static str, refused: bool) {
        let Ok(mut tally) = self.tally.lock() else { return };
        let whom = match sub {
            None => Whom::Unknown,
            Some(s) => {
                let named = tally.named.entry(tenant.clone()).or_default();
                if named.contains(s) || named.len() < MAX_ACCOUNTS {
                    named.insert(s.clone());
                    Whom::Account(s.clone())
                } else {
                    Whom::Others
                }
            }
        };
        let entry = tally.counts.entry((tenant.clone(), whom, guess)).or_default();
        if refused {
            entry.refused += 1;
        } else {
            entry.failed += 1;
        }
    }

    fn take(&self) -> HashMap<(TenantId, Whom, &'static str), Counts> {
        self.tally.lock().map(|mut t| std::mem::take(&mut *t).counts).unwrap_or_default()
    }

    /// Puts counts that could not be written back, for the next report.
    fn restore(&self, tenant: &TenantId, whom: &Whom, kinds: &[(&'static str, Counts)]) {
        let Ok(mut tally) = self.tally.lock() else { return };
        if let Whom::Account(s) = whom {
            tally.named.entry(tenant.clone()).or_default().insert(s.clone());
        }
        for (guess, c) in kinds {
            let entry = tally.counts.entry((tenant.clone(), whom.clone(), guess)).or_default();
            entry.failed += c.failed;
            entry.refused += c.refused;
        }
    }
}

pub struct FailedSignIns<'a>(pub(crate) &'a Latchkey);

impl FailedSignIns<'_> {
    /// Writes what was tallied since the last report: one entry per account (one for names
    /// that are no account, one for accounts beyond the cap) with the counts of each kind of
    /// guess. Returns how many entries. What cannot be written is kept for the next report.
    /// The server runs this every [`REPORT_EVERY`].
    pub async fn report(&self) -> ServiceResult<usize> {
        let tally = self.0.failed_sign_ins.take();
        let mut by_target: HashMap<(TenantId, Whom), Vec<(&'static str, Counts)>> = HashMap::new();
        for ((tenant, whom, guess), counts) in tally {
            by_target.entry((tenant, whom)).or_default().push((guess, counts));
        }
        let period = REPORT_EVERY.as_secs();
        let mut written = 0;
        let mut failure = None;
        for ((tenant, whom), kinds) in by_target {
            let target = match &whom {
                Whom::Account(sub) => sub.as_str(),
                Whom::Unknown => UNKNOWN_ACCOUNTS,
                Whom::Others => OTHER_ACCOUNTS,
            };
            let attempts: serde_json::Map<String, serde_json::Value> = kinds
                .iter()
                .map(|(g, c)| ((*g).to_owned(), serde_json::json!({"failed": c.failed, "refused": c.refused})))
                .collect();
            let details = serde_json::json!({"attempts": attempts, "period_seconds": period});
            match self.0.audit().record(&tenant, &Actor::System, "sign_in.failed", target, details).await {
                Ok(()) => written += 1,
                Err(e) => {
                    self.0.failed_sign_ins.restore(&tenant, &whom, &kinds);
                    failure.get_or_insert(e);
                }
            }
        }
        match failure {
            Some(e) => {
                tracing::error!(error = %e, "cannot record failed sign-ins on the audit log");
                Err(e)
            }
            None => Ok(written),
        }
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
