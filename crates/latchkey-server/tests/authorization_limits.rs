//! Unauthenticated authorization requests cannot grow the database or the server's memory:
//! every kept parameter has a size limit, one network can park only so many requests at
//! once, and random client ids are remembered only up to a bound.

mod support;

use std::net::IpAddr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use reqwest::header::LOCATION;
use support::{ClientSpec, TestServer, all_backends, ok};

const CALLBACK: &str = "https://app.example.com/callback";

fn challenge() -> String {
    URL_SAFE_NO_PAD
        .encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b"a verifier of enough length 0123456789"))
}

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

fn authorize_url(server: &TestServer, extra: &[(&str, &str)]) -> String {
    let mut url = ok(url::Url::parse(&server.issuer_url("/authorize")), "url");
    let challenge = challenge();
    let base = [
        ("response_type", "code"),
        ("client_id", "webapp"),
        ("redirect_uri", CALLBACK),
        ("scope", "openid email"),
        ("state", "st-123"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let overridden: Vec<&str> = extra.iter().map(|(k, _)| *k).collect();
    url.query_pairs_mut().extend_pairs(base.iter().filter(|(k, _)| !overridden.contains(k)));
    url.query_pairs_mut().extend_pairs(extra);
    url.to_string()
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
