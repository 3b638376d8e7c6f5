//! PostgreSQL only (SQLite updates a row in place): the tables whose rows are updated soon
//! after they are written leave room on each page, so that those updates are HOT, written
//! beside the old version without a new entry in any index (migration 0007). Without the
//! room, marking a refresh token rotated wrote into all five of its table's indexes.

use std::time::Duration;

use latchkey_core::crypto::TokenHash;
use latchkey_core::domain::{ClientId, TenantId};
use latchkey_core::records::NewRefreshToken;
use latchkey_core::{Clock, UnixTime};
use latchkey_store::testing::TestDatabase;
use sqlx::Connection as _;

fn ok<T, E: std::fmt::Display>(r: Result<T, E>, what: &str) -> T {
    r.unwrap_or_else(|e| panic!("{what}: {e}"))
}

#[tokio::test]
#[cfg_attr(not(postgres_tests), ignore = "PostgreSQL only: set LATCHKEY_TEST_POSTGRES_URL")]
async fn marking_a_refresh_token_rotated_on_full_pages_touches_no_index() {
    let db = TestDatabase::postgres_only().await;
    let clock = Clock::frozen(UnixTime::from_secs(1_800_000_000));
    let store = ok(db.open_store(2, clock.clone()).await, "open");
    ok(store.migrate().await, "migrate");
    // Enough tokens for several pages: the first page is as full as inserts make it.
    for i in 0..300 {
        let token = NewRefreshToken {
            token_hash: TokenHash::from_stored(format!("hash-{i:03}")),
            family_id: format!("family-{i}"),
            grant_id: format!("grant-{i}"),
            client_id: ok(ClientId::parse("web"), "client"),
            sub: "the-one-user".into(),
            grant_data: r#"{"scope":["openid","offline_access"],"sid":"s"}"#.into(),
            expires_at: clock.now().plus(Duration::from_secs(3_600)),
            sid: Some(format!("sid-{i}")),
            ends_with_session: false,
        };
        ok(store.insert_refresh_token(&TenantId::default_tenant(), &token).await, "token");
    }
    // The rotation's update, and this transaction's own count of HOT updates.
    let mut conn = ok(sqlx::PgConnection::connect(&db.url).await, "connect");
    let mut tx = ok(conn.begin().await, "begin");
    let updated = ok(
        sqlx::query(
            "UPDATE refresh_tokens SET rotated_at = $1 WHERE tenant_id = 'default' AND token_hash = 'hash-000'",
        )
        .bind(clock.now().secs())
        .execute(&mut *tx)
        .await,
        "update",
    );
    assert_eq!(updated.rows_affected(), 1);
    let hot: i64 = ok(
        sqlx::query_scalar("SELECT pg_stat_get_xact_tuples_hot_updated('refresh_tokens'::regclass)")
            .fetch_one(&mut *tx)
            .await,
        "hot updates",
    );
    assert_eq!(hot, 1, "the first page had no room for the row's next version");
    ok(tx.rollback().await, "rollback");

    for table in ["refresh_tokens", "authorization_codes", "browser_sessions"] {
        let options: Option<Vec<String>> = ok(
            sqlx::query_scalar("SELECT reloptions FROM pg_class WHERE relname = $1")
                .bind(table)
                .fetch_one(&mut conn)
                .await,
            "reloptions",
        );
        assert_eq!(options, Some(vec!["fillfactor=70".to_owned()]), "{table}");
    }
}
