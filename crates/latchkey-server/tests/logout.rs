//! Every way a session ends reaches its clients: RP-initiated logout with front- and
//! back-channel notices, retries of a failing back-channel endpoint, delivery after a
//! restart, refresh tokens revoked with the session, and a locked or deleted user.

mod support;

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::jwk::JwkSet;
use latchkey_config::Purpose;
use latchkey_core::domain::{ClientSessionPolicy, LogoutUri, SubjectId, TenantId};
use latchkey_core::records::{Actor, SessionSelector};
use latchkey_core::{Clock, UnixTime};
use latchkey_service::testing::TestDatabase;
use reqwest::StatusCode;
use reqwest::header::CONTENT_SECURITY_POLICY;
use support::browser::Browser;
use support::flow::{Rp, claims, secret_of};
use support::rp::{RelyingParty, verify_logout_token};
use support::{ClientSpec, TestServer, all_backends, eventually, ok};

const WEBAPP: &str = "https://app.example.com/callback";
const NOTES: &str = "https://notes.example.com/callback";
/// How long a queued logout token may take to arrive: the sender's poll interval in these
/// tests is 100 ms; the bound leaves room for a slow CI machine.
const DELIVERY: Duration = Duration::from_secs(10);

fn policy(f: impl FnOnce(&mut ClientSessionPolicy)) -> ClientSessionPolicy {
    let mut p = ClientSessionPolicy::default();
    f(&mut p);
    p
}

fn uri(raw: &str) -> Option<LogoutUri> {
    Some(ok(LogoutUri::parse(raw), "logout uri"))
}

/// A server whose outbound guard lets logout tokens reach the relying parties `rps` (on
/// 127.0.0.1, over http): the way an operator opens an internal destination.
async fn start_in(
    db: Arc<TestDatabase>,
    dir: Arc<tempfile::TempDir>,
    clock: Clock,
    rps: &[&RelyingParty],
) -> TestServer {
    let ports: Vec<u16> = rps.iter().map(|rp| rp.addr.port()).collect();
    ok(
        TestServer::start_in(db, dir, clock, |c| {
            c.logout.backchannel_poll_interval = Duration::from_millis(100);
            c.logout.backchannel_max_attempts = 3;
            c.outbound.allow = vec![support::allow_loopback(Purpose::BackchannelLogout, &ports)];
        })
        .await,
        "start",
    )
}

/// webapp: front- and back-channel, revokes offline tokens at logout; notes: back-channel
/// only, session refresh tokens, offline tokens survive logout.
async fn setup(server: &TestServer, rp: &RelyingParty) {
    server.create_user("ada", support::flow::PASSWORD).await;
    let webapp = policy(|p| {
        p.frontchannel_logout_uri = uri("https://app.example.com/front-logout");
        p.backchannel_logout_uri = uri(&rp.backchannel_uri("webapp"));
        p.logout_revokes_offline_tokens = true;
    });
    let notes = policy(|p| {
        p.backchannel_logout_uri = uri(&rp.backchannel_uri("notes"));
        p.session_refresh_tokens = true;
    });
    for (id, callback, session_policy) in [("webapp", WEBAPP, webapp), ("notes", NOTES, notes)] {
        let spec =
            ClientSpec { id, redirect_uris: &[callback], first_party: true, session_policy, ..ClientSpec::default() };
        server.create_client(ClientSpec { post_logout: &[callback], ..spec }).await;
    }
}

/// Signs ada in to notes in `browser`: the token response and the ID token's claims.
async fn notes_tokens(server: &TestServer, browser: &Browser, scope: &str) -> (serde_json::Value, serde_json::Value) {
    let secret = secret_of("notes");
    let notes = Rp { id: "notes", secret: &secret, callback: NOTES };
    let tokens = notes.tokens(server, &notes.sign_in(server, browser, "ada", scope).await).await;
    let id = claims(tokens["id_token"].as_str().unwrap_or_default());
    (tokens, id)
}

async fn jwks(server: &TestServer) -> JwkSet {
    ok(serde_json::from_value(server.get_json("/jwks.json").await), "jwks")
}

#[tokio::test]
async fn rp_initiated_logout_reaches_every_client_by_both_channels_and_ends_session_tokens() {
    for db in all_backends().await {
        let b = db.backend;
        let rp = RelyingParty::start(0).await;
        let dir = Arc::new(ok(tempfile::tempdir(), "dir"));
        let server = start_in(db, dir, Clock::system(), &[&rp]).await;
        setup(&server, &rp).await;
        let (webapp_secret, notes_secret) = (secret_of("webapp"), secret_of("notes"));
        let webapp = Rp { id: "webapp", secret: &webapp_secret, callback: WEBAPP };
        let notes = Rp { id: "notes", secret: &notes_secret, callback: NOTES };
        let browser = Browser::new(server.server.addr);
        let issuer = server.server.issuer.clone();

        let a = webapp.tokens(&server, &webapp.sign_in(&server, &browser, "ada", "openid offline_access").await).await;
        let n1 = notes.tokens(&server, &notes.sign_in(&server, &browser, "ada", "openid").await).await;
        let n2 = notes.tokens(&server, &notes.sign_in(&server, &browser, "ada", "openid offline_access").await).await;
        let id_token = a["id_token"].as_str().unwrap_or_default().to_owned();
        let id = claims(&id_token);
        let sid = id["sid"].as_str().unwrap_or_default().to_owned();
        let session_refresh = n1["refresh_token"].as_str().unwrap_or_else(|| panic!("{b}: session refresh token"));
        let offline_refresh = n2["refresh_token"].as_str().unwrap_or_else(|| panic!("{b}: offline refresh token"));
        let webapp_refresh = a["refresh_token"].as_str().unwrap_or_else(|| panic!("{b}: webapp refresh token"));

        // RP-initiated logout with a hint naming this session: no question asked.
        let mut logout = ok(url::Url::parse(&format!("{issuer}/logout")), "url");
        logout
            .query_pairs_mut()
            .append_pair("id_token_hint", &id_token)
            .append_pair("post_logout_redirect_uri", WEBAPP)
            .append_pair("state", "bye");
        let page = browser.get(logout.as_str()).await;
        assert_eq!(page.status(), StatusCode::OK, "{b}: the front-channel page");
        let csp = page.headers().get(CONTENT_SECURITY_POLICY).and_then(|v| v.to_str().ok()).unwrap_or_default();
        assert!(csp.ends_with("frame-src https://app.example.com"), "{b}: {csp}");
        let html = ok(page.text().await, "html").replace("&#x2f;", "/").replace("&amp;", "&");
        let mut frame = ok(url::Url::parse("https://app.example.com/front-logout"), "url");
        frame.query_pairs_mut().append_pair("iss", &issuer).append_pair("sid", &sid);
        assert!(html.contains(&format!("data-src=\"{frame}\"")), "{b}: iframe with iss and sid: {html}");
        assert!(html.contains(&format!("data-next=\"{WEBAPP}?state=bye\"")), "{b}: then the client: {html}");
        assert!(html.contains("/static/signed_out.js") && !html.contains("<script>"), "{b}");

        // Both clients get a logout token that verifies fully.
        eventually(DELIVERY, "two logout tokens", || async { rp.received().len() >= 2 }).await;
        let keys = jwks(&server).await;
        let mut got: Vec<String> = Vec::new();
        for (client, token) in rp.received() {
            let c = verify_logout_token(&token, &keys, &issuer, &client);
            assert_eq!(c["sid"].as_str(), Some(sid.as_str()), "{b}");
            assert_eq!(c["sub"], id["sub"], "{b}");
            got.push(client);
        }
        got.sort();
        assert_eq!(got, ["notes", "webapp"], "{b}");
        let sub = ok(SubjectId::parse(id["sub"].as_str().unwrap_or_default()), "sub");
        let deliveries =
            ok(server.state().services.sessions().logout_deliveries(&TenantId::default_tenant(), &sub).await, "list");
        assert!(deliveries.iter().all(|d| d.status == "delivered" && d.attempts == 1), "{b}: {deliveries:?}");

        // The session's refresh tokens are gone; notes' offline one survives (by default),
        // webapp's does not (it asked for that).
        assert_eq!(notes.refresh(&server, session_refresh).await.0, StatusCode::BAD_REQUEST, "{b}: session token");
        assert_eq!(webapp.refresh(&server, webapp_refresh).await.0, StatusCode::BAD_REQUEST, "{b}: revoked offline");
        let (status, body) = notes.refresh(&server, offline_refresh).await;
        assert_eq!(status, StatusCode::OK, "{b}: offline_access survives logout: {body}");
        // And the browser is signed out.
        assert!(webapp.start(&server, &browser, "openid", &[]).await.contains("/login?"), "{b}");
        server.stop().await;
    }
}

#[tokio::test]
async fn a_failing_backchannel_endpoint_is_retried_with_backoff_then_given_up() {
    for db in all_backends().await {
        let b = db.backend;
        // Fails twice, then answers 200.
        let rp = RelyingParty::start(2).await;
        // And one that never answers well.
        let dead = RelyingParty::start(usize::MAX).await;
        let clock = Clock::frozen(UnixTime::from_secs(1_800_000_000));
        let server = start_in(db, Arc::new(ok(tempfile::tempdir(), "dir")), clock, &[&rp, &dead]).await;
        setup(&server, &rp).await;
        let secret = secret_of("notes");
        let notes = Rp { id: "notes", secret: &secret, callback: NOTES };
        let browser = Browser::new(server.server.addr);
        let (_, id) = notes_tokens(&server, &browser, "openid").await;
        let sub = ok(SubjectId::parse(id["sub"].as_str().unwrap_or_default()), "sub");
        let ended = ok(
            server
                .state()
                .services
                .sessions()
                .end(
                    &TenantId::default_tenant(),
                    &SessionSelector::Sid(id["sid"].as_str().unwrap_or_default().into()),
                    "test",
                    false,
                    &Actor::Cli,
                )
                .await,
            "end",
        );
        assert_eq!(ended.sessions.len(), 1, "{b}");
        eventually(DELIVERY, "first attempt", || async { rp.received().len() == 1 }).await;
        let status = || async {
            ok(
                server.state().services.sessions().logout_deliveries(&TenantId::default_tenant(), &sub).await,
                "deliveries",
            )
        };
        eventually(DELIVERY, "the failure is recorded", || async { status().await[0].attempts == 1 }).await;
        let first = status().await;
        assert_eq!(first[0].status, "pending", "{b}");
        assert!(first[0].last_error.as_deref().is_some_and(|e| e.contains("500")), "{b}: {first:?}");
        // Not before the backoff (2 s, then 4 s) has passed on the server's clock.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(rp.received().len(), 1, "{b}: no retry before its time");
        server.clock.advance(Duration::from_secs(2));
        eventually(DELIVERY, "second attempt", || async { rp.received().len() == 2 }).await;
        eventually(DELIVERY, "its failure is recorded", || async { status().await[0].attempts == 2 }).await;
        server.clock.advance(Duration::from_secs(4));
        eventually(DELIVERY, "third attempt, delivered", || async { status().await[0].status == "delivered" }).await;
        let received = rp.received();
        assert_eq!(received.len(), 3, "{b}");
        let jtis: Vec<String> =
            received.iter().map(|(_, t)| claims(t)["jti"].as_str().unwrap_or_default().to_owned()).collect();
        assert!(jtis.iter().all(|j| *j == jtis[0]), "{b}: every attempt carries the same jti");
        assert_eq!(status().await[0].attempts, 3, "{b}");

        // An endpoint that never answers well is given up after backchannel_max_attempts.
        let p = policy(|p| p.backchannel_logout_uri = uri(&dead.backchannel_uri("notes")));
        let patch = latchkey_core::records::ClientPatch { session_policy: Some(p), ..Default::default() };
        let notes_id = ok(latchkey_core::domain::ClientId::parse("notes"), "id");
        ok(
            server.state().services.clients().update(&TenantId::default_tenant(), &notes_id, patch, &Actor::Cli).await,
            "update",
        );
        eventually(DELIVERY, "cache sees the new URI", || async {
            server.state().caches.client(&notes_id).await.ok().flatten().is_some_and(|c| {
                c.session_policy
                    .backchannel_logout_uri
                    .as_ref()
                    .is_some_and(|u| u.as_str().contains(&dead.addr.port().to_string()))
            })
        })
        .await;
        notes.sign_in(&server, &browser, "ada", "openid").await;
        let which = SessionSelector::User { sub: sub.clone(), except_sid: None };
        ok(
            server
                .state()
                .services
                .sessions()
                .end(&TenantId::default_tenant(), &which, "test", false, &Actor::Cli)
                .await,
            "end",
        );
        // Move the clock only once the failed attempt is recorded: its retry time is
        // taken from the clock when the sender records it.
        let recorded = |n: i64| {
            let status = &status;
            async move { status().await.iter().any(|d| d.status == "pending" && d.attempts == n) }
        };
        for n in 1..=2 {
            eventually(DELIVERY, "a failed attempt recorded", || recorded(n)).await;
            server.clock.advance(Duration::from_secs(8));
        }
        eventually(DELIVERY, "given up", || async { status().await.iter().any(|d| d.status == "failed") }).await;
        assert_eq!(dead.received().len(), 3, "{b}: backchannel_max_attempts is 3");
        server.stop().await;
    }
}

#[tokio::test]
async fn logout_tokens_queued_while_no_server_runs_are_delivered_after_the_start() {
    for db in all_backends().await {
        let b = db.backend;
        let rp = RelyingParty::start(0).await;
        let dir = Arc::new(ok(tempfile::tempdir(), "dir"));
        let server = start_in(db.clone(), dir.clone(), Clock::system(), &[&rp]).await;
        setup(&server, &rp).await;
        let browser = Browser::new(server.server.addr);
        let (_, id) = notes_tokens(&server, &browser, "openid").await;
        let config = server.state().config.clone();
        server.stop().await;

        // What `latchkey user lock` does, with the server down: lock, end every session.
        let foundation = ok(latchkey_service::Foundation::open((*config).clone(), Clock::system()).await, "open");
        let services = latchkey_service::Latchkey::new(foundation, config.clone());
        let sub = ok(SubjectId::parse(id["sub"].as_str().unwrap_or_default()), "sub");
        let tenant = TenantId::default_tenant();
        let lock = latchkey_service::users::StateChange::Lock;
        let ended = ok(services.users().change_state(&tenant, &sub, lock, &Actor::Cli).await, "lock");
        assert_eq!(ended, 1, "{b}");
        services.system().close().await;
        assert!(rp.received().is_empty(), "{b}: nobody sent anything yet");

        let server = start_in(db, dir, Clock::system(), &[&rp]).await;
        eventually(DELIVERY, "delivery after the start", || async { rp.received().len() == 1 }).await;
        let (client, token) = rp.received().remove(0);
        let c = verify_logout_token(&token, &jwks(&server).await, &server.server.issuer, &client);
        assert_eq!(c["sid"], id["sid"], "{b}");
        server.stop().await;
    }
}

#[tokio::test]
async fn locking_or_deleting_a_user_ends_sessions_and_every_refresh_token() {
    for db in all_backends().await {
        let b = db.backend;
        let rp = RelyingParty::start(0).await;
        let server = start_in(db, Arc::new(ok(tempfile::tempdir(), "dir")), Clock::system(), &[&rp]).await;
        setup(&server, &rp).await;
        let secret = secret_of("notes");
        let notes = Rp { id: "notes", secret: &secret, callback: NOTES };
        let browser = Browser::new(server.server.addr);
        let (tokens, id) = notes_tokens(&server, &browser, "openid offline_access").await;
        let offline = tokens["refresh_token"].as_str().unwrap_or_default().to_owned();
        let sub = ok(SubjectId::parse(id["sub"].as_str().unwrap_or_default()), "sub");
        let which = SessionSelector::User { sub: sub.clone(), except_sid: None };
        let ended = ok(
            server
                .state()
                .services
                .sessions()
                .end(&TenantId::default_tenant(), &which, "user_locked", true, &Actor::Cli)
                .await,
            "end",
        );
        assert_eq!(ended.sessions.len(), 1, "{b}");
        assert!(!ended.revoked_grants.is_empty(), "{b}: the offline grant is revoked too");
        let (status, body) = notes.refresh(&server, &offline).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "{b}");
        eventually(DELIVERY, "back-channel logout", || async { rp.received().len() == 1 }).await;
        server.stop().await;
    }
}

#[tokio::test]
async fn a_deleted_clients_access_tokens_stop_working_at_userinfo() {
    let rp = RelyingParty::start(0).await;
    let server =
        start_in(support::sqlite().await, Arc::new(ok(tempfile::tempdir(), "dir")), Clock::system(), &[&rp]).await;
    setup(&server, &rp).await;
    let browser = Browser::new(server.server.addr);
    let (tokens, _) = notes_tokens(&server, &browser, "openid").await;
    let access = tokens["access_token"].as_str().unwrap_or_default().to_owned();
    let userinfo = || async {
        ok(server.http.get(server.url("/userinfo")).bearer_auth(&access).send().await, "userinfo").status()
    };
    assert_eq!(userinfo().await, StatusCode::OK);
    let id = ok(latchkey_core::domain::ClientId::parse("notes"), "id");
    ok(server.state().services.clients().delete(&TenantId::default_tenant(), &id, &Actor::Cli).await, "delete");
    eventually(DELIVERY, "the deletion reaches the cache", || async { userinfo().await == StatusCode::UNAUTHORIZED })
        .await;
    server.stop().await;
}
