//! The database as a whole: which backend, whether it answers, its change feed and the
//! locks that keep a scheduled job on one node.

use latchkey_core::records::Change;
use tokio::sync::mpsc;

use crate::{Latchkey, ServiceResult};

pub struct System<'a>(pub(crate) &'a Latchkey);

impl System<'_> {
    /// `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        self.0.store().backend()
    }
    /// Where the data lives, for people (never a password).
    pub fn location(&self) -> String {
        self.0.store().location()
    }
    pub async fn ping(&self) -> ServiceResult<()> {
        Ok(self.0.store().ping().await?)
    }
    /// Changes made by anyone (other nodes, the CLI), for cache invalidation.
    pub async fn watch_changes(&self) -> ServiceResult<mpsc::Receiver<Change>> {
        Ok(self.0.store().watch_changes(self.0.config.database.change_poll_interval).await?)
    }
    /// Chains the audit entries this process wrote (a CLI command's would otherwise wait
    /// for a server to run the chain's writer), then closes the connection pool.
    pub async fn close(&self) {
        // What this node tallied of failed sign-ins since its last report.
        let _ = self.0.failed_sign_ins().report().await;
        if let Err(e) = crate::audit::seal_with(self.0.store(), false).await {
            tracing::warn!(error = %e, "the audit log's new entries were not chained yet (a server will)");
        }
        self.0.store().close().await;
    }
}
