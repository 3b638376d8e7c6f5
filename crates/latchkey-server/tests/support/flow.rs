//! The authorization code flow for session tests: a client, a browser, and the steps in
//! between, each checked.
#![allow(dead_code)]

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::browser::Browser;
use super::{TestServer, ok};

pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
pub const PASSWORD: &str = "correct horse battery";

/// The S256 challenge of [`VERIFIER`] (RFC 7636 §4.2).
pub fn challenge() -> String {
    URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, VERIFIER.as_bytes()))
}

/// An authorization request of the default test client (`webapp`, redirecting to
/// `https://app.example.com/callback`, PKCE with [`VERIFIER`]): `extra` replaces or adds
/// parameters, and an empty value leaves that parameter out.
pub fn authorize_url(server: &TestServer, extra: &[(&str, &str)]) -> String {
    let mut url = ok(url::Url::parse(&server.issuer_url("/authorize")), "url");
    let challenge = challenge();
    let base = [
        ("response_type", "code"),
        ("client_id", "webapp"),
        ("redirect_uri", "https://app.example.com/callback"),
        ("scope", "openid email"),
        ("state", "st-123"),
        ("nonce", "n-456"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let overridden: Vec<&str> = extra.iter().map(|(k, _)| *k).collect();
    url.query_pairs_mut().extend_pairs(base.iter().filter(|(k, _)| !overridden.contains(k)));
    url.query_pairs_mut().extend_pairs(extra.iter().filter(|(_, v)| !v.is_empty()));
    url.to_string()
}

/// A registered client as a test drives it.
pub struct Rp<'a> {
    pub id: &'a str,
    pub secret: &'a str,
    pub callback: &'a str,
}

pub fn secret_of(id: &str) -> String {
    format!("secret-of-{id}-0123456789abcdef")
}

impl Rp<'_> {
    pub fn authorize_url(&self, server: &TestServer, scope: &str, extra: &[(&str, &str)]) -> String {
        let mut url = ok(url::Url::parse(&server.issuer_url("/authorize")), "url");
        let challenge = challenge();
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", self.id)
            .append_pair("redirect_uri", self.callback)
            .append_pair("scope", scope)
            .append_pair("state", "st")
            .append_pair("nonce", "n")
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256")
            .extend_pairs(extra);
        url.to_string()
    }

    /// Starts an authorization request; returns where Latchkey sends the browser.
    pub async fn start(&self, server: &TestServer, browser: &Browser, scope: &str, extra: &[(&str, &str)]) -> String {
        let first = browser.get(&self.authorize_url(server, scope, extra)).await;
        Browser::location(&first, &server.server.issuer)
    }

    /// The whole flow as `user` (signing in only if asked): returns the callback URL.
    pub async fn sign_in(&self, server: &TestServer, browser: &Browser, user: &str, scope: &str) -> url::Url {
        let issuer = server.server.issuer.clone();
        let mut location = self.start(server, browser, scope, &[]).await;
        if location.contains("/login?") {
            let after = browser.sign_in(&location, &issuer, user, PASSWORD).await;
            let resumed = browser.get(&Browser::location(&after, &issuer)).await;
            location = Browser::location(&resumed, &issuer);
        }
        if location.contains("/consent?") {
            location = Browser::location(&browser.consent(&location, &issuer, "allow").await, &issuer);
        }
        assert!(location.starts_with(self.callback), "expected the callback, got {location}");
        ok(url::Url::parse(&location), "callback")
    }

    /// Exchanges the callback's code for tokens.
    pub async fn tokens(&self, server: &TestServer, callback: &url::Url) -> serde_json::Value {
        let code = param(callback, "code").unwrap_or_else(|| panic!("no code in {callback}"));
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", self.callback),
            ("code_verifier", VERIFIER),
        ];
        self.token_request(server, &form).await
    }

    pub async fn refresh(&self, server: &TestServer, refresh_token: &str) -> (reqwest::StatusCode, serde_json::Value) {
        let form = [("grant_type", "refresh_token"), ("refresh_token", refresh_token)];
        let response = ok(
            server.http.post(server.url("/token")).basic_auth(self.id, Some(self.secret)).form(&form).send().await,
            "refresh",
        );
        (response.status(), response.json().await.unwrap_or_default())
    }

    async fn token_request(&self, server: &TestServer, form: &[(&str, &str)]) -> serde_json::Value {
        let response = ok(
            server.http.post(server.url("/token")).basic_auth(self.id, Some(self.secret)).form(form).send().await,
            "token",
        );
        assert_eq!(response.status(), reqwest::StatusCode::OK, "token request");
        ok(response.json().await, "token json")
    }
}

pub fn param(url: &url::Url, name: &str) -> Option<String> {
    url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

/// The claims of a JWT, unverified (the tests that need verification do it themselves).
pub fn claims(jwt: &str) -> serde_json::Value {
    let payload = jwt.split('.').nth(1).unwrap_or_default();
    let bytes = ok(URL_SAFE_NO_PAD.decode(payload), "jwt payload");
    ok(serde_json::from_slice(&bytes), "jwt json")
}
