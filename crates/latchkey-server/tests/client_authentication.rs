//! Who the caller is, and who a token is for: client assertions held to the issuer as their
//! audience and to the algorithm their key declares, one authentication method per request,
//! authorization schemes in any case, codes that only their own client can spend, and client
//! ids that never pass for a user.

mod support;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use latchkey_core::crypto::SigningKeyPair;
use latchkey_core::domain::{ClientId, GrantType, SigningAlg, TenantId, TokenEndpointAuthMethod};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::browser::Browser;
use support::flow::{Rp, secret_of};
use support::{ClientSpec, TestServer, all_backends, ok, sqlite};

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A server on SQLite that does not throttle these tests' many refused assertions.
async fn server() -> TestServer {
    TestServer::start(sqlite().await, |c| c.login.max_failures_per_ip = 10_000).await
}

fn machine<'a>(id: &'a str, jwks: &'a str, legacy: bool) -> ClientSpec<'a> {
    ClientSpec {
        id,
        auth: TokenEndpointAuthMethod::PrivateKeyJwt,
        grants: &[GrantType::ClientCredentials],
        scopes: &[],
        jwks: Some(jwks),
        allow_legacy_assertion_audience: legacy,
        ..ClientSpec::default()
    }
}

fn es256_key() -> (SigningKeyPair, String) {
    let (pair, _) = ok(SigningKeyPair::generate(SigningAlg::Es256, 2048), "key");
    let jwks = json!({"keys": [pair.public_jwk()]}).to_string();
    (pair, jwks)
}

/// Standard claims for `client`, with `aud` as given (`Value::Null` leaves it out) and
/// `changes` applied (`null` removes a claim).
fn claims(server: &TestServer, client: &str, aud: Value, changes: Value) -> Value {
    let now = server.clock.now().secs();
    let jti = latchkey_core::crypto::random::token_string::<12>();
    let mut c = json!({"iss": client, "sub": client, "aud": aud, "jti": jti, "iat": now, "exp": now + 120});
    if let (Some(map), Some(changes)) = (c.as_object_mut(), changes.as_object()) {
        for (k, v) in changes {
            map.insert(k.clone(), v.clone());
        }
        map.retain(|_, v| !v.is_null());
    }
    c
}

async fn client_credentials(server: &TestServer, assertion: &str) -> (StatusCode, Value) {
    let form =
        [("grant_type", "client_credentials"), ("client_assertion_type", JWT_BEARER), ("client_assertion", assertion)];
    let response = ok(server.http.post(server.url("/token")).form(&form).send().await, "token");
    (response.status(), response.json().await.unwrap_or_default())
}

#[tokio::test]
async fn a_client_assertion_needs_the_issuer_as_its_only_audience_and_every_required_claim() {
    let server = server().await;
    let (key, jwks) = es256_key();
    server.create_client(machine("signer", &jwks, false)).await;
    let issuer = server.server.issuer.clone();
    let sign = |c: Value| ok(key.sign_jwt("JWT", &c), "sign");

    for aud in [json!(issuer), json!([issuer])] {
        let (status, body) =
            client_credentials(&server, &sign(claims(&server, "signer", aud.clone(), json!({})))).await;
        assert_eq!(status, StatusCode::OK, "aud {aud}: {body}");
    }
    let refused_audiences = [
        Value::Null,
        json!(format!("{issuer}/token")),
        json!([issuer, format!("{issuer}/token")]),
        json!([issuer, "https://attacker.example"]),
        json!(format!("{issuer}/")),
        json!(42),
        json!({"aud": issuer}),
        json!([]),
    ];
    for aud in refused_audiences {
        let (status, body) =
            client_credentials(&server, &sign(claims(&server, "signer", aud.clone(), json!({})))).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_client")), "aud {aud}");
    }
    for missing in ["iss", "sub", "exp", "jti"] {
        let c = claims(&server, "signer", json!(issuer), json!({ missing: null }));
        let (status, _) = client_credentials(&server, &sign(c)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "without {missing}");
    }
    server.stop().await;
}

#[tokio::test]
async fn the_legacy_audience_admits_the_token_endpoint_url_and_nothing_else() {
    let server = server().await;
    let (key, jwks) = es256_key();
    server.create_client(machine("legacy", &jwks, true)).await;
    server.create_client(machine("strict", &jwks, false)).await;
    let issuer = server.server.issuer.clone();
    let token_endpoint = format!("{issuer}/token");
    let server = &server;
    let attempt = |client: &'static str, aud: Value| {
        let assertion = ok(key.sign_jwt("JWT", &claims(server, client, aud, json!({}))), "sign");
        async move { client_credentials(server, &assertion).await.0 }
    };
    assert_eq!(attempt("legacy", json!(token_endpoint)).await, StatusCode::OK, "the token endpoint URL");
    assert_eq!(attempt("legacy", json!([token_endpoint])).await, StatusCode::OK, "as a one-element array");
    assert_eq!(attempt("legacy", json!(issuer)).await, StatusCode::OK, "the issuer still works");
    for aud in [
        json!([issuer, token_endpoint]),
        json!(format!("{issuer}/introspect")),
        json!(format!("{issuer}/revoke")),
        json!(format!("{token_endpoint}/")),
        json!("https://attacker.example/token"),
    ] {
        assert_eq!(attempt("legacy", aud.clone()).await, StatusCode::UNAUTHORIZED, "legacy client, aud {aud}");
    }
    assert_eq!(attempt("strict", json!(token_endpoint)).await, StatusCode::UNAUTHORIZED, "only with the setting");
}

/// A JWS made with aws-lc-rs directly: RS256 and PS256 signatures from one RSA key.
fn sign_rsa(der: &[u8], alg: &str, kid: &str, claims: &Value) -> String {
    use aws_lc_rs::signature::{RSA_PKCS1_SHA256, RSA_PSS_SHA256, RsaEncoding, RsaKeyPair};
    let pair = ok(RsaKeyPair::from_pkcs8(der), "rsa key");
    let header = json!({"alg": alg, "kid": kid, "typ": "JWT"});
    let input =
        format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
    let padding: &'static dyn RsaEncoding = if alg == "PS256" { &RSA_PSS_SHA256 } else { &RSA_PKCS1_SHA256 };
    let mut sig = vec![0u8; pair.public_modulus_len()];
    ok(pair.sign(padding, &aws_lc_rs::rand::SystemRandom::new(), input.as_bytes(), &mut sig), "sign");
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

#[tokio::test]
async fn a_key_marked_rs256_does_not_verify_a_ps256_assertion() {
    let server = server().await;
    let (pair, der) = ok(SigningKeyPair::generate(SigningAlg::Rs256, 2048), "rsa");
    let marked = json!({"keys": [pair.public_jwk()]});
    assert_eq!(marked["keys"][0]["alg"], "RS256");
    let mut unmarked = marked.clone();
    unmarked["keys"][0].as_object_mut().map(|k| k.remove("alg"));
    server.create_client(machine("marked", &marked.to_string(), false)).await;
    server.create_client(machine("unmarked", &unmarked.to_string(), false)).await;
    let issuer = server.server.issuer.clone();
    let assertion =
        |client: &str, alg: &str| sign_rsa(&der, alg, pair.kid(), &claims(&server, client, json!(issuer), json!({})));

    assert_eq!(client_credentials(&server, &assertion("marked", "RS256")).await.0, StatusCode::OK);
    let (status, body) = client_credentials(&server, &assertion("marked", "PS256")).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_client")), "RFC 7517 §4.4");
    // The same signature is sound: a key that declares no algorithm verifies it.
    assert_eq!(client_credentials(&server, &assertion("unmarked", "PS256")).await.0, StatusCode::OK);
    server.stop().await;
}

#[tokio::test]
async fn a_request_with_two_client_authentication_methods_is_refused_at_every_endpoint() {
    let server = server().await;
    let (key, jwks) = es256_key();
    server.create_client(machine("signer", &jwks, false)).await;
    let secret = server
        .create_client(ClientSpec { grants: &[GrantType::ClientCredentials], scopes: &[], ..ClientSpec::default() })
        .await
        .unwrap_or_default();
    let issuer = server.server.issuer.clone();
    for path in ["/token", "/introspect", "/revoke"] {
        let assertion = ok(key.sign_jwt("JWT", &claims(&server, "signer", json!(issuer), json!({}))), "sign");
        let base = [("grant_type", "client_credentials"), ("token", "whatever")];
        let with_assertion = [("client_assertion_type", JWT_BEARER), ("client_assertion", assertion.as_str())];
        let basic_and_assertion = server
            .http
            .post(server.url(path))
            .basic_auth("webapp", Some(&secret))
            .form(&[&base[..], &with_assertion[..]].concat());
        let posted_secret_and_assertion = server.http.post(server.url(path)).form(
            &[&base[..], &with_assertion[..], &[("client_id", "webapp"), ("client_secret", secret.as_str())][..]]
                .concat(),
        );
        let basic_and_posted_secret = server
            .http
            .post(server.url(path))
            .basic_auth("webapp", Some(&secret))
            .form(&[&base[..], &[("client_id", "webapp"), ("client_secret", secret.as_str())][..]].concat());
        for (what, request) in [
            ("Basic and an assertion", basic_and_assertion),
            ("client_secret and an assertion", posted_secret_and_assertion),
            ("Basic and client_secret", basic_and_posted_secret),
        ] {
            let response = ok(request.send().await, what);
            let status = response.status();
            let body: Value = response.json().await.unwrap_or_default();
            // RFC 6749 §2.3 one method per request; §5.2 names this invalid_request.
            assert_eq!(
                (status, body["error"].as_str()),
                (StatusCode::BAD_REQUEST, Some("invalid_request")),
                "{path}: {what}"
            );
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn authorization_schemes_are_matched_whatever_their_case() {
    let server = server().await;
    server.create_user("ada", support::flow::PASSWORD).await;
    server.create_client(ClientSpec { first_party: true, ..ClientSpec::default() }).await;
    let secret = secret_of("webapp");
    let rp = Rp { id: "webapp", secret: &secret, callback: "https://app.example.com/callback" };
    let browser = Browser::new(server.server.addr);
    let callback = rp.sign_in(&server, &browser, "ada", "openid").await;
    let tokens = rp.tokens(&server, &callback).await;
    let access = tokens["access_token"].as_str().unwrap_or_default().to_owned();

    // RFC 9110 §11.1: the scheme is case-insensitive, at UserInfo (RFC 6750 §2.1) ...
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let response = ok(
            server.http.get(server.url("/userinfo")).header("authorization", format!("{scheme} {access}")).send().await,
            "userinfo",
        );
        assert_eq!(response.status(), StatusCode::OK, "{scheme}");
    }
    // ... and for HTTP Basic client authentication at introspection and the token endpoint.
    let padded = base64::engine::general_purpose::STANDARD.encode(format!("webapp:{secret}"));
    for scheme in ["Basic", "basic", "BASIC"] {
        let response = ok(
            server
                .http
                .post(server.url("/introspect"))
                .header("authorization", format!("{scheme} {padded}"))
                .form(&[("token", access.as_str())])
                .send()
                .await,
            "introspect",
        );
        assert_eq!(response.status(), StatusCode::OK, "{scheme}");
        let body: Value = ok(response.json().await, "json");
        assert_eq!(body["active"], true, "{scheme}: {body}");
    }
    let wrong_scheme = ok(
        server.http.get(server.url("/userinfo")).header("authorization", format!("Basic {padded}")).send().await,
        "userinfo",
    );
    assert_eq!(wrong_scheme.status(), StatusCode::UNAUTHORIZED, "Basic carries no bearer token");
    server.stop().await;
}

#[tokio::test]
async fn a_code_presented_by_another_client_is_not_burned() {
    for db in all_backends().await {
        let b = db.backend;
        let server = TestServer::start(db, |_| {}).await;
        server.create_user("ada", support::flow::PASSWORD).await;
        server.create_client(ClientSpec { first_party: true, ..ClientSpec::default() }).await;
        server.create_client(ClientSpec { id: "intruder", ..ClientSpec::default() }).await;
        let secret = secret_of("webapp");
        let rp = Rp { id: "webapp", secret: &secret, callback: "https://app.example.com/callback" };
        let callback = rp.sign_in(&server, &Browser::new(server.server.addr), "ada", "openid").await;
        let code = support::flow::param(&callback, "code").unwrap_or_default();

        let intruder_secret = secret_of("intruder");
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", "https://app.example.com/callback"),
            ("code_verifier", support::flow::VERIFIER),
        ];
        let stolen = ok(
            server
                .http
                .post(server.url("/token"))
                .basic_auth("intruder", Some(&intruder_secret))
                .form(&form)
                .send()
                .await,
            "t",
        );
        assert_eq!(stolen.status(), StatusCode::BAD_REQUEST, "{b}");
        assert_eq!(ok(stolen.json::<Value>().await, "json")["error"], "invalid_grant", "{b}");

        // RFC 6749 §4.1.3: the real client's exchange still works.
        let tokens = rp.tokens(&server, &callback).await;
        assert!(tokens["access_token"].is_string(), "{b}: {tokens}");
        server.stop().await;
    }
}

#[tokio::test]
async fn a_client_credentials_token_introspects_without_a_username_even_where_its_id_is_a_users_sub() {
    for db in all_backends().await {
        let b = db.backend;
        let server = TestServer::start(db.clone(), |_| {}).await;
        // Generated client ids have the shape of a subject id.
        let id = ClientId::generate();
        server
            .create_client(ClientSpec {
                id: id.as_str(),
                grants: &[GrantType::ClientCredentials],
                scopes: &[],
                ..ClientSpec::default()
            })
            .await;
        // Old data: the store refuses this now, so the row is written past it.
        latchkey_service::testing::insert_user_row_unchecked(&db, id.as_str(), "bob").await;
        let shared = ok(server.state().services.clients().ids_shared_with_users(&TenantId::default_tenant()).await, b);
        assert_eq!(shared, std::slice::from_ref(&id), "{b}: the collision is found (and warned about at start-up)");

        let secret = secret_of(id.as_str());
        let response = ok(
            server
                .http
                .post(server.url("/token"))
                .basic_auth(id.as_str(), Some(&secret))
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await,
            "token",
        );
        assert_eq!(response.status(), StatusCode::OK, "{b}");
        let access = ok(response.json::<Value>().await, "json")["access_token"].as_str().unwrap_or_default().to_owned();
        let response = ok(
            server
                .http
                .post(server.url("/introspect"))
                .basic_auth(id.as_str(), Some(&secret))
                .form(&[("token", access.as_str())])
                .send()
                .await,
            "introspect",
        );
        let body: Value = ok(response.json().await, "json");
        assert_eq!(body["active"], true, "{b}: {body}");
        assert_eq!(body["sub"], id.as_str(), "{b}");
        assert!(body.get("username").is_none(), "{b}: a client-credentials token names no person: {body}");
        server.stop().await;
    }
}
