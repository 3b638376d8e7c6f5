//! Single-use means single use under concurrency: the same code and the same refresh token
//! presented many times at once, to two nodes sharing one database, succeed exactly once.

mod support;

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use latchkey_core::Clock;
use support::browser::Browser;
use support::{ClientSpec, TestServer, all_backends, ok};

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const SECRET: &str = "secret-of-webapp-0123456789abcdef";
const CALLBACK: &str = "https://app.example.com/callback";

async fn get_code(server: &TestServer, browser: &Browser) -> String {
    let issuer = server.server.issuer.clone();
    let challenge = URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, VERIFIER.as_bytes()));
    let mut url = ok(url::Url::parse(&server.issuer_url("/authorize")), "url");
    url.query_pairs_mut().extend_pairs([
        ("response_type", "code"),
        ("client_id", "webapp"),
        ("redirect_uri", CALLBACK),
        ("scope", "openid offline_access"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ]);
    let first = browser.get(url.as_str()).await;
    let mut location = Browser::location(&first, &issuer);
    if location.contains("/login?") {
        let after = browser.sign_in(&location, &issuer, "ada", "correct horse battery").await;
        location = Browser::location(&browser.get(&Browser::location(&after, &issuer)).await, &issuer);
    }
    if location.contains("/consent?") {
        location = Browser::location(&browser.consent(&location, &issuer, "allow").await, &issuer);
    }
    let callback = ok(url::Url::parse(&location), "callback");
    callback.query_pairs().find(|(k, _)| k == "code").map(|(_, v)| v.into_owned()).unwrap_or_default()
}

/// Sends `form` to /token on alternating nodes, all at once; returns how many succeeded.
async fn race(nodes: &[&TestServer], form: Vec<(&'static str, String)>, attempts: usize) -> usize {
    let mut tasks = Vec::new();
    for i in 0..attempts {
        let node = nodes[i % nodes.len()];
        let request = node.http.post(node.url("/token")).basic_auth("webapp", Some(SECRET)).form(&form);
        tasks.push(tokio::spawn(async move { request.send().await.map(|r| r.status().is_success()).unwrap_or(false) }));
    }
    let mut wins = 0;
    for t in tasks {
        if t.await.unwrap_or(false) {
            wins += 1;
        }
    }
    wins
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_redemptions_on_two_nodes_succeed_exactly_once() {
    for db in all_backends().await {
        let b = db.backend;
        let dir = Arc::new(ok(tempfile::tempdir(), "dir"));
        let a = ok(TestServer::start_in(db.clone(), dir.clone(), Clock::system(), |_| {}).await, "a");
        let node_b = ok(TestServer::start_in(db.clone(), dir.clone(), Clock::system(), |_| {}).await, "b");
        a.create_user("ada", "correct horse battery").await;
        a.create_client(ClientSpec { first_party: true, ..ClientSpec::default() }).await;
        let browser = Browser::new(a.server.addr);

        let code = get_code(&a, &browser).await;
        let form = vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", code),
            ("redirect_uri", CALLBACK.to_owned()),
            ("code_verifier", VERIFIER.to_owned()),
        ];
        assert_eq!(race(&[&a, &node_b], form, 16).await, 1, "{b}: one code, one token response");

        // The same for a refresh token: one rotation wins, the rest are refused.
        let code = get_code(&a, &browser).await;
        let tokens: serde_json::Value = ok(
            ok(
                a.http
                    .post(a.url("/token"))
                    .basic_auth("webapp", Some(SECRET))
                    .form(&[
                        ("grant_type", "authorization_code"),
                        ("code", &code),
                        ("redirect_uri", CALLBACK),
                        ("code_verifier", VERIFIER),
                    ])
                    .send()
                    .await,
                "token",
            )
            .json()
            .await,
            "json",
        );
        let refresh = tokens["refresh_token"].as_str().unwrap_or_default().to_owned();
        assert!(!refresh.is_empty(), "{b}: {tokens}");
        let form = vec![("grant_type", "refresh_token".to_owned()), ("refresh_token", refresh)];
        assert_eq!(race(&[&a, &node_b], form, 16).await, 1, "{b}: one refresh token, one rotation");
        a.stop().await;
        node_b.stop().await;
    }
}
