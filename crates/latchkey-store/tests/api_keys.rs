//! API keys, on SQLite and (when LATCHKEY_TEST_POSTGRES_URL is set) PostgreSQL.

use std::sync::Arc;

use latchkey_core::crypto::TokenHash;
use latchkey_core::domain::*;
use latchkey_core::records::*;
use latchkey_core::{Clock, UnixTime};
use latchkey_store::testing::TestDatabase;
use latchkey_store::*;

fn ok<T, E: std::fmt::Display>(r: Result<T, E>, what: &str) -> T {
    r.unwrap_or_else(|e| panic!("{what}: {e}"))
}

fn tenant() -> TenantId {
    TenantId::default_tenant()
}

async fn open(db: &TestDatabase) -> Arc<dyn Store> {
    let clock = Clock::frozen(UnixTime::from_secs(1_700_000_000));
    let store = ok(db.open_store(4, clock).await, db.backend);
    ok(store.migrate().await, db.backend);
    store
}

async fn owner(store: &dyn Store, name: &str, service_account: bool) -> SubjectId {
    let new = NewUser {
        sub: SubjectId::generate(),
        username: ok(Username::parse(name), "username"),
        email: None,
        email_verified: false,
        name: None,
        profile: ProfileClaims::default(),
        password_hash: None,
        service_account,
    };
    let created = ok(store.create_user(&tenant(), new, &Actor::Cli).await, "user");
    assert_eq!(created.service_account, service_account);
    created.sub
}

fn key(owner: &SubjectId, name: &str) -> NewApiKey {
    NewApiKey {
        id: NewApiKeySecret::generate().id,
        owner: owner.clone(),
        name: name.into(),
        secret_hash: TokenHash::from_stored(format!("hash-of-{name}")),
        scopes: vec![ok(ScopeName::parse("reports:read"), "scope")],
        routes: vec![ok(RoutePattern::parse("/api/*"), "route")],
        methods: vec!["GET".into()],
        audience: None,
        expires_at: Some(1_800_000_000),
    }
}

#[tokio::test]
async fn keys_are_created_found_listed_rotated_used_and_revoked() {
    for db in TestDatabase::all().await {
        let store = open(&db).await;
        let (t, b) = (tenant(), db.backend);
        let bot = owner(store.as_ref(), "backup-bot", true).await;
        let ada = owner(store.as_ref(), "ada", false).await;
        let created = ok(store.create_api_key(&t, key(&bot, "nightly"), 10, &Actor::Cli).await, b);
        assert_eq!(created.owner, bot, "{b}");
        assert_eq!(created.routes[0].as_str(), "/api/*", "{b}");
        assert_eq!(created.methods, ["GET"], "{b}");
        assert_eq!(created.expires_at, Some(1_800_000_000), "{b}");
        let found = ok(store.api_key(&t, &created.id).await, b);
        assert_eq!(found.as_ref(), Some(&created), "{b}");
        ok(store.create_api_key(&t, key(&ada, "nightly"), 10, &Actor::Cli).await, b);
        assert_eq!(ok(store.list_api_keys(&t, None).await, b).len(), 2, "{b}");
        assert_eq!(ok(store.list_api_keys(&t, Some(&bot)).await, b), vec![created.clone()], "{b}");

        let new_hash = TokenHash::from_stored("rotated".into());
        let until = UnixTime::from_secs(1_700_003_600);
        let rotated = ok(store.rotate_api_key(&t, &created.id, &new_hash, until, &Actor::Cli).await, b);
        assert_eq!(rotated.secret_hash, new_hash, "{b}");
        assert_eq!(rotated.previous_secret_hash, Some(created.secret_hash.clone()), "{b}");
        assert_eq!(rotated.previous_valid_until, Some(1_700_003_600), "{b}");

        ok(store.record_api_key_use(&t, &created.id, UnixTime::from_secs(1_700_000_123)).await, b);
        let used = ok(store.api_key(&t, &created.id).await, b).and_then(|k| k.last_used_at);
        assert_eq!(used, Some(1_700_000_123), "{b}");

        let revoked = ok(store.revoke_api_key(&t, &created.id, &Actor::Cli).await, b);
        assert_eq!(revoked.revoked_at, Some(1_700_000_000), "{b}");
        let again = store.revoke_api_key(&t, &created.id, &Actor::Cli).await;
        assert!(matches!(again, Err(StoreError::NotFound(_))), "{b}: {again:?}");
        let late = store.rotate_api_key(&t, &created.id, &new_hash, until, &Actor::Cli).await;
        assert!(matches!(late, Err(StoreError::NotFound(_))), "{b}: a revoked key is not rotated: {late:?}");
        assert!(ok(store.list_api_keys(&t, Some(&bot)).await, b).is_empty(), "{b}: lists show live keys");
        // A revoked key's name is free again; the revoked key is still found (as revoked).
        ok(store.create_api_key(&t, key(&bot, "nightly"), 10, &Actor::Cli).await, b);
        assert!(ok(store.api_key(&t, &created.id).await, b).is_some_and(|k| k.revoked_at.is_some()), "{b}");
        let events = ok(store.recent_audit_events(&t, 20).await, b);
        for action in ["api_key.created", "api_key.rotated", "api_key.revoked"] {
            assert!(events.iter().any(|e| e.action == action), "{b}: {action}");
        }
        assert!(!events.iter().any(|e| e.details.to_string().contains("hash-of")), "{b}: no hash in the audit log");
    }
}

#[tokio::test]
async fn names_limits_and_owners_are_enforced_and_a_key_goes_with_its_owner() {
    for db in TestDatabase::all().await {
        let store = open(&db).await;
        let (t, b) = (tenant(), db.backend);
        let ada = owner(store.as_ref(), "ada", false).await;
        ok(store.create_api_key(&t, key(&ada, "ci"), 2, &Actor::Cli).await, b);
        let twice = store.create_api_key(&t, key(&ada, "ci"), 2, &Actor::Cli).await;
        assert!(matches!(twice, Err(StoreError::Conflict(ref m)) if m.contains("ci")), "{b}: {twice:?}");
        ok(store.create_api_key(&t, key(&ada, "deploy"), 2, &Actor::Cli).await, b);
        let third = store.create_api_key(&t, key(&ada, "third"), 2, &Actor::Cli).await;
        assert!(matches!(third, Err(StoreError::Invalid(_))), "{b}: {third:?}");
        let nobody = store.create_api_key(&t, key(&SubjectId::generate(), "x"), 2, &Actor::Cli).await;
        assert!(matches!(nobody, Err(StoreError::NotFound(_))), "{b}: {nobody:?}");
        assert_eq!(ok(store.list_api_keys(&t, None).await, b).len(), 2, "{b}: nothing half-written");
        ok(store.delete_user(&t, &ada, &Actor::Cli).await, b);
        assert!(ok(store.list_api_keys(&t, None).await, b).is_empty(), "{b}");
    }
}

#[tokio::test]
async fn parallel_creations_never_pass_the_limit() {
    for db in TestDatabase::all().await {
        let store = open(&db).await;
        let (t, b) = (tenant(), db.backend);
        let ada = owner(store.as_ref(), "ada", false).await;
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let (store, ada) = (store.clone(), ada.clone());
                tokio::spawn(async move {
                    store.create_api_key(&tenant(), key(&ada, &format!("k{i}")), 3, &Actor::Cli).await
                })
            })
            .collect();
        let mut created = 0;
        for task in tasks {
            if ok(task.await, "join").is_ok() {
                created += 1;
            }
        }
        assert_eq!(created, 3, "{b}");
        assert_eq!(ok(store.list_api_keys(&t, Some(&ada)).await, b).len(), 3, "{b}");
    }
}
