//! The admin API as a test calls it: admin clients, their tokens, and calls that check
//! every error is a problem document.
#![allow(dead_code)]

use latchkey_core::domain::GrantType;
use reqwest::StatusCode;
use serde_json::Value;

use super::flow::secret_of;
use super::{ClientSpec, TestServer, ok};

pub const ADMIN_SCOPES: &[&str] = &[
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

/// An admin client for machines: client credentials, every admin scope.
pub async fn machine_client(server: &TestServer, id: &'static str) {
    let spec = ClientSpec {
        id,
        grants: &[GrantType::ClientCredentials],
        redirect_uris: &[],
        post_logout: &[],
        scopes: ADMIN_SCOPES,
        admin_client: true,
        ..ClientSpec::default()
    };
    server.create_client(spec).await;
}

pub async fn token_response(server: &TestServer, client: &str, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let secret = secret_of(client);
    let request = server.http.post(server.url("/token")).basic_auth(client, Some(&secret)).form(form);
    let response = ok(request.send().await, "token");
    (response.status(), response.json().await.unwrap_or_default())
}

/// A client-credentials token of `client` for `scope`.
pub async fn machine_token(server: &TestServer, client: &str, scope: &str) -> String {
    let (status, body) =
        token_response(server, client, &[("grant_type", "client_credentials"), ("scope", scope)]).await;
    assert_eq!(status, StatusCode::OK, "token for {scope}: {body}");
    body["access_token"].as_str().unwrap_or_default().to_owned()
}

pub async fn call(
    server: &TestServer,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let url = server.url(&format!("/admin/api/v1{path}"));
    let method = ok(reqwest::Method::from_bytes(method.as_bytes()), "method");
    let mut request = server.http.request(method, url).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = ok(request.send().await, "admin call");
    let status = response.status();
    if status.is_client_error() || status.is_server_error() {
        let kind = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        assert_eq!(kind, "application/problem+json", "{path}: {status}");
    }
    (status, response.json().await.unwrap_or_default())
}
