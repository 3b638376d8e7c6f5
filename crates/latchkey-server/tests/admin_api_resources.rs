//! What the admin API's resources do beyond users: roles and groups with their links,
//! API keys shown once, signing keys, and a user's passkeys and factors.

mod support;

use latchkey_core::domain::TenantId;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::admin::{call, machine_client, machine_token};
use support::authenticator::{Flags, SoftAuthenticator};
use support::passkey::PasskeyBrowser;
use support::{TestServer, all_backends, ok};

const EVERYTHING: &str = "admin:server:read admin:users:read admin:users:write admin:access:read \
admin:access:write admin:keys admin:audit:read";

async fn ready(server: &TestServer) -> String {
    machine_client(server, "ops").await;
    machine_token(server, "ops", EVERYTHING).await
}

async fn patch_with(server: &TestServer, token: &str, path: &str, tag: &str, body: Value) -> (StatusCode, Value) {
    let url = server.url(&format!("/admin/api/v1{path}"));
    let response =
        ok(server.http.patch(url).bearer_auth(token).header("if-match", tag).json(&body).send().await, "patch");
    (response.status(), response.json().await.unwrap_or_default())
}

async fn etag(server: &TestServer, token: &str, path: &str) -> String {
    let url = server.url(&format!("/admin/api/v1{path}"));
    let response = ok(server.http.get(url).bearer_auth(token).send().await, "get");
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    response.headers().get("etag").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

#[tokio::test]
async fn roles_and_groups_are_managed_and_held() {
    for db in all_backends().await {
        let b = db.backend;
        let server = TestServer::start(db, |_| {}).await;
        let token = ready(&server).await;
        let ada = server.create_user("ada", support::flow::PASSWORD).await;
        let body = json!({"name": "editor", "description": "Edits", "entitlements": ["docs:write"]});
        let (status, role) = call(&server, &token, "POST", "/roles", Some(body.clone())).await;
        assert_eq!(status, StatusCode::CREATED, "{b}: {role}");
        assert_eq!(role["built_in"], false, "{b}");
        assert_eq!(call(&server, &token, "POST", "/roles", Some(body)).await.0, StatusCode::CONFLICT, "{b}");
        let (status, _) = call(&server, &token, "POST", "/roles", Some(json!({"name": "latchkey-x"}))).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{b}: reserved names");

        let tag = etag(&server, &token, "/roles/editor").await;
        let change = json!({"entitlements": ["docs:read", "docs:read"]});
        let (status, changed) = patch_with(&server, &token, "/roles/editor", &tag, change.clone()).await;
        assert_eq!(status, StatusCode::OK, "{b}: {changed}");
        assert_eq!(changed["entitlements"], json!(["docs:read"]), "{b}");
        assert_eq!(
            patch_with(&server, &token, "/roles/editor", &tag, change).await.0,
            StatusCode::PRECONDITION_FAILED,
            "{b}"
        );
        // Two changes from one read: one is made, the other is told it is stale.
        let tag = etag(&server, &token, "/roles/editor").await;
        let one = patch_with(&server, &token, "/roles/editor", &tag, json!({"description": "One"}));
        let two = patch_with(&server, &token, "/roles/editor", &tag, json!({"description": "Two"}));
        let (one, two) = tokio::join!(one, two);
        let mut statuses = [one.0, two.0];
        statuses.sort();
        assert_eq!(statuses, [StatusCode::OK, StatusCode::PRECONDITION_FAILED], "{b}: {} {}", one.1, two.1);
        let (status, builtin) = call(&server, &token, "GET", "/roles/latchkey-admin", None).await;
        assert_eq!((status, builtin["built_in"].clone()), (StatusCode::OK, json!(true)), "{b}");
        let admin_tag = etag(&server, &token, "/roles/latchkey-admin").await;
        let (status, _) =
            patch_with(&server, &token, "/roles/latchkey-admin", &admin_tag, json!({"description": "x"})).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{b}: built-in roles do not change");

        // One Idempotency-Key is for one operation: another one with it is a key reused.
        let with_key = |path: &'static str, body: Value| {
            let url = server.url(&format!("/admin/api/v1{path}"));
            server.http.post(url).bearer_auth(&token).header("idempotency-key", "shared").json(&body).send()
        };
        let group = ok(with_key("/groups", json!({"name": "staff"})).await, "group");
        assert_eq!(group.status(), StatusCode::CREATED, "{b}");
        let other = ok(with_key("/roles", json!({"name": "staff"})).await, "role");
        assert_eq!(other.status(), StatusCode::UNPROCESSABLE_ENTITY, "{b}: the key was for POST /groups");
        for path in ["/groups/staff/roles/editor".to_owned(), format!("/groups/staff/members/{ada}")] {
            assert_eq!(call(&server, &token, "PUT", &path, None).await.0, StatusCode::NO_CONTENT, "{b}: {path}");
        }
        let (_, group) = call(&server, &token, "GET", "/groups/staff", None).await;
        assert_eq!(group["roles"], json!(["editor"]), "{b}");
        assert_eq!(group["members"], json!([ada.to_string()]), "{b}");
        let (_, holders) = call(&server, &token, "GET", "/users?role=editor", None).await;
        assert_eq!(holders["items"][0]["username"], "ada", "{b}: held through the group");
        let missing = call(&server, &token, "DELETE", &format!("/users/{ada}/roles/editor"), None).await;
        assert_eq!(missing.0, StatusCode::NOT_FOUND, "{b}: not granted directly");
        let unknown = call(&server, &token, "PUT", "/users/nobody/roles/editor", None).await;
        assert_eq!(unknown.0, StatusCode::NOT_FOUND, "{b}: {}", unknown.1);
        assert_eq!(call(&server, &token, "DELETE", "/groups/staff", None).await.0, StatusCode::NO_CONTENT, "{b}");
        assert_eq!(call(&server, &token, "DELETE", "/roles/editor", None).await.0, StatusCode::NO_CONTENT, "{b}");
        assert_eq!(call(&server, &token, "GET", "/roles/editor", None).await.0, StatusCode::NOT_FOUND, "{b}");
    }
}

#[tokio::test]
async fn an_api_keys_secret_is_shown_once() {
    for db in all_backends().await {
        let b = db.backend;
        let server = TestServer::start(db, |_| {}).await;
        let token = ready(&server).await;
        let ada = server.create_user("ada", support::flow::PASSWORD).await;
        let path = format!("/users/{ada}/api-keys");
        let url = server.url(&format!("/admin/api/v1{path}"));
        let create = || {
            let request = server.http.post(&url).bearer_auth(&token).header("idempotency-key", "key-1");
            request.json(&json!({"name": "laptop", "scopes": ["openid", "email"]})).send()
        };
        let first: Value = ok(ok(create().await, "create").json().await, "json");
        let secret = first["secret"].as_str().unwrap_or_default().to_owned();
        assert!(secret.starts_with("lk_"), "{b}: {first}");
        let again: Value = ok(ok(create().await, "again").json().await, "json");
        assert_eq!(again["key"]["id"], first["key"]["id"], "{b}: the same key");
        assert_eq!(again["secret"], Value::Null, "{b}: the secret is not kept for a replay");

        let id = first["key"]["id"].as_str().unwrap_or_default().to_owned();
        let (_, listed) = call(&server, &token, "GET", &format!("/api-keys?owner={ada}"), None).await;
        assert_eq!(listed["items"].as_array().map(Vec::len), Some(1), "{b}: {listed}");
        assert!(!listed.to_string().contains(&secret), "{b}: a listing never holds a secret");
        let (status, body) =
            call(&server, &token, "POST", &path, Some(json!({"name": "x", "scopes": ["reports:read"]}))).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{b}: ada does not hold it: {body}");

        let (status, rotated) =
            call(&server, &token, "POST", &format!("/api-keys/{id}/rotate"), Some(json!({"grace_seconds": 60}))).await;
        assert_eq!(status, StatusCode::OK, "{b}: {rotated}");
        assert_ne!(rotated["secret"].as_str(), Some(secret.as_str()), "{b}");
        let too_long =
            call(&server, &token, "POST", &format!("/api-keys/{id}/rotate"), Some(json!({"grace_seconds": 700_000})))
                .await;
        assert_eq!(too_long.0, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        let (status, revoked) = call(&server, &token, "DELETE", &format!("/api-keys/{id}"), None).await;
        assert_eq!(status, StatusCode::OK, "{b}");
        assert!(revoked["revoked_at"].is_i64(), "{b}: {revoked}");
        assert_eq!(call(&server, &token, "DELETE", "/api-keys/not-a-key", None).await.0, StatusCode::NOT_FOUND, "{b}");
    }
}

#[tokio::test]
async fn signing_keys_are_listed_and_rotated() {
    for db in all_backends().await {
        let b = db.backend;
        let server = TestServer::start(db, |_| {}).await;
        let token = ready(&server).await;
        let (status, keys) = call(&server, &token, "GET", "/signing-keys", None).await;
        assert_eq!(status, StatusCode::OK, "{b}");
        let active = |keys: &Value| -> Vec<String> {
            keys["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|k| k["state"] == "active" && k["alg"] == "RS256")
                .filter_map(|k| k["kid"].as_str().map(str::to_owned))
                .collect()
        };
        let before = active(&keys);
        assert_eq!(before.len(), 1, "{b}: {keys}");
        assert!(!keys.to_string().contains("PRIVATE"), "{b}: never key material");
        let (status, problem) =
            call(&server, &token, "POST", "/signing-keys/rotate", Some(json!({"alg": "RS256"}))).await;
        assert_eq!(status, StatusCode::CONFLICT, "{b}: the next key is too young: {problem}");
        assert!(problem["detail"].as_str().is_some_and(|d| d.contains("`force`")), "{b}: {problem}");
        let (status, rotated) =
            call(&server, &token, "POST", "/signing-keys/rotate", Some(json!({"alg": "RS256", "force": true}))).await;
        assert_eq!(status, StatusCode::OK, "{b}: {rotated}");
        let (_, after) = call(&server, &token, "GET", "/signing-keys", None).await;
        assert_eq!(active(&after), [rotated["active"].as_str().unwrap_or_default().to_owned()], "{b}");
        assert_ne!(active(&after), before, "{b}");
        let bad = call(&server, &token, "POST", "/signing-keys/rotate", Some(json!({"alg": "HS256"}))).await;
        assert_eq!(bad.0, StatusCode::BAD_REQUEST, "{b}");
    }
}

#[tokio::test]
async fn an_operator_sees_and_removes_a_users_passkeys() {
    for db in all_backends().await {
        let b = db.backend;
        let server = TestServer::start(db, |c| c.registration.mode = latchkey_config::RegistrationMode::Open).await;
        let token = ready(&server).await;
        let browser = PasskeyBrowser::new(&server);
        let mut device = SoftAuthenticator::new(Flags::default());
        let (status, page) = browser.sign_up(&mut device, "ada", "ada@example.com").await;
        assert_eq!(status, StatusCode::OK, "{b}: {page}");
        let found = ok(server.state().services.users().find(&TenantId::default_tenant(), "ada").await, "ada");
        let path = format!("/users/{}", found.sub);
        let (status, passkeys) = call(&server, &token, "GET", &format!("{path}/passkeys"), None).await;
        assert_eq!(status, StatusCode::OK, "{b}");
        let listed = passkeys.as_array().cloned().unwrap_or_default();
        assert_eq!(listed.len(), 1, "{b}: {passkeys}");
        assert!(listed[0].get("credential").is_none() && listed[0].get("public_key").is_none(), "{b}: no key material");
        let id = listed[0]["credential_id"].as_str().unwrap_or_default().to_owned();
        let (status, problem) = call(&server, &token, "DELETE", &format!("{path}/passkeys/{id}"), None).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{b}: the last way in stays: {problem}");
        assert_eq!(call(&server, &token, "GET", &format!("{path}/identities"), None).await.1, json!([]), "{b}");

        let (status, reset) = call(&server, &token, "POST", &format!("{path}/reset-factors"), None).await;
        assert_eq!(status, StatusCode::OK, "{b}: {reset}");
        assert_eq!(reset["passkeys_removed"], 1, "{b}");
        let (_, sessions) = call(&server, &token, "GET", &format!("{path}/sessions"), None).await;
        assert_eq!(sessions, json!([]), "{b}: signed out everywhere");
        assert_eq!(browser.page("/account/security").await.0, StatusCode::SEE_OTHER, "{b}: the browser too");
    }
}

#[tokio::test]
async fn scopes_resources_and_invitations_are_managed() {
    for db in all_backends().await {
        let b = db.backend;
        let server = TestServer::start(db, |c| c.registration.mode = latchkey_config::RegistrationMode::Invite).await;
        let token = ready(&server).await;
        let (status, scope) =
            call(&server, &token, "PUT", "/scopes/reports:read", Some(json!({"description": "Read reports"}))).await;
        assert_eq!((status, scope["built_in"].clone()), (StatusCode::OK, json!(false)), "{b}: {scope}");
        let (status, _) = call(&server, &token, "PUT", "/scopes/admin:mine", Some(json!({"description": "x"}))).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{b}: the admin namespace is Latchkey's");
        assert_eq!(call(&server, &token, "DELETE", "/scopes/openid", None).await.0, StatusCode::FORBIDDEN, "{b}");
        let api = json!({"identifier": "https://reports.example", "name": "Reports", "scopes": ["reports:read"]});
        let (status, saved) = call(&server, &token, "PUT", "/resources", Some(api)).await;
        assert_eq!(status, StatusCode::OK, "{b}: {saved}");
        let unknown = json!({"identifier": "https://other.example", "name": "Other", "scopes": ["nope"]});
        assert_eq!(call(&server, &token, "PUT", "/resources", Some(unknown)).await.0, StatusCode::NOT_FOUND, "{b}");
        let (_, listed) = call(&server, &token, "GET", "/resources", None).await;
        assert_eq!(listed["items"].as_array().map(Vec::len), Some(1), "{b}: {listed}");
        let path = "/resources?identifier=https://reports.example";
        assert_eq!(call(&server, &token, "DELETE", path, None).await.0, StatusCode::NO_CONTENT, "{b}");
        assert_eq!(
            call(&server, &token, "DELETE", "/scopes/reports:read", None).await.0,
            StatusCode::NO_CONTENT,
            "{b}"
        );

        let (status, made) =
            call(&server, &token, "POST", "/invitations", Some(json!({"note": "For Grace", "lifetime_seconds": 3600})))
                .await;
        assert_eq!(status, StatusCode::CREATED, "{b}: {made}");
        let link = made["link"].as_str().unwrap_or_default().to_owned();
        assert!(link.contains("/signup?invite="), "{b}: {link}");
        let browser = PasskeyBrowser::new(&server);
        let signup = link.trim_start_matches(&server.server.issuer);
        assert_eq!(browser.page(signup).await.0, StatusCode::OK, "{b}: the link opens sign-up");
        let (_, list) = call(&server, &token, "GET", "/invitations", None).await;
        assert!(!list.to_string().contains(link.rsplit('=').next().unwrap_or("-")), "{b}: never the token again");
        let id = made["id"].as_str().unwrap_or_default().to_owned();
        assert_eq!(
            call(&server, &token, "DELETE", &format!("/invitations/{id}"), None).await.0,
            StatusCode::NO_CONTENT,
            "{b}"
        );
        assert_eq!(browser.page(signup).await.0, StatusCode::FORBIDDEN, "{b}: a revoked link no longer works");
    }
}
