//! The audit log. Every change records its event in the transaction that makes it (the
//! store's `audit!`), pseudonymised and sealed under its subject's key; the chain's one
//! writer ([`Audit::seal`], every second on one node) then numbers and links the entries
//! and signs a checkpoint of the head at least every [`CHECKPOINT_EVERY`]. This is the
//! reading, sealing and verifying side.

mod verify;

use std::time::Duration;

use latchkey_core::domain::TenantId;
use latchkey_core::records::{Actor, AuditEvent, AuditQuery};
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

    /// Records an event that changes nothing, such as a read of personal data, in a
    /// transaction of its own.
    pub async fn record(
        &self,
        tenant: &TenantId,
        actor: &Actor,
        action: &str,
        target: &str,
        details: serde_json::Value,
    ) -> ServiceResult<()> {
        let mut tx = self.0.store().transaction().await?;
        tx.audit(tenant, actor, action, target, details).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every event that `query` selects, oldest first, a page at a time, to `write`, which
    /// may stop the read by returning an error. Records the export first.
    pub async fn export<E: From<crate::ServiceError>>(
        &self,
        tenant: &TenantId,
        query: &AuditQuery,
        actor: &Actor,
        mut write: impl FnMut(&(i64, AuditEvent)) -> Result<(), E>,
    ) -> Result<u64, E> {
        let filters = serde_json::json!({
            "actor": query.actor.is_some(), "subject": query.target.is_some(), "action": query.action,
            "since": query.since, "until": query.until,
        });
        self.record(tenant, actor, "audit.exported", "#audit-log", filters).await?;
        // A page as large as the store gives (it caps every page).
        let mut page = AuditQuery {
            oldest_first: true,
            before_id: None,
            limit: latchkey_core::records::MAX_PAGE,
            ..query.clone()
        };
        let mut written = 0;
        loop {
            let events = self.query(tenant, &page).await?;
            for event in &events {
                write(event)?;
                written += 1;
            }
            match events.last() {
                Some((id, _)) if events.len() == page.limit as usize => page.after_id = Some(*id),
                _ => return Ok(written),
            }
        }
    }

    /// A handle on the chain's writer that outlives these services (the CLI runs it after
    /// a command).
    pub fn chain_writer(&self) -> ChainWriter {
        ChainWriter(self.0.store.clone())
    }

    /// The tenant's chain as its row records it (none before its first entry is chained).
    pub async fn head(&self, tenant: &TenantId) -> ServiceResult<Option<latchkey_store::ChainHead>> {
        Ok(self.0.store().audit_chain_head(tenant).await?)
    }

    /// The public key checkpoint signatures verify with (base64url Ed25519).
    pub fn checkpoint_public_key(&self) -> String {
        self.0.audit_keys.checkpoint_public_key()
    }
}

/// Runs the chain's writer once.
pub struct ChainWriter(std::sync::Arc<dyn Store>);

impl ChainWriter {
    /// Does nothing once the services were closed (closing chained what waited).
    pub async fn seal(&self) -> ServiceResult<SealReport> {
        if self.0.is_closed() {
            return Ok(SealReport::default());
        }
        Ok(seal_with(self.0.as_ref(), false).await?)
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
