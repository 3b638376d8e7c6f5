//! API keys at introspection and UserInfo: worth what their owner holds now, refused when
//! revoked, expired, mistyped or of a locked owner, and seen as such by every node.

mod support;

use std::time::Duration;

use latchkey_core::domain::{ClientId, Entitlement, RoleName, ScopeName, SubjectId, TenantId};
use latchkey_core::records::{Actor, Membership, NewRole, ResourceServer};
use latchkey_service::api_keys::{ApiKeySpec, IssuedApiKey};
use latchkey_service::users::StateChange;
use reqwest::StatusCode;
use serde_json::Value;
use support::flow::{PASSWORD, secret_of};
use support::{ClientSpec, TestServer, all_backends, eventually, ok};

fn tenant() -> TenantId {
    TenantId::default_tenant()
}

fn scope(s: &str) -> ScopeName {
    ok(ScopeName::parse(s), "scope")
}

/// `ada` holding `reporter` (reports:read, reports:write), and a confidential client `api`.
async fn setup(server: &TestServer) -> SubjectId {
    let ada = server.create_user("ada", PASSWORD).await;
    let role = NewRole {
        name: ok(RoleName::parse("reporter"), "role"),
        application: None,
        description: String::new(),
        entitlements: ["reports:read", "reports:write"].iter().map(|e| ok(Entitlement::parse(e), "ent")).collect(),
    };
    let access = server.state().services.access();
    ok(access.create_role(&tenant(), role, &Actor::Cli).await, "role");
    let link = Membership::UserRole { sub: ada.clone(), role: ok(RoleName::parse("reporter"), "role") };
    ok(access.link(&tenant(), &link, &Actor::Cli).await, "grant");
    // A first-party client (the operator's own API) may introspect keys for no resource.
    server.create_client(ClientSpec { id: "api", first_party: true, ..ClientSpec::default() }).await;
    ada
}

async fn create(server: &TestServer, owner: &SubjectId, spec: ApiKeySpec) -> IssuedApiKey {
    ok(server.state().services.api_keys().create(&tenant(), owner, spec, &Actor::Cli).await, "create key")
}

fn spec(scopes: &[&str]) -> ApiKeySpec {
    ApiKeySpec { name: "ci".into(), scopes: scopes.iter().map(|s| scope(s)).collect(), ..ApiKeySpec::default() }
}

async fn introspect_as(server: &TestServer, client: &str, token: &str) -> Value {
    let secret = secret_of(client);
    let request = server.http.post(server.url("/introspect")).basic_auth(client, Some(&secret));
    let response = ok(request.form(&[("token", token)]).send().await, "introspect");
    assert_eq!(response.status(), StatusCode::OK);
    ok(response.json().await, "json")
}

async fn introspect(server: &TestServer, token: &str) -> Value {
    introspect_as(server, "api", token).await
}

#[tokio::test]
async fn a_key_is_active_with_the_scopes_its_owner_still_holds_and_its_limits() {
    for db in all_backends().await {
        let b = db.backend;
        let server = TestServer::start(db.clone(), |_| {}).await;
        let ada = setup(&server).await;
        let read_only = ApiKeySpec {
            routes: vec![ok(latchkey_core::domain::RoutePattern::parse("/api/reports/*"), "route")],
            methods: vec!["GET".into(), "HEAD".into(), "OPTIONS".into()],
            ..spec(&["reports:read", "reports:write"])
        };
        let issued = create(&server, &ada, read_only).await;
        let info = introspect(&server, &issued.secret).await;
        assert_eq!(info["active"], true, "{b}: {info}");
        assert_eq!(info["token_type"], "api_key", "{b}");
        assert_eq!(info["scope"], "reports:read reports:write", "{b}");
        assert_eq!(info["sub"], ada.as_str(), "{b}");
        assert_eq!(info["username"], "ada", "{b}");
        assert_eq!(info["routes"], serde_json::json!(["/api/reports/*"]), "{b}");
        assert_eq!(info["methods"], serde_json::json!(["GET", "HEAD", "OPTIONS"]), "{b}");
        assert_eq!(info["key_id"], issued.key.id.to_string(), "{b}");
        // A third-party client never learns whether a key works, nor whose it is.
        server.create_client(ClientSpec { id: "third", ..ClientSpec::default() }).await;
        assert_eq!(introspect_as(&server, "third", &issued.secret).await, serde_json::json!({"active": false}), "{b}");

        // The owner loses a right: the key carries it no more; all of them: the key is dead.
        let access = server.state().services.access();
        let patch = latchkey_core::records::RolePatch {
            remove_entitlements: vec![ok(Entitlement::parse("reports:write"), "ent")],
            ..Default::default()
        };
        ok(access.update_role(&tenant(), &ok(RoleName::parse("reporter"), "role"), patch, &Actor::Cli).await, "update");
        assert_eq!(introspect(&server, &issued.secret).await["scope"], "reports:read", "{b}");
        let revoke = Membership::UserRole { sub: ada.clone(), role: ok(RoleName::parse("reporter"), "role") };
        ok(access.unlink(&tenant(), &revoke, &Actor::Cli).await, "revoke role");
        assert_eq!(introspect(&server, &issued.secret).await["active"], false, "{b}");
        ok(access.link(&tenant(), &revoke, &Actor::Cli).await, "grant again");
        assert_eq!(introspect(&server, &issued.secret).await["active"], true, "{b}");

        // Locked owner, then revoked key: inactive at once on this node.
        let users = server.state().services.users();
        ok(users.change_state(&tenant(), &ada, StateChange::Lock, &Actor::Cli).await, "lock");
        assert_eq!(introspect(&server, &issued.secret).await["active"], false, "{b}: locked owner");
        ok(users.change_state(&tenant(), &ada, StateChange::Unlock, &Actor::Cli).await, "unlock");
        assert_eq!(introspect(&server, &issued.secret).await["active"], true, "{b}");
        ok(server.state().services.api_keys().revoke(&tenant(), &issued.key.id, &Actor::Cli).await, "revoke");
        assert_eq!(introspect(&server, &issued.secret).await, serde_json::json!({"active": false}), "{b}");
        server.stop().await;
    }
}

#[tokio::test]
async fn a_mistyped_made_up_or_expired_key_is_inactive_and_rotation_keeps_the_old_secret_for_its_grace() {
    let server = TestServer::start(support::sqlite().await, |_| {}).await;
    let ada = setup(&server).await;
    let issued = create(&server, &ada, spec(&["reports:read"])).await;
    let mut typo = issued.secret.clone().into_bytes();
    typo[30] = if typo[30] == b'x' { b'y' } else { b'x' };
    let typo = String::from_utf8_lossy(&typo).into_owned();
    assert_eq!(introspect(&server, &typo).await["active"], false);
    // A well-formed key with the right id and checksum but another secret.
    let forged = latchkey_core::domain::NewApiKeySecret::with_id(issued.key.id.clone()).full;
    assert_eq!(introspect(&server, &forged).await["active"], false);
    let made_up = latchkey_core::domain::NewApiKeySecret::generate().full;
    assert_eq!(introspect(&server, &made_up).await["active"], false);

    let rotated = ok(
        server
            .state()
            .services
            .api_keys()
            .rotate(&tenant(), &issued.key.id, Duration::from_secs(60), &Actor::Cli)
            .await,
        "rotate",
    );
    assert_eq!(rotated.key.id, issued.key.id);
    assert_eq!(introspect(&server, &rotated.secret).await["active"], true);
    assert_eq!(introspect(&server, &issued.secret).await["active"], true, "the old secret within its grace");
    let none = ok(
        server.state().services.api_keys().rotate(&tenant(), &issued.key.id, Duration::ZERO, &Actor::Cli).await,
        "rotate without grace",
    );
    assert_eq!(introspect(&server, &rotated.secret).await["active"], false, "no grace: the old secret is dead");
    assert_eq!(introspect(&server, &none.secret).await["active"], true);

    let expiring = ApiKeySpec {
        name: "soon".into(),
        expires_at: Some(server.state().clock.now().plus(Duration::from_secs(1))),
        ..spec(&["reports:read"])
    };
    let soon = create(&server, &ada, expiring).await;
    assert_eq!(introspect(&server, &soon.secret).await["active"], true);
    eventually(Duration::from_secs(4), "the key expires", || async {
        introspect(&server, &soon.secret).await["active"] == false
    })
    .await;
    server.stop().await;
}

#[tokio::test]
async fn rights_the_owner_lacks_and_bad_specs_are_refused_and_nothing_is_stored() {
    let server = TestServer::start(support::sqlite().await, |_| {}).await;
    let ada = setup(&server).await;
    let keys = server.state().services.api_keys();
    let refused = |r: Result<IssuedApiKey, latchkey_service::ServiceError>, needle: &str| {
        let message = r.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains(needle), "expected {needle:?}, got {message:?}");
    };
    refused(keys.create(&tenant(), &ada, spec(&["admin:all"]), &Actor::Cli).await, "does not hold `admin:all`");
    refused(keys.create(&tenant(), &ada, spec(&[]), &Actor::Cli).await, "at least one scope");
    refused(
        keys.create(&tenant(), &ada, ApiKeySpec { name: " ".into(), ..spec(&["openid"]) }, &Actor::Cli).await,
        "name",
    );
    let past = ApiKeySpec { expires_at: Some(server.state().clock.now()), ..spec(&["openid"]) };
    refused(keys.create(&tenant(), &ada, past, &Actor::Cli).await, "future");
    let unknown_aud = ApiKeySpec { audience: Some("https://nope.example".into()), ..spec(&["openid"]) };
    refused(keys.create(&tenant(), &ada, unknown_aud, &Actor::Cli).await, "resource");
    refused(keys.create(&tenant(), &SubjectId::generate(), spec(&["openid"]), &Actor::Cli).await, "not found");
    // An application role's entitlements are that application's, never a key's.
    let app_role = NewRole {
        name: ok(RoleName::parse("api-admin"), "role"),
        application: Some(ok(ClientId::parse("api"), "id")),
        description: String::new(),
        entitlements: vec![ok(Entitlement::parse("api:admin"), "ent")],
    };
    let access = server.state().services.access();
    ok(access.create_role(&tenant(), app_role, &Actor::Cli).await, "app role");
    let link = Membership::UserRole { sub: ada.clone(), role: ok(RoleName::parse("api-admin"), "role") };
    ok(access.link(&tenant(), &link, &Actor::Cli).await, "grant");
    refused(keys.create(&tenant(), &ada, spec(&["api:admin"]), &Actor::Cli).await, "does not hold `api:admin`");
    assert!(ok(keys.list(&tenant(), None).await, "list").is_empty());
    server.stop().await;
}

#[tokio::test]
async fn a_key_for_a_resource_is_reported_only_to_that_resources_client() {
    let server = TestServer::start(support::sqlite().await, |_| {}).await;
    let ada = setup(&server).await;
    server.create_client(ClientSpec { id: "other", ..ClientSpec::default() }).await;
    server.create_scope("reports:read", "Read reports").await;
    let resource = ResourceServer {
        identifier: "https://reports.example".into(),
        name: "Reports".into(),
        scopes: vec!["reports:read".into()],
        client_id: Some(ok(ClientId::parse("api"), "id")),
    };
    ok(server.state().services.resources().put(&tenant(), &resource, &Actor::Cli).await, "resource");
    let aimed = ApiKeySpec { audience: Some(resource.identifier.clone()), ..spec(&["reports:read"]) };
    let issued = create(&server, &ada, aimed).await;
    let info = introspect_as(&server, "api", &issued.secret).await;
    assert_eq!(info["active"], true, "{info}");
    assert_eq!(info["aud"], "https://reports.example");
    assert_eq!(introspect_as(&server, "other", &issued.secret).await, serde_json::json!({"active": false}));
    server.stop().await;
}

#[tokio::test]
async fn a_persons_key_with_openid_reads_userinfo_and_a_service_accounts_does_not() {
    let server = TestServer::start(support::sqlite().await, |_| {}).await;
    let ada = setup(&server).await;
    let userinfo = |token: String| {
        let request = server.http.get(server.url("/userinfo")).bearer_auth(token);
        async move {
            let response = ok(request.send().await, "userinfo");
            (response.status(), response.json::<Value>().await.unwrap_or_default())
        }
    };
    let with_email = create(&server, &ada, spec(&["openid", "email"])).await;
    let (status, body) = userinfo(with_email.secret.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["sub"], ada.as_str());
    assert_eq!(body["email"], "ada@example.com");
    assert!(body.get("name").is_none(), "no profile scope: {body}");
    let without = create(&server, &ada, ApiKeySpec { name: "reports".into(), ..spec(&["reports:read"]) }).await;
    assert_eq!(userinfo(without.secret).await.0, StatusCode::FORBIDDEN);
    let routed = ApiKeySpec {
        name: "routed".into(),
        routes: vec![ok(latchkey_core::domain::RoutePattern::parse("/api/*"), "route")],
        ..spec(&["openid", "email"])
    };
    let routed = create(&server, &ada, routed).await;
    assert_eq!(userinfo(routed.secret).await.0, StatusCode::UNAUTHORIZED, "a key limited to paths is not for UserInfo");
    let (status, _) = userinfo(format!("{}x", with_email.secret)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a malformed key");

    let bot = latchkey_core::records::NewUser {
        sub: SubjectId::generate(),
        username: ok(latchkey_core::domain::Username::parse("backup-bot"), "name"),
        email: None,
        email_verified: false,
        name: None,
        profile: Default::default(),
        password_hash: None,
        service_account: true,
    };
    let bot = ok(server.state().services.users().create(&tenant(), bot, &Actor::Cli).await, "bot").sub;
    let link = Membership::UserRole { sub: bot.clone(), role: ok(RoleName::parse("reporter"), "role") };
    ok(server.state().services.access().link(&tenant(), &link, &Actor::Cli).await, "grant");
    let keys = server.state().services.api_keys();
    let no_openid = keys.create(&tenant(), &bot, spec(&["openid"]), &Actor::Cli).await;
    assert!(no_openid.is_err(), "a service account holds no openid");
    let bots = create(&server, &bot, spec(&["reports:read"])).await;
    assert_eq!(userinfo(bots.secret.clone()).await.0, StatusCode::FORBIDDEN);
    let info = introspect(&server, &bots.secret).await;
    assert_eq!(info["service_account"], true, "{info}");
    server.stop().await;
}

#[tokio::test]
async fn a_revoked_key_is_refused_by_every_node_within_the_change_bound() {
    for db in all_backends().await {
        let b = db.backend;
        let clock = latchkey_core::Clock::system();
        let a = ok(TestServer::try_start(db.clone(), clock.clone(), |_| {}).await, "node a");
        let node_b = ok(TestServer::try_start(db.clone(), clock, |_| {}).await, "node b");
        let ada = setup(&a).await;
        let issued = create(&a, &ada, spec(&["reports:read"])).await;
        // Node B caches the key as valid first.
        assert_eq!(introspect(&node_b, &issued.secret).await["active"], true, "{b}");
        ok(a.state().services.api_keys().revoke(&tenant(), &issued.key.id, &Actor::Cli).await, "revoke");
        eventually(Duration::from_secs(3), &format!("{b}: node b refuses the revoked key"), || async {
            introspect(&node_b, &issued.secret).await["active"] == false
        })
        .await;
        // The owner locked on A: B refuses another key of theirs.
        let other = create(&a, &ada, ApiKeySpec { name: "other".into(), ..spec(&["reports:read"]) }).await;
        assert_eq!(introspect(&node_b, &other.secret).await["active"], true, "{b}");
        ok(a.state().services.users().change_state(&tenant(), &ada, StateChange::Lock, &Actor::Cli).await, "lock");
        eventually(Duration::from_secs(3), &format!("{b}: node b refuses a locked owner's key"), || async {
            introspect(&node_b, &other.secret).await["active"] == false
        })
        .await;
        a.stop().await;
        node_b.stop().await;
    }
}

/// The revocation set, not the change feed, brings a revoked key to every node: with the
/// change poll a minute apart, another SQLite node still refuses it within a second.
#[tokio::test]
async fn a_revoked_key_travels_with_the_revocation_set() {
    let db = support::sqlite().await;
    let clock = latchkey_core::Clock::system();
    let slow = |c: &mut latchkey_config::Config| c.database.change_poll_interval = Duration::from_secs(60);
    let a = ok(TestServer::try_start(db.clone(), clock.clone(), slow).await, "node a");
    let node_b = ok(TestServer::try_start(db.clone(), clock, slow).await, "node b");
    let ada = setup(&a).await;
    let issued = create(&a, &ada, spec(&["reports:read"])).await;
    assert_eq!(introspect(&node_b, &issued.secret).await["active"], true, "node b caches the key");
    ok(a.state().services.api_keys().revoke(&tenant(), &issued.key.id, &Actor::Cli).await, "revoke");
    eventually(Duration::from_secs(1), "node b refuses the revoked key", || async {
        introspect(&node_b, &issued.secret).await["active"] == false
    })
    .await;
    a.stop().await;
    node_b.stop().await;
}
