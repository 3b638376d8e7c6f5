//! The audit log. Every change records its event in the transaction that makes it (the
//! store's `audit!`), pseudonymised and sealed under its subject's key; the chain's one
//! writer ([`Audit::seal`], every second on one node) then numbers and links the entries
//! and signs a checkpoint of the head at least every [`CHECKPOINT_EVERY`]. This is the
//! reading, sealing and verifying side.

mod verify;

use std::time::Duration;

use latchkey_core::domain::TenantId;
use latchkey_core::records::{AuditEvent, AuditQuery};
use latchkey_store::{SealReport, Store, StoreResult};

pub use verify::{ChainProblem, Verification};

use crate::{Latchkey, ServiceResult, pass_through};

/// How often a signed checkpoint of each chain's head is written, even when nothing happens,
/// so a cut-off tail shows as a gap in the checkpoints.
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(300);
/// How often the chain's writer numbers the entries written since it last ran.
pub const SEAL_EVERY: Duration = Duration::from_secs(1);
/// Entries still waiting for the chain's writer after this long are reported by `verify`.
pub const WAITING_TOO_LONG: Duration = Duration::from_secs(60);

pub struct Audit<'a>(pub(crate) &'a Latchkey);

impl Audit<'_> {
    pass_through! {
        /// The newest events first.
        fn recent(tenant: &TenantId, limit: u32) -> Vec<AuditEvent> => recent_audit_events;
        /// One page of events, newest first, each with its place in the log.
        fn query(tenant: &TenantId, query: &AuditQuery) -> Vec<(i64, AuditEvent)> => audit_events;
    }

    /// Numbers and links the entries waiting for the chain, and writes each due checkpoint
    /// (every chain's, with `force_checkpoint`). The server runs this every second; the CLI
    /// after each command.
    pub async fn seal(&self, force_checkpoint: bool) -> ServiceResult<SealReport> {
        Ok(seal_with(self.0.store(), force_checkpoint).await?)
    }

    /// The public key checkpoint signatures verify with (base64url Ed25519).
    pub fn checkpoint_public_key(&self) -> String {
        self.0.audit_keys.checkpoint_public_key()
    }
}

pub(crate) async fn seal_with(store: &dyn Store, force_checkpoint: bool) -> StoreResult<SealReport> {
    let report = store.seal_audit_chain(CHECKPOINT_EVERY, force_checkpoint).await?;
    record_metrics(&report);
    Ok(report)
}

fn record_metrics(report: &SealReport) {
    if report.chained > 0 {
        metrics::counter!("latchkey_audit_entries_chained_total").increment(report.chained);
    }
    for (tenant, seq, checkpoint_at) in &report.heads {
        let tenant = tenant.to_string();
        metrics::gauge!("latchkey_audit_chain_head", "tenant" => tenant.clone()).set(*seq as f64);
        metrics::gauge!("latchkey_audit_checkpoint_timestamp_seconds", "tenant" => tenant).set(*checkpoint_at as f64);
    }
}

pub fn describe_metrics() {
    metrics::describe_counter!("latchkey_audit_entries_chained_total", "Audit entries given their place in the chain");
    metrics::describe_gauge!(
        "latchkey_audit_chain_head",
        "Position of the newest entry of each tenant's audit chain (record it elsewhere: a lower value later means a cut-off tail)"
    );
    metrics::describe_gauge!(
        "latchkey_audit_checkpoint_timestamp_seconds",
        "When the newest signed checkpoint of each tenant's audit chain was written"
    );
}
