//! The authorization code flow driven by an independent client library (`openidconnect`),
//! with a scripted browser for the login and consent pages.

mod support;

use std::time::Duration;

use latchkey_core::domain::{ClientKind, GrantType, SigningAlg, TokenEndpointAuthMethod};
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata, CoreUserInfoClaims};
use openidconnect::{
    AccessTokenHash, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IntrospectionUrl, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl, RefreshToken, RevocationUrl, Scope,
    TokenIntrospectionResponse, TokenResponse,
};
use reqwest::StatusCode;
use support::browser::Browser;
use support::{ClientSpec, TestServer, all_backends, ok, sqlite};

/// openidconnect's HTTP client trait, served by our reqwest client.
async fn send(
    http: reqwest::Client,
    request: openidconnect::HttpRequest,
) -> Result<openidconnect::HttpResponse, reqwest::Error> {
    let (parts, body) = request.into_parts();
    let response = http.request(parts.method, parts.uri.to_string()).headers(parts.headers).body(body).send().await?;
    let mut builder = axum::http::Response::builder().status(response.status());
    for (k, v) in response.headers() {
        builder = builder.header(k, v);
    }
    let bytes = response.bytes().await?.to_vec();
    Ok(builder.body(bytes).unwrap_or_default())
}

fn library_http(server: &TestServer) -> reqwest::Client {
    ok(
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .resolve("localhost", server.server.addr)
            .no_proxy()
            .build(),
        "client",
    )
}

/// Runs authorize → login → (consent) → callback in the browser; returns the callback URL.
async fn authorize_in_browser(server: &TestServer, browser: &Browser, auth_url: &str, consent: bool) -> url::Url {
    let issuer = server.server.issuer.clone();
    let to_login = browser.get(auth_url).await;
    let login_url = Browser::location(&to_login, &issuer);
    assert!(login_url.contains("/login?req="), "{login_url}");
    let after_login = browser.sign_in(&login_url, &issuer, "ada", "correct horse battery").await;
    assert_eq!(after_login.status(), StatusCode::SEE_OTHER, "303 after a POST with credentials");
    let resume = browser.get(&Browser::location(&after_login, &issuer)).await;
    let mut next = Browser::location(&resume, &issuer);
    if consent {
        assert!(next.contains("/consent?req="), "{next}");
        let decided = browser.consent(&next, &issuer, "allow").await;
        next = Browser::location(&decided, &issuer);
    }
    ok(url::Url::parse(&next), "callback")
}

fn param(url: &url::Url, name: &str) -> Option<String> {
    url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

#[tokio::test]
async fn a_certified_style_client_completes_code_pkce_refresh_and_userinfo() {
    for db in all_backends().await {
        let server = TestServer::start(db.clone(), |_| {}).await;
        let b = db.backend;
        server.create_user("ada", "correct horse battery").await;
        let secret = server.create_client(ClientSpec::default()).await.unwrap_or_default();
        let http = library_http(&server);
        let fetch = |r| send(http.clone(), r);

        let issuer = ok(IssuerUrl::new(server.server.issuer.clone()), "issuer");
        let metadata = ok(CoreProviderMetadata::discover_async(issuer, &fetch).await, "discovery");
        let client = CoreClient::from_provider_metadata(
            metadata,
            ClientId::new("webapp".into()),
            Some(ClientSecret::new(secret)),
        )
        .set_redirect_uri(ok(RedirectUrl::new("https://app.example.com/callback".into()), "redirect"));
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (auth_url, csrf_state, nonce) = client
            .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
            .add_scope(Scope::new("profile".into()))
            .add_scope(Scope::new("email".into()))
            .add_scope(Scope::new("offline_access".into()))
            .add_scope(Scope::new("unknown-scope-is-ignored".into()))
            .set_pkce_challenge(challenge)
            .url();

        let browser = Browser::new(server.server.addr);
        let callback = authorize_in_browser(&server, &browser, auth_url.as_str(), true).await;
        assert_eq!(param(&callback, "state").as_deref(), Some(csrf_state.secret().as_str()), "{b}");
        assert_eq!(param(&callback, "iss").as_deref(), Some(server.server.issuer.as_str()), "{b}: RFC 9207 iss");
        let code = param(&callback, "code").unwrap_or_default();

        let tokens = ok(
            ok(client.exchange_code(AuthorizationCode::new(code.clone())), "exchange")
                .set_pkce_verifier(verifier)
                .request_async(&fetch)
                .await,
            "token response",
        );
        let scopes: Vec<String> = tokens.scopes().into_iter().flatten().map(|s| s.to_string()).collect();
        assert!(
            scopes.contains(&"offline_access".into()) && !scopes.contains(&"unknown-scope-is-ignored".into()),
            "{b}: {scopes:?}"
        );
        let id_token = tokens.id_token().unwrap_or_else(|| panic!("{b}: no id token"));
        let verifier = client.id_token_verifier();
        let claims = ok(id_token.claims(&verifier, &nonce), "id token verifies");
        let expected_hash = ok(
            AccessTokenHash::from_token(
                tokens.access_token(),
                ok(id_token.signing_alg(), "alg"),
                ok(id_token.signing_key(&verifier), "key"),
            ),
            "at_hash",
        );
        assert_eq!(claims.access_token_hash(), Some(&expected_hash), "{b}: at_hash");
        assert!(claims.auth_time().is_some(), "{b}: auth_time");
        let refresh = tokens.refresh_token().cloned().unwrap_or_else(|| panic!("{b}: no refresh token"));

        let info: CoreUserInfoClaims = ok(
            ok(client.user_info(tokens.access_token().clone(), None), "userinfo").request_async(&fetch).await,
            "userinfo",
        );
        assert_eq!(info.email().map(|e| e.as_str()), Some("ada@example.com"), "{b}");
        assert_eq!(info.preferred_username().map(|u| u.as_str()), Some("ada"), "{b}");

        // Refresh: a new access and ID token (same sub, no nonce), and a rotated refresh token.
        let refreshed =
            ok(ok(client.exchange_refresh_token(&refresh), "refresh").request_async(&fetch).await, "refreshed");
        let new_refresh = refreshed.refresh_token().cloned().unwrap_or_else(|| panic!("{b}: rotated token"));
        assert_ne!(new_refresh.secret(), refresh.secret());
        let new_id = refreshed.id_token().unwrap_or_else(|| panic!("{b}: id token on refresh"));
        let refreshed_claims = ok(new_id.claims(&verifier, |_: Option<&Nonce>| Ok(())), "refreshed id token");
        assert_eq!(refreshed_claims.subject(), claims.subject());
        assert_eq!(refreshed_claims.auth_time(), claims.auth_time(), "{b}: original auth_time");
        assert!(refreshed_claims.nonce().is_none(), "{b}: no nonce on refresh");

        // A code is single use; replaying it revokes what it issued (the refreshed family too).
        let replay = client.exchange_code(AuthorizationCode::new(code)).map(|r| r.request_async(&fetch));
        let replay = ok(replay, "replay request").await;
        assert!(replay.is_err(), "{b}: a replayed code must fail");
        let after_replay = client.exchange_refresh_token(&new_refresh).map(|r| r.request_async(&fetch));
        assert!(
            ok(after_replay, "refresh after replay").await.is_err(),
            "{b}: replay revoked the grant's refresh tokens"
        );
        let info_after = ok(client.user_info(refreshed.access_token().clone(), None), "userinfo");
        let info_after: Result<CoreUserInfoClaims, _> = info_after.request_async(&fetch).await;
        assert!(info_after.is_err(), "{b}: replay revoked the grant's access tokens");
        server.stop().await;
    }
}

#[tokio::test]
async fn reusing_a_rotated_refresh_token_revokes_the_whole_family() {
    let server = TestServer::start(sqlite().await, |_| {}).await;
    server.create_user("ada", "correct horse battery").await;
    // A client with its own 10 s reuse grace (the server's default is none: tests/refresh_reuse.rs).
    let spec = ClientSpec { first_party: true, refresh_reuse_grace: Some(10), ..ClientSpec::default() };
    let secret = server.create_client(spec).await.unwrap_or_default();
    let http = library_http(&server);
    let fetch = |r| send(http.clone(), r);
    let issuer = ok(IssuerUrl::new(server.server.issuer.clone()), "issuer");
    let metadata = ok(CoreProviderMetadata::discover_async(issuer, &fetch).await, "discovery");
    let client =
        CoreClient::from_provider_metadata(metadata, ClientId::new("webapp".into()), Some(ClientSecret::new(secret)))
            .set_redirect_uri(ok(RedirectUrl::new("https://app.example.com/callback".into()), "redirect"));
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, _, _) = client
        .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
        .add_scope(Scope::new("offline_access".into()))
        .set_pkce_challenge(challenge)
        .url();
    let browser = Browser::new(server.server.addr);
    // First-party, but offline access still asks for consent (OIDC Core §11).
    let callback = authorize_in_browser(&server, &browser, auth_url.as_str(), true).await;
    let code = param(&callback, "code").unwrap_or_default();
    let tokens = ok(
        ok(client.exchange_code(AuthorizationCode::new(code)), "x")
            .set_pkce_verifier(verifier)
            .request_async(&fetch)
            .await,
        "tokens",
    );
    let first = tokens.refresh_token().cloned().unwrap_or_else(|| panic!("refresh token"));
    let second = ok(ok(client.exchange_refresh_token(&first), "r").request_async(&fetch).await, "rotate");
    let second_token = second.refresh_token().cloned().unwrap_or_else(|| panic!("rotated"));

    // Within the grace period a duplicate is refused but harmless.
    let duplicate = ok(client.exchange_refresh_token(&first), "r").request_async(&fetch).await;
    assert!(duplicate.is_err());
    let still_fine = ok(client.exchange_refresh_token(&second_token), "r").request_async(&fetch).await;
    let third_token = ok(still_fine, "the family survives a concurrent duplicate")
        .refresh_token()
        .cloned()
        .unwrap_or_else(|| panic!());

    // After the grace, reuse of a rotated token is theft: the whole family dies.
    server.clock.advance(Duration::from_secs(11));
    let stolen = ok(client.exchange_refresh_token(&second_token), "r").request_async(&fetch).await;
    assert!(stolen.is_err());
    let legit = ok(client.exchange_refresh_token(&third_token), "r").request_async(&fetch).await;
    assert!(legit.is_err(), "the newest token of the family is revoked too");
    let _ = RefreshToken::new(String::new());
    server.stop().await;
}

#[tokio::test]
async fn every_signing_algorithm_yields_id_tokens_the_library_verifies() {
    let server = TestServer::start(sqlite().await, |_| {}).await;
    server.create_user("ada", "correct horse battery").await;
    for (id, alg) in [("rs", SigningAlg::Rs256), ("es", SigningAlg::Es256), ("ed", SigningAlg::EdDsa)] {
        let secret = server
            .create_client(ClientSpec { id, id_token_alg: alg, first_party: true, ..ClientSpec::default() })
            .await
            .unwrap_or_default();
        let http = library_http(&server);
        let fetch = |r| send(http.clone(), r);
        let issuer = ok(IssuerUrl::new(server.server.issuer.clone()), "issuer");
        let metadata = ok(CoreProviderMetadata::discover_async(issuer, &fetch).await, "discovery");
        let client =
            CoreClient::from_provider_metadata(metadata, ClientId::new(id.into()), Some(ClientSecret::new(secret)))
                .set_redirect_uri(ok(RedirectUrl::new("https://app.example.com/callback".into()), "redirect"));
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (auth_url, _, nonce) = client
            .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
            .set_pkce_challenge(challenge)
            .url();
        let browser = Browser::new(server.server.addr);
        let callback = authorize_in_browser(&server, &browser, auth_url.as_str(), false).await;
        let code = param(&callback, "code").unwrap_or_default();
        let tokens = ok(
            ok(client.exchange_code(AuthorizationCode::new(code)), "x")
                .set_pkce_verifier(verifier)
                .request_async(&fetch)
                .await,
            "tokens",
        );
        let id_token = tokens.id_token().unwrap_or_else(|| panic!("id token"));
        let algs = vec![match alg {
            SigningAlg::Rs256 => openidconnect::core::CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
            SigningAlg::Es256 => openidconnect::core::CoreJwsSigningAlgorithm::EcdsaP256Sha256,
            SigningAlg::EdDsa => openidconnect::core::CoreJwsSigningAlgorithm::EdDsa,
        }];
        let verifier = client.id_token_verifier().set_allowed_algs(algs);
        ok(id_token.claims(&verifier, &nonce), &format!("{alg} id token"));
    }
    server.stop().await;
}

#[tokio::test]
async fn client_credentials_needs_no_user_and_respects_the_clients_grants() {
    let server = TestServer::start(sqlite().await, |_| {}).await;
    let secret = server
        .create_client(ClientSpec {
            id: "svc",
            grants: &[GrantType::ClientCredentials],
            scopes: &["openid", "invoices:read"],
            ..ClientSpec::default()
        })
        .await;
    let _ = secret;
    // invoices:read must exist as a scope first.
    server.create_scope("invoices:read", "Read invoices").await;
    let http = reqwest::Client::new();
    let token = |form: Vec<(&'static str, &'static str)>| {
        http.post(server.url("/token")).basic_auth("svc", Some("secret-of-svc-0123456789abcdef")).form(&form).send()
    };
    let ok_response = ok(token(vec![("grant_type", "client_credentials")]).await, "cc");
    assert_eq!(ok_response.status(), StatusCode::OK);
    assert_eq!(ok_response.headers()["cache-control"], "no-store");
    let body: serde_json::Value = ok(ok_response.json().await, "json");
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["expires_in"].is_u64());
    assert_eq!(body["scope"], "invoices:read", "user scopes are not granted to machines");
    assert!(body.get("refresh_token").is_none() && body.get("id_token").is_none());

    let wide = ok(token(vec![("grant_type", "client_credentials"), ("scope", "admin")]).await, "cc");
    assert_eq!(wide.status(), StatusCode::BAD_REQUEST);
    let err: serde_json::Value = ok(wide.json().await, "json");
    assert_eq!(err["error"], "invalid_scope");

    let code_grant = ok(token(vec![("grant_type", "authorization_code"), ("code", "x")]).await, "code");
    let err: serde_json::Value = ok(code_grant.json().await, "json");
    assert_eq!(err["error"], "unauthorized_client");
    server.stop().await;
}

#[tokio::test]
async fn public_clients_use_pkce_and_no_secret() {
    let server = TestServer::start(sqlite().await, |_| {}).await;
    server.create_user("ada", "correct horse battery").await;
    server
        .create_client(ClientSpec {
            id: "native",
            kind: ClientKind::Public,
            auth: TokenEndpointAuthMethod::None,
            redirect_uris: &["http://127.0.0.1/callback"],
            first_party: true,
            ..ClientSpec::default()
        })
        .await;
    let http = library_http(&server);
    let fetch = |r| send(http.clone(), r);
    let issuer = ok(IssuerUrl::new(server.server.issuer.clone()), "issuer");
    let metadata = ok(CoreProviderMetadata::discover_async(issuer, &fetch).await, "discovery");
    // RFC 8252 §7.3: any port on the loopback IP.
    let client = CoreClient::from_provider_metadata(metadata, ClientId::new("native".into()), None)
        .set_redirect_uri(ok(RedirectUrl::new("http://127.0.0.1:53123/callback".into()), "redirect"));
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, _, nonce) = client
        .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
        .set_pkce_challenge(challenge)
        .url();
    let browser = Browser::new(server.server.addr);
    let callback = authorize_in_browser(&server, &browser, auth_url.as_str(), false).await;
    assert_eq!(callback.port(), Some(53123));
    let code = param(&callback, "code").unwrap_or_default();
    let tokens = ok(
        ok(client.exchange_code(AuthorizationCode::new(code)), "x")
            .set_pkce_verifier(verifier)
            .request_async(&fetch)
            .await,
        "tokens",
    );
    ok(
        tokens.id_token().map(|t| t.claims(&client.id_token_verifier(), &nonce).map(|_| ())).unwrap_or(Ok(())),
        "verifies",
    );
    server.stop().await;
}

#[tokio::test]
async fn the_library_gets_client_credentials_introspects_and_revokes_on_every_backend() {
    for db in all_backends().await {
        let b = db.backend;
        // The oauth2 crate revokes only over https: serve TLS with a throwaway certificate.
        let certs = ok(tempfile::tempdir(), "certs");
        let ck = ok(rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]), "cert");
        let (cert, key) = (certs.path().join("tls.crt"), certs.path().join("tls.key"));
        ok(std::fs::write(&cert, ck.cert.pem()), "write cert");
        ok(std::fs::write(&key, ck.signing_key.serialize_pem()), "write key");
        let tls = latchkey_config::TlsConfig { cert, key, reload_interval: std::time::Duration::from_secs(60) };
        let server = TestServer::start(db.clone(), move |c| c.server.tls = Some(tls)).await;
        assert!(server.server.issuer.starts_with("https://"), "{b}");
        server.create_scope("invoices:read", "Read invoices").await;
        let secret = server
            .create_client(ClientSpec {
                id: "svc",
                grants: &[GrantType::ClientCredentials],
                scopes: &["invoices:read"],
                ..ClientSpec::default()
            })
            .await
            .unwrap_or_default();
        let trusted = ok(reqwest::Certificate::from_pem(ck.cert.pem().as_bytes()), "cert");
        let http = ok(
            reqwest::Client::builder()
                .tls_certs_only([trusted])
                .redirect(reqwest::redirect::Policy::none())
                .resolve("localhost", server.server.addr)
                .no_proxy()
                .build(),
            "https client",
        );
        let fetch = |r| send(http.clone(), r);
        let issuer = ok(IssuerUrl::new(server.server.issuer.clone()), "issuer");
        let metadata = ok(CoreProviderMetadata::discover_async(issuer, &fetch).await, "discovery");
        let client =
            CoreClient::from_provider_metadata(metadata, ClientId::new("svc".into()), Some(ClientSecret::new(secret)))
                .set_introspection_url(ok(IntrospectionUrl::new(server.issuer_url("/introspect")), "url"))
                .set_revocation_url(ok(RevocationUrl::new(server.issuer_url("/revoke")), "url"));

        let tokens = ok(
            ok(client.exchange_client_credentials(), "cc request")
                .add_scope(Scope::new("invoices:read".into()))
                .request_async(&fetch)
                .await,
            "client credentials",
        );
        let scopes: Vec<String> = tokens.scopes().into_iter().flatten().map(|s| s.to_string()).collect();
        assert_eq!(scopes, vec!["invoices:read".to_owned()], "{b}");
        let active = ok(client.introspect(tokens.access_token()).request_async(&fetch).await, "introspect");
        assert!(active.active(), "{b}");
        assert_eq!(active.client_id().map(|c| c.as_str()), Some("svc"), "{b}");
        assert_eq!(active.sub(), Some("svc"), "{b}: sub is the client for client credentials");

        let revocable: openidconnect::core::CoreRevocableToken = tokens.access_token().clone().into();
        ok(ok(client.revoke_token(revocable), "revoke").request_async(&fetch).await, "revoke");
        let after = ok(client.introspect(tokens.access_token()).request_async(&fetch).await, "introspect");
        assert!(!after.active(), "{b}: revoked is inactive");
        server.stop().await;
    }
}
