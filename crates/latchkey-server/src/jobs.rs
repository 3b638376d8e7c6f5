//! Scheduled work. Each job claims a lock first (a PostgreSQL advisory lock), so with many
//! nodes one runs it; the others do only what every node must (refresh what they publish).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use latchkey_store::Store;

use crate::keys::KeyService;

/// How often expired sessions, requests, codes, tokens and revocations are deleted.
pub const CLEANUP_INTERVAL: Duration = Duration::from_secs(300);

/// Runs `job` every `every` on the node that holds the lock named `name`; `otherwise` runs
/// on the nodes that do not.
fn spawn_locked<J, JF, O, OF>(
    store: Arc<dyn Store>,
    name: &'static str,
    every: Duration,
    job: J,
    otherwise: O,
) -> tokio::task::JoinHandle<()>
where
    J: Fn() -> JF + Send + 'static,
    JF: Future<Output = ()> + Send,
    O: Fn() -> OF + Send + 'static,
    OF: Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match store.try_job_lock(name).await {
                Ok(Some(lock)) => {
                    job().await;
                    lock.release().await;
                }
                Ok(None) => otherwise().await,
                Err(e) => tracing::warn!(error = %e, job = name, "cannot claim the job"),
            }
        }
    })
}

pub fn spawn_key_schedule(
    store: Arc<dyn Store>,
    keys: Arc<KeyService>,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    let other = keys.clone();
    spawn_locked(
        store,
        "signing-keys",
        every,
        move || {
            let keys = keys.clone();
            async move {
                if let Err(e) = keys.run_schedule().await {
                    tracing::error!(error = %e, "signing key schedule failed");
                }
            }
        },
        // Another node rotates; keep our published set current (retired keys leave the
        // JWKS when their time is up).
        move || {
            let keys = other.clone();
            async move {
                if let Err(e) = keys.reload().await {
                    tracing::error!(error = %e, "reloading signing keys failed");
                }
            }
        },
    )
}

/// How long finished back-channel deliveries stay visible (`latchkey session deliveries`).
const KEEP_FINISHED_DELIVERIES: Duration = Duration::from_secs(7 * 86_400);

pub fn spawn_cleanup(
    store: Arc<dyn Store>,
    clock: latchkey_core::Clock,
    every: Duration,
    session_idle: Duration,
) -> tokio::task::JoinHandle<()> {
    let target = store.clone();
    spawn_locked(
        store,
        "cleanup",
        every,
        move || {
            let (store, now) = (target.clone(), clock.now());
            async move {
                match store.delete_expired_oauth_state(now).await {
                    Ok(n) if n > 0 => tracing::info!(rows = n, "deleted expired requests and tokens"),
                    Ok(_) => {}
                    Err(e) => tracing::error!(error = %e, "cleanup failed"),
                }
                match store.delete_idle_sessions(now, session_idle, now.minus(KEEP_FINISHED_DELIVERIES)).await {
                    Ok(n) if n > 0 => {
                        tracing::info!(rows = n, "deleted expired sessions and finished logout deliveries")
                    }
                    Ok(_) => {}
                    Err(e) => tracing::error!(error = %e, "session cleanup failed"),
                }
                match store.delete_expired_ceremonies(now).await {
                    Ok(n) if n > 0 => tracing::info!(rows = n, "deleted expired passkey challenges and sign-in steps"),
                    Ok(_) => {}
                    Err(e) => tracing::error!(error = %e, "ceremony cleanup failed"),
                }
            }
        },
        || async {},
    )
}
