//! Personal data at rest (migration 0027): sealed columns, blind-indexed email search and
//! uniqueness, the resumable sealing of rows written in clear, and data-key rotation, on
//! SQLite and (when LATCHKEY_TEST_POSTGRES_URL is set) PostgreSQL.

use std::sync::Arc;

use latchkey_core::crypto::{MasterKey, PersonalDataKeys, TokenHasher};
use latchkey_core::domain::*;
use latchkey_core::records::*;
use latchkey_core::{Clock, UnixTime};
use latchkey_store::testing::{TestDatabase, sample_user};
use latchkey_store::*;
use sqlx::Connection as _;

fn ok<T, E: std::fmt::Display>(r: Result<T, E>, what: &str) -> T {
    r.unwrap_or_else(|e| panic!("{what}: {e}"))
}

fn tenant() -> TenantId {
    TenantId::default_tenant()
}

const NOW: i64 = 1_700_000_000;

async fn open(db: &TestDatabase) -> Arc<dyn Store> {
    let store = ok(db.open_store(4, Clock::frozen(UnixTime::from_secs(NOW))).await, db.backend);
    ok(store.migrate().await, db.backend);
    store
}

fn email(s: &str) -> Email {
    ok(Email::parse(s), "email")
}

fn ada() -> NewUser {
    let mut user = sample_user("ada");
    user.email = Some(email("Ada.Lovelace@Example.org"));
    user.email_verified = true;
    user.name = Some(ok(DisplayName::parse("Ada Lovelace"), "name"));
    user.profile.phone_number = Some("+447700900123".into());
    user
}

/// Runs statements on the database itself, past the store.
async fn exec(db: &TestDatabase, sql: &str, binds: &[&str]) {
    if db.backend == "postgres" {
        let mut conn = ok(sqlx::PgConnection::connect(&db.url).await, "connect");
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()));
        for b in binds {
            q = q.bind(*b);
        }
        ok(q.execute(&mut conn).await, sql);
    } else {
        let mut conn = ok(sqlx::SqliteConnection::connect(&db.url).await, "connect");
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()));
        for b in binds {
            q = q.bind(*b);
        }
        ok(q.execute(&mut conn).await, sql);
    }
}

/// Every text value of the tables that hold personal data, as stored.
async fn stored_text(db: &TestDatabase) -> String {
    texts(
        db,
        "SELECT COALESCE(email, '') || ' ' || COALESCE(name, '') || ' ' || profile || ' ' || COALESCE(email_index, '') FROM users
         UNION ALL SELECT detail FROM one_time_tokens
         UNION ALL SELECT request FROM authorization_requests
         UNION ALL SELECT state FROM auth_ceremonies
         UNION ALL SELECT COALESCE(email, '') FROM federated_identities
         UNION ALL SELECT COALESCE(body, '') FROM admin_idempotency",
    )
    .await
}

/// The text column `sql` selects, every row joined, read past the store.
async fn texts(db: &TestDatabase, sql: &str) -> String {
    let sql = sqlx::AssertSqlSafe(sql.to_owned());
    let rows: Vec<String> = if db.backend == "postgres" {
        let mut conn = ok(sqlx::PgConnection::connect(&db.url).await, "connect");
        ok(sqlx::query_scalar(sql).fetch_all(&mut conn).await, "rows")
    } else {
        let mut conn = ok(sqlx::SqliteConnection::connect(&db.url).await, "connect");
        ok(sqlx::query_scalar(sql).fetch_all(&mut conn).await, "rows")
    };
    rows.join("\n")
}

async fn generations(db: &TestDatabase) -> Vec<Option<i64>> {
    let sql = "SELECT sealed_gen FROM users UNION ALL SELECT sealed_gen FROM authorization_requests
               UNION ALL SELECT sealed_gen FROM one_time_tokens";
    if db.backend == "postgres" {
        let mut conn = ok(sqlx::PgConnection::connect(&db.url).await, "connect");
        ok(sqlx::query_scalar(sql).fetch_all(&mut conn).await, "rows")
    } else {
        let mut conn = ok(sqlx::SqliteConnection::connect(&db.url).await, "connect");
        ok(sqlx::query_scalar(sql).fetch_all(&mut conn).await, "rows")
    }
}

fn assert_no_clear(text: &str, what: &str) {
    for needle in ["Lovelace", "lovelace", "Example.org", "example.org", "7700900123", "Grace", "hopper"] {
        assert!(!text.contains(needle), "{what}: `{needle}` is stored in clear:\n{text}");
    }
}

fn hash(s: &str) -> latchkey_core::crypto::TokenHash {
    TokenHasher::new(b"k").hash("t", s)
}

#[tokio::test]
async fn personal_data_is_sealed_and_found_by_its_exact_normalised_address() {
    for db in TestDatabase::all().await {
        let store = open(&db).await;
        let (t, b) = (tenant(), db.backend);
        let created = ok(store.create_user(&t, ada(), &Actor::Cli).await, b);
        let mut tx = ok(store.transaction().await, "tx");
        let token = NewOneTimeToken {
            hash: hash("verify"),
            purpose: "email_verification".into(),
            sub: created.sub.clone(),
            detail: "grace.hopper@example.org".into(),
            expires_at: UnixTime::from_secs(NOW + 600),
        };
        ok(tx.create_one_time_token(&t, &token).await, b);
        ok(tx.commit().await, b);
        let parked = PendingAuthorization {
            binding_hash: hash("binding"),
            request: r#"{"login_hint":"ada.lovelace@example.org"}"#.into(),
            expires_at: UnixTime::from_secs(NOW + 600),
            ip_key: "net".into(),
        };
        assert!(ok(store.put_authorization_request(&t, &hash("req"), &parked, 10).await, b));
        ok(
            store
                .put_ceremony(&t, &hash("c"), "sign_up", r#"{"name":"Ada Lovelace"}"#, UnixTime::from_secs(NOW + 60))
                .await,
            b,
        );

        assert_no_clear(&stored_text(&db).await, b);

        // Each opens again, whole.
        let again = ok(store.user_by_sub(&t, &created.sub).await, b).unwrap_or_else(|| panic!("{b}: ada"));
        assert_eq!(again.email.as_ref().map(Email::as_str), Some("Ada.Lovelace@example.org"), "{b}");
        assert_eq!(again.name.as_ref().map(|n| n.as_str()), Some("Ada Lovelace"), "{b}");
        assert_eq!(again.profile.phone_number.as_deref(), Some("+447700900123"), "{b}");
        let opened = ok(store.authorization_request(&t, &hash("req"), UnixTime::from_secs(NOW)).await, b);
        assert_eq!(opened.map(|p| p.request), Some(parked.request.clone()), "{b}");
        let state = ok(store.take_ceremony(&t, &hash("c"), "sign_up", UnixTime::from_secs(NOW)).await, b);
        assert_eq!(state.as_deref(), Some(r#"{"name":"Ada Lovelace"}"#), "{b}");
        let pending =
            ok(store.peek_one_time_token(&t, &hash("verify"), "email_verification", UnixTime::from_secs(NOW)).await, b);
        assert_eq!(pending.map(|p| p.detail).as_deref(), Some("grace.hopper@example.org"), "{b}");

        // Found by the exact address in any case (NFC, lowercase), never by a part of it.
        for typed in ["ada.lovelace@example.org", "ADA.LOVELACE@EXAMPLE.ORG", "Ada.Lovelace@Example.org"] {
            let found = ok(store.user_by_email(&t, &email(typed)).await, b).map(|u| u.sub);
            assert_eq!(found.as_ref(), Some(&created.sub), "{b}: {typed}");
            let q = UserQuery { email: Some(email(typed)), limit: 10, ..Default::default() };
            assert_eq!(ok(store.search_users(&t, &q).await, b).len(), 1, "{b}: search {typed}");
        }
        assert!(ok(store.user_by_email(&t, &email("ada@example.org")).await, b).is_none(), "{b}");
        let q = UserQuery { email: Some(email("lovelace@example.org")), limit: 10, ..Default::default() };
        assert!(ok(store.search_users(&t, &q).await, b).is_empty(), "{b}");

        // A verified address is unique by its normal form; an unverified one may repeat.
        let mut twin = sample_user("ada2");
        twin.email = Some(email("ADA.LOVELACE@example.ORG"));
        twin.email_verified = true;
        match store.create_user(&t, twin.clone(), &Actor::Cli).await {
            Err(StoreError::Conflict(m)) => assert!(m.contains("email"), "{b}: {m}"),
            other => panic!("{b}: a second verified holder of the address: {:?}", other.map(|u| u.sub)),
        }
        twin.email_verified = false;
        let twin = ok(store.create_user(&t, twin, &Actor::Cli).await, b);
        let mut tx = ok(store.transaction().await, "tx");
        match tx.verify_email(&t, &twin.sub, &email("ada.lovelace@EXAMPLE.org"), &Actor::Cli).await {
            Err(StoreError::Conflict(_)) => {}
            other => panic!("{b}: verifying another's address: {other:?}"),
        }
        drop(tx);
        // The verified holder wins a lookup.
        let found = ok(store.user_by_email(&t, &email("ada.lovelace@example.org")).await, b).map(|u| u.sub);
        assert_eq!(found.as_ref(), Some(&created.sub), "{b}");
        // An import meets the same rule.
        let mut imported = sample_user("ada3");
        imported.email = Some(email("ada.LOVELACE@example.org"));
        imported.email_verified = true;
        match ok(store.import_users(&t, &[imported], &Actor::Cli).await, b) {
            ImportOutcome::Conflicts(c) => assert_eq!(c[0].field, "email", "{b}"),
            other => panic!("{b}: import of a taken address: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_sealed_value_does_not_open_in_another_row_or_under_another_master_key() {
    for db in TestDatabase::all().await {
        let store = open(&db).await;
        let (t, b) = (tenant(), db.backend);
        let ada = ok(store.create_user(&t, ada(), &Actor::Cli).await, b);
        let bob = ok(store.create_user(&t, sample_user("bob"), &Actor::Cli).await, b);
        exec(
            &db,
            "UPDATE users SET name = (SELECT name FROM users WHERE sub = $1) WHERE sub = $2",
            &[ada.sub.as_str(), bob.sub.as_str()],
        )
        .await;
        match store.user_by_sub(&t, &bob.sub).await {
            Err(StoreError::Corrupt(m)) => assert!(m.contains("users.name") && m.contains("does not open"), "{b}: {m}"),
            other => panic!("{b}: a name moved to another row: {:?}", other.map(|u| u.map(|u| u.name))),
        }
        // The same database opened with another master key refuses, and says why.
        let other = ok(latchkey_store::open(&db.url, 2, Clock::frozen(UnixTime::from_secs(NOW))).await, b);
        other.use_personal_data_keys(Arc::new(PersonalDataKeys::derive(&MasterKey::generate())));
        match other.user_by_sub(&t, &ada.sub).await {
            Err(StoreError::Corrupt(m)) => assert!(m.contains("master key"), "{b}: {m}"),
            other => panic!("{b}: opened under another master key: {:?}", other.map(|u| u.map(|u| u.email))),
        }
    }
}

#[tokio::test]
async fn rows_written_in_clear_are_sealed_by_batches_and_found_meanwhile() {
    for db in TestDatabase::all().await {
        let store = open(&db).await;
        let (t, b) = (tenant(), db.backend);
        // Rows as the version before migration 0027 wrote them (sealed_gen NULL), among
        // them two verified addresses that differ only in case.
        // The newer of the two is written first and sorts first by id: only its age says
        // it is the newer.
        for (sub, username, address) in [
            ("u-ada2", "ada2", "Ada.Lovelace@example.org"),
            ("u-zed", "ada", "ada.lovelace@example.org"),
            ("u-grace", "grace", "grace.hopper@example.org"),
        ] {
            exec(
                &db,
                "INSERT INTO users (tenant_id, sub, username, email, email_verified, name, profile, created_at, updated_at)
                 VALUES ('default', $1, $2, $3, TRUE, 'Ada Lovelace', '{\"phone_number\":\"+447700900123\"}', 0, 0)",
                &[sub, username, address],
            )
            .await;
        }
        exec(&db, "UPDATE users SET created_at = 5 WHERE sub = 'u-ada2'", &[]).await;
        exec(
            &db,
            "INSERT INTO authorization_requests (tenant_id, id_hash, binding_hash, request, created_at, expires_at)
             VALUES ('default', 'legacy', 'b', '{\"login_hint\":\"grace.hopper@example.org\"}', 0, 9999999999)",
            &[],
        )
        .await;
        let mut many = Vec::new();
        for i in 0..450 {
            let mut u = sample_user(&format!("user{i:03}"));
            u.name = Some(ok(DisplayName::parse("Grace Hopper"), "name"));
            many.push(u);
        }
        ok(store.import_users(&t, &many, &Actor::Cli).await, b);
        exec(
            &db,
            "UPDATE users SET name = 'Grace Hopper', profile = '{}', sealed_gen = NULL WHERE username LIKE 'user%'",
            &[],
        )
        .await;
        assert_eq!(ok(store.personal_data_to_reseal().await, b), 454, "{b}");
        // Written sealed while the old rows wait: the unique index cannot see Grace's
        // address in clear, so a newer account takes it verified.
        let mut newer = sample_user("grace2");
        newer.email = Some(email("Grace.Hopper@example.org"));
        newer.email_verified = true;
        let newer = ok(store.create_user(&t, newer, &Actor::Cli).await, b);

        // Before the job reaches them, they read and are found by their address.
        let legacy = ok(store.user_by_email(&t, &email("grace.hopper@example.org")).await, b);
        assert_eq!(legacy.map(|u| u.username.to_string()).as_deref(), Some("grace"), "{b}");
        let u = ok(store.user_by_sub(&t, &ok(SubjectId::parse("u-zed"), "sub")).await, b);
        assert_eq!(u.and_then(|u| u.name).map(|n| n.as_str().to_owned()).as_deref(), Some("Ada Lovelace"), "{b}");

        // A batch at a time (each table's batch its own transaction).
        let first = ok(store.reseal_personal_data(200).await, b);
        assert_eq!(first.sealed.get("users"), Some(&200), "{b}: {first:?}");
        assert_eq!(first.sealed.get("authorization_requests"), Some(&1), "{b}: {first:?}");
        assert!(!first.done, "{b}");
        let mut passes = 1;
        while !ok(store.reseal_personal_data(200).await, b).done {
            passes += 1;
            assert!(passes < 10, "{b}: the job never finishes");
        }
        assert_eq!(passes, 3, "{b}: 455 users take three batches, and a fourth finds none");
        assert_eq!(ok(store.personal_data_to_reseal().await, b), 0, "{b}");
        assert!(generations(&db).await.iter().all(|g| *g == Some(1)), "{b}");
        assert_no_clear(&stored_text(&db).await, b);

        // Sealed, they read the same and are found by their index.
        let grace = ok(store.user_by_email(&t, &email("GRACE.HOPPER@example.org")).await, b);
        let grace = grace.unwrap_or_else(|| panic!("{b}: grace by her address"));
        assert_eq!(grace.profile.phone_number.as_deref(), Some("+447700900123"), "{b}");
        let parked = ok(store.authorization_request(&t, &hash_stored("legacy"), UnixTime::from_secs(NOW)).await, b);
        assert_eq!(parked.map(|p| p.request).as_deref(), Some(r#"{"login_hint":"grace.hopper@example.org"}"#), "{b}");
        // Of the two that now share an address, the older keeps it verified.
        let first = ok(store.user_by_sub(&t, &ok(SubjectId::parse("u-zed"), "sub")).await, b).map(|u| u.email_verified);
        let second =
            ok(store.user_by_sub(&t, &ok(SubjectId::parse("u-ada2"), "sub")).await, b).map(|u| u.email_verified);
        assert_eq!((first, second), (Some(true), Some(false)), "{b}");
        let found =
            ok(store.user_by_email(&t, &email("ada.lovelace@example.org")).await, b).map(|u| u.username.to_string());
        assert_eq!(found.as_deref(), Some("ada"), "{b}");
        // Grace's account is the older: the newer one loses "verified", on record.
        let newer_now = ok(store.user_by_sub(&t, &newer.sub).await, b).map(|u| u.email_verified);
        assert_eq!(newer_now, Some(false), "{b}");
        assert!(grace.email_verified, "{b}");
        ok(store.seal_audit_chain(std::time::Duration::from_secs(300), false).await, b);
        let q = AuditQuery { action: Some("user.contacts_unverified".into()), limit: 10, ..Default::default() };
        let mut demoted: Vec<String> =
            ok(store.audit_events(&t, &q).await, b).into_iter().map(|(_, e)| e.target).collect();
        demoted.sort();
        let mut expected = vec!["u-ada2".to_owned(), newer.sub.to_string()];
        expected.sort();
        assert_eq!(demoted, expected, "{b}");
    }
}

fn hash_stored(s: &str) -> latchkey_core::crypto::TokenHash {
    latchkey_core::crypto::TokenHash::from_stored(s.to_owned())
}

#[tokio::test]
async fn a_new_data_key_generation_reseals_everything_and_everything_still_opens() {
    for db in TestDatabase::all().await {
        let store = open(&db).await;
        let (t, b) = (tenant(), db.backend);
        let ada = ok(store.create_user(&t, ada(), &Actor::Cli).await, b);
        let parked = PendingAuthorization {
            binding_hash: hash("binding"),
            request: r#"{"login_hint":"ada"}"#.into(),
            expires_at: UnixTime::from_secs(NOW + 600),
            ip_key: "net".into(),
        };
        assert!(ok(store.put_authorization_request(&t, &hash("req"), &parked, 10).await, b));
        assert!(ok(store.reseal_personal_data(100).await, b).done, "{b}: nothing to do on a new database");
        let eve = ok(store.create_user(&t, sample_user("eve"), &Actor::Cli).await, b);
        exec(&db, "UPDATE users SET name = 'not sealed' WHERE sub = $1", &[eve.sub.as_str()]).await;
        assert_eq!(ok(store.start_data_key_generation(&Actor::Cli).await, b), 2, "{b}");
        // Written now, under the new generation; the rest waits for the job.
        let grace = ok(store.create_user(&t, sample_user("grace"), &Actor::Cli).await, b);
        assert_eq!(ok(store.personal_data_to_reseal().await, b), 3, "{b}");
        let pass = ok(store.reseal_personal_data(100).await, b);
        assert_eq!(pass.generation, 2, "{b}");
        assert_eq!(pass.sealed.values().sum::<u64>(), 2, "{b}: {pass:?}");
        assert!(!pass.done, "{b}: a node may still write under generation 1 for a minute");
        // A row that does not open is reported and left; the others are sealed, and the
        // job is never done while it stays.
        assert_eq!(pass.unreadable.get("users"), Some(&1), "{b}: {pass:?}");
        let again = ok(store.reseal_personal_data(100).await, b);
        assert_eq!((again.sealed.len(), again.unreadable.get("users"), again.done), (0, Some(&1), false), "{b}");
        exec(&db, "DELETE FROM users WHERE sub = $1", &[eve.sub.as_str()]).await;
        assert!(generations(&db).await.iter().all(|g| *g == Some(2)), "{b}");
        let again = ok(store.user_by_sub(&t, &ada.sub).await, b).and_then(|u| u.email).map(|e| e.to_string());
        assert_eq!(again.as_deref(), Some("Ada.Lovelace@example.org"), "{b}");
        assert!(ok(store.user_by_sub(&t, &grace.sub).await, b).is_some(), "{b}");
        let opened = ok(store.authorization_request(&t, &hash("req"), UnixTime::from_secs(NOW)).await, b);
        assert_eq!(opened.map(|p| p.request), Some(parked.request), "{b}");
        let found = ok(store.user_by_email(&t, &email("ada.lovelace@example.org")).await, b).map(|u| u.sub);
        assert_eq!(found, Some(ada.sub.clone()), "{b}: the blind index outlives the data key");
        // Another process (a second node) learns the generation from the database.
        let node = ok(db.open_store(2, Clock::frozen(UnixTime::from_secs(NOW))).await, b);
        assert_eq!(ok(node.load_data_key_generation().await, b), 2, "{b}");
        // The rotation is on record.
        ok(store.seal_audit_chain(std::time::Duration::from_secs(300), false).await, b);
        let q = AuditQuery { target: Some("#data-keys".into()), limit: 10, ..Default::default() };
        let entries = ok(store.audit_events(&t, &q).await, b);
        assert_eq!(
            entries.iter().map(|(_, e)| e.action.as_str()).collect::<Vec<_>>(),
            ["keys.data_key_rotated"],
            "{b}"
        );
    }
}

#[tokio::test]
async fn sqlite_keeps_no_cleartext_in_its_files_once_sealed() {
    // Rows written in clear, then sealed: with `secure_delete` the old cells are zeroed,
    // and the write-ahead log is truncated once the job is done.
    let db = TestDatabase::sqlite().await;
    let store = open(&db).await;
    for i in 0..50 {
        exec(
            &db,
            "INSERT INTO users (tenant_id, sub, username, email, name, profile, created_at, updated_at)
             VALUES ('default', $1, $2, 'grace.hopper@example.org', 'Grace Hopper', '{}', 0, 0)",
            &[&format!("s{i}"), &format!("u{i}")],
        )
        .await;
    }
    while !ok(store.reseal_personal_data(20).await, "reseal").done {}
    let path = db.url.trim_start_matches("sqlite:").to_owned();
    let mut bytes = Vec::new();
    for file in [path.clone(), format!("{path}-wal")] {
        if let Ok(b) = std::fs::read(&file) {
            bytes.extend(b);
        }
    }
    assert!(bytes.len() > 4096, "the database files were read");
    let text = String::from_utf8_lossy(&bytes);
    assert!(!text.contains("grace.hopper"), "an address stays in the database files");
    assert!(!text.contains("Grace Hopper"), "a name stays in the database files");
}

fn refresh(hash_of: &str, grant_data: &str) -> NewRefreshToken {
    NewRefreshToken {
        token_hash: hash(hash_of),
        family_id: "family".into(),
        grant_id: "grant-1".into(),
        client_id: ok(ClientId::parse("web"), "client"),
        sub: "u1".into(),
        grant_data: grant_data.into(),
        expires_at: UnixTime::from_secs(NOW + 3_600),
        sid: None,
        ends_with_session: false,
    }
}

#[tokio::test]
async fn a_grant_is_sealed_for_itself_and_opens_in_every_token_of_its_family() {
    // A claims request that wants a claim with a given value keeps the value in the grant.
    let data = r#"{"sub":"u1","requested_claims":{"userinfo":{"email":{"value":"grace.hopper@example.org"}}}}"#;
    for db in TestDatabase::all().await {
        let store = open(&db).await;
        let (t, b) = (tenant(), db.backend);
        let code = NewCode {
            code_hash: hash("code"),
            grant_id: "grant-1".into(),
            client_id: ok(ClientId::parse("web"), "client"),
            grant_data: data.into(),
            expires_at: UnixTime::from_secs(NOW + 60),
            session: None,
        };
        ok(store.insert_code(&t, &code).await, b);
        ok(store.insert_refresh_token(&t, &refresh("r1", data)).await, b);
        let everything = format!("{}\n{}", stored_text(&db).await, grant_text(&db).await);
        assert_no_clear(&everything, b);

        match ok(store.redeem_code(&t, &hash("code"), &code.client_id, UnixTime::from_secs(NOW)).await, b) {
            CodeRedemption::Redeemed { grant_data, .. } => assert_eq!(grant_data, data, "{b}"),
            _ => panic!("{b}: the code is redeemed"),
        }
        let first = ok(store.refresh_token(&t, &hash("r1")).await, b).map(|r| r.grant_data);
        assert_eq!(first.as_deref(), Some(data), "{b}");
        // The database copies the predecessor's row; the successor is sealed for the grant.
        let rotated = ok(
            store
                .rotate_refresh_token(
                    &t,
                    &hash("r1"),
                    refresh("r2", data),
                    UnixTime::from_secs(NOW),
                    std::time::Duration::ZERO,
                )
                .await,
            b,
        );
        assert!(matches!(rotated, RefreshRotation::Rotated(ref r) if r.grant_data == data), "{b}: {rotated:?}");
        let second = ok(store.refresh_token(&t, &hash("r2")).await, b).map(|r| r.grant_data);
        assert_eq!(second.as_deref(), Some(data), "{b}");
        // Grants written in clear before are sealed by the job, and open the same.
        exec(&db, "UPDATE refresh_tokens SET grant_data = $1, sealed_gen = NULL", &[data]).await;
        assert!(grant_text(&db).await.contains("grace.hopper"), "{b}: written in clear");
        while !ok(store.reseal_personal_data(100).await, b).done {}
        assert_no_clear(&grant_text(&db).await, b);
        let again = ok(store.refresh_token(&t, &hash("r2")).await, b).map(|r| r.grant_data);
        assert_eq!(again.as_deref(), Some(data), "{b}");
        // A grant's data does not open for another grant.
        exec(&db, "UPDATE refresh_tokens SET grant_id = 'grant-2'", &[]).await;
        match store.refresh_token(&t, &hash("r2")).await {
            Err(StoreError::Corrupt(m)) => assert!(m.contains("grants.grant_data"), "{b}: {m}"),
            other => panic!("{b}: another grant's data opened: {other:?}"),
        }
    }
}

async fn grant_text(db: &TestDatabase) -> String {
    texts(db, "SELECT grant_data FROM refresh_tokens UNION ALL SELECT grant_data FROM authorization_codes").await
}
