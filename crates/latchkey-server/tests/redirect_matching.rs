//! Where Latchkey sends a browser back to: the redirect URI at `/authorize` (query and
//! `form_post`) and the `post_logout_redirect_uri` at logout. Exact match (RFC 9700
//! §4.1.3), except that a native client's loopback IP URI may change its port (RFC 8252
//! §7.3); a fragment or user-info is refused (RFC 6749 §3.1.2), and nothing is normalised
//! into a match. And the development switch: plain http on this machine, exactly.

mod support;

use latchkey_core::domain::{ClientKind, TokenEndpointAuthMethod};
use reqwest::StatusCode;
use reqwest::header::LOCATION;
use support::browser::{Browser, hidden_field};
use support::flow::{PASSWORD, Rp, param, secret_of};
use support::{ClientSpec, TestServer, ok, sqlite};

const NATIVE_CB: &str = "http://127.0.0.1:5555/cb";
const NATIVE_OUT: &str = "http://127.0.0.1:5555/signed-out";

/// What the issue saw accepted for a native client registered with `NATIVE_CB`.
const NATIVE_ATTACKS: [&str; 5] = [
    "http://127.0.0.1:5555/cb#frag",
    "http://127.0.0.1:6000/cb#frag",
    "http://evil.com@127.0.0.1:5555/cb",
    "http://127.0.0.1:5555/a/../cb",
    "http://127.0.0.1:5555/a/%2e%2e/cb",
];
const WEB_ATTACKS: [&str; 3] = [
    "https://app.example.com/callback#frag",
    "https://evil.example@app.example.com/callback",
    "https://app.example.com/a/../callback",
];

const NATIVE: Rp<'static> = Rp { id: "native", secret: "", callback: NATIVE_CB };

async fn setup() -> (TestServer, Browser) {
    let server = TestServer::start(sqlite().await, |_| {}).await;
    server.create_user("ada", PASSWORD).await;
    server
        .create_client(ClientSpec {
            id: "native",
            kind: ClientKind::Public,
            auth: TokenEndpointAuthMethod::None,
            redirect_uris: &[NATIVE_CB],
            post_logout: &[NATIVE_OUT],
            first_party: true,
            ..ClientSpec::default()
        })
        .await;
    server.create_client(ClientSpec { first_party: true, ..ClientSpec::default() }).await;
    let browser = Browser::new(server.server.addr);
    (server, browser)
}

/// A 400 page, no redirect, and nothing of the response the request asked for.
async fn refused_with_a_page(response: reqwest::Response, what: &str) {
    assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{what}");
    assert!(response.headers().get(LOCATION).is_none(), "{what}: never redirected to");
    let html = ok(response.text().await, "page");
    assert!(html.contains("is not registered for this client"), "{what}: {html}");
    assert!(hidden_field(&html, "code").is_none() && !html.contains("form_post.js"), "{what}: no code, no form");
}

fn authorize_url(server: &TestServer, client: &str, redirect_uri: &str, extra: &[(&str, &str)]) -> String {
    Rp { id: client, secret: "", callback: redirect_uri }.authorize_url(server, "openid", extra)
}

#[tokio::test]
async fn a_fragment_user_info_or_dot_segment_never_matches_a_redirect_uri_at_authorize() {
    let (server, browser) = setup().await;
    let issuer = server.server.issuer.clone();
    for (client, uri) in NATIVE_ATTACKS.map(|u| ("native", u)).into_iter().chain(WEB_ATTACKS.map(|u| ("webapp", u))) {
        let response = browser.get(&authorize_url(&server, client, uri, &[])).await;
        refused_with_a_page(response, &format!("{client} {uri}")).await;
    }
    // Only the port of a native client's loopback URI may change (RFC 8252 §7.3).
    let other_port = browser.get(&authorize_url(&server, "native", "http://127.0.0.1:6000/cb", &[])).await;
    assert!(Browser::location(&other_port, &issuer).contains("/login?req="), "another port is the same URI");
    server.stop().await;
}

#[tokio::test]
async fn a_fragment_user_info_or_dot_segment_never_gets_a_form_post_response() {
    let (server, browser) = setup().await;
    // Signed in already, a valid request would be answered at once with the code's form.
    NATIVE.sign_in(&server, &browser, "ada", "openid").await;
    for (client, uri) in NATIVE_ATTACKS.map(|u| ("native", u)).into_iter().chain(WEB_ATTACKS.map(|u| ("webapp", u))) {
        let response = browser.get(&authorize_url(&server, client, uri, &[("response_mode", "form_post")])).await;
        refused_with_a_page(response, &format!("form_post {client} {uri}")).await;
    }
    let fine = browser
        .get(&authorize_url(&server, "native", "http://127.0.0.1:6000/cb", &[("response_mode", "form_post")]))
        .await;
    assert_eq!(fine.status(), StatusCode::OK);
    let html = ok(fine.text().await, "form").replace("&#x2f;", "/");
    assert!(html.contains("action=\"http://127.0.0.1:6000/cb\""), "{html}");
    assert!(hidden_field(&html, "code").is_some(), "{html}");
    server.stop().await;
}

#[tokio::test]
async fn a_fragment_user_info_or_dot_segment_never_matches_a_post_logout_redirect_uri() {
    let (server, browser) = setup().await;
    let attacks = [
        "http://127.0.0.1:5555/signed-out#frag",
        "http://evil.com@127.0.0.1:5555/signed-out",
        "http://127.0.0.1:5555/a/../signed-out",
    ];
    let logout = |client: &str, uri: &str| {
        let mut url = ok(url::Url::parse(&server.issuer_url("/logout")), "url");
        url.query_pairs_mut().append_pair("client_id", client).append_pair("post_logout_redirect_uri", uri);
        url.to_string()
    };
    for uri in attacks {
        refused_with_a_page(browser.get(&logout("native", uri)).await, uri).await;
    }
    for uri in ["https://app.example.com/signed-out#frag", "https://evil.example@app.example.com/signed-out"] {
        refused_with_a_page(browser.get(&logout("webapp", uri)).await, uri).await;
    }
    // Nobody is signed in: straight to the (any-port) loopback URI.
    let fine = browser.get(&logout("native", "http://127.0.0.1:6000/signed-out")).await;
    assert_eq!(Browser::location(&fine, &server.server.issuer), "http://127.0.0.1:6000/signed-out");
    server.stop().await;
}

#[tokio::test]
async fn a_development_client_gets_its_plain_http_redirect_exactly_port_included() {
    let server = TestServer::start(sqlite().await, |_| {}).await;
    server.create_user("ada", PASSWORD).await;
    const DEV_CB: &str = "http://localhost:3000/callback";
    server
        .create_client(ClientSpec {
            id: "devapp",
            redirect_uris: &[DEV_CB],
            post_logout: &["http://localhost:3000/"],
            first_party: true,
            allow_insecure_redirect_uris: true,
            ..ClientSpec::default()
        })
        .await;
    let browser = Browser::new(server.server.addr);
    for other in [
        "http://localhost:3001/callback",
        "http://localhost/callback",
        "http://127.0.0.1:3000/callback",
        "http://localhost:3000/callback#x",
        "http://localhost:3000/x/../callback",
    ] {
        refused_with_a_page(browser.get(&authorize_url(&server, "devapp", other, &[])).await, other).await;
    }
    let secret = secret_of("devapp");
    let rp = Rp { id: "devapp", secret: &secret, callback: DEV_CB };
    let callback = rp.sign_in(&server, &browser, "ada", "openid").await;
    assert_eq!(callback.as_str().split('?').next(), Some(DEV_CB));
    assert!(param(&callback, "code").is_some(), "{callback}");
    let tokens = rp.tokens(&server, &callback).await;
    assert!(tokens["id_token"].is_string(), "{tokens}");
    server.stop().await;
}
