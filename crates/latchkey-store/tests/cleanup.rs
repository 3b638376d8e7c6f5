//! The cleanup works off a backlog of expired rows in short batches, on SQLite and (when
//! LATCHKEY_TEST_POSTGRES_URL is set) PostgreSQL, while other writes go on.
//!
//! The proof at a million rows, with sign-ins and refreshes over HTTP and their p99, is
//! `bench/cleanup` (docs/performance.md); this test proves the mechanism with what can fail
//! deterministically: many batches, none holding the write lock long enough to refuse a
//! concurrent write whose busy timeout is short, and nothing expired left afterwards.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use latchkey_core::{Clock, UnixTime};
use latchkey_store::Store;
use latchkey_store::cleanup::{Cutoffs, Expired, Pace, delete_expired};
use latchkey_store::testing::TestDatabase;
use sqlx::{Connection as _, Row as _};

fn ok<T, E: std::fmt::Display>(r: Result<T, E>, what: &str) -> T {
    r.unwrap_or_else(|e| panic!("{what}: {e}"))
}

const NOW: i64 = 1_800_000_000;
/// Expired refresh tokens: the backlog (a thousand rows a batch makes a hundred batches).
/// `CLEANUP_TEST_TOKENS` changes it for a measurement by hand (docs/performance.md).
fn expired_tokens() -> i64 {
    std::env::var("CLEANUP_TEST_TOKENS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000)
}
/// Expired rows of every other kind.
const EXPIRED_OTHERS: i64 = 1_500;
/// Live rows of every kind, which must all stay.
const LIVE: i64 = 50;
/// How long a concurrent write waits for SQLite's write lock (PostgreSQL: for a row lock)
/// before it is refused. A batch holds it for a few milliseconds; one statement over the
/// whole backlog held it for over a second.
const WRITE_PATIENCE_MS: u64 = 300;

/// `n` rows numbered 1..=n from a recursive query both backends run: one statement, not
/// `n` round trips.
fn numbers(n: i64) -> String {
    format!("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {n}) ")
}

/// Rows of every kind, `count` of them with `prefix`, expiring at `at` (idle sessions: last
/// used at `at`). Each session gets two clients.
fn seed_sql(prefix: &str, count: i64, tokens: i64, at: i64) -> Vec<String> {
    let t = "'default'";
    vec![
        format!(
            "INSERT INTO refresh_tokens (tenant_id, token_hash, family_id, grant_id, client_id, sub, grant_data,
                 created_at, expires_at, sid, ends_with_session)
             SELECT {t}, '{prefix}-' || i, '{prefix}-family-' || (i % 1000), 'grant-' || (i % 1000), 'web', 'user-' || (i % 100),
                 '{{}}', {at} - 86400, {at} - (i % 600), 'sid-' || (i % 1000), FALSE
             FROM ({} SELECT i FROM n) AS s",
            numbers(tokens)
        ),
        format!(
            "INSERT INTO authorization_requests (tenant_id, id_hash, binding_hash, request, created_at, expires_at)
             SELECT {t}, '{prefix}-' || i, 'b', '{{}}', {at} - 600, {at} - (i % 60) FROM ({} SELECT i FROM n) AS s",
            numbers(count)
        ),
        format!(
            "INSERT INTO authorization_codes (tenant_id, code_hash, grant_id, client_id, grant_data, created_at, expires_at)
             SELECT {t}, '{prefix}-' || i, 'g', 'web', '{{}}', {at} - 60, {at} - (i % 60) FROM ({} SELECT i FROM n) AS s",
            numbers(count)
        ),
        format!(
            "INSERT INTO revocations (tenant_id, kind, value, expires_at)
             SELECT {t}, 'jti', '{prefix}-' || i, {at} - (i % 60) FROM ({} SELECT i FROM n) AS s",
            numbers(count)
        ),
        format!(
            "INSERT INTO login_failures (tenant_id, throttle_key, failures, window_start)
             SELECT {t}, '{prefix}-' || i, 1, {at} - 86400 - (i % 60) FROM ({} SELECT i FROM n) AS s",
            numbers(count)
        ),
        format!(
            "INSERT INTO assertion_jtis (tenant_id, client_id, jti, expires_at)
             SELECT {t}, 'web', '{prefix}-' || i, {at} - (i % 60) FROM ({} SELECT i FROM n) AS s",
            numbers(count)
        ),
        format!(
            "INSERT INTO auth_ceremonies (tenant_id, id_hash, purpose, state, expires_at)
             SELECT {t}, '{prefix}-' || i, 'passkey_sign_in', '{{}}', {at} - (i % 60) FROM ({} SELECT i FROM n) AS s",
            numbers(count)
        ),
        // Sessions past their end (odd) and idle ones (even).
        format!(
            "INSERT INTO browser_sessions (tenant_id, id_hash, sid, sub, auth_time, amr, acr, created_at, expires_at,
                 last_active_at, remember)
             SELECT {t}, '{prefix}-' || i, '{prefix}-sid-' || i, 'user', {at} - 7200, '[]', '0', {at} - 7200,
                 CASE WHEN i % 2 = 1 THEN {at} ELSE {at} + 86400 END,
                 CASE WHEN i % 2 = 1 THEN {at} + 86400 ELSE {at} - 3600 END, FALSE
             FROM ({} SELECT i FROM n) AS s",
            numbers(count)
        ),
        format!(
            "INSERT INTO session_clients (tenant_id, sid, client_id, backchannel, first_at, last_at)
             SELECT {t}, '{prefix}-sid-' || (i / 2), 'client-' || (i % 2), FALSE, {at} - 7200, {at} - 7200
             FROM ({} SELECT i FROM n) AS s WHERE i >= 2",
            numbers(count * 2 + 1)
        ),
        format!(
            "INSERT INTO logout_deliveries (tenant_id, jti, client_id, sub, sid, status, attempts, next_attempt_at,
                 created_at, finished_at)
             SELECT {t}, '{prefix}-' || i, 'web', 'user', 'sid', 'delivered', 1, {at}, {at} - 60, {at} - (i % 60)
             FROM ({} SELECT i FROM n) AS s",
            numbers(count)
        ),
        format!(
            "INSERT INTO users (tenant_id, sub, username, email_verified, profile, locked, created_at, updated_at)
             VALUES ({t}, '{prefix}-user', '{prefix}-user', FALSE, '{{}}', FALSE, {at} - 86400, {at} - 86400)"
        ),
        format!(
            "INSERT INTO one_time_tokens (tenant_id, token_hash, purpose, sub, created_at, expires_at)
             SELECT {t}, '{prefix}-' || i, 'email_verification', '{prefix}-user', {at} - 3600, {at} - (i % 60)
             FROM ({} SELECT i FROM n) AS s",
            numbers(count)
        ),
        // Kept a day after the create: those made a day before `at` are due at `at`.
        format!(
            "INSERT INTO admin_idempotency (tenant_id, caller, idem_key, request_hash, created_at)
             SELECT {t}, 'cli', '{prefix}-' || i, 'hash', {at} - 86400 - (i % 60)
             FROM ({} SELECT i FROM n) AS s",
            numbers(count)
        ),
    ]
}

/// How many rows of `kind` have expired at the test's cutoffs.
fn expired_count_sql(kind: Expired, cutoffs: &Cutoffs) -> String {
    let (table, column, also) = kind.expiry();
    let cutoff = cutoffs.cutoff(kind);
    format!("SELECT COUNT(*) FROM {table} WHERE {column} <= {cutoff}{}", also.replace("$1", &cutoff.to_string()))
}

enum Conn {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl Conn {
    /// A connection of its own, as another process (the CLI, another node) has; its writes
    /// give up after `WRITE_PATIENCE_MS`.
    async fn open(db: &TestDatabase) -> Self {
        if db.backend == "postgres" {
            let mut c = ok(sqlx::PgConnection::connect(&db.url).await, "connect");
            let set = format!("SET lock_timeout = '{WRITE_PATIENCE_MS}ms'");
            ok(sqlx::query(sqlx::AssertSqlSafe(set)).execute(&mut c).await, "lock_timeout");
            Conn::Postgres(c)
        } else {
            use std::str::FromStr as _;
            let options = ok(sqlx::sqlite::SqliteConnectOptions::from_str(&db.url), "url")
                .busy_timeout(Duration::from_millis(WRITE_PATIENCE_MS));
            Conn::Sqlite(ok(sqlx::SqliteConnection::connect_with(&options).await, "connect"))
        }
    }

    async fn execute(&mut self, sql: String) -> Result<u64, sqlx::Error> {
        let sql = sqlx::AssertSqlSafe(sql);
        match self {
            Conn::Sqlite(c) => sqlx::query(sql).execute(c).await.map(|d| d.rows_affected()),
            Conn::Postgres(c) => sqlx::query(sql).execute(c).await.map(|d| d.rows_affected()),
        }
    }

    async fn count(&mut self, sql: String) -> i64 {
        let sql = sqlx::AssertSqlSafe(sql);
        match self {
            Conn::Sqlite(c) => ok(sqlx::query(sql).fetch_one(c).await, "count").get(0),
            Conn::Postgres(c) => ok(sqlx::query(sql).fetch_one(c).await, "count").get(0),
        }
    }
}

/// Writes like the server's while the cleanup runs: a new authorization request, and a
/// refresh family revoked (whose expired tokens a batch may be deleting). Returns the
/// writes that succeeded and the errors of those that were refused.
async fn keep_writing(mut conn: Conn, stop: Arc<AtomicBool>) -> (u64, Vec<String>) {
    let (mut done, mut refused) = (0, Vec::new());
    let mut took = Vec::new();
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let write = if i.is_multiple_of(2) {
            format!(
                "INSERT INTO authorization_requests (tenant_id, id_hash, binding_hash, request, created_at, expires_at)
                 VALUES ('default', 'during-{i}', 'b', '{{}}', {NOW}, {NOW} + 600)"
            )
        } else {
            format!(
                "UPDATE refresh_tokens SET revoked_at = {NOW} WHERE tenant_id = 'default' AND family_id = 'expired-family-{}'",
                i % 1000
            )
        };
        let started = std::time::Instant::now();
        let result = conn.execute(write).await;
        took.push(started.elapsed());
        match result {
            Ok(_) => done += 1,
            Err(e) => refused.push(e.to_string()),
        }
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    took.sort_unstable();
    let at = |q: f64| took.get(((took.len().saturating_sub(1)) as f64 * q) as usize).copied().unwrap_or_default();
    eprintln!("concurrent writes: {}, p50 {:?}, p99 {:?}, max {:?}", took.len(), at(0.5), at(0.99), at(1.0));
    (done, refused)
}

#[tokio::test]
async fn a_backlog_of_expired_rows_goes_in_short_batches_that_never_hold_up_other_writes() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let store: Arc<dyn Store> = ok(db.open_store(4, Clock::frozen(UnixTime::from_secs(NOW))).await, b);
        ok(store.migrate().await, b);
        let cutoffs = Cutoffs {
            now: UnixTime::from_secs(NOW),
            session_idle: Duration::from_secs(1_800),
            keep_finished_deliveries_until: UnixTime::from_secs(NOW),
        };
        let seeding = std::time::Instant::now();
        let mut seed = Conn::open(&db).await;
        for sql in seed_sql("expired", EXPIRED_OTHERS, expired_tokens(), NOW).into_iter().chain(seed_sql(
            "live",
            LIVE,
            LIVE,
            NOW + 86_400 * 2,
        )) {
            ok(seed.execute(sql).await, "seed");
        }
        eprintln!("{b}: seeded in {:?}", seeding.elapsed());
        for kind in Expired::ALL {
            let seeded = seed.count(expired_count_sql(kind, &cutoffs)).await;
            assert!(seeded >= EXPIRED_OTHERS / 2, "{b}: {} seeded {seeded}", kind.as_str());
        }

        let stop = Arc::new(AtomicBool::new(false));
        let writer = tokio::spawn(keep_writing(Conn::open(&db).await, stop.clone()));
        let pace = Pace::for_backend(b);
        let started = std::time::Instant::now();
        let report = ok(delete_expired(store.as_ref(), &cutoffs, &Expired::ALL, pace).await, "cleanup");
        eprintln!(
            "{b}: {} rows in {} batches, {:?}; batch p50 {:?}, p99 {:?}, longest {:?}",
            report.rows(),
            report.batches.len(),
            started.elapsed(),
            report.batch_quantile(0.5),
            report.batch_quantile(0.99),
            report.longest_batch()
        );
        stop.store(true, Ordering::Relaxed);
        let (writes, refused) = ok(writer.await, "writer");

        assert!(refused.is_empty(), "{b}: {} concurrent writes were refused: {:?}", refused.len(), &refused[..1]);
        assert!(writes >= 50, "{b}: the writer ran beside the cleanup ({writes} writes)");
        let token_batches = report.batches.iter().filter(|x| x.kind == Expired::RefreshTokens && x.rows > 0).count();
        assert!(token_batches >= 100, "{b}: the backlog went in many batches, not {token_batches}");
        let rows = u64::try_from(expired_tokens()).unwrap_or(0);
        assert!(report.batches.iter().all(|x| x.rows <= u64::from(pace.batch_rows)), "{b}: a batch was too big");
        assert_eq!(report.rows_of(Expired::RefreshTokens), rows, "{b}");

        for kind in Expired::ALL {
            assert_eq!(seed.count(expired_count_sql(kind, &cutoffs)).await, 0, "{b}: {} left", kind.as_str());
        }
        // What has not expired stays, and sessions took their lists of clients with them.
        let live_tokens = seed.count("SELECT COUNT(*) FROM refresh_tokens WHERE token_hash LIKE 'live-%'".into()).await;
        assert_eq!(live_tokens, LIVE, "{b}");
        let sessions = seed.count("SELECT COUNT(*) FROM browser_sessions".into()).await;
        assert_eq!(sessions, LIVE, "{b}");
        let lists = seed.count("SELECT COUNT(*) FROM session_clients".into()).await;
        assert_eq!(lists, LIVE * 2, "{b}: every list left belongs to a live session");
        let during =
            seed.count("SELECT COUNT(*) FROM authorization_requests WHERE id_hash LIKE 'during-%'".into()).await;
        assert_eq!(u64::try_from(during).unwrap_or(0), writes / 2, "{b}: every request written beside it stays");
        store.close().await;
    }
}

#[tokio::test]
async fn a_rotated_refresh_token_outlives_its_own_expiry_while_its_family_lives_so_reuse_is_still_caught() {
    use latchkey_core::crypto::TokenHash;
    use latchkey_core::domain::{ClientId, TenantId};
    use latchkey_core::records::{NewRefreshToken, RefreshRotation};
    for db in TestDatabase::all().await {
        let b = db.backend;
        let clock = Clock::frozen(UnixTime::from_secs(NOW));
        let store: Arc<dyn Store> = ok(db.open_store(4, clock.clone()).await, b);
        ok(store.migrate().await, b);
        let tenant = TenantId::default_tenant();
        let token = |hash: &str, expires_in: i64| NewRefreshToken {
            token_hash: TokenHash::from_stored(hash.into()),
            family_id: "family-a".into(),
            grant_id: "grant-a".into(),
            client_id: ok(ClientId::parse("web"), "client"),
            sub: "user-a".into(),
            grant_data: "{}".into(),
            expires_at: UnixTime::from_secs(NOW + expires_in),
            sid: None,
            ends_with_session: false,
        };
        ok(store.insert_refresh_token(&tenant, &token("first", 100)).await, "first");
        let first = TokenHash::from_stored("first".into());
        let rotated =
            store.rotate_refresh_token(&tenant, &first, token("second", 10_000), clock.now(), Duration::ZERO).await;
        assert!(matches!(ok(rotated, "rotate"), RefreshRotation::Rotated(_)), "{b}");

        // Past the first token's own expiry, the cleanup keeps it: its family lives on.
        let later = UnixTime::from_secs(NOW + 1_000);
        let cutoffs =
            Cutoffs { now: later, session_idle: Duration::from_secs(1_800), keep_finished_deliveries_until: later };
        ok(delete_expired(store.as_ref(), &cutoffs, &[Expired::RefreshTokens], Pace::for_backend(b)).await, "cleanup");
        let again = store.rotate_refresh_token(&tenant, &first, token("third", 10_000), later, Duration::ZERO).await;
        assert!(
            matches!(ok(again, "reuse"), RefreshRotation::Reused { .. }),
            "{b}: the reuse is caught after the cleanup"
        );

        // Once the whole family has expired, all of it goes.
        let end = UnixTime::from_secs(NOW + 20_000);
        let cutoffs =
            Cutoffs { now: end, session_idle: Duration::from_secs(1_800), keep_finished_deliveries_until: end };
        let report = ok(
            delete_expired(store.as_ref(), &cutoffs, &[Expired::RefreshTokens], Pace::for_backend(b)).await,
            "cleanup",
        );
        assert_eq!(report.rows_of(Expired::RefreshTokens), 2, "{b}");
    }
}
