//! Key lookups use the key, on SQLite and (when LATCHKEY_TEST_POSTGRES_URL is set)
//! PostgreSQL, even on a table that has no statistics yet.
//!
//! PostgreSQL caches a generic plan for a prepared statement. On a new database, before
//! autovacuum has analysed a table, it costs every index that starts with `tenant_id` the
//! same as the primary key; with secondary indexes on `(tenant_id, sub)` and the like it
//! chose one of those for a lookup by token hash and read the whole table on every refresh
//! (migration 0006 puts the selective column first). This test asks for the generic plan of
//! the store's own lookups on such a table.

use std::time::Duration;

use latchkey_core::crypto::TokenHash;
use latchkey_core::domain::{ClientId, TenantId};
use latchkey_core::records::NewRefreshToken;
use latchkey_core::{Clock, UnixTime};
use latchkey_store::testing::TestDatabase;
use sqlx::{Connection as _, Row as _};

fn ok<T, E: std::fmt::Display>(r: Result<T, E>, what: &str) -> T {
    r.unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// The store's lookups by primary key, on tables with secondary indexes.
const LOOKUPS: [(&str, &str); 2] = [
    ("refresh_tokens", "SELECT family_id, grant_id FROM refresh_tokens WHERE tenant_id = $1 AND token_hash = $2"),
    ("browser_sessions", "SELECT sid, sub FROM browser_sessions WHERE tenant_id = $1 AND id_hash = $2"),
];

async fn seed(db: &TestDatabase) {
    let clock = Clock::frozen(UnixTime::from_secs(1_800_000_000));
    let store = ok(db.open_store(2, clock.clone()).await, db.backend);
    ok(store.migrate().await, db.backend);
    // As at the start of a benchmark: a hundred tokens of one user, a few families.
    for i in 0..100 {
        let token = NewRefreshToken {
            token_hash: TokenHash::from_stored(format!("hash-{i:03}")),
            family_id: format!("family-{}", i % 8),
            grant_id: format!("grant-{}", i % 8),
            client_id: ok(ClientId::parse("web"), "client"),
            sub: "the-one-user".into(),
            grant_data: "{}".into(),
            expires_at: clock.now().plus(Duration::from_secs(3_600)),
            sid: Some(format!("sid-{}", i % 8)),
            ends_with_session: false,
        };
        ok(store.insert_refresh_token(&TenantId::default_tenant(), &token).await, "token");
    }
}

async fn postgres_generic_plan(url: &str, sql: &str) -> String {
    let mut conn = ok(sqlx::PgConnection::connect(url).await, "connect");
    ok(sqlx::query("SET plan_cache_mode = force_generic_plan").execute(&mut conn).await, "set");
    ok(
        sqlx::query(sqlx::AssertSqlSafe(format!("PREPARE lookup(text, text) AS {sql}"))).execute(&mut conn).await,
        "prepare",
    );
    let rows = ok(sqlx::query("EXPLAIN EXECUTE lookup('default', 'nothing')").fetch_all(&mut conn).await, "explain");
    rows.iter().map(|r| r.get::<String, _>(0)).collect::<Vec<_>>().join("\n")
}

async fn sqlite_plan(url: &str, sql: &str) -> String {
    let mut conn = ok(sqlx::SqliteConnection::connect(url).await, "connect");
    let rows = ok(
        sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")))
            .bind("default")
            .bind("nothing")
            .fetch_all(&mut conn)
            .await,
        "explain",
    );
    rows.iter().map(|r| r.get::<String, _>("detail")).collect::<Vec<_>>().join("\n")
}

#[tokio::test]
async fn lookups_by_token_hash_use_the_primary_key_before_any_statistics() {
    for db in TestDatabase::all().await {
        seed(&db).await;
        for (table, sql) in LOOKUPS {
            let (plan, key_index) = match db.backend {
                "postgres" => (postgres_generic_plan(&db.url, sql).await, format!("{table}_pkey")),
                _ => (sqlite_plan(&db.url, sql).await, format!("sqlite_autoindex_{table}_1")),
            };
            assert!(plan.contains(&key_index), "{}: {table} lookup does not use its key:\n{plan}", db.backend);
            assert!(!plan.contains("Filter"), "{}: {table} lookup filters rows:\n{plan}", db.backend);
        }
    }
}

/// The row choice of a cleanup batch (`Expired::expiry`, as `batch_delete_sql` builds it).
fn cleanup_choice(kind: latchkey_store::cleanup::Expired, backend: &str) -> String {
    let (table, column, also) = kind.expiry();
    match backend {
        "postgres" => format!(
            "SELECT ctid FROM {table} WHERE {column} <= $1{also} ORDER BY {column} LIMIT $2 FOR UPDATE SKIP LOCKED"
        ),
        _ => format!("SELECT rowid FROM {table} WHERE {column} <= $1{also} ORDER BY {column} LIMIT $2"),
    }
}

#[tokio::test]
async fn every_cleanup_batch_finds_its_rows_by_an_index_range_scan() {
    use latchkey_store::cleanup::Expired;
    for db in TestDatabase::all().await {
        seed(&db).await;
        for kind in Expired::ALL {
            let (table, column, _) = kind.expiry();
            let sql = cleanup_choice(kind, db.backend);
            let plan = match db.backend {
                "postgres" => {
                    let mut conn = ok(sqlx::PgConnection::connect(&db.url).await, "connect");
                    ok(sqlx::query("SET plan_cache_mode = force_generic_plan").execute(&mut conn).await, "set");
                    let prepare = format!("PREPARE batch(bigint, bigint) AS {sql}");
                    ok(sqlx::query(sqlx::AssertSqlSafe(prepare)).execute(&mut conn).await, "prepare");
                    let rows = ok(sqlx::query("EXPLAIN EXECUTE batch(0, 1000)").fetch_all(&mut conn).await, "explain");
                    rows.iter().map(|r| r.get::<String, _>(0)).collect::<Vec<_>>().join("\n")
                }
                _ => {
                    let mut conn = ok(sqlx::SqliteConnection::connect(&db.url).await, "connect");
                    let explain = format!("EXPLAIN QUERY PLAN {sql}");
                    let rows = ok(
                        sqlx::query(sqlx::AssertSqlSafe(explain)).bind(0).bind(1000).fetch_all(&mut conn).await,
                        "x",
                    );
                    rows.iter().map(|r| r.get::<String, _>("detail")).collect::<Vec<_>>().join("\n")
                }
            };
            let b = db.backend;
            let what = kind.as_str();
            match b {
                "postgres" => {
                    assert!(plan.contains("Index"), "{b}: {what} batch does not use an index:\n{plan}");
                    assert!(!plan.contains("Seq Scan") && !plan.contains("Sort"), "{b}: {what} batch scans:\n{plan}");
                }
                _ => {
                    let range = format!("INDEX {table}_by_");
                    assert!(
                        plan.contains(&format!("SEARCH {table}")) && plan.contains(&format!("({column}<?)")),
                        "{b}: {what} batch is no index range scan:\n{plan}"
                    );
                    assert!(plan.contains(&range) || plan.contains("_expiry"), "{b}: {what}:\n{plan}");
                    assert!(!plan.contains("TEMP B-TREE"), "{b}: {what} batch sorts:\n{plan}");
                }
            }
        }
    }
}
