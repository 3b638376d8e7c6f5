//! Roles, groups and entitlements reach apps (RFC 9068 §2.2.3.1) as each client's policy
//! says, and a client that requires a role admits only those who hold it.

mod support;

use latchkey_core::domain::{
    ClientAccessPolicy, ClientId, Entitlement, GroupName, RoleName, RoleRequirement, TenantId,
};
use latchkey_core::records::{Actor, Membership, NewRole};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::browser::Browser;
use support::flow::{PASSWORD, Rp, claims, param, secret_of};
use support::{ClientSpec, TestServer, all_backends, ok};

const CALLBACK: &str = "https://app.example.com/callback";

fn role(s: &str) -> RoleName {
    ok(RoleName::parse(s), "role")
}

fn tenant() -> TenantId {
    TenantId::default_tenant()
}

async fn create_role(server: &TestServer, name: &str, application: Option<&str>, entitlements: &[&str]) {
    let new = NewRole {
        name: role(name),
        application: application.map(|a| ok(ClientId::parse(a), "client id")),
        description: String::new(),
        entitlements: entitlements.iter().map(|e| ok(Entitlement::parse(e), "entitlement")).collect(),
    };
    ok(server.state().services.access().create_role(&tenant(), new, &Actor::Cli).await, "create role");
}

async fn link(server: &TestServer, link: Membership) {
    ok(server.state().services.access().link(&tenant(), &link, &Actor::Cli).await, "link");
}

async fn userinfo(server: &TestServer, access_token: &str) -> Value {
    let response = ok(server.http.get(server.url("/userinfo")).bearer_auth(access_token).send().await, "userinfo");
    assert_eq!(response.status(), StatusCode::OK);
    ok(response.json().await, "userinfo json")
}

async fn introspect(server: &TestServer, token: &str) -> Value {
    let secret = secret_of("webapp");
    let request = server.http.post(server.url("/introspect")).basic_auth("webapp", Some(&secret));
    let response = ok(request.form(&[("token", token)]).send().await, "introspect");
    assert_eq!(response.status(), StatusCode::OK);
    ok(response.json().await, "introspection json")
}

fn access_of(v: &Value) -> Value {
    json!({"roles": v["roles"], "groups": v["groups"], "entitlements": v["entitlements"]})
}

#[tokio::test]
async fn a_client_that_asks_gets_roles_groups_and_entitlements_everywhere_and_never_another_apps_roles() {
    for db in all_backends().await {
        let b = db.backend;
        let server = TestServer::start(db.clone(), |_| {}).await;
        let policy = ClientAccessPolicy {
            release_roles: true,
            release_groups: true,
            release_entitlements: true,
            ..Default::default()
        };
        server.create_client(ClientSpec { first_party: true, access_policy: policy, ..ClientSpec::default() }).await;
        server.create_client(ClientSpec { id: "crm", first_party: true, ..ClientSpec::default() }).await;
        let ada = server.create_user("ada", PASSWORD).await;
        server.create_user("bob", PASSWORD).await;
        create_role(&server, "editor", None, &["docs:write", "docs:read"]).await;
        create_role(&server, "webapp-admin", Some("webapp"), &["webapp:admin", "docs:read"]).await;
        create_role(&server, "crm-admin", Some("crm"), &["crm:admin"]).await;
        let staff = ok(GroupName::parse("staff"), "group");
        ok(server.state().services.access().create_group(&tenant(), &staff, "", &Actor::Cli).await, "group");
        link(&server, Membership::UserRole { sub: ada.clone(), role: role("editor") }).await;
        link(&server, Membership::UserRole { sub: ada.clone(), role: role("crm-admin") }).await;
        link(&server, Membership::GroupMember { group: staff.clone(), sub: ada.clone() }).await;
        link(&server, Membership::GroupRole { group: staff.clone(), role: role("webapp-admin") }).await;

        let secret = secret_of("webapp");
        let rp = Rp { id: "webapp", secret: &secret, callback: CALLBACK };
        let browser = Browser::new(server.server.addr);
        let callback = rp.sign_in(&server, &browser, "ada", "openid offline_access").await;
        let tokens = rp.tokens(&server, &callback).await;
        let expected = json!({
            "roles": ["editor", "webapp-admin"],
            "groups": ["staff"],
            "entitlements": ["docs:read", "docs:write", "webapp:admin"],
        });
        let id_token = claims(tokens["id_token"].as_str().unwrap_or_default());
        assert_eq!(access_of(&id_token), expected, "{b}: the ID token");
        let access_token = tokens["access_token"].as_str().unwrap_or_default().to_owned();
        assert_eq!(access_of(&claims(&access_token)), expected, "{b}: the access token");
        assert_eq!(access_of(&userinfo(&server, &access_token).await), expected, "{b}: UserInfo");
        assert_eq!(access_of(&introspect(&server, &access_token).await), expected, "{b}: introspection");
        let refresh = tokens["refresh_token"].as_str().unwrap_or_default();
        assert_eq!(access_of(&introspect(&server, refresh).await), expected, "{b}: a refresh token's introspection");

        // A revocation shows at once in UserInfo and introspection; the token keeps its claims.
        let revoke = Membership::UserRole { sub: ada.clone(), role: role("editor") };
        ok(server.state().services.access().unlink(&tenant(), &revoke, &Actor::Cli).await, "revoke");
        let now = userinfo(&server, &access_token).await;
        assert_eq!(now["roles"], json!(["webapp-admin"]), "{b}: {now}");
        assert_eq!(now["entitlements"], json!(["docs:read", "webapp:admin"]), "{b}: {now}");
        assert_eq!(introspect(&server, &access_token).await["roles"], json!(["webapp-admin"]), "{b}");
        let (status, refreshed) = rp.refresh(&server, refresh).await;
        assert_eq!(status, StatusCode::OK, "{b}: {refreshed}");
        let next = claims(refreshed["id_token"].as_str().unwrap_or_default());
        assert_eq!(next["roles"], json!(["webapp-admin"]), "{b}: the next token");

        // A user without roles gets the claims, empty; a client that did not ask gets none.
        let bob_browser = Browser::new(server.server.addr);
        let tokens = rp.tokens(&server, &rp.sign_in(&server, &bob_browser, "bob", "openid").await).await;
        let bob = claims(tokens["id_token"].as_str().unwrap_or_default());
        assert_eq!(access_of(&bob), json!({"roles": [], "groups": [], "entitlements": []}), "{b}");
        let crm_secret = secret_of("crm");
        let crm = Rp { id: "crm", secret: &crm_secret, callback: CALLBACK };
        let tokens = crm.tokens(&server, &crm.sign_in(&server, &browser, "ada", "openid").await).await;
        let to_crm = claims(tokens["id_token"].as_str().unwrap_or_default());
        assert!(to_crm.get("roles").is_none() && to_crm.get("groups").is_none(), "{b}: {to_crm}");
        server.stop().await;
    }
}

#[tokio::test]
async fn application_roles_only_releases_the_clients_own_roles() {
    let server = TestServer::start(support::sqlite().await, |_| {}).await;
    let policy = ClientAccessPolicy { release_roles: true, application_roles_only: true, ..Default::default() };
    server.create_client(ClientSpec { first_party: true, access_policy: policy, ..ClientSpec::default() }).await;
    let ada = server.create_user("ada", PASSWORD).await;
    create_role(&server, "editor", None, &[]).await;
    create_role(&server, "webapp-admin", Some("webapp"), &[]).await;
    link(&server, Membership::UserRole { sub: ada.clone(), role: role("editor") }).await;
    link(&server, Membership::UserRole { sub: ada.clone(), role: role("webapp-admin") }).await;
    let secret = secret_of("webapp");
    let rp = Rp { id: "webapp", secret: &secret, callback: CALLBACK };
    let browser = Browser::new(server.server.addr);
    let tokens = rp.tokens(&server, &rp.sign_in(&server, &browser, "ada", "openid").await).await;
    let id_token = claims(tokens["id_token"].as_str().unwrap_or_default());
    assert_eq!(id_token["roles"], json!(["webapp-admin"]), "{id_token}");
    assert!(id_token.get("entitlements").is_none(), "not asked for: {id_token}");
    server.stop().await;
}

/// Signs `user` in for the webapp client and returns the page the browser ends on.
async fn sign_in_to_webapp(server: &TestServer, browser: &Browser, user: &str) -> (StatusCode, String, String) {
    let issuer = server.server.issuer.clone();
    let secret = secret_of("webapp");
    let rp = Rp { id: "webapp", secret: &secret, callback: CALLBACK };
    let location = rp.start(server, browser, "openid", &[]).await;
    assert!(location.contains("/login?"), "{location}");
    let after = browser.sign_in(&location, &issuer, user, PASSWORD).await;
    let resumed = browser.get(&Browser::location(&after, &issuer)).await;
    let status = resumed.status();
    let location = resumed.headers().get("location").and_then(|l| l.to_str().ok()).unwrap_or_default().to_owned();
    (status, location, resumed.text().await.unwrap_or_default())
}

#[tokio::test]
async fn a_client_that_requires_a_role_admits_only_its_holders_at_sign_in_and_at_every_refresh() {
    for db in all_backends().await {
        let b = db.backend;
        let server = TestServer::start(db.clone(), |_| {}).await;
        create_role(&server, "editor", None, &[]).await;
        let policy =
            ClientAccessPolicy { required_roles: RoleRequirement::any_of(vec![role("editor")]), ..Default::default() };
        server.create_client(ClientSpec { first_party: true, access_policy: policy, ..ClientSpec::default() }).await;
        let bob = server.create_user("bob", PASSWORD).await;

        // Without the role: a clear page, and nothing reaches the client.
        let browser = Browser::new(server.server.addr);
        let (status, location, page) = sign_in_to_webapp(&server, &browser, "bob").await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{b}: {location}");
        assert!(page.contains("No access to this application"), "{b}: {page}");
        assert!(page.contains("bob"), "{b}: names who is signed in: {page}");
        assert!(!location.starts_with(CALLBACK), "{b}: {location}");

        // prompt=none: access_denied at the redirect URI (the browser is signed in).
        let secret = secret_of("webapp");
        let rp = Rp { id: "webapp", secret: &secret, callback: CALLBACK };
        let silent = rp.start(&server, &browser, "openid", &[("prompt", "none")]).await;
        let silent = ok(url::Url::parse(&silent), "redirect");
        assert!(silent.as_str().starts_with(CALLBACK), "{b}: {silent}");
        assert_eq!(param(&silent, "error").as_deref(), Some("access_denied"), "{b}: {silent}");
        assert_eq!(param(&silent, "code"), None, "{b}");

        // With it: through, and refreshes work until it is taken away.
        link(&server, Membership::UserRole { sub: bob.clone(), role: role("editor") }).await;
        let tokens = rp.tokens(&server, &rp.sign_in(&server, &browser, "bob", "openid offline_access").await).await;
        let refresh = tokens["refresh_token"].as_str().unwrap_or_default().to_owned();
        let (status, body) = rp.refresh(&server, &refresh).await;
        assert_eq!(status, StatusCode::OK, "{b}: {body}");
        let refresh = body["refresh_token"].as_str().unwrap_or_default().to_owned();
        let access_token = body["access_token"].as_str().unwrap_or_default().to_owned();
        let introspected = |token: String| {
            let request = server.http.post(server.url("/introspect")).basic_auth("webapp", Some(secret.clone()));
            async move { ok(ok(request.form(&[("token", token)]).send().await, "introspect").json::<Value>().await, "json") }
        };
        assert_eq!(introspected(access_token.clone()).await["active"], true, "{b}");
        let revoke = Membership::UserRole { sub: bob.clone(), role: role("editor") };
        ok(server.state().services.access().unlink(&tenant(), &revoke, &Actor::Cli).await, "revoke");
        assert_eq!(introspected(access_token).await["active"], false, "{b}: the token no longer counts");
        assert_eq!(introspected(refresh.clone()).await["active"], false, "{b}: nor the refresh token");
        let (status, body) = rp.refresh(&server, &refresh).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{b}: {body}");
        assert_eq!(body["error"], "invalid_grant", "{b}: {body}");
        assert!(body["error_description"].as_str().unwrap_or_default().contains("role"), "{b}: {body}");

        // A role a client requires is not deleted from under it.
        let refused = server.state().services.access().delete_role(&tenant(), &role("editor"), &Actor::Cli).await;
        assert!(refused.as_ref().err().is_some_and(|e| e.to_string().contains("webapp")), "{b}: {refused:?}");
        server.stop().await;
    }
}

#[tokio::test]
async fn all_of_requires_every_role_and_an_unknown_required_role_is_refused() {
    let server = TestServer::start(support::sqlite().await, |_| {}).await;
    create_role(&server, "editor", None, &[]).await;
    create_role(&server, "reviewer", None, &[]).await;
    let policy = ClientAccessPolicy {
        required_roles: RoleRequirement::all_of(vec![role("editor"), role("reviewer")]),
        ..Default::default()
    };
    server.create_client(ClientSpec { first_party: true, access_policy: policy, ..ClientSpec::default() }).await;
    let ada = server.create_user("ada", PASSWORD).await;
    link(&server, Membership::UserRole { sub: ada.clone(), role: role("editor") }).await;
    let browser = Browser::new(server.server.addr);
    let (status, _, page) = sign_in_to_webapp(&server, &browser, "ada").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "one of two is not enough: {page}");
    link(&server, Membership::UserRole { sub: ada.clone(), role: role("reviewer") }).await;
    let secret = secret_of("webapp");
    let rp = Rp { id: "webapp", secret: &secret, callback: CALLBACK };
    rp.sign_in(&server, &browser, "ada", "openid").await;

    let typo =
        ClientAccessPolicy { required_roles: RoleRequirement::any_of(vec![role("editr")]), ..Default::default() };
    let patch = latchkey_core::records::ClientPatch { access_policy: Some(typo), ..Default::default() };
    let webapp = ok(ClientId::parse("webapp"), "id");
    let refused = server.state().services.clients().update(&tenant(), &webapp, patch, &Actor::Cli).await;
    assert!(refused.as_ref().err().is_some_and(|e| e.to_string().contains("editr")), "{refused:?}");
    let kept = ok(server.state().services.clients().get(&tenant(), &webapp).await, "client");
    let kept = kept.and_then(|c| c.access_policy.required_roles).map(|r| r.to_string());
    assert_eq!(kept.as_deref(), Some("all of [editor, reviewer]"), "nothing half-written");
    server.stop().await;
}

#[tokio::test]
async fn a_grant_or_revocation_on_one_node_reaches_the_others_within_the_change_bound() {
    for db in all_backends().await {
        let b = db.backend;
        let clock = latchkey_core::Clock::system();
        let a = ok(TestServer::try_start(db.clone(), clock.clone(), |_| {}).await, "node a");
        let node_b = ok(TestServer::try_start(db.clone(), clock, |_| {}).await, "node b");
        let ada = a.create_user("ada", PASSWORD).await;
        create_role(&a, "editor", None, &[]).await;
        let held = |node: &TestServer| {
            let ada = ada.clone();
            let services = node.state().services.clone();
            async move {
                let access = ok(services.access().held(&ada).await, "held");
                access.role_names().map(ToString::to_string).collect::<Vec<_>>()
            }
        };
        // Node B caches "nothing" first, so only the change feed can correct it.
        assert!(held(&node_b).await.is_empty(), "{b}");
        link(&a, Membership::UserRole { sub: ada.clone(), role: role("editor") }).await;
        assert_eq!(held(&a).await, ["editor"], "{b}: at once on the node that made the change");
        let bound = std::time::Duration::from_secs(3);
        support::eventually(bound, &format!("{b}: node b sees the grant"), || async {
            held(&node_b).await == ["editor"]
        })
        .await;
        let revoke = Membership::UserRole { sub: ada.clone(), role: role("editor") };
        ok(a.state().services.access().unlink(&tenant(), &revoke, &Actor::Cli).await, "revoke");
        support::eventually(bound, &format!("{b}: node b sees the revocation"), || async {
            held(&node_b).await.is_empty()
        })
        .await;
        a.stop().await;
        node_b.stop().await;
    }
}
