//! Unauthenticated authorization requests cannot grow the database or the server's memory:
//! every kept parameter has a size limit, one network can park only so many requests at
//! once, and random client ids are remembered only up to a bound.

mod support;

use std::net::IpAddr;

use latchkey_core::domain::ClientId;
use reqwest::StatusCode;
use reqwest::header::LOCATION;
use support::flow::authorize_url;
use support::{ClientSpec, TestServer, all_backends, ok, sqlite};

const CALLBACK: &str = "https://app.example.com/callback";

/// A browser without cookies or redirects, on `from` (any address of 127/8 is local).
fn browser(server: &TestServer, from: [u8; 4]) -> reqwest::Client {
    ok(
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .resolve("localhost", server.server.addr)
            .local_address(IpAddr::from(from))
            .no_proxy()
            .build(),
        "browser",
    )
}

async fn authorize(client: &reqwest::Client, url: &str) -> (StatusCode, String) {
    let response = ok(client.get(url).send().await, "authorize");
    let status = response.status();
    let location = response.headers().get(LOCATION).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    (status, location)
}

fn query(location: &str) -> Vec<(String, String)> {
    ok(url::Url::parse(location), "callback").query_pairs().into_owned().collect()
}

fn param<'a>(q: &'a [(String, String)], name: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

async fn start(tweak: impl FnOnce(&mut latchkey_config::Config)) -> TestServer {
    let server = TestServer::start(sqlite().await, tweak).await;
    server.create_client(ClientSpec::default()).await;
    server
}

#[tokio::test]
async fn an_oversized_parameter_goes_back_to_the_client_as_invalid_request_and_is_not_kept() {
    let server = start(|_| {}).await;
    let client = browser(&server, [127, 0, 0, 1]);
    let claims = format!("{{\"userinfo\":{{\"name\":null}},\"x\":\"{}\"}}", "a".repeat(4_096));
    let oversized = [
        ("state", "s".repeat(4_097)),
        ("nonce", "n".repeat(513)),
        ("login_hint", "h".repeat(513)),
        ("claims", claims),
        ("acr_values", "a".repeat(513)),
        ("ui_locales", "u".repeat(257)),
        ("prompt", "login ".repeat(22)),
        ("max_age", "1".repeat(21)),
        ("id_token_hint", "t".repeat(8_193)),
        ("scope", "openid ".repeat(300)),
        ("resource", format!("https://api.example.com/{}", "r".repeat(2_048))),
    ];
    for (name, value) in &oversized {
        let (status, location) = authorize(&client, &authorize_url(&server, &[(name, value)])).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{name}");
        assert!(location.starts_with(CALLBACK), "{name}: back to the client, nothing parked: {location}");
        let q = query(&location);
        assert_eq!(param(&q, "error"), Some("invalid_request"), "{name}");
        assert!(param(&q, "error_description").is_some_and(|d| d.starts_with(name)), "{name}: {q:?}");
        let state = param(&q, "state");
        if *name == "state" {
            assert_eq!(state, None, "an oversized state is not sent back");
        } else {
            assert_eq!(state, Some("st-123"), "{name}");
        }
    }
    // Sizes count bytes: 2,049 "é" are 4,098 bytes.
    let (_, location) = authorize(&client, &authorize_url(&server, &[("state", &"é".repeat(2_049))])).await;
    assert_eq!(param(&query(&location), "error"), Some("invalid_request"));

    // At the limit, the request waits for sign-in as usual.
    let (status, location) = authorize(&client, &authorize_url(&server, &[("state", &"s".repeat(4_096))])).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(location.contains("/login?req="), "{location}");
    server.stop().await;
}

#[tokio::test]
async fn an_oversized_client_id_or_redirect_uri_gets_an_error_page() {
    // Until both are known good, nothing is sent to the redirect URI (RFC 6749 §4.1.2.1).
    let server = start(|_| {}).await;
    let client = browser(&server, [127, 0, 0, 1]);
    for (name, value) in
        [("client_id", "c".repeat(5_000)), ("redirect_uri", format!("{CALLBACK}?{}", "x".repeat(5_000)))]
    {
        let response = ok(client.get(authorize_url(&server, &[(name, &value)])).send().await, "authorize");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{name}");
        assert!(response.headers().get(LOCATION).is_none(), "{name}: no redirect");
        let page = ok(response.text().await, "page");
        assert!(page.contains("<html") || page.contains("<!doctype"), "{name}: an HTML page");
    }
    server.stop().await;
}

#[tokio::test]
async fn one_network_cannot_park_more_than_its_limit_even_in_parallel() {
    for db in all_backends().await {
        let server = TestServer::start(db.clone(), |c| c.sessions.max_authorization_requests_per_ip = 5).await;
        server.create_client(ClientSpec::default()).await;
        let url = authorize_url(&server, &[]);
        let client = browser(&server, [127, 0, 0, 1]);
        let attempts: Vec<_> = (0..25)
            .map(|_| {
                let (client, url) = (client.clone(), url.clone());
                tokio::spawn(async move { authorize(&client, &url).await })
            })
            .collect();
        let (mut parked, mut refused) = (0, 0);
        for attempt in attempts {
            let (status, location) = ok(attempt.await, "task");
            assert_eq!(status, StatusCode::SEE_OTHER, "{}", db.backend);
            if location.contains("/login?req=") {
                parked += 1;
            } else {
                let q = query(&location);
                assert_eq!(param(&q, "error"), Some("temporarily_unavailable"), "{}: {location}", db.backend);
                assert_eq!(param(&q, "state"), Some("st-123"), "{}", db.backend);
                refused += 1;
            }
        }
        assert_eq!((parked, refused), (5, 20), "{}: parked and refused", db.backend);

        // Another network (IPv4 address) still gets in.
        let (_, location) = authorize(&browser(&server, [127, 0, 0, 2]), &url).await;
        assert!(location.contains("/login?req="), "{}: {location}", db.backend);
        server.stop().await;
    }
}

#[tokio::test]
async fn random_client_ids_are_remembered_only_up_to_a_bound() {
    let server = start(|_| {}).await;
    let caches = &server.state().caches;
    for i in 0..latchkey_service::cache::MAX_UNKNOWN_CLIENTS + 200 {
        let id = ok(ClientId::parse(&format!("random-{i}")), "id");
        assert!(ok(caches.client(&id).await, "lookup").is_none());
        assert!(caches.unknown_clients_cached() <= latchkey_service::cache::MAX_UNKNOWN_CLIENTS);
    }
    let known = ok(ClientId::parse("webapp"), "id");
    assert!(ok(caches.client(&known).await, "lookup").is_some(), "registered clients are still found");
    server.stop().await;
}
