//! Limits on guessing, attacked as an attacker would: many attempts at once, on one node and
//! on two, through a username and its email address, for accounts that do not exist, and
//! at the token endpoint. What is counted is what reached the check (password
//! verifications), not the answers.

mod support;

use std::sync::Arc;

use latchkey_core::Clock;
use latchkey_core::crypto::SigningKeyPair;
use latchkey_core::domain::{GrantType, SigningAlg, TokenEndpointAuthMethod};
use latchkey_service::testing::TestDatabase;
use reqwest::StatusCode;
use support::authenticator::{Flags, SoftAuthenticator};
use support::browser::{Browser, hidden_field};
use support::flow::PASSWORD;
use support::passkey::PasskeyBrowser;
use support::{ClientSpec, TestServer, all_backends, ok, sqlite};

const LIMIT: u32 = 5;

/// A browser that has loaded the login page of a node and can post one attempt.
struct Ready {
    http: reqwest::Client,
    login: String,
    csrf: String,
}

async fn ready(server: &TestServer) -> Ready {
    let browser = Browser::new(server.server.addr);
    let login = format!("{}/login", server.server.issuer);
    let page = ok(browser.get(&login).await.text().await, "login page");
    let csrf = hidden_field(&page, "csrf").unwrap_or_default();
    Ready { http: browser.http, login, csrf }
}

/// Posts the attempt; returns the status and the page's error message.
async fn attempt(r: Ready, username: String, password: String) -> (StatusCode, String) {
    let form = [("csrf", r.csrf.as_str()), ("username", &username), ("password", &password)];
    let response = ok(r.http.post(&r.login).form(&form).send().await, "attempt");
    let status = response.status();
    let body = ok(response.text().await, "body");
    let message = body.split("role=\"alert\">").nth(1).and_then(|r| r.split('<').next()).unwrap_or("").to_owned();
    (status, message)
}

async fn try_once(server: &TestServer, username: &str, password: &str) -> (StatusCode, String) {
    attempt(ready(server).await, username.to_owned(), password.to_owned()).await
}

fn verifications(nodes: &[&TestServer]) -> u64 {
    nodes.iter().map(|n| n.state().passwords.verifications()).sum()
}

/// Sends `n` wrong passwords for `username` at once, spread over `nodes` in turn; returns
/// how many verifications ran and the statuses.
async fn parallel_wrong_passwords(nodes: &[&TestServer], username: &str, n: usize) -> (u64, Vec<StatusCode>) {
    let mut attempts = Vec::new();
    for i in 0..n {
        attempts.push(ready(nodes[i % nodes.len()]).await);
    }
    let before = verifications(nodes);
    let mut running = tokio::task::JoinSet::new();
    for (i, r) in attempts.into_iter().enumerate() {
        running.spawn(attempt(r, username.to_owned(), format!("wrong guess {i}")));
    }
    let mut statuses = Vec::new();
    while let Some(done) = running.join_next().await {
        statuses.push(ok(done, "join").0);
    }
    (verifications(nodes) - before, statuses)
}

fn count(statuses: &[StatusCode], status: StatusCode) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

#[tokio::test]
async fn twenty_five_parallel_wrong_passwords_reach_the_hash_no_more_than_the_limit() {
    for db in all_backends().await {
        let b = db.backend;
        let server = TestServer::start(db, |_| {}).await;
        server.create_user("victim1", PASSWORD).await;
        let (checked, statuses) = parallel_wrong_passwords(&[&server], "victim1", 25).await;
        assert_eq!(checked, u64::from(LIMIT), "{b}: verifications, with a limit of {LIMIT}: {statuses:?}");
        assert_eq!(count(&statuses, StatusCode::UNAUTHORIZED), LIMIT as usize, "{b}: {statuses:?}");
        assert_eq!(count(&statuses, StatusCode::TOO_MANY_REQUESTS), 25 - LIMIT as usize, "{b}: {statuses:?}");
        // The right password is refused as well until the window passes.
        assert_eq!(try_once(&server, "victim1", PASSWORD).await.0, StatusCode::TOO_MANY_REQUESTS, "{b}");
        server.stop().await;
    }
}

#[tokio::test]
async fn parallel_wrong_passwords_split_across_two_nodes_reach_the_hash_no_more_than_the_limit() {
    for db in all_backends().await {
        let b = db.backend;
        let dir = Arc::new(ok(tempfile::tempdir(), "dir"));
        let a = ok(TestServer::start_in(db.clone(), dir.clone(), Clock::system(), |_| {}).await, "node a");
        let node_b = ok(TestServer::start_in(db.clone(), dir.clone(), Clock::system(), |_| {}).await, "node b");
        a.create_user("victim1", PASSWORD).await;
        let (checked, statuses) = parallel_wrong_passwords(&[&a, &node_b], "victim1", 26).await;
        assert_eq!(checked, u64::from(LIMIT), "{b}: verifications on both nodes together: {statuses:?}");
        assert_eq!(count(&statuses, StatusCode::UNAUTHORIZED), LIMIT as usize, "{b}: {statuses:?}");
        a.stop().await;
        node_b.stop().await;
    }
}

#[tokio::test]
async fn a_username_and_its_email_address_share_one_budget() {
    for db in all_backends().await {
        let b = db.backend;
        let server = TestServer::start(db, |_| {}).await;
        server.create_user("victim1", PASSWORD).await;
        for _ in 0..3 {
            assert_eq!(try_once(&server, "victim1", "wrong").await.0, StatusCode::UNAUTHORIZED, "{b}");
        }
        for _ in 0..2 {
            let status = try_once(&server, "victim1@Example.COM", "wrong").await.0;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{b}");
        }
        let (status, _) = try_once(&server, "victim1@example.com", PASSWORD).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{b}: five failures through either name");
        assert_eq!(try_once(&server, "VICTIM1", PASSWORD).await.0, StatusCode::TOO_MANY_REQUESTS, "{b}");
        server.stop().await;
    }
}

#[tokio::test]
async fn an_unknown_identifier_is_limited_alike_and_gets_the_same_429() {
    let server = TestServer::start(sqlite().await, |_| {}).await;
    server.create_user("ada", PASSWORD).await;
    let mut answers = Vec::new();
    for name in ["ada", "nobody"] {
        let mut statuses = Vec::new();
        for _ in 0..LIMIT {
            statuses.push(try_once(&server, name, "wrong").await.0);
        }
        assert_eq!(statuses, vec![StatusCode::UNAUTHORIZED; LIMIT as usize], "{name}");
        let r = ready(&server).await;
        let form = [("csrf", r.csrf.as_str()), ("username", name), ("password", "wrong")];
        let response = ok(r.http.post(&r.login).form(&form).send().await, "attempt");
        let retry_after = response.headers().get("retry-after").cloned();
        let status = response.status();
        let body = ok(response.text().await, "body");
        let message = body.split("role=\"alert\">").nth(1).and_then(|r| r.split('<').next()).map(str::to_owned);
        answers.push((status, retry_after, message));
    }
    assert_eq!(answers[0].0, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(answers[0], answers[1], "a known and an unknown name are refused alike");
    // Typed differently, the unknown name is the same name.
    assert_eq!(try_once(&server, "  NoBody ", "wrong").await.0, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        try_once(&server, "somebody", "wrong").await.0,
        StatusCode::UNAUTHORIZED,
        "another name is counted alone"
    );
    server.stop().await;
}

#[tokio::test]
async fn passkey_sign_in_works_while_the_password_is_locked_out() {
    let server = TestServer::start(sqlite().await, |c| {
        c.registration.mode = latchkey_config::RegistrationMode::Open;
        c.login.max_failures_per_ip = LIMIT + 1;
    })
    .await;
    let mut device = SoftAuthenticator::new(Flags::default());
    PasskeyBrowser::new(&server).sign_up(&mut device, "ada", "").await;
    // The account's password budget and this address's budget both used up.
    for _ in 0..LIMIT {
        assert_eq!(try_once(&server, "ada", "wrong").await.0, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(try_once(&server, "nobody", "wrong").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(try_once(&server, "ada", "wrong").await.0, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(try_once(&server, "someone", "wrong").await.0, StatusCode::TOO_MANY_REQUESTS, "the address too");
    for username in [None, Some("ada")] {
        let b = PasskeyBrowser::new(&server);
        let signed_in = b.sign_in(&mut device, "/login", username).await;
        assert_eq!(b.location(&signed_in), b.url("/login/done"), "{username:?}: a passkey still signs in");
    }
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// Client authentication

const SECRET: &str = "secret-of-machine-0123456789abcdef";

async fn machine(server: &TestServer) {
    let spec =
        ClientSpec { id: "machine", grants: &[GrantType::ClientCredentials], scopes: &[], ..ClientSpec::default() };
    server.create_client(spec).await;
}

async fn token_with_secret(http: reqwest::Client, url: String, secret: String) -> StatusCode {
    let form = [("grant_type", "client_credentials")];
    ok(http.post(url).basic_auth("machine", Some(secret)).form(&form).send().await, "token").status()
}

#[tokio::test]
async fn parallel_wrong_client_secrets_get_no_more_than_the_limit_of_answers() {
    for db in all_backends().await {
        let b = db.backend;
        let server = TestServer::start(db, |c| c.login.max_failures_per_ip = 3).await;
        machine(&server).await;
        assert_eq!(token_with_secret(server.http.clone(), server.url("/token"), SECRET.into()).await, StatusCode::OK);
        let mut running = tokio::task::JoinSet::new();
        for i in 0..25 {
            running.spawn(token_with_secret(server.http.clone(), server.url("/token"), format!("wrong-{i}")));
        }
        let mut statuses = Vec::new();
        while let Some(done) = running.join_next().await {
            statuses.push(ok(done, "join"));
        }
        // Each failure is counted by one statement that returns the count: exactly three
        // wrong secrets are answered as wrong, the rest learn nothing.
        assert_eq!(count(&statuses, StatusCode::UNAUTHORIZED), 3, "{b}: {statuses:?}");
        assert_eq!(count(&statuses, StatusCode::TOO_MANY_REQUESTS), 22, "{b}: {statuses:?}");
        let right = token_with_secret(server.http.clone(), server.url("/token"), SECRET.into()).await;
        assert_eq!(right, StatusCode::TOO_MANY_REQUESTS, "{b}: the address waits for the window");
        server.stop().await;
    }
}

fn client_key() -> (SigningKeyPair, String) {
    let (pair, _) = ok(SigningKeyPair::generate(SigningAlg::Es256, 2048), "key");
    let jwks = serde_json::json!({"keys": [pair.public_jwk()]}).to_string();
    (pair, jwks)
}

async fn token_with_assertion(http: reqwest::Client, url: String, assertion: String) -> StatusCode {
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", "signer"),
        ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
        ("client_assertion", assertion.as_str()),
    ];
    ok(http.post(url).form(&form).send().await, "token").status()
}

#[tokio::test]
async fn parallel_bad_client_assertions_reach_the_check_no_more_than_the_limit() {
    for db in all_backends().await {
        let b = db.backend;
        let server = TestServer::start(db, |c| c.login.max_failures_per_ip = 3).await;
        let (_, jwks) = client_key();
        let signer = ClientSpec {
            id: "signer",
            auth: TokenEndpointAuthMethod::PrivateKeyJwt,
            grants: &[GrantType::ClientCredentials],
            scopes: &[],
            jwks: Some(&jwks),
            ..ClientSpec::default()
        };
        server.create_client(signer).await;
        // Signed by a key the client does not have: each is refused by the signature check.
        let (forger, _) = client_key();
        let now = server.clock.now().secs();
        let mut running = tokio::task::JoinSet::new();
        for i in 0..25 {
            let claims = serde_json::json!({"iss": "signer", "sub": "signer", "aud": server.server.issuer.to_string(),
                "jti": format!("j{i}"), "iat": now, "exp": now + 60});
            let assertion = ok(forger.sign_jwt("JWT", &claims), "sign");
            running.spawn(token_with_assertion(server.http.clone(), server.url("/token"), assertion));
        }
        let mut statuses = Vec::new();
        while let Some(done) = running.join_next().await {
            statuses.push(ok(done, "join"));
        }
        // An attempt is reserved before its signature is checked; only checked ones get 401.
        assert_eq!(count(&statuses, StatusCode::UNAUTHORIZED), 3, "{b}: {statuses:?}");
        assert_eq!(count(&statuses, StatusCode::TOO_MANY_REQUESTS), 22, "{b}: {statuses:?}");
        server.stop().await;
    }
}

// ---------------------------------------------------------------------------------------
// When the counters cannot be reached

/// Drops the counters' table from another process. It runs on a blocking thread: the
/// server shares this test's single-threaded runtime, and a thread blocked here would stop
/// a server task between its `BEGIN IMMEDIATE` and its `COMMIT`, holding the write lock
/// that the `sqlite3` process waits for.
async fn break_the_counters(db: &TestDatabase) {
    let path = db.url.trim_start_matches("sqlite:").to_owned();
    let dropped = tokio::task::spawn_blocking(move || {
        let sql = "BEGIN IMMEDIATE; DROP TABLE login_failures; COMMIT;";
        std::process::Command::new("sqlite3").args(["-cmd", ".timeout 10000", &path, sql]).output()
    })
    .await;
    let out = ok(ok(dropped, "the blocking task"), "sqlite3");
    assert!(out.status.success(), "the counters' table could not be dropped: {}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test]
async fn without_its_counters_sign_in_fails_closed_and_client_authentication_fails_open_both_counted() {
    let db = sqlite().await;
    let server = TestServer::start(db.clone(), |_| {}).await;
    server.create_user("ada", PASSWORD).await;
    machine(&server).await;
    break_the_counters(&db).await;
    let before = server.state().passwords.verifications();
    let (status, message) = try_once(&server, "ada", PASSWORD).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "no unbounded password checks: {message}");
    assert!(message.contains("try again"), "{message}");
    assert_eq!(server.state().passwords.verifications(), before, "nothing reached the hash");
    // A client secret cannot be guessed: the token endpoint goes on, and says so.
    let right = token_with_secret(server.http.clone(), server.url("/token"), SECRET.into()).await;
    assert_eq!(right, StatusCode::OK);
    let wrong = token_with_secret(server.http.clone(), server.url("/token"), "wrong".into()).await;
    assert_eq!(wrong, StatusCode::UNAUTHORIZED);
    let metrics = ok(server.get("/metrics").await.text().await, "metrics");
    for limit in ["password", "client_auth"] {
        let line = format!("latchkey_attempt_counter_errors_total{{limit=\"{limit}\"}}");
        assert!(metrics.contains(&line), "{line} in:\n{metrics}");
    }
    server.stop().await;
}
