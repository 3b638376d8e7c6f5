//! How long kept data stays. What expires by its nature (sessions, codes, tokens, counters)
//! goes as soon as no security check needs it (`latchkey_store::cleanup`); what is kept for a
//! configured time (`[retention]`: the audit log, used invitations) goes after it. The
//! cleanup job does both every five minutes, and a job beside it the accounts' rules
//! ([`crate::account_retention`]); `latchkey retention --dry-run` counts what all three would
//! do. Every row deleted is counted in `latchkey_retention_deleted_total{kind}`.

use std::collections::BTreeMap;

use latchkey_config::RetentionConfig;
use latchkey_core::UnixTime;
use latchkey_store::Store;
use latchkey_store::cleanup::{self, Cutoffs, Expired, Pace};

use crate::{Latchkey, ServiceResult};

/// How long finished back-channel deliveries stay visible (`latchkey session deliveries`).
pub const KEEP_FINISHED_DELIVERIES: std::time::Duration = std::time::Duration::from_secs(7 * 86_400);

/// What a run deleted (or, dry, would delete), by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RetentionReport {
    pub dry_run: bool,
    pub removed: BTreeMap<String, u64>,
    /// Unused and never verified accounts ([`crate::account_retention`]).
    pub accounts: crate::account_retention::AccountsReport,
}

pub struct Retention<'a>(pub(crate) &'a Latchkey);

impl Retention<'_> {
    /// Deletes (or counts, with `dry_run`) everything whose time is up.
    pub async fn run(&self, dry_run: bool) -> ServiceResult<RetentionReport> {
        let s = self.0;
        let now = s.clock.now();
        let cutoffs = cutoffs(now, s.config.sessions.idle_timeout);
        let mut removed = BTreeMap::new();
        let store = s.store();
        if dry_run {
            for kind in Expired::ALL {
                removed.insert(kind.as_str().to_owned(), store.count_expired(kind, &cutoffs).await?);
            }
        } else {
            let report =
                cleanup::delete_expired(store, &cutoffs, &Expired::ALL, Pace::for_backend(store.backend())).await?;
            for kind in Expired::ALL {
                removed.insert(kind.as_str().to_owned(), report.rows_of(kind));
            }
        }
        removed.extend(apply_periods(store, &s.config.retention, now, dry_run).await?);
        let accounts = s.account_retention().run(dry_run).await?;
        if !dry_run {
            count(&removed);
        }
        Ok(RetentionReport { dry_run, removed, accounts })
    }
}

pub(crate) fn cutoffs(now: UnixTime, session_idle: std::time::Duration) -> Cutoffs {
    Cutoffs { now, session_idle, keep_finished_deliveries_until: now.minus(KEEP_FINISHED_DELIVERIES) }
}

/// The configured periods: audit entries and used invitations past theirs.
pub(crate) async fn apply_periods(
    store: &dyn Store,
    config: &RetentionConfig,
    now: UnixTime,
    dry_run: bool,
) -> latchkey_store::StoreResult<BTreeMap<String, u64>> {
    let mut removed = BTreeMap::new();
    if let Some(period) = config.audit_log() {
        removed.insert("audit_entries".to_owned(), store.trim_audit_chains(now.minus(period), dry_run).await?);
    }
    if let Some(period) = config.used_invitations() {
        removed.insert("used_invitations".to_owned(), store.delete_used_invitations(now.minus(period), dry_run).await?);
    }
    Ok(removed)
}

/// Counts deleted rows in `latchkey_retention_deleted_total{kind}`.
pub(crate) fn count(removed: &BTreeMap<String, u64>) {
    for (kind, n) in removed.iter().filter(|(_, n)| **n > 0) {
        metrics::counter!("latchkey_retention_deleted_total", "kind" => kind.clone()).increment(*n);
    }
}

pub fn describe_metrics() {
    metrics::describe_counter!(
        "latchkey_retention_deleted_total",
        "Rows the cleanup deleted because their time was up, by kind"
    );
}
