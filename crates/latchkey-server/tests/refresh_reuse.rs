//! Refresh-token reuse (RFC 9700 §4.14.2): by default, any replay of a rotated refresh token
//! revokes its whole family, so a thief who rotated first loses the live token as soon as
//! the real client comes back. A client may be given its own reuse grace (a browser app
//! refreshing from several tabs); a replay within it is refused, and the family survives.

mod support;

use std::time::Duration;

use reqwest::StatusCode;
use support::browser::Browser;
use support::flow::{Rp, secret_of};
use support::{ClientSpec, TestServer, all_backends};

/// A first-party client with `offline_access`; returns the grant's first refresh and access tokens.
async fn first_tokens(server: &TestServer, rp: &Rp<'_>) -> (String, String) {
    server.create_user("ada", support::flow::PASSWORD).await;
    let browser = Browser::new(server.server.addr);
    let callback = rp.sign_in(server, &browser, "ada", "openid offline_access").await;
    let tokens = rp.tokens(server, &callback).await;
    let refresh = tokens["refresh_token"].as_str().unwrap_or_else(|| panic!("no refresh token: {tokens}"));
    (refresh.to_owned(), tokens["access_token"].as_str().unwrap_or_default().to_owned())
}

/// Rotates `token`, which must work; returns the successor and its access token.
async fn rotate(server: &TestServer, rp: &Rp<'_>, token: &str, what: &str) -> (String, String) {
    let (status, body) = rp.refresh(server, token).await;
    assert_eq!(status, StatusCode::OK, "{what}: {body}");
    let next = body["refresh_token"].as_str().unwrap_or_else(|| panic!("{what}: no refresh token: {body}"));
    (next.to_owned(), body["access_token"].as_str().unwrap_or_default().to_owned())
}

async fn refused(server: &TestServer, rp: &Rp<'_>, token: &str, what: &str) -> String {
    let (status, body) = rp.refresh(server, token).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {body}");
    assert_eq!(body["error"], "invalid_grant", "{what}: {body}");
    body["error_description"].as_str().unwrap_or_default().to_owned()
}

async fn userinfo_status(server: &TestServer, access_token: &str) -> StatusCode {
    let response = server.http.get(server.url("/userinfo")).bearer_auth(access_token).send().await;
    support::ok(response, "userinfo").status()
}

fn client<'a>(grace: Option<i64>) -> ClientSpec<'a> {
    ClientSpec { first_party: true, refresh_reuse_grace: grace, ..ClientSpec::default() }
}

const RP: Rp<'static> = Rp { id: "webapp", secret: "", callback: "https://app.example.com/callback" };

#[tokio::test]
async fn by_default_replaying_a_rotated_refresh_token_once_revokes_the_family() {
    for db in all_backends().await {
        let b = db.backend;
        // The default configuration: tokens.refresh_reuse_grace = "0s".
        let server = TestServer::start(db.clone(), |_| {}).await;
        assert_eq!(server.state().config.tokens.refresh_reuse_grace, Duration::ZERO, "{b}");
        server.create_client(client(None)).await;
        let secret = secret_of("webapp");
        let rp = Rp { secret: &secret, ..RP };
        let (first, _) = first_tokens(&server, &rp).await;
        let (live, live_access) = rotate(&server, &rp, &first, "the first rotation").await;
        assert_eq!(userinfo_status(&server, &live_access).await, StatusCode::OK, "{b}");

        // The thief (or the client) replays the rotated token at once, well within any window.
        let why = refused(&server, &rp, &first, &format!("{b}: the replay")).await;
        assert!(why.contains("already used"), "{b}: {why}");
        // The live successor is dead too, and so is its access token (RFC 9700 §4.14.2).
        refused(&server, &rp, &live, &format!("{b}: the live successor")).await;
        support::eventually(Duration::from_secs(3), &format!("{b}: the live access token is revoked"), || async {
            userinfo_status(&server, &live_access).await == StatusCode::UNAUTHORIZED
        })
        .await;
        server.stop().await;
    }
}

#[tokio::test]
async fn with_a_clients_own_reuse_grace_a_replay_within_it_is_refused_but_the_family_survives() {
    for db in all_backends().await {
        let b = db.backend;
        let server = TestServer::start(db.clone(), |_| {}).await;
        server.create_client(client(Some(30))).await;
        let secret = secret_of("webapp");
        let rp = Rp { secret: &secret, ..RP };
        let (first, _) = first_tokens(&server, &rp).await;
        let (second, _) = rotate(&server, &rp, &first, "the first rotation").await;

        // A second tab presents the same token: refused without harm.
        let why = refused(&server, &rp, &first, &format!("{b}: a duplicate within the grace")).await;
        assert!(why.contains("concurrent"), "{b}: {why}");
        let (third, third_access) = rotate(&server, &rp, &second, "the family survives").await;

        // After the client's grace, a replay is theft again: the whole family goes.
        server.clock.advance(Duration::from_secs(31));
        let why = refused(&server, &rp, &second, &format!("{b}: a replay after the grace")).await;
        assert!(why.contains("already used"), "{b}: {why}");
        refused(&server, &rp, &third, &format!("{b}: the newest token")).await;
        support::eventually(Duration::from_secs(3), &format!("{b}: the access token is revoked"), || async {
            userinfo_status(&server, &third_access).await == StatusCode::UNAUTHORIZED
        })
        .await;
        server.stop().await;
    }
}

#[tokio::test]
async fn a_clients_grace_of_zero_overrides_a_server_wide_grace() {
    let db = support::sqlite().await;
    let server = TestServer::start(db, |c| c.tokens.refresh_reuse_grace = Duration::from_secs(60)).await;
    server.create_client(client(Some(0))).await;
    let secret = secret_of("webapp");
    let rp = Rp { secret: &secret, ..RP };
    let (first, _) = first_tokens(&server, &rp).await;
    let (live, _) = rotate(&server, &rp, &first, "the first rotation").await;
    let why = refused(&server, &rp, &first, "the replay").await;
    assert!(why.contains("already used"), "{why}");
    refused(&server, &rp, &live, "the live successor").await;
    server.stop().await;
}
