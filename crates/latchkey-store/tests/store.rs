//! Store behaviour, on SQLite and (when LATCHKEY_TEST_POSTGRES_URL is set) PostgreSQL.

use std::sync::Arc;
use std::time::Duration;

use latchkey_core::crypto::TokenHasher;
use latchkey_core::domain::*;
use latchkey_core::{Clock, UnixTime};
use latchkey_store::testing::{TestDatabase, sample_client};

const APP: &str = "https://app.example.com/cb";
use latchkey_core::records::*;
use latchkey_store::*;

async fn open(db: &TestDatabase, clock: &Clock) -> Arc<dyn Store> {
    let store = db.open_store(4, clock.clone()).await.unwrap_or_else(|e| panic!("{}: {e}", db.backend));
    store.migrate().await.unwrap_or_else(|e| panic!("{}: {e}", db.backend));
    store
}

fn tenant() -> TenantId {
    TenantId::default_tenant()
}

fn ok<T, E: std::fmt::Display>(r: Result<T, E>, what: &str) -> T {
    r.unwrap_or_else(|e| panic!("{what}: {e}"))
}

fn new_user(username: &str, email: Option<&str>) -> NewUser {
    NewUser {
        sub: SubjectId::generate(),
        username: ok(Username::parse(username), "username"),
        email: email.map(|e| ok(Email::parse(e), "email")),
        email_verified: false,
        name: Some(ok(DisplayName::parse("Ada Lovelace"), "name")),
        profile: ProfileClaims::default(),
        password_hash: None,
        service_account: false,
    }
}

fn new_key(alg: SigningAlg, kid: &str) -> NewSigningKey {
    NewSigningKey {
        kid: kid.into(),
        alg,
        sealed_private_key: vec![1, 2, 3],
        public_jwk: format!("{{\"kid\":\"{kid}\"}}"),
    }
}

#[tokio::test]
async fn users_are_created_found_changed_locked_and_deleted() {
    for db in TestDatabase::all().await {
        let clock = Clock::frozen(UnixTime::from_secs(1_700_000_000));
        let store = open(&db, &clock).await;
        let b = db.backend;
        let created = ok(store.create_user(&tenant(), new_user("Ada", Some("ada@example.com")), &Actor::Cli).await, b);
        assert_eq!(created.username.as_str(), "ada");
        assert_eq!(created.created_at, 1_700_000_000);

        // Usernames are unique regardless of case; verified email addresses are unique too
        // (an unverified one claims nothing: tests/factors.rs).
        let dup = store.create_user(&tenant(), new_user("ADA", None), &Actor::Cli).await;
        assert!(matches!(dup, Err(StoreError::Conflict(ref m)) if m.contains("username")), "{b}: {dup:?}");
        let verified = |username, email| NewUser { email_verified: true, ..new_user(username, Some(email)) };
        ok(store.create_user(&tenant(), verified("vera", "vera@example.com"), &Actor::Cli).await, b);
        let dup_mail = store.create_user(&tenant(), verified("bob", "vera@example.com"), &Actor::Cli).await;
        assert!(matches!(dup_mail, Err(StoreError::Conflict(ref m)) if m.contains("email")), "{b}: {dup_mail:?}");

        let by_name = ok(store.user_by_username(&tenant(), &ok(Username::parse("ada"), b)).await, b);
        assert_eq!(by_name.as_ref().map(|u| &u.sub), Some(&created.sub), "{b}");
        let by_mail = ok(store.user_by_email(&tenant(), &ok(Email::parse("ada@example.com"), b)).await, b);
        assert_eq!(by_mail.map(|u| u.sub), Some(created.sub.clone()), "{b}");

        ok(
            store
                .update_user(
                    &tenant(),
                    &created.sub,
                    UserPatch { email_verified: Some(true), ..Default::default() },
                    &Actor::Cli,
                )
                .await,
            b,
        );
        let patch = UserPatch { email: Some(Some(ok(Email::parse("ada@new.example"), b))), ..Default::default() };
        let updated = ok(store.update_user(&tenant(), &created.sub, patch, &Actor::Cli).await, b);
        assert!(!updated.email_verified, "{b}: a changed email address is unverified again");

        ok(store.set_password_hash(&tenant(), &created.sub, Some("$argon2id$x".into()), &Actor::Cli).await, b);
        ok(store.set_user_locked(&tenant(), &created.sub, true, &Actor::Cli).await, b);
        let user = ok(store.user_by_sub(&tenant(), &created.sub).await, b).unwrap_or_else(|| panic!("{b}: user gone"));
        assert!(user.locked && user.has_password, "{b}");

        ok(store.delete_user(&tenant(), &created.sub, &Actor::Cli).await, b);
        assert!(ok(store.user_by_sub(&tenant(), &created.sub).await, b).is_none(), "{b}");
        assert!(
            matches!(store.delete_user(&tenant(), &created.sub, &Actor::Cli).await, Err(StoreError::NotFound(_))),
            "{b}"
        );
        assert!(
            matches!(
                store.set_user_locked(&tenant(), &created.sub, false, &Actor::Cli).await,
                Err(StoreError::NotFound(_))
            ),
            "{b}"
        );

        let actions: Vec<String> =
            ok(store.recent_audit_events(&tenant(), 20).await, b).into_iter().map(|e| e.action).collect();
        for expected in ["user.created", "user.updated", "user.password_set", "user.locked", "user.deleted"] {
            assert!(actions.iter().any(|a| a == expected), "{b}: no {expected} audit event in {actions:?}");
        }
    }
}

#[tokio::test]
async fn a_failed_write_changes_nothing() {
    for db in TestDatabase::all().await {
        let clock = Clock::frozen(UnixTime::from_secs(1_700_000_000));
        let store = open(&db, &clock).await;
        let b = db.backend;
        let ada = ok(store.create_user(&tenant(), new_user("ada", Some("a@example.com")), &Actor::Cli).await, b);
        let bob = ok(store.create_user(&tenant(), new_user("bob", Some("b@example.com")), &Actor::Cli).await, b);
        let events_before = ok(store.recent_audit_events(&tenant(), 100).await, b).len();
        // Renaming bob to ada conflicts: bob keeps his name and no audit event is written.
        let patch = UserPatch { username: Some(ok(Username::parse("ada"), b)), ..Default::default() };
        assert!(
            matches!(store.update_user(&tenant(), &bob.sub, patch, &Actor::Cli).await, Err(StoreError::Conflict(_))),
            "{b}"
        );
        let bob_after = ok(store.user_by_sub(&tenant(), &bob.sub).await, b);
        assert_eq!(bob_after.map(|u| u.username), Some(bob.username.clone()), "{b}");
        assert_eq!(ok(store.recent_audit_events(&tenant(), 100).await, b).len(), events_before, "{b}");
        assert!(ok(store.user_by_sub(&tenant(), &ada.sub).await, b).is_some(), "{b}");
    }
}

#[tokio::test]
async fn clients_keep_their_settings_and_rotate_secrets_with_a_grace_period() {
    for db in TestDatabase::all().await {
        let clock = Clock::frozen(UnixTime::from_secs(1_700_000_000));
        let store = open(&db, &clock).await;
        let b = db.backend;
        let c = ok(
            store.create_client(&tenant(), sample_client("web", ClientKind::Confidential, APP), &Actor::Cli).await,
            b,
        );
        assert_eq!(c.grant_types, vec![GrantType::AuthorizationCode, GrantType::RefreshToken], "{b}");
        assert_eq!(c.redirect_uris[0].as_str(), "https://app.example.com/cb", "{b}");
        let dup = store.create_client(&tenant(), sample_client("web", ClientKind::Public, APP), &Actor::Cli).await;
        assert!(matches!(dup, Err(StoreError::Conflict(ref m)) if m.contains("`web`")), "{b}: {dup:?}");

        let patch = ClientPatch {
            first_party: Some(true),
            id_token_signed_response_alg: Some(SigningAlg::Es256),
            ..Default::default()
        };
        let c2 = ok(store.update_client(&tenant(), &c.client_id, patch, &Actor::Cli).await, b);
        assert!(c2.first_party && c2.id_token_signed_response_alg == SigningAlg::Es256, "{b}");
        assert_eq!(c2.name, "web app", "{b}: untouched fields stay");
        assert!(
            !c2.allow_insecure_redirect_uris && c2.refresh_reuse_grace.is_none(),
            "{b}: opt-ins are off by default"
        );
        let opt_in = ClientPatch {
            allow_insecure_redirect_uris: Some(true),
            refresh_reuse_grace: Some(Some(30)),
            ..Default::default()
        };
        let c2 = ok(store.update_client(&tenant(), &c.client_id, opt_in, &Actor::Cli).await, b);
        assert!(c2.allow_insecure_redirect_uris && c2.refresh_reuse_grace == Some(30), "{b}: {c2:?}");
        let back = ClientPatch { refresh_reuse_grace: Some(None), ..Default::default() };
        let c2 = ok(store.update_client(&tenant(), &c.client_id, back, &Actor::Cli).await, b);
        assert!(c2.allow_insecure_redirect_uris && c2.refresh_reuse_grace.is_none(), "{b}: {c2:?}");
        let created = NewClient {
            allow_insecure_redirect_uris: true,
            refresh_reuse_grace: Some(5),
            ..sample_client("dev", ClientKind::Confidential, APP)
        };
        let dev = ok(store.create_client(&tenant(), created, &Actor::Cli).await, b);
        assert!(dev.allow_insecure_redirect_uris && dev.refresh_reuse_grace == Some(5), "{b}: {dev:?}");
        ok(store.delete_client(&tenant(), &dev.client_id, &Actor::Cli).await, b);

        let new_hash = TokenHasher::new(b"k").hash("client_secret", "s2");
        let until = UnixTime::from_secs(1_700_003_600);
        ok(store.rotate_client_secret(&tenant(), &c.client_id, &new_hash, until, &Actor::Cli).await, b);
        let c3 = ok(store.client(&tenant(), &c.client_id).await, b).unwrap_or_else(|| panic!("{b}"));
        assert_eq!(c3.secret_hash.as_ref(), Some(&new_hash), "{b}");
        assert_eq!(c3.previous_secret_hash, c.secret_hash, "{b}");
        assert_eq!(c3.previous_secret_expires_at, Some(1_700_003_600), "{b}");

        let public =
            ok(store.create_client(&tenant(), sample_client("spa", ClientKind::Public, APP), &Actor::Cli).await, b);
        let err = store.rotate_client_secret(&tenant(), &public.client_id, &new_hash, until, &Actor::Cli).await;
        assert!(matches!(err, Err(StoreError::Invalid(_))), "{b}: {err:?}");
        let missing = ok(ClientId::parse("nope"), b);
        assert!(
            matches!(
                store.rotate_client_secret(&tenant(), &missing, &new_hash, until, &Actor::Cli).await,
                Err(StoreError::NotFound(_))
            ),
            "{b}"
        );

        ok(store.delete_client(&tenant(), &c.client_id, &Actor::Cli).await, b);
        let left: Vec<String> =
            ok(store.list_clients(&tenant()).await, b).into_iter().map(|c| c.client_id.to_string()).collect();
        assert_eq!(left, vec!["spa".to_string()], "{b}");
    }
}

#[tokio::test]
async fn a_client_id_and_a_user_sub_never_name_the_same_party() {
    for db in TestDatabase::all().await {
        let clock = Clock::frozen(UnixTime::from_secs(1_700_000_000));
        let store = open(&db, &clock).await;
        let b = db.backend;
        let bob = ok(store.create_user(&tenant(), new_user("bob", None), &Actor::Cli).await, b);
        // RFC 9068 §5: a client-credentials token's sub is the client id.
        let client = sample_client(bob.sub.as_str(), ClientKind::Confidential, APP);
        let refused = store.create_client(&tenant(), client, &Actor::Cli).await;
        assert!(
            matches!(refused, Err(StoreError::Conflict(ref m)) if m.contains(bob.sub.as_str()) && m.contains("user")),
            "{b}: {refused:?}"
        );
        // Generated client ids have the shape of a sub.
        let svc = ClientId::generate();
        ok(
            store
                .create_client(&tenant(), sample_client(svc.as_str(), ClientKind::Confidential, APP), &Actor::Cli)
                .await,
            b,
        );
        let user = NewUser { sub: ok(SubjectId::parse(svc.as_str()), b), ..new_user("carol", None) };
        let refused = store.create_user(&tenant(), user, &Actor::Cli).await;
        assert!(
            matches!(refused, Err(StoreError::Conflict(ref m)) if m.contains(svc.as_str()) && m.contains("client")),
            "{b}: {refused:?}"
        );
        let ids: Vec<ClientId> = ok(store.list_clients(&tenant()).await, b).into_iter().map(|c| c.client_id).collect();
        assert_eq!(ids, [svc], "{b}: the refused client was not stored");
        assert!(ok(store.user_by_username(&tenant(), &ok(Username::parse("carol"), b)).await, b).is_none(), "{b}");
        assert!(ok(store.client_ids_shared_with_users(&tenant()).await, b).is_empty(), "{b}");

        // A user and a client created with one id at the same moment: one of them wins.
        for round in 0..5 {
            let id = SubjectId::generate();
            let user = NewUser { sub: id.clone(), ..new_user(&format!("racer{round}"), None) };
            let client = sample_client(id.as_str(), ClientKind::Confidential, APP);
            let t = tenant();
            let (u, c) =
                tokio::join!(store.create_user(&t, user, &Actor::Cli), store.create_client(&t, client, &Actor::Cli));
            assert!(u.is_ok() != c.is_ok(), "{b}: exactly one of user {u:?} and client {c:?}");
        }
        assert!(ok(store.client_ids_shared_with_users(&tenant()).await, b).is_empty(), "{b}");
    }
}

#[tokio::test]
async fn built_in_scopes_exist_and_scopes_are_saved_and_deleted_in_a_transaction() {
    for db in TestDatabase::all().await {
        let clock = Clock::system();
        let store = open(&db, &clock).await;
        let b = db.backend;
        let names: Vec<String> =
            ok(store.list_scopes(&tenant()).await, b).into_iter().map(|s| s.name.to_string()).collect();
        for built_in in ScopeName::BUILT_IN {
            assert!(names.iter().any(|n| n == built_in), "{b}: missing {built_in}");
        }
        let openid = ok(ScopeName::parse("openid"), b);
        let custom = ok(ScopeName::parse("invoices:read"), b);
        let mut tx = ok(store.transaction().await, b);
        assert_eq!(ok(tx.scope_is_built_in(&tenant(), &openid).await, b), Some(true), "{b}");
        assert_eq!(ok(tx.scope_is_built_in(&tenant(), &custom).await, b), None, "{b}");
        drop(tx);
        ok(store.put_scope(&tenant(), &custom, "Read invoices", &Actor::Cli).await, b);
        ok(store.put_scope(&tenant(), &custom, "Read your invoices", &Actor::Cli).await, b);
        let scopes = ok(store.list_scopes(&tenant()).await, b);
        let saved = scopes.iter().find(|s| s.name == custom).unwrap_or_else(|| panic!("{b}: custom scope missing"));
        assert_eq!(saved.description, "Read your invoices", "{b}");

        // A deletion not committed is no deletion.
        let mut tx = ok(store.transaction().await, b);
        assert_eq!(ok(tx.scope_is_built_in(&tenant(), &custom).await, b), Some(false), "{b}");
        ok(tx.delete_scope(&tenant(), &custom, &Actor::Cli).await, b);
        drop(tx);
        assert!(ok(store.list_scopes(&tenant()).await, b).iter().any(|s| s.name == custom), "{b}: rolled back");
        let mut tx = ok(store.transaction().await, b);
        ok(tx.delete_scope(&tenant(), &custom, &Actor::Cli).await, b);
        ok(tx.commit().await, b);
        assert!(!ok(store.list_scopes(&tenant()).await, b).iter().any(|s| s.name == custom), "{b}: deleted");
        let mut tx = ok(store.transaction().await, b);
        let again = tx.delete_scope(&tenant(), &custom, &Actor::Cli).await;
        assert!(matches!(again, Err(StoreError::NotFound(_))), "{b}: {again:?}");
    }
}

#[tokio::test]
async fn signing_keys_bootstrap_once_and_rotate_only_from_the_expected_next_key() {
    for db in TestDatabase::all().await {
        let clock = Clock::frozen(UnixTime::from_secs(1_700_000_000));
        let store = open(&db, &clock).await;
        let b = db.backend;
        let alg = SigningAlg::Es256;
        assert!(ok(
            store.bootstrap_signing_keys(&tenant(), new_key(alg, "a1"), new_key(alg, "n1"), &Actor::System).await,
            b
        ));
        assert!(
            !ok(
                store.bootstrap_signing_keys(&tenant(), new_key(alg, "a2"), new_key(alg, "n2"), &Actor::System).await,
                b
            ),
            "{b}: a second bootstrap must keep the first keys"
        );

        let until = UnixTime::from_secs(1_700_007_200);
        assert!(ok(store.rotate_signing_key(&tenant(), "n1", new_key(alg, "n3"), until, &Actor::Cli).await, b));
        // A rotation that raced and lost (its expected next key is gone) changes nothing.
        assert!(!ok(store.rotate_signing_key(&tenant(), "n1", new_key(alg, "n4"), until, &Actor::Cli).await, b));

        let keys = ok(store.signing_keys(&tenant()).await, b);
        let state = |kid: &str| keys.iter().find(|k| k.kid == kid).map(|k| k.state);
        assert_eq!(state("a1"), Some(KeyState::Retired), "{b}");
        assert_eq!(state("n1"), Some(KeyState::Active), "{b}");
        assert_eq!(state("n3"), Some(KeyState::Next), "{b}");
        assert_eq!(state("n4"), None, "{b}");
        let retired = keys.iter().find(|k| k.kid == "a1").unwrap_or_else(|| panic!("{b}"));
        assert_eq!(retired.publish_until, Some(until), "{b}");
        assert_eq!(retired.sealed_private_key, vec![1, 2, 3], "{b}");

        assert_eq!(
            ok(store.delete_expired_signing_keys(&tenant(), until).await, b),
            0,
            "{b}: still published at the bound"
        );
        assert_eq!(
            ok(store.delete_expired_signing_keys(&tenant(), until.plus(Duration::from_secs(1))).await, b),
            1,
            "{b}"
        );
        assert!(ok(store.holds_sealed_data().await, b), "{b}");
    }
}

#[tokio::test]
async fn meta_values_are_written_once() {
    for db in TestDatabase::all().await {
        let store = open(&db, &Clock::system()).await;
        let b = db.backend;
        assert_eq!(ok(store.meta("check").await, b), None);
        assert_eq!(ok(store.put_meta_if_absent("check", "first").await, b), "first");
        assert_eq!(ok(store.put_meta_if_absent("check", "second").await, b), "first", "{b}");
        ok(store.ping().await, b);
        ok(store.migrate().await, b); // applying migrations again is a no-op
    }
}

#[tokio::test]
async fn a_change_from_another_process_is_announced() {
    for db in TestDatabase::all().await {
        let clock = Clock::system();
        let watcher = open(&db, &clock).await;
        let writer = open(&db, &clock).await; // stands in for another node or the CLI
        let b = db.backend;
        let mut changes = ok(watcher.watch_changes(Duration::from_millis(50)).await, b);
        let client = ok(
            writer.create_client(&tenant(), sample_client("watched", ClientKind::Public, APP), &Actor::Cli).await,
            b,
        );
        let change = tokio::time::timeout(Duration::from_secs(10), changes.recv()).await;
        let change =
            change.unwrap_or_else(|_| panic!("{b}: no change announced")).unwrap_or_else(|| panic!("{b}: closed"));
        match b {
            "postgres" => {
                assert_eq!(change, Change::Client { tenant: "default".into(), client_id: client.client_id.to_string() })
            }
            _ => assert_eq!(change, Change::Unknown, "SQLite can only say that something changed"),
        }
    }
}

#[tokio::test]
#[cfg_attr(not(postgres_tests), ignore = "PostgreSQL only: set LATCHKEY_TEST_POSTGRES_URL")]
async fn a_scheduled_job_is_claimed_by_one_node_at_a_time() {
    let db = TestDatabase::postgres_only().await;
    let clock = Clock::system();
    let node_a = open(&db, &clock).await;
    let node_b = open(&db, &clock).await;
    let lock = ok(node_a.try_job_lock("key-rotation").await, "a");
    assert!(lock.is_some(), "the first node gets the job");
    assert!(ok(node_b.try_job_lock("key-rotation").await, "b").is_none(), "the second node must not");
    assert!(ok(node_b.try_job_lock("cleanup").await, "b").is_some(), "other jobs are independent");
    if let Some(lock) = lock {
        lock.release().await;
    }
    assert!(ok(node_b.try_job_lock("key-rotation").await, "b").is_some(), "released");
}

#[tokio::test]
async fn a_failing_migration_leaves_the_database_as_it_was() {
    for db in TestDatabase::all().await {
        let dir = ok(tempfile::tempdir(), "tempdir");
        std::fs::write(dir.path().join("0001_good.sql"), "CREATE TABLE good (id BIGINT);").unwrap_or_default();
        std::fs::write(
            dir.path().join("0002_bad.sql"),
            "CREATE TABLE half (id BIGINT); INSERT INTO good VALUES (1); SELECT * FROM no_such_table;",
        )
        .unwrap_or_default();
        let migrator = ok(sqlx::migrate::Migrator::new(dir.path()).await, "migrator");
        let b = db.backend;
        let result = match b {
            "postgres" => {
                let pool = ok(sqlx::PgPool::connect(&db.url).await, b);
                let r = migrator.run(&pool).await;
                let half: Option<String> =
                    ok(sqlx::query_scalar("SELECT to_regclass('half')::text").fetch_one(&pool).await, b);
                let rows: i64 = ok(sqlx::query_scalar("SELECT COUNT(*) FROM good").fetch_one(&pool).await, b);
                (r.is_err(), half.is_none(), rows)
            }
            _ => {
                let pool = ok(sqlx::SqlitePool::connect(&format!("{}?mode=rwc", db.url)).await, b);
                let r = migrator.run(&pool).await;
                let half: i64 = ok(
                    sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_master WHERE name = 'half'").fetch_one(&pool).await,
                    b,
                );
                let rows: i64 = ok(sqlx::query_scalar("SELECT COUNT(*) FROM good").fetch_one(&pool).await, b);
                (r.is_err(), half == 0, rows)
            }
        };
        assert_eq!(result, (true, true, 0), "{b}: the bad migration failed, and left no table and no row");
    }
}

#[tokio::test]
async fn the_sqlite_file_is_in_wal_mode_so_the_cli_and_server_share_it() {
    let db = TestDatabase::sqlite().await;
    let store = open(&db, &Clock::system()).await;
    store.close().await;
    let pool = ok(sqlx::SqlitePool::connect(&db.url).await, "connect");
    let mode: String = ok(sqlx::query_scalar("PRAGMA journal_mode").fetch_one(&pool).await, "pragma");
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn concurrent_attempts_each_reserve_a_count_of_their_own_and_releases_give_them_back() {
    for db in TestDatabase::all().await {
        let clock = Clock::frozen(UnixTime::from_secs(1_700_000_000));
        let store = open(&db, &clock).await;
        let b = db.backend;
        let window = Duration::from_secs(600);
        let keys = ["password:ada", "ip:192.0.2.1"];
        // 30 attempts at once, each reserving against both keys in one statement: every
        // attempt sees a count of its own, 1 to 30, for each key.
        let mut attempts = tokio::task::JoinSet::new();
        for _ in 0..30 {
            let (store, now) = (store.clone(), clock.now());
            attempts.spawn(async move { store.reserve_attempts(&tenant(), &keys, now, window).await });
        }
        let (mut accounts, mut ips) = (Vec::new(), Vec::new());
        while let Some(done) = attempts.join_next().await {
            let reserved = ok(ok(done, "join"), b);
            assert_eq!(reserved.len(), 2, "{b}: one reservation per key, in the order asked");
            accounts.push(reserved[0].count);
            ips.push(reserved[1].count);
        }
        accounts.sort_unstable();
        ips.sort_unstable();
        assert_eq!(accounts, (1..=30).collect::<Vec<i64>>(), "{b}: no two attempts saw the same count");
        assert_eq!(ips, (1..=30).collect::<Vec<i64>>(), "{b}");
        let counts = ok(store.login_failures(&tenant(), &keys, clock.now(), window).await, b);
        assert_eq!(counts, vec![30, 30], "{b}");

        // A release gives one attempt back, only within the window it was reserved in.
        let reserved = ok(store.reserve_attempts(&tenant(), &["ip:192.0.2.1"], clock.now(), window).await, b);
        assert_eq!(reserved[0].count, 31, "{b}");
        assert_eq!(reserved[0].window_start, clock.now(), "{b}: the window began with the first attempt");
        ok(store.release_attempts(&tenant(), &[("ip:192.0.2.1", reserved[0])]).await, b);
        assert_eq!(ok(store.login_failures(&tenant(), &["ip:192.0.2.1"], clock.now(), window).await, b), vec![30]);
        clock.advance(Duration::from_secs(601));
        let fresh = ok(store.reserve_attempts(&tenant(), &["ip:192.0.2.1"], clock.now(), window).await, b);
        assert_eq!(fresh[0].count, 1, "{b}: a new window starts at 1");
        ok(store.release_attempts(&tenant(), &[("ip:192.0.2.1", reserved[0])]).await, b);
        let now = clock.now();
        assert_eq!(ok(store.login_failures(&tenant(), &["ip:192.0.2.1"], now, window).await, b), vec![1], "{b}");
        ok(store.release_attempts(&tenant(), &[("ip:192.0.2.1", fresh[0])]).await, b);
        ok(store.release_attempts(&tenant(), &[("ip:192.0.2.1", fresh[0])]).await, b);
        let after = ok(store.reserve_attempts(&tenant(), &["ip:192.0.2.1", "ip:192.0.2.1"], now, window).await, b);
        assert_eq!(after.iter().map(|r| r.count).collect::<Vec<_>>(), vec![1, 1], "{b}: never below 0; once per key");
        assert!(ok(store.reserve_attempts(&tenant(), &[], now, window).await, b).is_empty());
    }
}

#[tokio::test]
async fn a_password_hash_is_upgraded_only_while_it_is_still_the_stored_one() {
    for db in TestDatabase::all().await {
        let clock = Clock::frozen(UnixTime::from_secs(1_700_000_000));
        let store = open(&db, &clock).await;
        let b = db.backend;
        let user = ok(store.create_user(&tenant(), new_user("ada", None), &Actor::Cli).await, b);
        ok(store.set_password_hash(&tenant(), &user.sub, Some("$old".into()), &Actor::Cli).await, b);
        assert!(!ok(store.upgrade_password_hash(&tenant(), &user.sub, "$other", "$new").await, b), "{b}");
        assert!(ok(store.upgrade_password_hash(&tenant(), &user.sub, "$old", "$new").await, b), "{b}");
        let stored = ok(store.user_by_sub(&tenant(), &user.sub).await, b).and_then(|u| u.password_hash);
        assert_eq!(stored.as_deref(), Some("$new"), "{b}");
        let events = ok(store.recent_audit_events(&tenant(), 10).await, b);
        let rehashed = events.iter().find(|e| e.action == "user.password_rehashed");
        assert_eq!(rehashed.map(|e| e.actor.clone()), Some(format!("user:{}", user.sub)), "{b}");
        // A password changed meanwhile is never overwritten by the old one's upgrade.
        assert!(!ok(store.upgrade_password_hash(&tenant(), &user.sub, "$old", "$newer").await, b), "{b}");
    }
}

#[tokio::test]
async fn failed_sign_ins_are_counted_per_key_within_their_window_and_cleared() {
    for db in TestDatabase::all().await {
        let clock = Clock::frozen(UnixTime::from_secs(1_700_000_000));
        let store = open(&db, &clock).await;
        let b = db.backend;
        let window = Duration::from_secs(600);
        let counts = |keys: &'static [&'static str]| {
            let (store, now) = (store.clone(), clock.now());
            async move { ok(store.login_failures(&tenant(), keys, now, window).await, b) }
        };
        assert_eq!(counts(&["account:ada", "ip:192.0.2.1"]).await, vec![0, 0]);
        assert_eq!(counts(&[]).await, Vec::<i64>::new());
        for expected in 1..=3 {
            let n = ok(store.record_login_failure(&tenant(), "account:ada", clock.now(), window).await, b);
            assert_eq!(n, expected, "{b}");
        }
        ok(store.record_login_failure(&tenant(), "ip:192.0.2.1", clock.now(), window).await, b);
        // In the order asked, whatever the order of the rows; a key never seen counts 0.
        assert_eq!(counts(&["ip:192.0.2.1", "account:bob", "account:ada"]).await, vec![1, 0, 3], "{b}");

        // A window that has passed no longer counts, and the next failure starts again at 1.
        clock.advance(Duration::from_secs(601));
        assert_eq!(counts(&["account:ada"]).await, vec![0], "{b}");
        assert_eq!(ok(store.record_login_failure(&tenant(), "account:ada", clock.now(), window).await, b), 1);

        ok(store.clear_login_failures(&tenant(), "account:ada").await, b);
        assert_eq!(counts(&["account:ada", "ip:192.0.2.1"]).await, vec![0, 0], "{b}");
        // Clearing one key leaves the others (the IP's failure, read at its own time).
        let then = UnixTime::from_secs(1_700_000_000);
        assert_eq!(ok(store.login_failures(&tenant(), &["ip:192.0.2.1"], then, window).await, b), vec![1], "{b}");
    }
}
