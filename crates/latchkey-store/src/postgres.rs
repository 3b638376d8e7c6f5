//! PostgreSQL, for many stateless nodes: changes are announced with `NOTIFY` in the same
//! transaction as the write, and scheduled jobs are claimed with advisory locks.

use std::time::Duration;

use latchkey_core::crypto::TokenHash;
use latchkey_core::domain::{ClientId, Email, ScopeName, SubjectId, TenantId, Username};
use latchkey_core::{Clock, UnixTime};
use sqlx::postgres::{PgListener, PgPoolOptions};
use sqlx::{PgConnection, PgPool};
use tokio::sync::mpsc;

use crate::changes::CHANNEL;
use crate::factor_model::*;
use crate::model::*;
use crate::oauth_model::*;
use crate::session_model::*;
use crate::{Actor, AuditEvent, Change, JobLock, Store, StoreError, StoreResult, redact_url};

pub struct PostgresStore {
    pool: PgPool,
    url: String,
    clock: Clock,
}

impl PostgresStore {
    pub async fn connect(url: &str, max_connections: u32, clock: Clock) -> StoreResult<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(2))
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await
            .map_err(|e| StoreError::Invalid(format!("cannot connect to PostgreSQL at {}: {e}", redact_url(url))))?;
        Ok(Self { pool, url: url.to_owned(), clock })
    }

    fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
        self.pool.begin().await
    }

    fn now(&self) -> i64 {
        self.clock.now().secs()
    }

    /// Delivered to every listening node when the surrounding transaction commits.
    async fn notify(conn: &mut PgConnection, change: &Change) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(change.to_payload()).execute(conn).await?;
        Ok(())
    }
}

impl_shared_store!(PostgresStore, sqlx::Postgres);

#[async_trait::async_trait]
impl Store for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn location(&self) -> String {
        redact_url(&self.url)
    }

    async fn migrate(&self) -> StoreResult<()> {
        // sqlx takes an advisory lock, so nodes starting together migrate once.
        sqlx::migrate!("./migrations/postgres").run(&self.pool).await?;
        Ok(())
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn meta(&self, name: &str) -> StoreResult<Option<String>> {
        self.shared_meta(name).await
    }

    async fn put_meta_if_absent(&self, name: &str, value: &str) -> StoreResult<String> {
        self.shared_put_meta_if_absent(name, value).await
    }

    async fn holds_sealed_data(&self) -> StoreResult<bool> {
        self.shared_holds_sealed_data().await
    }

    async fn watch_changes(&self, _poll_interval: Duration) -> StoreResult<mpsc::Receiver<Change>> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(CHANNEL).await?;
        let (tx, rx) = mpsc::channel(256);
        tokio::spawn(async move {
            loop {
                let change = match listener.recv().await {
                    Ok(n) => Change::from_payload(n.payload()),
                    Err(e) => {
                        // The listener reconnects on the next recv; notifications sent while
                        // it was away are lost, so everything is reloaded.
                        tracing::warn!(error = %e, "PostgreSQL change listener lost its connection");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        Change::Unknown
                    }
                };
                if tx.send(change).await.is_err() {
                    return;
                }
            }
        });
        Ok(rx)
    }

    async fn try_job_lock(&self, name: &str) -> StoreResult<Option<JobLock>> {
        // A transaction-scoped advisory lock: released when the JobLock (and with it the
        // transaction) is dropped, even if the job panics or the node dies.
        let mut tx = self.pool.begin().await?;
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(hashtext($1))")
            .bind(format!("latchkey-job:{name}"))
            .fetch_one(&mut *tx)
            .await?;
        Ok(got.then(|| JobLock::held(Some(tx))))
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

#[allow(unused_imports)]
use {
    ClientId as _, Email as _, ScopeName as _, SubjectId as _, TenantId as _, TokenHash as _, UnixTime as _,
    Username as _,
};
