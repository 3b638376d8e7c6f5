//! The admin API's authorization: who a credential is (a person, an admin client, a
//! service account's key), what it is worth at each request, and what no caller can do.

mod support;

use latchkey_core::domain::{
    ADMIN_ROLE, AUDITOR_ROLE, AdminScope, Entitlement, GrantType, RoleName, ScopeName, SubjectId, TenantId,
};
use latchkey_core::records::{Actor, Membership, NewRole};
use latchkey_service::api_keys::ApiKeySpec;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::admin::{call, machine_client, machine_token, token_response};
use support::authenticator::{Flags, SoftAuthenticator};
use support::browser::Browser;
use support::flow::{PASSWORD, Rp, param, secret_of};
use support::passkey::PasskeyBrowser;
use support::{ClientSpec, TestServer, all_backends, ok};

const CALLBACK: &str = "https://console.example.com/callback";
const CONSOLE_SCOPES: &[&str] = &[
    "openid",
    "admin:server:read",
    "admin:users:read",
    "admin:users:write",
    "admin:clients:read",
    "admin:clients:write",
    "admin:access:read",
    "admin:access:write",
    "admin:keys",
    "admin:audit:read",
];

fn tenant() -> TenantId {
    TenantId::default_tenant()
}

fn role(name: &str) -> RoleName {
    ok(RoleName::parse(name), "role")
}

/// An admin client for people: code flow, first-party (no consent page), every admin scope.
async fn console_client(server: &TestServer) {
    let spec = ClientSpec {
        id: "console",
        first_party: true,
        redirect_uris: &[CALLBACK],
        scopes: CONSOLE_SCOPES,
        admin_client: true,
        ..ClientSpec::default()
    };
    server.create_client(spec).await;
}

/// A person signed up with a passkey (so their sign-in is phishing-resistant), with the
/// console's access token for `scope`.
async fn person_token(server: &TestServer, username: &str, scope: &str) -> (SubjectId, String) {
    let b = PasskeyBrowser::new(server);
    let mut device = SoftAuthenticator::new(Flags::default());
    let (status, page) = b.sign_up(&mut device, username, &format!("{username}@example.com")).await;
    assert_eq!(status, StatusCode::OK, "sign-up: {page}");
    let sub = person(server, username).await;
    (sub, console_token(server, &b.browser, scope).await)
}

async fn person(server: &TestServer, username: &str) -> SubjectId {
    let name = ok(latchkey_core::domain::Username::parse(username), "username");
    let found = ok(server.state().services.users().by_username(&tenant(), &name).await, "user");
    found.unwrap_or_else(|| panic!("no user {username}")).sub
}

/// The console's code flow in a browser that is signed in already.
async fn console_token(server: &TestServer, browser: &Browser, scope: &str) -> String {
    let secret = secret_of("console");
    let rp = Rp { id: "console", secret: &secret, callback: CALLBACK };
    let location = rp.start(server, browser, scope, &[]).await;
    assert!(location.starts_with(CALLBACK), "straight back to the console: {location}");
    let callback = ok(url::Url::parse(&location), "callback");
    assert!(param(&callback, "code").is_some(), "{callback}");
    rp.tokens(server, &callback).await["access_token"].as_str().unwrap_or_default().to_owned()
}

async fn grant(server: &TestServer, sub: &SubjectId, name: &str) {
    let link = Membership::UserRole { sub: sub.clone(), role: role(name) };
    ok(server.state().services.access().link(&tenant(), &link, &Actor::Cli).await, "grant");
}

#[tokio::test]
async fn a_persons_rights_are_their_roles_at_each_call() {
    for db in all_backends().await {
        let b = db.backend;
        let server = TestServer::start(db, |c| c.registration.mode = latchkey_config::RegistrationMode::Open).await;
        console_client(&server).await;
        let (ada, token) = person_token(&server, "ada", "admin:users:read admin:users:write").await;
        let (status, body) = call(&server, &token, "GET", "/users", None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{b}: no admin role yet: {body}");

        grant(&server, &ada, AUDITOR_ROLE).await;
        assert_eq!(call(&server, &token, "GET", "/users", None).await.0, StatusCode::OK, "{b}: the auditor reads");
        let new = json!({"username": "grace"});
        let (status, body) = call(&server, &token, "POST", "/users", Some(new.clone())).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{b}: the auditor writes nothing");
        assert_eq!(body["type"], "urn:latchkey:problem:forbidden", "{b}");

        grant(&server, &ada, ADMIN_ROLE).await;
        let (status, created) = call(&server, &token, "POST", "/users", Some(new)).await;
        assert_eq!(status, StatusCode::CREATED, "{b}: {created}");
        // The token's scopes bound the role: no right the console did not ask for.
        assert_eq!(call(&server, &token, "GET", "/audit-events", None).await.0, StatusCode::FORBIDDEN, "{b}");

        // Another administrator, so ada's role may go; the next call is refused.
        let grace = ok(SubjectId::parse(created["sub"].as_str().unwrap_or_default()), "sub");
        grant(&server, &grace, ADMIN_ROLE).await;
        for name in [ADMIN_ROLE, AUDITOR_ROLE] {
            let link = Membership::UserRole { sub: ada.clone(), role: role(name) };
            ok(server.state().services.access().unlink(&tenant(), &link, &Actor::Cli).await, "revoke");
        }
        assert_eq!(call(&server, &token, "GET", "/users", None).await.0, StatusCode::FORBIDDEN, "{b}: role removed");
    }
}

#[tokio::test]
async fn a_person_must_have_signed_in_with_more_than_a_password() {
    for db in all_backends().await {
        let b = db.backend;
        let server = TestServer::start(db, |_| {}).await;
        console_client(&server).await;
        let ada = server.create_user("ada", PASSWORD).await;
        grant(&server, &ada, ADMIN_ROLE).await;
        let browser = Browser::new(server.server.addr);
        let secret = secret_of("console");
        let rp = Rp { id: "console", secret: &secret, callback: CALLBACK };
        let callback = rp.sign_in(&server, &browser, "ada", "openid admin:users:read").await;
        let token = rp.tokens(&server, &callback).await["access_token"].as_str().unwrap_or_default().to_owned();
        let response = ok(server.http.get(server.url("/admin/api/v1/users")).bearer_auth(&token).send().await, "call");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{b}");
        let challenge = response.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).unwrap_or_default();
        assert!(challenge.contains("insufficient_user_authentication"), "{b}: {challenge}");
    }
}

#[tokio::test]
async fn machines_are_worth_their_scopes_and_never_count_as_a_person() {
    for db in all_backends().await {
        let b = db.backend;
        let server = TestServer::start(db, |_| {}).await;
        machine_client(&server, "ops").await;
        let token = machine_token(&server, "ops", "admin:users:read").await;
        assert_eq!(call(&server, &token, "GET", "/users", None).await.0, StatusCode::OK, "{b}");
        assert_eq!(call(&server, &token, "GET", "/server", None).await.0, StatusCode::FORBIDDEN, "{b}");

        // An ordinary client gets no admin scope, whatever it asks.
        let plain = ClientSpec { id: "plain", grants: &[GrantType::ClientCredentials], ..ClientSpec::default() };
        server.create_client(plain).await;
        let asked = [("grant_type", "client_credentials"), ("scope", "admin:users:read")];
        let (status, body) = token_response(&server, "plain", &asked).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{b}: {body}");
        let scopes = vec![ok(ScopeName::parse("admin:users:read"), "scope")];
        let patch = latchkey_core::records::ClientPatch { allowed_scopes: Some(scopes), ..Default::default() };
        let id = ok(latchkey_core::domain::ClientId::parse("plain"), "id");
        let refused = server.state().services.clients().update(&tenant(), &id, patch, &Actor::Cli).await;
        assert!(refused.is_err_and(|e| e.to_string().contains("admin client")), "{b}");

        // A token for another audience is not for the admin API.
        let other = ClientSpec {
            id: "reports",
            grants: &[GrantType::ClientCredentials],
            scopes: &["openid"],
            admin_client: true,
            ..ClientSpec::default()
        };
        server.create_client(other).await;
        let (status, body) = token_response(&server, "reports", &[("grant_type", "client_credentials")]).await;
        assert_eq!(status, StatusCode::OK, "{b}: {body}");
        let default_audience = body["access_token"].as_str().unwrap_or_default().to_owned();
        let (status, body) = call(&server, &default_audience, "GET", "/users", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{b}: {body}");
        assert_eq!(body["type"], "urn:latchkey:problem:unauthenticated", "{b}");

        // A scope taken from the client stops its live tokens at once.
        let scopes = vec![ok(ScopeName::parse("admin:server:read"), "scope")];
        let patch = latchkey_core::records::ClientPatch { allowed_scopes: Some(scopes), ..Default::default() };
        let ops = ok(latchkey_core::domain::ClientId::parse("ops"), "id");
        ok(server.state().services.clients().update(&tenant(), &ops, patch, &Actor::Cli).await, "narrow");
        assert_eq!(call(&server, &token, "GET", "/users", None).await.0, StatusCode::FORBIDDEN, "{b}");
    }
}

#[tokio::test]
async fn only_a_service_accounts_key_calls_the_admin_api() {
    for db in all_backends().await {
        let b = db.backend;
        let server = TestServer::start(db, |_| {}).await;
        let services = &server.state().services;
        let ada = server.create_user("ada", PASSWORD).await;
        grant(&server, &ada, ADMIN_ROLE).await;
        let spec = |scopes: &[&str]| ApiKeySpec {
            name: "automation".into(),
            scopes: scopes.iter().map(|s| ok(ScopeName::parse(s), "scope")).collect(),
            ..ApiKeySpec::default()
        };
        // A person's key, even with admin scopes their role gives them, is not a person.
        let personal =
            ok(services.api_keys().create(&tenant(), &ada, spec(&["admin:users:read"]), &Actor::Cli).await, "key");
        let (status, body) = call(&server, &personal.secret, "GET", "/users", None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{b}: {body}");

        let robot = latchkey_core::records::NewUser {
            sub: SubjectId::generate(),
            username: ok(latchkey_core::domain::Username::parse("robot"), "name"),
            email: None,
            email_verified: false,
            name: None,
            profile: Default::default(),
            password_hash: None,
            service_account: true,
        };
        let robot = ok(services.users().create(&tenant(), robot, &Actor::Cli).await, "robot").sub;
        grant(&server, &robot, AUDITOR_ROLE).await;
        let key =
            ok(services.api_keys().create(&tenant(), &robot, spec(&["admin:users:read"]), &Actor::Cli).await, "key");
        assert_eq!(call(&server, &key.secret, "GET", "/users", None).await.0, StatusCode::OK, "{b}");
        let denied = call(&server, &key.secret, "POST", "/users", Some(json!({"username": "x"}))).await;
        assert_eq!(denied.0, StatusCode::FORBIDDEN, "{b}");
        // The owner's role goes: so does the key's right.
        let link = Membership::UserRole { sub: robot.clone(), role: role(AUDITOR_ROLE) };
        ok(services.access().unlink(&tenant(), &link, &Actor::Cli).await, "revoke");
        assert_eq!(call(&server, &key.secret, "GET", "/users", None).await.0, StatusCode::UNAUTHORIZED, "{b}");
        assert_eq!(call(&server, "not-a-token", "GET", "/users", None).await.0, StatusCode::UNAUTHORIZED, "{b}");
    }
}

/// Operations that need every admin right (`apply` can change every kind of object).
const NEEDS_EVERY_RIGHT: [(&str, &str); 1] = [("POST", "/apply?dry_run=true")];

/// Each operation, the one right it needs, and a request for it (in an order that leaves
/// each one something to act on).
fn operations(sub: &str) -> Vec<(AdminScope, &'static str, String, Option<Value>)> {
    use AdminScope::*;
    let u = format!("/users/{sub}");
    vec![
        (ServerRead, "GET", "/server".into(), None),
        (UsersRead, "GET", "/users".into(), None),
        (UsersRead, "GET", u.clone(), None),
        (UsersRead, "GET", format!("{u}/sessions"), None),
        (UsersRead, "GET", format!("{u}/passkeys"), None),
        (UsersRead, "GET", format!("{u}/identities"), None),
        (UsersRead, "GET", format!("{u}/consents"), None),
        (UsersRead, "GET", format!("{u}/consent-history"), None),
        (UsersRead, "GET", format!("{u}/export"), None),
        (UsersRead, "GET", "/api-keys".into(), None),
        (UsersWrite, "POST", "/users".into(), Some(json!({"username": "matrix"}))),
        (UsersWrite, "PATCH", u.clone(), Some(json!({"name": "T"}))),
        (UsersWrite, "POST", format!("{u}/lock"), None),
        (UsersWrite, "POST", format!("{u}/unlock"), None),
        (UsersWrite, "PUT", format!("{u}/password"), Some(json!({"password": "a new long password"}))),
        (UsersWrite, "DELETE", format!("{u}/sessions"), None),
        (UsersWrite, "POST", format!("{u}/api-keys"), Some(json!({"name": "k", "scopes": ["openid"]}))),
        (UsersWrite, "DELETE", "/api-keys/lk_000000000000".into(), None),
        (UsersWrite, "POST", "/api-keys/lk_000000000000/rotate".into(), Some(json!({}))),
        (UsersWrite, "DELETE", format!("{u}/passkeys/none"), None),
        (UsersWrite, "DELETE", format!("{u}/identities/github"), None),
        (UsersWrite, "DELETE", format!("{u}/consents/none"), None),
        (UsersWrite, "POST", format!("{u}/reset-factors"), None),
        (ClientsRead, "GET", "/clients".into(), None),
        (ClientsRead, "GET", "/clients/ops".into(), None),
        (
            ClientsWrite,
            "POST",
            "/clients".into(),
            Some(json!({"client_id": "matrix", "name": "Matrix", "grant_types": ["client_credentials"], "scopes": []})),
        ),
        (ClientsWrite, "PATCH", "/clients/matrix".into(), Some(json!({"name": "M"}))),
        (ClientsWrite, "POST", "/clients/matrix/secret".into(), Some(json!({"grace": 60}))),
        (ClientsWrite, "DELETE", "/clients/matrix".into(), None),
        (AccessRead, "GET", "/roles".into(), None),
        (AccessRead, "GET", "/roles/editor".into(), None),
        (AccessRead, "GET", "/groups".into(), None),
        (AccessRead, "GET", "/groups/staff".into(), None),
        (AccessWrite, "POST", "/roles".into(), Some(json!({"name": "matrix"}))),
        (AccessWrite, "PATCH", "/roles/matrix".into(), Some(json!({"description": "m"}))),
        (AccessWrite, "POST", "/groups".into(), Some(json!({"name": "matrix"}))),
        (AccessWrite, "PUT", format!("{u}/roles/editor"), None),
        (AccessWrite, "DELETE", format!("{u}/roles/editor"), None),
        (AccessWrite, "PUT", format!("/groups/staff/members/{sub}"), None),
        (AccessWrite, "DELETE", format!("/groups/staff/members/{sub}"), None),
        (AccessWrite, "PUT", "/groups/staff/roles/editor".into(), None),
        (AccessWrite, "DELETE", "/groups/staff/roles/editor".into(), None),
        (AccessWrite, "DELETE", "/groups/matrix".into(), None),
        (AccessWrite, "DELETE", "/roles/matrix".into(), None),
        (AccessRead, "GET", "/scopes".into(), None),
        (AccessWrite, "PUT", "/scopes/matrix:read".into(), Some(json!({"description": "Matrix"}))),
        (AccessRead, "GET", "/resources".into(), None),
        (
            AccessWrite,
            "PUT",
            "/resources".into(),
            Some(json!({"identifier": "https://matrix.example", "name": "M", "scopes": ["matrix:read"]})),
        ),
        (AccessWrite, "DELETE", "/resources?identifier=https://matrix.example".into(), None),
        (AccessWrite, "DELETE", "/scopes/matrix:read".into(), None),
        (UsersRead, "GET", "/invitations".into(), None),
        (UsersWrite, "POST", "/invitations".into(), Some(json!({"note": "for matrix"}))),
        (UsersWrite, "DELETE", "/invitations/none".into(), None),
        (Keys, "GET", "/signing-keys".into(), None),
        (Keys, "POST", "/signing-keys/rotate".into(), Some(json!({"alg": "RS256", "force": true}))),
        (Keys, "POST", "/signing-keys/none/retire".into(), None),
        (AuditRead, "GET", "/audit-events".into(), None),
        (AuditRead, "GET", "/audit-events/export".into(), None),
        (AuditRead, "GET", "/audit-chain".into(), None),
        (AuditRead, "GET", "/audit-chain/verification".into(), None),
        (UsersWrite, "DELETE", u, None),
    ]
}

#[tokio::test]
async fn each_operation_needs_its_right_and_nothing_else_lets_it_through() {
    for db in all_backends().await {
        let b = db.backend;
        let server = TestServer::start(db, |_| {}).await;
        machine_client(&server, "ops").await;
        let target = server.create_user("target", PASSWORD).await;
        let access = server.state().services.access();
        let editor =
            NewRole { name: role("editor"), application: None, description: String::new(), entitlements: vec![] };
        ok(access.create_role(&tenant(), editor, &Actor::Cli).await, "role");
        let staff = ok(latchkey_core::domain::GroupName::parse("staff"), "group");
        ok(access.create_group(&tenant(), &staff, "", &Actor::Cli).await, "group");
        let all = operations(target.as_str());
        let covered: std::collections::BTreeSet<String> = all.iter().map(|(_, m, p, _)| format!("{m} {p}")).collect();
        assert_eq!(covered.len(), all.len(), "each operation once");
        // Every operation the document lists is in the matrix.
        let document = server.get_json("/admin/api/v1/openapi.json").await;
        for (template, item) in document["paths"].as_object().into_iter().flatten() {
            for method in item.as_object().into_iter().flatten().map(|(m, _)| m.to_uppercase()) {
                let matches = |concrete: &str| {
                    let (t, c): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), concrete.split('/').collect());
                    t.len() == c.len() && t.iter().zip(&c).all(|(t, c)| t.starts_with('{') || t == c)
                };
                let tested = all.iter().any(|(_, m, p, _)| *m == method && matches(p.split('?').next().unwrap_or("")))
                    || NEEDS_EVERY_RIGHT
                        .iter()
                        .any(|(m, p)| *m == method && matches(p.split('?').next().unwrap_or("")));
                assert!(tested, "{b}: {method} {template} is not in the matrix");
            }
        }
        for (needed, method, path, body) in all {
            let others: Vec<&str> = AdminScope::ALL.iter().filter(|s| **s != needed).map(|s| s.as_str()).collect();
            let without = machine_token(&server, "ops", &others.join(" ")).await;
            let (status, problem) = call(&server, &without, method, &path, body.clone()).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{b}: {method} {path} without {needed}: {problem}");
            let with = machine_token(&server, "ops", needed.as_str()).await;
            let (status, answer) = call(&server, &with, method, &path, body).await;
            // Let in: whatever the answer (a 404 for a key that is not there, a 428 without
            // If-Match), it is not about the caller's rights, and never a failure.
            let let_in = !matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN);
            assert!(let_in && status.as_u16() < 500, "{b}: {method} {path} with {needed}: {status} {answer}");
        }
        // What can change every kind of object needs every right: lacking any one is 403.
        for (method, path) in NEEDS_EVERY_RIGHT {
            for missing in AdminScope::ALL {
                let others: Vec<&str> = AdminScope::ALL.iter().filter(|s| **s != missing).map(|s| s.as_str()).collect();
                let without = machine_token(&server, "ops", &others.join(" ")).await;
                let (status, problem) = call(&server, &without, method, path, Some(json!({}))).await;
                assert_eq!(status, StatusCode::FORBIDDEN, "{b}: {method} {path} without {missing}: {problem}");
            }
            let every: Vec<&str> = AdminScope::ALL.iter().map(|s| s.as_str()).collect();
            let with = machine_token(&server, "ops", &every.join(" ")).await;
            let (status, answer) = call(&server, &with, method, path, Some(json!({}))).await;
            assert_eq!(status, StatusCode::OK, "{b}: {method} {path} with every right: {answer}");
        }
        // No credential at all, and a malformed header.
        let anonymous = ok(server.http.get(server.url("/admin/api/v1/server")).send().await, "call");
        assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED, "{b}");
        assert!(anonymous.headers().contains_key("www-authenticate"), "{b}");
        let basic = server.http.get(server.url("/admin/api/v1/server")).basic_auth("ops", Some(secret_of("ops")));
        assert_eq!(ok(basic.send().await, "call").status(), StatusCode::UNAUTHORIZED, "{b}: no client auth here");
    }
}

#[tokio::test]
async fn nobody_removes_the_last_administrator_or_themselves() {
    for db in all_backends().await {
        let b = db.backend;
        let server = TestServer::start(db, |c| c.registration.mode = latchkey_config::RegistrationMode::Open).await;
        console_client(&server).await;
        // Every admin right: locking another administrator needs all they hold.
        let (ada, token) = person_token(&server, "ada", &support::admin::ADMIN_SCOPES.join(" ")).await;
        grant(&server, &ada, ADMIN_ROLE).await;
        let users = server.state().services.users();
        let lock = users.change_state(&tenant(), &ada, latchkey_service::users::StateChange::Lock, &Actor::Cli).await;
        assert!(lock.is_err_and(|e| e.to_string().contains("last active holder")), "{b}");
        let link = Membership::UserRole { sub: ada.clone(), role: role(ADMIN_ROLE) };
        let demoted = server.state().services.access().unlink(&tenant(), &link, &Actor::Cli).await;
        assert!(demoted.is_err(), "{b}: the last administrator keeps the role");
        let held = ok(server.state().services.access().user_access(&tenant(), &ada).await, "held");
        assert!(held.role_names().any(|r| r.as_str() == ADMIN_ROLE), "{b}: and the refused change was undone");

        // With a second administrator, still not oneself through the API.
        let grace = server.create_user("grace", PASSWORD).await;
        grant(&server, &grace, ADMIN_ROLE).await;
        let (status, body) = call(&server, &token, "DELETE", &format!("/users/{ada}"), None).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{b}: {body}");
        let api_actor = Actor::AdminApi { client_id: "console".into(), sub: Some(ada.to_string()) };
        let own = server.state().services.access().unlink(&tenant(), &link, &api_actor).await;
        assert!(own.is_err(), "{b}: no self-demotion through the API");
        let (status, _) = call(&server, &token, "POST", &format!("/users/{grace}/lock"), None).await;
        assert_eq!(status, StatusCode::OK, "{b}: another administrator may be locked");

        // The built-in roles are Latchkey's own.
        let access = server.state().services.access();
        assert!(access.delete_role(&tenant(), &role(ADMIN_ROLE), &Actor::Cli).await.is_err(), "{b}");
        let fake = NewRole {
            name: role("latchkey-root"),
            application: None,
            description: String::new(),
            entitlements: vec![ok(Entitlement::parse("admin:keys"), "e")],
        };
        assert!(access.create_role(&tenant(), fake, &Actor::Cli).await.is_err(), "{b}");
        let app_role = NewRole {
            name: role("app-admin"),
            application: Some(ok(latchkey_core::domain::ClientId::parse("console"), "id")),
            description: String::new(),
            entitlements: vec![ok(Entitlement::parse("admin:users:read"), "e")],
        };
        assert!(
            access.create_role(&tenant(), app_role, &Actor::Cli).await.is_err(),
            "{b}: admin rights are tenant-wide"
        );
        let scope = ok(ScopeName::parse("admin:everything"), "scope");
        assert!(server.state().services.scopes().put(&tenant(), &scope, "x", &Actor::Cli).await.is_err(), "{b}");
    }
}

#[tokio::test]
async fn nobody_hands_out_an_admin_right_they_do_not_hold() {
    for db in all_backends().await {
        let b = db.backend;
        let server = TestServer::start(db, |_| {}).await;
        machine_client(&server, "ops").await;
        // Every right but signing keys.
        let token = machine_token(&server, "ops", "admin:access:write admin:users:write admin:users:read").await;
        let ada = server.create_user("ada", PASSWORD).await;
        let robot = latchkey_core::records::NewUser {
            sub: SubjectId::generate(),
            username: ok(latchkey_core::domain::Username::parse("robot"), "name"),
            email: None,
            email_verified: false,
            name: None,
            profile: Default::default(),
            password_hash: None,
            service_account: true,
        };
        let robot = ok(server.state().services.users().create(&tenant(), robot, &Actor::Cli).await, "robot").sub;
        grant(&server, &robot, ADMIN_ROLE).await;
        // A key of the administrator robot, made by the operator.
        let keys = server.state().services.api_keys();
        let scopes = vec![ok(ScopeName::parse("admin:keys"), "scope")];
        let spec = ApiKeySpec { name: "deploy".into(), scopes, ..ApiKeySpec::default() };
        let robots_key = ok(keys.create(&tenant(), &robot, spec, &Actor::Cli).await, "key").key.id;

        // Nor an account, or a key, that would be the way to rights the caller lacks.
        let refused = [
            ("POST", "/roles".to_owned(), Some(json!({"name": "keeper", "entitlements": ["admin:keys"]}))),
            ("PUT", format!("/users/{ada}/roles/{ADMIN_ROLE}"), None),
            ("POST", format!("/users/{ada}/api-keys"), Some(json!({"name": "k", "scopes": ["admin:keys"]}))),
            ("POST", format!("/users/{robot}/api-keys"), Some(json!({"name": "k", "scopes": ["admin:users:read"]}))),
            ("POST", format!("/api-keys/{robots_key}/rotate"), Some(json!({}))),
            ("DELETE", format!("/api-keys/{robots_key}"), None),
            ("POST", format!("/users/{robot}/lock"), None),
            ("DELETE", format!("/users/{robot}/sessions"), None),
            ("DELETE", format!("/users/{robot}/roles/{ADMIN_ROLE}"), None),
            ("DELETE", format!("/roles/{AUDITOR_ROLE}"), None),
        ];
        for (method, path, body) in refused {
            let (status, problem) = call(&server, &token, method, &path, body).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{b}: {method} {path}: {problem}");
        }
        // A role that confers them, put in a group, then the group given to someone.
        let access = server.state().services.access();
        let staff = ok(latchkey_core::domain::GroupName::parse("staff"), "group");
        ok(access.create_group(&tenant(), &staff, "", &Actor::Cli).await, "group");
        let (status, _) = call(&server, &token, "PUT", &format!("/groups/staff/roles/{ADMIN_ROLE}"), None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{b}");
        let link = Membership::GroupRole { group: staff.clone(), role: role(ADMIN_ROLE) };
        ok(access.link(&tenant(), &link, &Actor::Cli).await, "operator links it");
        let (status, _) = call(&server, &token, "PUT", &format!("/groups/staff/members/{ada}"), None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{b}: membership would confer latchkey-admin");
        let held = ok(access.user_access(&tenant(), &ada).await, "held");
        assert!(held.roles.is_empty(), "{b}: nothing was granted");

        // What the caller does hold, it may hand on.
        let (status, body) = call(
            &server,
            &token,
            "POST",
            "/roles",
            Some(json!({"name": "helpdesk", "entitlements": ["admin:users:read"]})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{b}: {body}");
        let helper = server.create_user("helper", PASSWORD).await;
        let (status, _) = call(&server, &token, "PUT", &format!("/users/{helper}/roles/helpdesk"), None).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{b}");
        let (status, _) = call(
            &server,
            &token,
            "PUT",
            &format!("/users/{ada}/password"),
            Some(json!({"password": "a long new password"})),
        )
        .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{b}: ada holds no admin right");
        let (status, key) = call(
            &server,
            &token,
            "POST",
            &format!("/users/{helper}/api-keys"),
            Some(json!({"name": "k", "scopes": ["openid"]})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{b}: {key}");
        assert!(key["secret"].as_str().is_some_and(|s| s.starts_with("lk_")), "{b}: {key}");
    }
}

#[tokio::test]
async fn two_changes_at_once_never_remove_the_last_administrator() {
    use latchkey_service::users::StateChange;
    for _ in 0..3 {
        for db in all_backends().await {
            let b = db.backend;
            let server = TestServer::start(db, |_| {}).await;
            let services = &server.state().services;
            let ada = server.create_user("ada", PASSWORD).await;
            let grace = server.create_user("grace", PASSWORD).await;
            grant(&server, &ada, ADMIN_ROLE).await;
            grant(&server, &grace, ADMIN_ROLE).await;
            // Each alone is allowed (the other stays); both at once would leave nobody.
            let demote = Membership::UserRole { sub: ada.clone(), role: role(ADMIN_ROLE) };
            let (access, users, t) = (services.access(), services.users(), tenant());
            let (one, two) = tokio::join!(
                access.unlink(&t, &demote, &Actor::Cli),
                users.change_state(&t, &grace, StateChange::Lock, &Actor::Cli),
            );
            assert!(one.is_ok() != two.is_ok(), "{b}: exactly one of the two goes through: {one:?} {two:?}");
            let mut active = 0;
            for sub in ok(services.access().role_holders(&tenant(), &role(ADMIN_ROLE)).await, "holders") {
                let user = ok(services.users().by_sub(&tenant(), &sub).await, "user");
                active += usize::from(user.is_some_and(|u| !u.locked));
            }
            assert_eq!(active, 1, "{b}: one administrator is left");
            server.stop().await;
        }
    }
}
