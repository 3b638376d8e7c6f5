//! PostgreSQL, for many stateless nodes: changes are announced with `NOTIFY` in the same
//! transaction as the write, and scheduled jobs are claimed with advisory locks.

use std::sync::Arc;
use std::time::Duration;

use latchkey_core::crypto::TokenHash;
use latchkey_core::domain::{
    ApiKeyId, ClientId, Email, Entitlement, GroupName, ProviderId, RoleName, ScopeName, SubjectId, TenantId, Username,
};
use latchkey_core::{Clock, UnixTime};
use sqlx::postgres::{PgListener, PgPoolOptions};
use sqlx::{PgConnection, PgPool};
use tokio::sync::mpsc;

use crate::CHANGES_CHANNEL as CHANNEL;
use crate::model::*;
use crate::oauth_model::*;
use crate::session_model::*;
use crate::shared::AccessEnd;
use crate::{Actor, AuditEvent, Change, JobLock, Store, StoreError, StoreResult, redact_url};
use latchkey_core::records::*;

/// A pooled connection idle this long is pinged before use (see `connect`).
const PING_WHEN_IDLE_FOR: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
    url: String,
    clock: Clock,
    audit_keys: Arc<std::sync::OnceLock<Arc<latchkey_core::crypto::AuditKeys>>>,
    data_keys: Arc<std::sync::OnceLock<Arc<latchkey_core::crypto::PersonalDataKeys>>>,
}

impl PostgresStore {
    pub async fn connect(url: &str, max_connections: u32, clock: Clock) -> StoreResult<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(2))
            .acquire_timeout(Duration::from_secs(10))
            // A round trip before every statement cost as much PostgreSQL CPU as the
            // statement itself under load; a connection back from work a moment ago is
            // alive, one that sat idle (the server may have restarted) is still checked.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= PING_WHEN_IDLE_FOR {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
            .connect(url)
            .await
            .map_err(|e| StoreError::Invalid(format!("cannot connect to PostgreSQL at {}: {e}", redact_url(url))))?;
        Ok(Self { pool, url: url.to_owned(), clock, audit_keys: Arc::default(), data_keys: Arc::default() })
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

    /// A live refresh token marked rotated and its successor (same family, grant and
    /// session) stored, in one statement: one round trip and one commit, where a transaction
    /// takes four. Nothing happens when the token is not live.
    async fn rotate_live(
        &self,
        tenant: &TenantId,
        old: &TokenHash,
        new: &NewRefreshToken,
        now: UnixTime,
    ) -> StoreResult<Option<RefreshRow>> {
        // The successor is of the same grant: sealed for it, as its predecessor was. A token
        // of another grant is not rotated here (`rotate_refresh_token` refuses it).
        let (grant_data, generation) = self.seal_grant(tenant, &new.grant_id, &new.grant_data)?;
        let row = sqlx::query_as(
            "WITH old AS (
                 UPDATE refresh_tokens SET rotated_at = $3
                 WHERE tenant_id = $1 AND token_hash = $2 AND rotated_at IS NULL AND revoked_at IS NULL AND expires_at > $3
                     AND grant_id = $11
                 RETURNING family_id, grant_id, client_id, sub, grant_data, created_at, expires_at, rotated_at, revoked_at, sid, ends_with_session,
                     sealed_gen
             ), successor AS (
                 INSERT INTO refresh_tokens (tenant_id, token_hash, family_id, grant_id, client_id, sub, grant_data, created_at,
                     expires_at, sid, ends_with_session, sealed_gen)
                 SELECT $1, $4, family_id, grant_id, $5, $6, $7, $3, $8, sid, $9, $10 FROM old
             )
             SELECT * FROM old",
        )
        .bind(tenant.as_str())
        .bind(old.as_str())
        .bind(now.secs())
        .bind(new.token_hash.as_str())
        .bind(new.client_id.as_str())
        .bind(&new.sub)
        .bind(grant_data)
        .bind(new.expires_at.secs())
        .bind(new.ends_with_session)
        .bind(generation)
        .bind(&new.grant_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row)
    }

    /// Nothing the server can do online: dead row versions that held values in clear stay
    /// on disk until the table is rewritten (`VACUUM FULL`, see docs/operations.md).
    async fn forget_cleartext(&self) -> StoreResult<bool> {
        Ok(true)
    }

    async fn park_authorization_request(
        &self,
        tenant: &TenantId,
        id_hash: &TokenHash,
        p: &PendingAuthorization,
        (request, generation): (String, i64),
        max_per_ip: u32,
        now: i64,
    ) -> StoreResult<bool> {
        let stored: bool = sqlx::query_scalar("SELECT park_authorization_request($1, $2, $3, $4, $5, $6, $7, $8, $9)")
            .bind(tenant.as_str())
            .bind(id_hash.as_str())
            .bind(p.binding_hash.as_str())
            .bind(request)
            .bind(now)
            .bind(p.expires_at.secs())
            .bind(&p.ip_key)
            .bind(i64::from(max_per_ip))
            .bind(generation)
            .fetch_one(&self.pool)
            .await?;
        Ok(stored)
    }

    /// A code and, with a session, the session's record of the client: one statement, so
    /// one round trip and one commit.
    async fn insert_code_and_session_client(&self, tenant: &TenantId, c: &NewCode, now: UnixTime) -> StoreResult<()> {
        let Some(session) = &c.session else {
            let mut conn = self.pool.acquire().await?;
            return self.insert_code_row(&mut conn, tenant, c, now.secs()).await;
        };
        let (grant_data, generation) = self.seal_grant(tenant, &c.grant_id, &c.grant_data)?;
        sqlx::query(concat!(
            "WITH code AS (
                 INSERT INTO authorization_codes (tenant_id, code_hash, grant_id, client_id, grant_data, created_at, expires_at, sealed_gen)
                 VALUES ($1, $6, $7, $3, $8, $5, $9, $10)
             ) ",
            record_session_client_sql!()
        ))
        .bind(tenant.as_str())
        .bind(&session.sid)
        .bind(c.client_id.as_str())
        .bind(session.backchannel)
        .bind(now.secs())
        .bind(c.code_hash.as_str())
        .bind(&c.grant_id)
        .bind(grant_data)
        .bind(c.expires_at.secs())
        .bind(generation)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A cleanup batch: at most `$2` rows matching `condition` (which compares with `$1`),
    /// the first in the order of the indexed column `by`, deleted by their row address (a
    /// TID scan). The order makes the index the cheap plan even for a generic plan that
    /// cannot know how many rows match; `SKIP LOCKED` leaves rows a request holds to the next
    /// batch, so neither waits for the other.
    fn batch_delete_sql(table: &str, condition: &str, by: &str) -> String {
        format!(
            "DELETE FROM {table} WHERE ctid = ANY(ARRAY(
                 SELECT ctid FROM {table} WHERE {condition} ORDER BY {by} LIMIT $2 FOR UPDATE SKIP LOCKED))"
        )
    }

    /// A cleanup batch of sessions and their lists of clients, in one statement.
    async fn delete_session_batch(&self, condition: &str, by: &str, cutoff: i64, limit: u32) -> StoreResult<u64> {
        let deleted: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "WITH gone AS ({} RETURNING tenant_id, sid),
             clients AS (DELETE FROM session_clients c USING gone WHERE c.tenant_id = gone.tenant_id AND c.sid = gone.sid)
             SELECT COUNT(*) FROM gone",
            Self::batch_delete_sql("browser_sessions", condition, by)
        )))
        .bind(cutoff)
        .bind(i64::from(limit))
        .fetch_one(&self.pool)
        .await?;
        Ok(u64::try_from(deleted).unwrap_or(0))
    }

    /// After a bulk load: the planner's statistics, so that a page of users is read through
    /// the username index at once rather than after autovacuum gets round to it (a plan made
    /// with the statistics of an empty table sorted 58,000 rows for a 100-row prefix).
    async fn refresh_user_statistics(&self) -> Result<(), sqlx::Error> {
        sqlx::query("ANALYZE users").execute(&self.pool).await?;
        Ok(())
    }

    /// Serialises, until the surrounding transaction ends, every creation of a user or
    /// client with this id: each checks that the other kind does not hold it, and two such
    /// checks must not both pass under READ COMMITTED. (A key space of its own: two 32-bit
    /// keys never meet the job locks' single 64-bit ones.)
    async fn lock_principal_id(conn: &mut PgConnection, tenant: &TenantId, id: &str) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT pg_advisory_xact_lock(9068, hashtext($1))")
            .bind(format!("{tenant}:{id}"))
            .execute(conn)
            .await?;
        Ok(())
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

    fn is_closed(&self) -> bool {
        self.pool.is_closed()
    }

    async fn transaction(&self) -> StoreResult<Box<dyn crate::StoreTx>> {
        Ok(Box::new(crate::shared::WriteTx { store: self.clone(), tx: self.begin_write().await? }))
    }
}

#[allow(unused_imports)]
use {
    ClientId as _, Email as _, ScopeName as _, SubjectId as _, TenantId as _, TokenHash as _, UnixTime as _,
    Username as _,
};
