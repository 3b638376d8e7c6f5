//! Signing keys: they survive restarts, the next key is published long enough before it
//! signs, retired keys stay published until their tokens expire, and the master key guards
//! them.

mod support;

use std::sync::Arc;
use std::time::Duration;

use latchkey_config::SecretRef;
use latchkey_core::domain::{GrantType, SigningAlg};
use latchkey_core::records::Actor;
use latchkey_core::{Clock, UnixTime};
use latchkey_server::{Foundation, StartupError};
use latchkey_service::keys::KeyServiceError;
use support::{ClientSpec, TestServer, all_backends, ok, sqlite, test_config};

#[tokio::test]
async fn keys_and_data_survive_a_restart() {
    for db in all_backends().await {
        let dir = Arc::new(ok(tempfile::tempdir(), "dir"));
        let first = ok(TestServer::start_in(db.clone(), dir.clone(), Clock::system(), |_| {}).await, "first start");
        let kids = first.jwks_kids().await;
        assert_eq!(kids.len(), 6, "{}", db.backend);
        first.stop().await;
        let second = ok(TestServer::start_in(db.clone(), dir.clone(), Clock::system(), |_| {}).await, "second start");
        assert_eq!(second.jwks_kids().await, kids, "{}: the same keys after a restart", db.backend);
        second.stop().await;
    }
}

#[tokio::test]
async fn the_next_key_signs_only_after_the_jwks_cache_lifetime_plus_skew() {
    for db in all_backends().await {
        let clock = Clock::frozen(UnixTime::from_secs(1_800_000_000));
        let server = ok(TestServer::try_start(db.clone(), clock.clone(), |_| {}).await, "start");
        let keys = server.server.state.keys.clone();
        let before = ok(keys.active(SigningAlg::Es256).ok_or("no active key"), "active").kid().to_owned();

        let refused = keys.rotate(SigningAlg::Es256, false, &Actor::Cli).await;
        assert!(
            matches!(refused, Err(KeyServiceError::NextKeyTooYoung { needed: 3660, .. })),
            "{}: {refused:?}",
            db.backend
        );
        assert!(refused.err().is_some_and(|e| e.to_string().contains("--force")));

        clock.advance(Duration::from_secs(3_660));
        let promoted = ok(keys.rotate(SigningAlg::Es256, false, &Actor::Cli).await, "rotate");
        let after = ok(keys.active(SigningAlg::Es256).ok_or("no active key"), "active").kid().to_owned();
        assert_eq!(after, promoted);
        assert_ne!(after, before);
        // The retired key is still published: tokens it signed are still valid.
        let published = server.jwks_kids().await;
        assert!(published.contains(&before) && published.contains(&after), "{}", db.backend);
        assert_eq!(published.len(), 7, "{}: 3 next + 3 active + 1 retired", db.backend);

        // After the longest token lifetime plus skew, the schedule drops the retired key.
        clock.advance(Duration::from_secs(3_600 + 60 + 1));
        ok(keys.run_schedule().await, "schedule");
        let published = server.jwks_kids().await;
        assert!(!published.contains(&before), "{}: the retired key is gone", db.backend);
        assert_eq!(published.len(), 6);

        // A signature by the active key verifies with the published JWK.
        let signer = ok(keys.active(SigningAlg::Es256).ok_or("no key"), "active");
        let token = ok(signer.sign_jwt("JWT", &serde_json::json!({"iss": server.server.issuer})), "sign");
        let header = ok(jsonwebtoken::decode_header(&token), "header");
        assert!(published.contains(&header.kid.unwrap_or_default()));
        server.stop().await;
    }
}

#[tokio::test]
async fn the_schedule_rotates_keys_older_than_the_rotation_interval() {
    let clock = Clock::frozen(UnixTime::from_secs(1_800_000_000));
    let server = ok(
        TestServer::try_start(sqlite().await, clock.clone(), |c| c.keys.rotation_interval = Duration::from_secs(7_200))
            .await,
        "start",
    );
    let keys = server.server.state.keys.clone();
    let initial: Vec<String> =
        SigningAlg::ALL.iter().filter_map(|a| keys.active(*a)).map(|k| k.kid().to_owned()).collect();
    ok(keys.run_schedule().await, "schedule");
    let same: Vec<String> =
        SigningAlg::ALL.iter().filter_map(|a| keys.active(*a)).map(|k| k.kid().to_owned()).collect();
    assert_eq!(same, initial, "nothing is due yet");
    clock.advance(Duration::from_secs(7_200));
    ok(keys.run_schedule().await, "schedule");
    let rotated: Vec<String> =
        SigningAlg::ALL.iter().filter_map(|a| keys.active(*a)).map(|k| k.kid().to_owned()).collect();
    assert_eq!(rotated.len(), 3);
    assert!(rotated.iter().all(|k| !initial.contains(k)), "every algorithm rotated");
    let events = ok(
        server.server.state.services.audit().recent(&latchkey_core::domain::TenantId::default_tenant(), 50).await,
        "audit",
    );
    assert_eq!(events.iter().filter(|e| e.action == "keys.rotated").count(), 3, "each rotation is audited");
    assert!(events.iter().filter(|e| e.action == "keys.rotated").all(|e| e.actor == "system"));
    server.stop().await;
}

#[tokio::test]
async fn private_keys_are_stored_encrypted() {
    let db = sqlite().await;
    let server = TestServer::start(db.clone(), |_| {}).await;
    let stored = ok(
        latchkey_service::testing::store_of(&server.server.state.services)
            .signing_keys(&latchkey_core::domain::TenantId::default_tenant())
            .await,
        "keys",
    );
    for key in &stored {
        // PKCS#8 DER starts with a SEQUENCE tag; a sealed blob starts with our version byte.
        assert_eq!(key.sealed_private_key[0], 1, "{}: sealed", key.kid);
        assert!(latchkey_core::crypto::SigningKeyPair::from_pkcs8(key.alg, &key.sealed_private_key).is_err());
    }
    server.stop().await;
}

#[tokio::test]
async fn a_wrong_master_key_is_refused_and_never_replaces_the_old_one() {
    for db in all_backends().await {
        let dir = ok(tempfile::tempdir(), "dir");
        let server = TestServer::start(db.clone(), |_| {}).await;
        server.stop().await;
        let mut config = test_config(&db, dir.path());
        config.secrets.master_key = Some(SecretRef::new(latchkey_core::crypto::MasterKey::generate().to_hex()));
        let refused = Foundation::open(config, Clock::system()).await;
        match refused {
            Err(StartupError::MasterKey(message)) => assert!(message.contains("does not match"), "{message}"),
            Err(other) => panic!("{}: wrong error: {other}", db.backend),
            Ok(_) => panic!("{}: a wrong master key was accepted", db.backend),
        }
    }
}

#[tokio::test]
async fn the_zero_config_key_file_is_created_once_and_never_regenerated_over_data() {
    let dir = Arc::new(ok(tempfile::tempdir(), "dir"));
    let db_path = dir.path().join("latchkey.db");
    let zero_config = move |c: &mut latchkey_config::Config| {
        c.secrets.master_key = None;
        c.database.url = SecretRef::new(format!("sqlite:{}", db_path.display()));
    };
    let db = sqlite().await; // unused location; the tweak points at dir/latchkey.db
    let first = ok(TestServer::start_in(db.clone(), dir.clone(), Clock::system(), zero_config.clone()).await, "first");
    let key_file = dir.path().join("latchkey.master-key");
    let mode = ok(std::fs::metadata(&key_file), "key file").permissions();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(mode.mode() & 0o777, 0o600, "owner-only");
    }
    let _ = mode;
    let kids = first.jwks_kids().await;
    first.stop().await;

    let again = ok(TestServer::start_in(db.clone(), dir.clone(), Clock::system(), zero_config.clone()).await, "second");
    assert_eq!(again.jwks_kids().await, kids);
    again.stop().await;

    ok(std::fs::remove_file(&key_file), "remove key");
    let refused = TestServer::start_in(db, dir.clone(), Clock::system(), zero_config).await;
    match refused {
        Err(StartupError::MasterKey(message)) => assert!(message.contains("Refusing to create a new key"), "{message}"),
        Err(other) => panic!("wrong error: {other}"),
        Ok(_) => panic!("a new master key was generated over encrypted data"),
    }
    assert!(!key_file.exists(), "no new key file was written");
}

#[tokio::test]
#[cfg_attr(not(postgres_tests), ignore = "PostgreSQL only: set LATCHKEY_TEST_POSTGRES_URL")]
async fn postgresql_needs_a_configured_master_key() {
    let db = latchkey_service::testing::TestDatabase::postgres_only().await;
    let dir = ok(tempfile::tempdir(), "dir");
    let mut config = test_config(&db, dir.path());
    config.secrets.master_key = None;
    match Foundation::open(config, Clock::system()).await {
        Err(StartupError::MasterKey(message)) => assert!(message.contains("secrets.master_key"), "{message}"),
        Err(other) => panic!("wrong error: {other}"),
        Ok(_) => panic!("started without a shared master key"),
    }
}

#[tokio::test]
async fn an_algorithm_removed_from_the_config_retires_and_its_keys_leave_after_their_tokens() {
    for db in all_backends().await {
        let dir = Arc::new(ok(tempfile::tempdir(), "dir"));
        let clock = Clock::frozen(UnixTime::from_secs(1_800_000_000));
        let first = ok(TestServer::start_in(db.clone(), dir.clone(), clock.clone(), |_| {}).await, "all algorithms");
        let eddsa_active =
            ok(first.server.state.keys.active(SigningAlg::EdDsa).ok_or("no key"), "active").kid().to_owned();
        first.stop().await;
        let second = ok(
            TestServer::start_in(db.clone(), dir.clone(), clock.clone(), |c| {
                c.keys.algorithms = vec![SigningAlg::Rs256, SigningAlg::Es256];
            })
            .await,
            "without EdDSA",
        );
        let keys = second.server.state.keys.clone();
        ok(keys.run_schedule().await, "schedule");
        assert!(keys.active(SigningAlg::EdDsa).is_none(), "{}: EdDSA no longer signs", db.backend);
        let published = second.jwks_kids().await;
        assert!(published.contains(&eddsa_active), "{}: its tokens still verify", db.backend);
        assert_eq!(published.len(), 5, "{}: 2 algorithms x 2 + the retired EdDSA key", db.backend);
        clock.advance(Duration::from_secs(3_600 + 60 + 1));
        ok(keys.run_schedule().await, "schedule");
        assert!(!second.jwks_kids().await.contains(&eddsa_active), "{}: gone after its tokens expired", db.backend);
        second.stop().await;
    }
}

/// Introspection skips the signature check for a token it has checked before; what can
/// change afterwards still counts: its expiry, and its key leaving the published set.
#[tokio::test]
async fn a_token_checked_before_is_inactive_once_expired_or_once_its_key_has_left() {
    for db in all_backends().await {
        let b = db.backend;
        let clock = Clock::frozen(UnixTime::from_secs(1_800_000_000));
        let server = ok(TestServer::try_start(db.clone(), clock.clone(), |_| {}).await, "start");
        let spec = ClientSpec { id: "svc", grants: &[GrantType::ClientCredentials], scopes: &[], ..Default::default() };
        let secret = server.create_client(spec).await.unwrap_or_default();
        let keys = server.server.state.keys.clone();
        let signer = ok(keys.active(SigningAlg::Es256).ok_or("no key"), "active");
        let now = clock.now().secs();
        let token = |jti: &str, exp: i64| {
            let claims = serde_json::json!({
                "iss": server.server.issuer, "sub": "svc", "aud": "svc", "client_id": "svc", "scope": "",
                "jti": jti, "iat": now, "exp": exp,
            });
            ok(signer.sign_jwt("at+jwt", &claims), "sign")
        };
        let (short, long) = (token("short", now + 100), token("long", now + 30 * 86_400));
        let active = |token: String| {
            let request = server.http.post(server.url("/introspect")).basic_auth("svc", Some(&secret));
            async move {
                let response = ok(request.form(&[("token", token)]).send().await, "introspect");
                assert_eq!(response.status(), reqwest::StatusCode::OK);
                let body: serde_json::Value = ok(response.json().await, "body");
                body["active"] == serde_json::Value::Bool(true)
            }
        };
        assert!(active(short.clone()).await && active(long.clone()).await, "{b}: both valid");
        assert_eq!(server.server.state.services.verified_tokens.len(), 2, "{b}: both kept after their first check");
        assert!(active(short.clone()).await, "{b}: still active when presented again");

        clock.advance(Duration::from_secs(101));
        assert!(!active(short).await, "{b}: expired, though its signature was checked before");
        assert!(active(long.clone()).await, "{b}");

        // The key that signed `long` retires, and leaves once no token of its own lifetime remains.
        ok(keys.rotate(SigningAlg::Es256, true, &Actor::Cli).await, "rotate");
        clock.advance(Duration::from_secs(3_600 + 60 + 1));
        ok(keys.run_schedule().await, "schedule");
        assert!(!server.jwks_kids().await.contains(&signer.kid().to_owned()), "{b}: the key has left");
        assert!(!active(long).await, "{b}: a token checked before is inactive once its key has left");
        server.stop().await;
    }
}

/// After a compromise: rotate at once, then retire the old key through the admin API, and
/// a token it signed (checked before, still within its lifetime) stops verifying at once.
#[tokio::test]
async fn a_compromised_key_is_retired_at_once_and_its_tokens_stop_verifying() {
    use support::admin::{call, machine_client, machine_token};
    for db in all_backends().await {
        let b = db.backend;
        let server = TestServer::start(db, |_| {}).await;
        let spec = ClientSpec { id: "svc", grants: &[GrantType::ClientCredentials], scopes: &[], ..Default::default() };
        let secret = server.create_client(spec).await.unwrap_or_default();
        machine_client(&server, "ops").await;
        let admin = machine_token(&server, "ops", "admin:keys").await;
        let keys = server.server.state.keys.clone();
        let signer = ok(keys.active(SigningAlg::Es256).ok_or("no key"), "active");
        let kid = signer.kid().to_owned();
        let now = server.clock.now().secs();
        let claims = serde_json::json!({
            "iss": server.server.issuer, "sub": "svc", "aud": "svc", "client_id": "svc", "scope": "",
            "jti": "stolen", "iat": now, "exp": now + 3_000,
        });
        let token = ok(signer.sign_jwt("at+jwt", &claims), "sign");
        let active = || async {
            let request = server.http.post(server.url("/introspect")).basic_auth("svc", Some(&secret));
            let response = ok(request.form(&[("token", token.as_str())]).send().await, "introspect");
            let body: serde_json::Value = ok(response.json().await, "body");
            body["active"] == serde_json::Value::Bool(true)
        };
        assert!(active().await, "{b}");

        // The active key is rotated first.
        let (status, refused) = call(&server, &admin, "POST", &format!("/signing-keys/{kid}/retire"), None).await;
        assert_eq!(status, reqwest::StatusCode::CONFLICT, "{b}: {refused}");
        assert!(refused["detail"].as_str().unwrap_or_default().contains("rotate first"), "{b}: {refused}");
        let rotate = serde_json::json!({"alg": "ES256", "force": true});
        assert_eq!(
            call(&server, &admin, "POST", "/signing-keys/rotate", Some(rotate)).await.0,
            reqwest::StatusCode::OK
        );
        assert!(active().await, "{b}: a retired key stays published by default");

        let (status, retired) = call(&server, &admin, "POST", &format!("/signing-keys/{kid}/retire"), None).await;
        assert_eq!(status, reqwest::StatusCode::OK, "{b}: {retired}");
        assert_eq!(retired["was_published"], true, "{b}");
        assert!(!server.jwks_kids().await.contains(&kid), "{b}: no longer in the JWKS");
        assert!(!active().await, "{b}: its tokens stop verifying at once");
        let (_, list) = call(&server, &admin, "GET", "/signing-keys", None).await;
        // Listed as no longer published, or already gone: its publication ended a second ago,
        // so the key schedule (a background job here too) may have deleted it meanwhile.
        let items = list["items"].as_array();
        assert!(items.is_some_and(|items| items.len() >= 6), "{b}: {list}");
        let listed = items.into_iter().flatten().find(|k| k["kid"] == kid.as_str());
        assert!(listed.is_none_or(|k| k["published"] == false), "{b}: {list}");
        // Again: nothing changes. An unknown key: 404.
        // (Or 404, if the schedule has deleted it.)
        let (status, again) = call(&server, &admin, "POST", &format!("/signing-keys/{kid}/retire"), None).await;
        let (_, now_listed) = call(&server, &admin, "GET", "/signing-keys", None).await;
        let still_there = now_listed["items"].as_array().into_iter().flatten().any(|k| k["kid"] == kid.as_str());
        let gone = status == reqwest::StatusCode::NOT_FOUND && !still_there;
        assert!(gone || (status == reqwest::StatusCode::OK && again["was_published"] == false), "{b}: {again}");
        assert_eq!(
            call(&server, &admin, "POST", "/signing-keys/no-such-kid/retire", None).await.0,
            reqwest::StatusCode::NOT_FOUND
        );
        let events = ok(
            server.state().services.audit().recent(&latchkey_core::domain::TenantId::default_tenant(), 20).await,
            "audit",
        );
        assert!(events.iter().any(|e| e.action == "keys.unpublished" && e.target == kid), "{b}");
        server.stop().await;
    }
}
