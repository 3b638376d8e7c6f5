//! Scheduled work. Each job claims a lock first (a PostgreSQL advisory lock), so with many
//! nodes one runs it; the others do only what every node must (refresh what they publish).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use latchkey_store::Store;
use latchkey_store::cleanup::{self, Expired, Pace};

use crate::keys::KeyService;

/// How often expired sessions, requests, codes, tokens and revocations are deleted (in
/// bounded batches: `latchkey_store::cleanup`).
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

/// The audit chain's writer: one node at a time numbers and links new entries and writes
/// the checkpoints. Before its first run it moves the entries of a log older than the chain
/// into it (resumable: a batch per transaction).
pub fn spawn_audit_sealer(store: Arc<dyn Store>) -> tokio::task::JoinHandle<()> {
    let target = store.clone();
    spawn_locked(
        store,
        "audit-chain",
        crate::audit::SEAL_EVERY,
        move || {
            let store = target.clone();
            async move {
                // Every run: during a rolling upgrade, older nodes still write the old log.
                if let Err(e) = adopt_legacy(store.as_ref()).await {
                    tracing::error!(error = %e, "moving the old audit log into the chain failed");
                }
                if let Err(e) = crate::audit::seal_with(store.as_ref(), false).await {
                    tracing::error!(error = %e, "chaining audit entries failed");
                }
            }
        },
        || async {},
    )
}

/// The accounts' retention rules ([`crate::account_retention`]), on one node at a time,
/// with the cleanup's rhythm. Does nothing once the services are dropped.
pub fn spawn_account_retention(services: std::sync::Weak<crate::Latchkey>) -> Option<tokio::task::JoinHandle<()>> {
    let store = services.upgrade()?.store.clone();
    Some(spawn_locked(
        store,
        "account-retention",
        CLEANUP_INTERVAL,
        move || {
            let services = services.clone();
            async move {
                let Some(services) = services.upgrade() else { return };
                match services.account_retention().run(false).await {
                    Ok(report) if report != Default::default() => {
                        tracing::info!(?report, "applied the accounts' retention rules");
                    }
                    Ok(_) => {}
                    Err(e) => tracing::error!(error = %e, "account retention failed"),
                }
            }
        },
        || async {},
    ))
}

/// Every node reads the data-key generation again (a rotation may have begun elsewhere);
/// one node at a time seals rows in clear or under an older generation.
pub fn spawn_personal_data_sealer(store: Arc<dyn Store>) -> tokio::task::JoinHandle<()> {
    let (target, other) = (store.clone(), store.clone());
    spawn_locked(
        store,
        "personal-data",
        crate::data_keys::RESEAL_EVERY,
        move || {
            let store = target.clone();
            async move {
                match crate::data_keys::reseal_some(store.as_ref()).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(rows = n, "sealed personal data under the current data key"),
                    Err(e) => tracing::error!(error = %e, "sealing personal data failed"),
                }
            }
        },
        move || {
            let store = other.clone();
            async move {
                if let Err(e) = store.load_data_key_generation().await {
                    tracing::error!(error = %e, "reading the data-key generation failed");
                }
            }
        },
    )
}

async fn adopt_legacy(store: &dyn Store) -> latchkey_store::StoreResult<()> {
    let mut moved = 0;
    loop {
        let n = store.adopt_legacy_audit_events(1_000).await?;
        if n == 0 {
            break;
        }
        moved += n;
    }
    if moved > 0 {
        tracing::info!(entries = moved, "moved the audit log kept before the chain into it");
    }
    Ok(())
}

pub fn spawn_cleanup(
    store: Arc<dyn Store>,
    clock: latchkey_core::Clock,
    every: Duration,
    session_idle: Duration,
    retention: latchkey_config::RetentionConfig,
) -> tokio::task::JoinHandle<()> {
    let target = store.clone();
    spawn_locked(
        store,
        "cleanup",
        every,
        move || {
            let (store, now, retention) = (target.clone(), clock.now(), retention.clone());
            async move {
                let cutoffs = crate::retention::cutoffs(now, session_idle);
                let pace = Pace::for_backend(store.backend());
                match cleanup::delete_expired(store.as_ref(), &cutoffs, &Expired::ALL, pace).await {
                    Ok(report) if report.rows() > 0 => {
                        let by_kind: std::collections::BTreeMap<String, u64> =
                            Expired::ALL.iter().map(|k| (k.as_str().to_owned(), report.rows_of(*k))).collect();
                        crate::retention::count(&by_kind);
                        let deleted: Vec<String> =
                            by_kind.iter().filter(|(_, n)| **n > 0).map(|(k, n)| format!("{k}={n}")).collect();
                        tracing::info!(
                            rows = report.rows(),
                            batches = report.batches.len(),
                            batch_p99_ms = report.batch_quantile(0.99).as_secs_f64() * 1000.0,
                            longest_batch_ms = report.longest_batch().as_secs_f64() * 1000.0,
                            deleted = %deleted.join(" "),
                            "deleted expired rows"
                        );
                    }
                    Ok(_) => {}
                    Err(e) => tracing::error!(error = %e, "cleanup failed"),
                }
                match crate::retention::apply_periods(store.as_ref(), &retention, now, false).await {
                    Ok(removed) => {
                        crate::retention::count(&removed);
                        if removed.values().any(|n| *n > 0) {
                            tracing::info!(?removed, "deleted data past its retention period");
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "retention failed"),
                }
            }
        },
        || async {},
    )
}
