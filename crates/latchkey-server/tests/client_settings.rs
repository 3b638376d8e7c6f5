//! Per-client settings enforced, not just stored: private_key_jwt (RFC 7523), resource
//! servers (RFC 8707), the PKCE relaxation for confidential clients, token lifetimes.

mod support;

use latchkey_config::Purpose;
use latchkey_core::crypto::SigningKeyPair;
use latchkey_core::domain::{GrantType, ScopeName, SigningAlg, TenantId, TokenEndpointAuthMethod};
use latchkey_core::records::{Actor, ResourceServer};
use reqwest::StatusCode;
use support::{ClientSpec, TestServer, allow_loopback, ok, sqlite};

fn client_key() -> (SigningKeyPair, String) {
    let (pair, _) = ok(SigningKeyPair::generate(SigningAlg::Es256, 2048), "key");
    let jwks = serde_json::json!({"keys": [pair.public_jwk()]}).to_string();
    (pair, jwks)
}

fn assertion(server: &TestServer, key: &SigningKeyPair, client: &str, aud: &str, jti: &str, lifetime: i64) -> String {
    let now = server.clock.now().secs();
    let claims =
        serde_json::json!({"iss": client, "sub": client, "aud": aud, "jti": jti, "iat": now, "exp": now + lifetime});
    ok(key.sign_jwt("JWT", &claims), "sign")
}

async fn token_with_assertion(
    server: &TestServer,
    client: &str,
    assertion: &str,
    extra: &[(&str, &str)],
) -> (StatusCode, serde_json::Value) {
    let mut form = vec![
        ("grant_type", "client_credentials"),
        ("client_id", client),
        ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
        ("client_assertion", assertion),
    ];
    form.extend_from_slice(extra);
    let response = ok(server.http.post(server.url("/token")).form(&form).send().await, "token");
    (response.status(), response.json().await.unwrap_or_default())
}

fn machine(id: &str) -> ClientSpec<'_> {
    ClientSpec {
        id,
        auth: TokenEndpointAuthMethod::PrivateKeyJwt,
        grants: &[GrantType::ClientCredentials],
        scopes: &["invoices:read"],
        ..ClientSpec::default()
    }
}

async fn with_scope(server: &TestServer) {
    let scope = ok(ScopeName::parse("invoices:read"), "scope");
    ok(
        server.state().services.scopes().put(&TenantId::default_tenant(), &scope, "Read invoices", &Actor::Cli).await,
        "scope",
    );
}

#[tokio::test]
async fn private_key_jwt_accepts_a_fresh_assertion_once() {
    let server = TestServer::start(sqlite().await, |_| {}).await;
    with_scope(&server).await;
    let (key, jwks) = client_key();
    server.create_client(ClientSpec { jwks: Some(&jwks), ..machine("signer") }).await;
    let issuer = server.server.issuer.clone();

    let a = assertion(&server, &key, "signer", &issuer, "jti-1", 120);
    let (status, body) = token_with_assertion(&server, "signer", &a, &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], "invoices:read");
    let (status, body) = token_with_assertion(&server, "signer", &a, &[]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_client")), "a replayed jti");

    // The issuer is the only audience (draft-ietf-oauth-rfc7523bis): not even the token
    // endpoint URL, unless the client is registered for it (tests/client_authentication.rs).
    let to_endpoint = assertion(&server, &key, "signer", &format!("{issuer}/token"), "jti-2", 120);
    assert_eq!(token_with_assertion(&server, "signer", &to_endpoint, &[]).await.0, StatusCode::UNAUTHORIZED);
    let elsewhere = assertion(&server, &key, "signer", "https://other.example", "jti-3", 120);
    assert_eq!(token_with_assertion(&server, "signer", &elsewhere, &[]).await.0, StatusCode::UNAUTHORIZED);
    let long_lived = assertion(&server, &key, "signer", &issuer, "jti-4", 86_400);
    assert_eq!(
        token_with_assertion(&server, "signer", &long_lived, &[]).await.0,
        StatusCode::UNAUTHORIZED,
        "bounded exp"
    );
    let expired = assertion(&server, &key, "signer", &issuer, "jti-5", -600);
    assert_eq!(token_with_assertion(&server, "signer", &expired, &[]).await.0, StatusCode::UNAUTHORIZED);
    let (other_key, _) = client_key();
    let wrong_key = assertion(&server, &other_key, "signer", &issuer, "jti-6", 120);
    assert_eq!(token_with_assertion(&server, "signer", &wrong_key, &[]).await.0, StatusCode::UNAUTHORIZED);

    // A symmetric (HS256) assertion is refused whatever it says.
    let hs = ok(
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &serde_json::json!({"iss": "signer", "sub": "signer", "aud": issuer, "jti": "jti-7", "exp": server.clock.now().secs() + 60}),
            &jsonwebtoken::EncodingKey::from_secret(b"guess"),
        ),
        "hs256",
    );
    assert_eq!(token_with_assertion(&server, "signer", &hs, &[]).await.0, StatusCode::UNAUTHORIZED);
    server.stop().await;
}

async fn serve_jwks(jwks: String) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let app = axum::Router::new().route("/jwks", axum::routing::get(move || async move { jwks.clone() }));
    let listener = ok(tokio::net::TcpListener::bind("127.0.0.1:0").await, "bind");
    let addr = ok(listener.local_addr(), "addr");
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, task)
}

#[tokio::test]
async fn a_jwks_uri_is_fetched_only_where_it_is_safe() {
    let (key, jwks) = client_key();
    let (addr, task) = serve_jwks(jwks).await;
    let uri = format!("http://{addr}/jwks");
    let port = addr.port();

    // By default, and where 127.0.0.1 is opened for logout deliveries only: http and
    // loopback are refused, so the client cannot authenticate.
    for allow in [vec![], vec![allow_loopback(Purpose::BackchannelLogout, &[port])]] {
        let strict = TestServer::start(sqlite().await, |c| c.outbound.allow = allow).await;
        with_scope(&strict).await;
        strict.create_client(ClientSpec { jwks_uri: Some(&uri), ..machine("fetcher") }).await;
        let a = assertion(&strict, &key, "fetcher", &strict.server.issuer, "j1", 120);
        assert_eq!(token_with_assertion(&strict, "fetcher", &a, &[]).await.0, StatusCode::UNAUTHORIZED);
        strict.stop().await;
    }

    let lenient =
        TestServer::start(sqlite().await, |c| c.outbound.allow = vec![allow_loopback(Purpose::JwksUri, &[port])]).await;
    with_scope(&lenient).await;
    lenient.create_client(ClientSpec { jwks_uri: Some(&uri), ..machine("fetcher") }).await;
    let a = assertion(&lenient, &key, "fetcher", &lenient.server.issuer, "j1", 120);
    let (status, body) = token_with_assertion(&lenient, "fetcher", &a, &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    lenient.stop().await;
    task.abort();
}

#[tokio::test]
async fn tokens_for_a_registered_resource_carry_it_as_audience() {
    let server = TestServer::start(sqlite().await, |_| {}).await;
    with_scope(&server).await;
    server
        .create_client(ClientSpec {
            id: "invoices-api",
            grants: &[GrantType::ClientCredentials],
            scopes: &[],
            ..ClientSpec::default()
        })
        .await;
    server
        .create_client(ClientSpec {
            id: "bystander",
            grants: &[GrantType::ClientCredentials],
            scopes: &[],
            ..ClientSpec::default()
        })
        .await;
    server.create_scope("invoices:read", "Read invoices").await;
    let api = ResourceServer {
        identifier: "https://api.example.com".into(),
        name: "Invoices API".into(),
        scopes: vec!["invoices:read".into()],
        client_id: Some(ok(latchkey_core::domain::ClientId::parse("invoices-api"), "client id")),
    };
    ok(server.state().services.resources().put(&TenantId::default_tenant(), &api, &Actor::Cli).await, "resource");
    let (key, jwks) = client_key();
    server.create_client(ClientSpec { jwks: Some(&jwks), ..machine("svc") }).await;
    let a = assertion(&server, &key, "svc", &server.server.issuer, "r1", 120);
    let (status, body) = token_with_assertion(&server, "svc", &a, &[("resource", "https://api.example.com")]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let access = body["access_token"].as_str().unwrap_or_default();
    let payload = access.split('.').nth(1).unwrap_or_default();
    let claims: serde_json::Value = ok(
        serde_json::from_slice(&ok(
            base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload),
            "b64",
        )),
        "claims",
    );
    assert_eq!(claims["aud"], "https://api.example.com");
    let header = ok(jsonwebtoken::decode_header(access), "header");
    assert_eq!(header.typ.as_deref(), Some("at+jwt"), "RFC 9068");

    // The API it was issued for may introspect it; another client learns nothing.
    let introspect = |client: &'static str| {
        let secret = format!("secret-of-{client}-0123456789abcdef");
        server.http.post(server.url("/introspect")).basic_auth(client, Some(secret)).form(&[("token", access)]).send()
    };
    let by_api: serde_json::Value = ok(ok(introspect("invoices-api").await, "i").json().await, "j");
    assert_eq!(by_api["active"], true, "{by_api}");
    assert_eq!(by_api["aud"], "https://api.example.com");
    let by_other: serde_json::Value = ok(ok(introspect("bystander").await, "i").json().await, "j");
    assert_eq!(by_other, serde_json::json!({"active": false}));

    let b = assertion(&server, &key, "svc", &server.server.issuer, "r2", 120);
    let (status, body) = token_with_assertion(&server, "svc", &b, &[("resource", "https://unknown.example")]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_target")));
    server.stop().await;
}

#[tokio::test]
async fn only_a_confidential_client_marked_insecure_may_skip_pkce_and_never_downgrade() {
    use support::browser::Browser;
    let server = TestServer::start(sqlite().await, |_| {}).await;
    server.create_user("ada", "correct horse battery").await;
    server.create_client(ClientSpec { first_party: true, allow_insecure_no_pkce: true, ..ClientSpec::default() }).await;
    server.create_client(ClientSpec { id: "strict", first_party: true, ..ClientSpec::default() }).await;
    let issuer = server.server.issuer.clone();
    let browser = Browser::new(server.server.addr);
    let url = |client: &str| {
        format!(
            "{issuer}/authorize?response_type=code&client_id={client}&redirect_uri=https%3A%2F%2Fapp.example.com%2Fcallback&scope=openid"
        )
    };
    let strict = browser.get(&url("strict")).await;
    assert!(Browser::location(&strict, &issuer).contains("error=invalid_request"), "PKCE required by default");

    let first = browser.get(&url("webapp")).await;
    let after = browser.sign_in(&Browser::location(&first, &issuer), &issuer, "ada", "correct horse battery").await;
    let done = browser.get(&Browser::location(&after, &issuer)).await;
    let callback = ok(url::Url::parse(&Browser::location(&done, &issuer)), "callback");
    let code = callback.query_pairs().find(|(k, _)| k == "code").map(|(_, v)| v.into_owned()).unwrap_or_default();
    assert!(!code.is_empty(), "{callback}");
    // A verifier for a code issued without a challenge is a downgrade attempt.
    let response = ok(
        server
            .http
            .post(server.url("/token"))
            .basic_auth("webapp", Some("secret-of-webapp-0123456789abcdef"))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", "https://app.example.com/callback"),
                ("code_verifier", "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            ])
            .send()
            .await,
        "token",
    );
    let body: serde_json::Value = ok(response.json().await, "json");
    assert_eq!(body["error"], "invalid_grant");
    server.stop().await;
}
