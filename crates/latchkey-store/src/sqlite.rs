//! The embedded default: one SQLite file in WAL mode, shared by the server and the CLI.

use std::path::{Path, PathBuf};
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use latchkey_core::crypto::TokenHash;
use latchkey_core::domain::{
    ApiKeyId, ClientId, Email, Entitlement, GroupName, ProviderId, RoleName, ScopeName, SubjectId, TenantId, Username,
};
use latchkey_core::{Clock, UnixTime};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection as _, SqliteConnection, SqlitePool};
use tokio::sync::mpsc;

use crate::model::*;
use crate::oauth_model::*;
use crate::session_model::*;
use crate::shared::AccessEnd;
use crate::{Actor, AuditEvent, Change, JobLock, Store, StoreError, StoreResult};
use latchkey_core::records::*;

#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    options: SqliteConnectOptions,
    path: PathBuf,
    clock: Clock,
    audit_keys: Arc<std::sync::OnceLock<Arc<latchkey_core::crypto::AuditKeys>>>,
    data_keys: Arc<std::sync::OnceLock<Arc<latchkey_core::crypto::PersonalDataKeys>>>,
}

impl SqliteStore {
    /// Opens (creating if missing) the database file at `path`.
    pub async fn open(path: &Path, max_connections: u32, clock: Clock) -> StoreResult<Self> {
        owner_only::prepare(path)?;
        let options = SqliteConnectOptions::from_str("sqlite:")?
            .filename(path)
            .create_if_missing(true)
            // WAL with synchronous=NORMAL is durable across application crashes; a power
            // loss may lose the last transactions but never corrupts the file.
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            // A deleted or rewritten row is overwritten with zeros, not left in free space
            // (erased accounts, personal data re-sealed or sealed for the first time).
            .pragma("secure_delete", "ON")
            // The CLI and the server share the file: wait for each other's write locks.
            .busy_timeout(Duration::from_secs(10));
        let cannot_open =
            |e: sqlx::Error| StoreError::Invalid(format!("cannot open SQLite database {}: {e}", path.display()));
        // WAL mode is a property of the file: set it once here rather than on every pooled
        // connection, where the pragma can fail with SQLITE_BUSY while another writes.
        let first = SqliteConnection::connect_with(&options.clone().journal_mode(SqliteJournalMode::Wal))
            .await
            .map_err(cannot_open)?;
        first.close().await.map_err(cannot_open)?;
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections.max(1))
            // The ping before each use stays (unlike PostgreSQL's): turned off, the
            // benchmark's authorization-code flows fell by a third, as more writers met
            // SQLite's single write lock at once and waited in its busy handler.
            .connect_with(options.clone())
            .await
            .map_err(cannot_open)?;
        Ok(Self { pool, options, path: path.to_owned(), clock, audit_keys: Arc::default(), data_keys: Arc::default() })
    }

    fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Write transactions take the write lock at BEGIN. A deferred transaction that reads
    /// first and writes later fails at once with SQLITE_BUSY when another connection wrote
    /// in between (the busy timeout cannot help); IMMEDIATE waits for the lock instead.
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        self.pool.begin_with("BEGIN IMMEDIATE").await
    }

    fn now(&self) -> i64 {
        self.clock.now().secs()
    }

    /// A live refresh token marked rotated and its successor (same family, grant and
    /// session) stored, in one statement; nothing happens when the token is not live.
    ///
    /// SQLite has no data-modifying `WITH`, so the one statement is an upsert: the SELECT
    /// yields the live token itself (which conflicts on its key, and the conflict marks it
    /// rotated) and its successor (which is inserted), or no rows. A statement that writes
    /// takes the write lock before it reads, and SQLite evaluates a SELECT that reads the
    /// table it inserts into before the first row is written, so both rows come from the
    /// same live token and two rotations of it cannot both succeed. One statement holds the
    /// single write lock for one hand-off to the connection's thread, where a transaction
    /// (BEGIN IMMEDIATE, UPDATE, INSERT, COMMIT) held it for four.
    async fn rotate_live(
        &self,
        tenant: &TenantId,
        old: &TokenHash,
        new: &NewRefreshToken,
        now: UnixTime,
    ) -> StoreResult<Option<RefreshRow>> {
        use sqlx::Row as _;
        // The successor is of the same grant: sealed for it, as its predecessor was. A token
        // of another grant is not rotated here (`rotate_refresh_token` refuses it).
        let (grant_data, generation) = self.seal_grant(tenant, &new.grant_id, &new.grant_data)?;
        let rows = sqlx::query(
            "INSERT INTO refresh_tokens (tenant_id, token_hash, family_id, grant_id, client_id, sub, grant_data, created_at,
                 expires_at, rotated_at, revoked_at, sid, ends_with_session, sealed_gen)
             SELECT tenant_id, token_hash, family_id, grant_id, client_id, sub, grant_data, created_at,
                 expires_at, $3, NULL, sid, ends_with_session, sealed_gen
             FROM refresh_tokens
             WHERE tenant_id = $1 AND token_hash = $2 AND rotated_at IS NULL AND revoked_at IS NULL AND expires_at > $3
                 AND grant_id = $11
             UNION ALL
             SELECT $1, $4, family_id, grant_id, $5, $6, $7, $3, $8, NULL, NULL, sid, $9, $10
             FROM refresh_tokens
             WHERE tenant_id = $1 AND token_hash = $2 AND rotated_at IS NULL AND revoked_at IS NULL AND expires_at > $3
                 AND grant_id = $11
             ON CONFLICT (tenant_id, token_hash) DO UPDATE SET rotated_at = excluded.rotated_at
                 WHERE refresh_tokens.token_hash = $2
             RETURNING token_hash, family_id, grant_id, client_id, sub, grant_data, created_at, expires_at, rotated_at,
                 revoked_at, sid, ends_with_session, sealed_gen",
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
        .fetch_all(&self.pool)
        .await?;
        let mut rotated = None;
        let mut successor_stored = false;
        for row in &rows {
            let hash: &str = row.try_get("token_hash")?;
            if hash == old.as_str() {
                rotated = Some(<RefreshRow as sqlx::FromRow<_>>::from_row(row)?);
            } else {
                successor_stored = hash == new.token_hash.as_str();
            }
        }
        match (rotated, successor_stored) {
            (Some(row), true) => Ok(Some(row)),
            (None, false) => Ok(None),
            // Only a successor hash that is already stored gets here (256 random bits).
            _ => Err(StoreError::Conflict("the new refresh token's hash is already stored".into())),
        }
    }

    /// A code and, with a session, the session's record of the client. Two statements, not
    /// one transaction: SQLite has one writer, and a transaction would hold its lock across
    /// four hand-offs to the connection's thread where each statement holds it for one
    /// (measured: authorization-code flows fell by half). A code whose record failed is
    /// never handed out (the caller fails) and expires unused.
    async fn insert_code_and_session_client(&self, tenant: &TenantId, c: &NewCode, now: UnixTime) -> StoreResult<()> {
        let mut conn = self.pool.acquire().await?;
        self.insert_code_row(&mut conn, tenant, c, now.secs()).await?;
        if let Some(session) = &c.session {
            sqlx::query(RECORD_SESSION_CLIENT)
                .bind(tenant.as_str())
                .bind(&session.sid)
                .bind(c.client_id.as_str())
                .bind(session.backchannel)
                .bind(now.secs())
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }

    /// A cleanup batch: at most `$2` rows matching `condition` (which compares with `$1`),
    /// the first in the order of the indexed column `by`, deleted by rowid. SQLite has no
    /// `DELETE … LIMIT` unless built with it.
    fn batch_delete_sql(table: &str, condition: &str, by: &str) -> String {
        format!(
            "DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table} WHERE {condition} ORDER BY {by} LIMIT $2)"
        )
    }

    /// A cleanup batch of sessions and their lists of clients, in one transaction. The write
    /// lock, taken at BEGIN, keeps the sessions still while both statements choose them.
    async fn delete_session_batch(&self, condition: &str, by: &str, cutoff: i64, limit: u32) -> StoreResult<u64> {
        let chosen = format!("SELECT rowid FROM browser_sessions WHERE {condition} ORDER BY {by} LIMIT $2");
        let mut tx = self.begin_write().await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM session_clients WHERE (tenant_id, sid) IN
                 (SELECT tenant_id, sid FROM browser_sessions WHERE rowid IN ({chosen}))"
        )))
        .bind(cutoff)
        .bind(i64::from(limit))
        .execute(&mut *tx)
        .await?;
        let done = sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM browser_sessions WHERE rowid IN ({chosen})")))
            .bind(cutoff)
            .bind(i64::from(limit))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    /// Parks a request unless its network has `max_per_ip` live ones, in one statement: a
    /// statement that writes takes SQLite's single write lock before it reads, so the count
    /// and the insert cannot interleave with another park (on this or another process).
    async fn park_authorization_request(
        &self,
        tenant: &TenantId,
        id_hash: &TokenHash,
        p: &PendingAuthorization,
        (request, generation): (String, i64),
        max_per_ip: u32,
        now: i64,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "INSERT INTO authorization_requests (tenant_id, id_hash, binding_hash, request, created_at, expires_at, ip_key, sealed_gen)
             SELECT $1, $2, $3, $4, $5, $6, $7, $9
             WHERE (SELECT count(*) FROM (
                 SELECT 1 FROM authorization_requests WHERE ip_key = $7 AND tenant_id = $1 AND expires_at > $5 LIMIT $8
             )) < $8",
        )
        .bind(tenant.as_str())
        .bind(id_hash.as_str())
        .bind(p.binding_hash.as_str())
        .bind(request)
        .bind(now)
        .bind(p.expires_at.secs())
        .bind(&p.ip_key)
        .bind(i64::from(max_per_ip))
        .bind(generation)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// After every row is sealed: old pages that held values in clear can remain in the
    /// write-ahead log until it is checkpointed and truncated. False when a reader kept
    /// the checkpoint from finishing (the next pass tries again).
    async fn forget_cleartext(&self) -> StoreResult<bool> {
        let (busy, _, _): (i64, i64, i64) =
            sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)").fetch_one(&self.pool).await?;
        Ok(busy == 0)
    }

    /// SQLite has no notifications: other processes see changes by polling
    /// `PRAGMA data_version` (see `watch_changes`).
    async fn notify(_conn: &mut SqliteConnection, _change: &Change) -> Result<(), sqlx::Error> {
        Ok(())
    }

    /// Nothing to refresh: without statistics SQLite already reads pages through the index.
    async fn refresh_user_statistics(&self) -> Result<(), sqlx::Error> {
        Ok(())
    }

    /// Nothing to take: a write transaction holds SQLite's one write lock from `BEGIN
    /// IMMEDIATE`, so the check that follows cannot race another creation.
    async fn lock_principal_id(_conn: &mut SqliteConnection, _tenant: &TenantId, _id: &str) -> Result<(), sqlx::Error> {
        Ok(())
    }
}

impl_shared_store!(SqliteStore, sqlx::Sqlite);

#[async_trait::async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn location(&self) -> String {
        self.path.display().to_string()
    }

    async fn migrate(&self) -> StoreResult<()> {
        sqlx::migrate!("./migrations/sqlite").run(&self.pool).await?;
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

    async fn watch_changes(&self, poll_interval: Duration) -> StoreResult<mpsc::Receiver<Change>> {
        // `data_version` changes when another connection (any process) commits a change.
        let mut conn = SqliteConnection::connect_with(&self.options).await?;
        let mut last: i64 = sqlx::query_scalar("PRAGMA data_version").fetch_one(&mut conn).await?;
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(poll_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match sqlx::query_scalar::<_, i64>("PRAGMA data_version").fetch_one(&mut conn).await {
                    Ok(v) if v != last => {
                        last = v;
                        if tx.send(Change::Unknown).await.is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "polling SQLite for changes failed"),
                }
                if tx.is_closed() {
                    return;
                }
            }
        });
        Ok(rx)
    }

    async fn try_job_lock(&self, _name: &str) -> StoreResult<Option<JobLock>> {
        // One server per SQLite file: its jobs never compete with another node's.
        Ok(Some(JobLock::held(None)))
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

/// The database holds password hashes, sealed keys and personal data: like the master key,
/// its files are readable by their owner only.
mod owner_only {
    use std::path::{Path, PathBuf};

    use crate::StoreError;

    /// The files SQLite keeps for the database at `path`.
    #[cfg(unix)]
    fn files(path: &Path) -> [PathBuf; 3] {
        let with = |suffix: &str| {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            PathBuf::from(name)
        };
        [path.to_owned(), with("-wal"), with("-shm")]
    }

    /// Creates the database file owner-only when it is missing (SQLite then gives its `-wal`
    /// and `-shm` files the same mode), and takes every other permission away from files that
    /// exist (made by an older version, or by hand).
    #[cfg(unix)]
    pub fn prepare(path: &Path) -> Result<(), StoreError> {
        use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
        let failed = |what: &str, p: &Path, e: std::io::Error| {
            StoreError::Invalid(format!("cannot {what} SQLite database file {}: {e}", p.display()))
        };
        match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            // A missing directory and the like: SQLite's own open reports it.
            Err(_) => return Ok(()),
        }
        for file in files(path) {
            let meta = match std::fs::metadata(&file) {
                Ok(meta) => meta,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(failed("inspect", &file, e)),
            };
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode & 0o700))
                    .map_err(|e| failed("restrict", &file, e))?;
                tracing::warn!(file = %file.display(), was = format!("{mode:o}"), now = format!("{:o}", mode & 0o700),
                    "the database file was readable by others; it is now readable by its owner only");
            }
        }
        Ok(())
    }

    #[cfg(not(unix))]
    pub fn prepare(_path: &Path) -> Result<(), StoreError> {
        Ok(())
    }
}

// Imports the shared SQL refers to through the macro.
#[allow(unused_imports)]
use {
    ClientId as _, Email as _, ScopeName as _, SubjectId as _, TenantId as _, TokenHash as _, UnixTime as _,
    Username as _,
};
