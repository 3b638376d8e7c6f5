//! Scheduled work. Each job claims a lock first (a PostgreSQL advisory lock), so with many
//! nodes one runs it; the others only refresh what they publish.

use std::sync::Arc;
use std::time::Duration;

use latchkey_store::Store;

use crate::keys::KeyService;

pub fn spawn_key_schedule(
    store: Arc<dyn Store>,
    keys: Arc<KeyService>,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match store.try_job_lock("signing-keys").await {
                Ok(Some(lock)) => {
                    if let Err(e) = keys.run_schedule().await {
                        tracing::error!(error = %e, "signing key schedule failed");
                    }
                    lock.release().await;
                }
                Ok(None) => {
                    // Another node rotates; keep our published set current (retired keys
                    // leave the JWKS when their time is up).
                    if let Err(e) = keys.reload().await {
                        tracing::error!(error = %e, "reloading signing keys failed");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot claim the signing key job"),
            }
        }
    })
}

/// How often expired sessions, requests, codes, tokens and revocations are deleted.
pub const CLEANUP_INTERVAL: Duration = Duration::from_secs(300);

pub fn spawn_cleanup(
    store: Arc<dyn Store>,
    clock: latchkey_core::Clock,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match store.try_job_lock("cleanup").await {
                Ok(Some(lock)) => {
                    match store.delete_expired_oauth_state(clock.now()).await {
                        Ok(n) if n > 0 => tracing::info!(rows = n, "deleted expired sessions and tokens"),
                        Ok(_) => {}
                        Err(e) => tracing::error!(error = %e, "cleanup failed"),
                    }
                    lock.release().await;
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "cannot claim the cleanup job"),
            }
        }
    })
}
