//! Single sign-on sessions: shared by clients, ended by idle and absolute expiry, listed
//! and ended on the account page, `prompt=select_account`, and the check-session iframe.

mod support;

use std::time::Duration;

use latchkey_core::domain::TenantId;
use latchkey_core::{Clock, UnixTime};
use latchkey_service::testing::Expired;
use latchkey_service::testing::clean;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_SECURITY_POLICY, SET_COOKIE, X_FRAME_OPTIONS};
use support::browser::{Browser, hidden_field};
use support::flow::{Rp, claims, param, secret_of};
use support::{ClientSpec, TestServer, all_backends, ok, sqlite};

const WEBAPP: &str = "https://app.example.com/callback";
const NOTES: &str = "https://notes.example.com/callback";

async fn two_clients(server: &TestServer) -> (String, String) {
    server.create_user("ada", support::flow::PASSWORD).await;
    let spec = |id, uri| ClientSpec { id, redirect_uris: uri, first_party: true, ..ClientSpec::default() };
    server.create_client(spec("webapp", &[WEBAPP])).await;
    server.create_client(spec("notes", &[NOTES])).await;
    (secret_of("webapp"), secret_of("notes"))
}

fn frozen() -> Clock {
    Clock::frozen(UnixTime::from_secs(1_800_000_000))
}

async fn start(db: std::sync::Arc<latchkey_service::testing::TestDatabase>, clock: Clock) -> TestServer {
    ok(
        TestServer::try_start(db, clock, |c| {
            c.sessions.idle_timeout = Duration::from_secs(1_800);
            c.sessions.lifetime = Duration::from_secs(7_200);
        })
        .await,
        "start",
    )
}

#[tokio::test]
async fn one_sign_in_serves_every_client_with_one_sid() {
    for db in all_backends().await {
        let b = db.backend;
        let server = start(db, Clock::system()).await;
        let (webapp_secret, notes_secret) = two_clients(&server).await;
        let webapp = Rp { id: "webapp", secret: &webapp_secret, callback: WEBAPP };
        let notes = Rp { id: "notes", secret: &notes_secret, callback: NOTES };
        let browser = Browser::new(server.server.addr);

        let first = webapp.sign_in(&server, &browser, "ada", "openid").await;
        // The second client gets its code at once: no login page.
        let second = notes.start(&server, &browser, "openid", &[]).await;
        assert!(second.starts_with(NOTES), "{b}: SSO should skip the login page, went to {second}");
        let second = ok(url::Url::parse(&second), "callback");
        let id_a = claims(webapp.tokens(&server, &first).await["id_token"].as_str().unwrap_or_default());
        let id_b = claims(notes.tokens(&server, &second).await["id_token"].as_str().unwrap_or_default());
        assert!(id_a["sid"].as_str().is_some_and(|s| s.len() >= 16), "{b}: {id_a}");
        assert_eq!(id_a["sid"], id_b["sid"], "{b}: one session, one sid");
        assert_eq!(id_a["auth_time"], id_b["auth_time"], "{b}");
        for callback in [&first, &second] {
            let state = param(callback, "session_state").unwrap_or_default();
            assert!(state.split_once('.').is_some_and(|(h, salt)| h.len() == 64 && !salt.is_empty()), "{b}: {state}");
        }
        // The session knows both clients.
        let sub = ok(latchkey_core::domain::SubjectId::parse(id_a["sub"].as_str().unwrap_or_default()), "sub");
        let idle = server.state().config.sessions.idle_timeout;
        let list = ok(
            server
                .state()
                .services
                .sessions()
                .of_user(&TenantId::default_tenant(), &sub, server.clock.now(), idle)
                .await,
            "sessions",
        );
        assert_eq!(list.len(), 1, "{b}");
        let mut clients: Vec<String> = list[0].clients.iter().map(ToString::to_string).collect();
        clients.sort();
        assert_eq!(clients, vec!["notes".to_owned(), "webapp".to_owned()], "{b}");
        assert_eq!(Some(list[0].session.sid.as_str()), id_a["sid"].as_str(), "{b}");
        server.stop().await;
    }
}

#[tokio::test]
async fn sessions_end_when_idle_and_at_their_absolute_lifetime() {
    for db in all_backends().await {
        let b = db.backend;
        let server = start(db, frozen()).await;
        let (secret, _) = two_clients(&server).await;
        let webapp = Rp { id: "webapp", secret: &secret, callback: WEBAPP };
        let browser = Browser::new(server.server.addr);
        webapp.sign_in(&server, &browser, "ada", "openid").await;

        // Used every 25 minutes, the session outlives the 30-minute idle timeout...
        for _ in 0..3 {
            server.clock.advance(Duration::from_secs(1_500));
            let next = webapp.start(&server, &browser, "openid", &[]).await;
            assert!(next.starts_with(WEBAPP), "{b}: still signed in, went to {next}");
        }
        // ...but idle for 31 minutes it is over.
        server.clock.advance(Duration::from_secs(1_860));
        let next = webapp.start(&server, &browser, "openid", &[]).await;
        assert!(next.contains("/login?"), "{b}: idle session must end, went to {next}");

        // However active, a session ends at its absolute lifetime (2 h here).
        webapp.sign_in(&server, &browser, "ada", "openid").await;
        for _ in 0..4 {
            server.clock.advance(Duration::from_secs(1_500));
            assert!(webapp.start(&server, &browser, "openid", &[]).await.starts_with(WEBAPP), "{b}");
        }
        server.clock.advance(Duration::from_secs(1_300));
        let next = webapp.start(&server, &browser, "openid", &[]).await;
        assert!(next.contains("/login?"), "{b}: 2 h after sign-in the session is over, went to {next}");

        // The cleanup removes what expired.
        let (store, now) = (latchkey_service::testing::store_of(&server.state().services), server.clock.now());
        let sessions = [Expired::EndedSessions, Expired::IdleSessions];
        let removed = clean(store.as_ref(), &sessions, now, Duration::from_secs(1_800), now).await;
        // The idle session ended when ada signed in again; the one past its lifetime stays
        // until the cleanup (its list of clients goes with it).
        assert!(removed >= 1, "{b}: the expired session is gone ({removed})");
        server.stop().await;
    }
}

#[tokio::test]
async fn keep_me_signed_in_extends_the_lifetime_only_when_configured() {
    let remembered = |days: u64| {
        move |c: &mut latchkey_config::Config| {
            c.sessions.remember_me_lifetime = Duration::from_secs(days * 86_400);
        }
    };
    for (days, offered) in [(30, true), (0, false)] {
        let server = TestServer::start(sqlite().await, remembered(days)).await;
        server.create_user("ada", support::flow::PASSWORD).await;
        let browser = Browser::new(server.server.addr);
        let issuer = server.server.issuer.clone();
        let page = ok(browser.get(&format!("{issuer}/login")).await.text().await, "login page");
        assert_eq!(page.contains("name=\"remember\""), offered, "checkbox offered: {offered}");
        let csrf = hidden_field(&page, "csrf").unwrap_or_default();
        let form =
            [("csrf", csrf.as_str()), ("username", "ada"), ("password", support::flow::PASSWORD), ("remember", "1")];
        let response = browser.post_form(&format!("{issuer}/login"), &form).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let session_cookie = response
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|c| c.starts_with("latchkey-session=") && !c.contains("Max-Age=0"))
            .unwrap_or_default()
            .to_owned();
        let expected = if offered { 30 * 86_400 } else { 12 * 3_600 };
        assert!(session_cookie.ends_with(&format!("Max-Age={expected}")), "{session_cookie}");
        server.stop().await;
    }
}

/// Signs `browser` in through the login page with `return_to=account`.
async fn sign_in_to_account(server: &TestServer, browser: &Browser) -> String {
    let issuer = server.server.issuer.clone();
    let to_login = browser.get(&format!("{issuer}/account/sessions")).await;
    let login = Browser::location(&to_login, &issuer);
    assert!(login.ends_with("/login?return_to=account"), "{login}");
    let page = ok(browser.get(&login).await.text().await, "login page");
    let csrf = hidden_field(&page, "csrf").unwrap_or_default();
    let return_to = hidden_field(&page, "return_to").unwrap_or_default();
    let form = [
        ("csrf", csrf.as_str()),
        ("username", "ada"),
        ("password", support::flow::PASSWORD),
        ("return_to", return_to.as_str()),
    ];
    let done = browser.post_form(&format!("{issuer}/login"), &form).await;
    let account = Browser::location(&done, &issuer);
    assert!(account.ends_with("/account/sessions"), "{account}");
    ok(browser.get(&account).await.text().await, "account page")
}

fn sids(page: &str) -> Vec<String> {
    page.split("data-sid=\"").skip(1).filter_map(|s| s.split('"').next()).map(str::to_owned).collect()
}

#[tokio::test]
async fn the_account_page_lists_sessions_and_ends_them() {
    for db in all_backends().await {
        let b = db.backend;
        let server = start(db, Clock::system()).await;
        let (secret, _) = two_clients(&server).await;
        let webapp = Rp { id: "webapp", secret: &secret, callback: WEBAPP };
        let issuer = server.server.issuer.clone();
        let (laptop, phone) = (Browser::new(server.server.addr), Browser::new(server.server.addr));
        webapp.sign_in(&server, &phone, "ada", "openid").await;
        let page = sign_in_to_account(&server, &laptop).await;
        let listed = sids(&page);
        assert_eq!(listed.len(), 2, "{b}: {page}");
        assert_eq!(page.matches("(this browser)").count(), 1, "{b}");
        assert!(page.contains("webapp app"), "{b}: the phone's session lists its application");
        let csrf = hidden_field(&page, "csrf").unwrap_or_default();
        let this = page
            .split("data-sid=\"")
            .skip(1)
            .find(|entry| entry.split("</li>").next().is_some_and(|e| e.contains("(this browser)")))
            .and_then(|entry| entry.split('"').next())
            .unwrap_or_default()
            .to_owned();
        let other = listed.iter().find(|s| **s != this).cloned().unwrap_or_default();
        assert!(!this.is_empty() && !other.is_empty(), "{b}: {page}");

        // Bad input: a forged form, someone else's session.
        let end = format!("{issuer}/account/sessions/end");
        let forged = laptop.post_form(&end, &[("csrf", "forged"), ("sid", &other)]).await;
        assert_eq!(forged.status(), StatusCode::BAD_REQUEST, "{b}");
        let unknown = laptop.post_form(&end, &[("csrf", &csrf), ("sid", "not-a-session-of-yours")]).await;
        assert_eq!(unknown.status(), StatusCode::NOT_FOUND, "{b}");
        assert!(webapp.start(&server, &phone, "openid", &[]).await.starts_with(WEBAPP), "{b}: nothing ended");

        // Ending the phone's session signs the phone out.
        let ended = laptop.post_form(&end, &[("csrf", &csrf), ("sid", &other)]).await;
        assert_eq!(Browser::location(&ended, &issuer), format!("{issuer}/account/sessions"), "{b}");
        assert!(webapp.start(&server, &phone, "openid", &[]).await.contains("/login?"), "{b}: phone signed out");
        let page = ok(laptop.get(&format!("{issuer}/account/sessions")).await.text().await, "page");
        assert_eq!(sids(&page), vec![this.clone()], "{b}");

        // Ending this browser's own session is a sign-out.
        let own = laptop.post_form(&end, &[("csrf", &csrf), ("sid", &this)]).await;
        assert_eq!(own.status(), StatusCode::OK, "{b}");
        assert!(ok(own.text().await, "page").contains("Signed out"), "{b}");
        let after = laptop.get(&format!("{issuer}/account/sessions")).await;
        assert!(Browser::location(&after, &issuer).contains("/login?return_to=account"), "{b}");
        server.stop().await;
    }
}

#[tokio::test]
async fn select_account_offers_to_continue_or_to_switch() {
    let server = start(sqlite().await, Clock::system()).await;
    let (secret, _) = two_clients(&server).await;
    server.create_user("grace", support::flow::PASSWORD).await;
    let webapp = Rp { id: "webapp", secret: &secret, callback: WEBAPP };
    let browser = Browser::new(server.server.addr);
    let issuer = server.server.issuer.clone();
    let first = webapp.sign_in(&server, &browser, "ada", "openid").await;
    let ada_sid = claims(webapp.tokens(&server, &first).await["id_token"].as_str().unwrap_or_default())["sid"].clone();

    let choose = |choice: &'static str| {
        let (browser, server, webapp) = (&browser, &server, &webapp);
        async move {
            let page_url = webapp.start(server, browser, "openid", &[("prompt", "select_account")]).await;
            assert!(page_url.contains("/select-account?req="), "{page_url}");
            let page = ok(browser.get(&page_url).await.text().await, "page");
            assert!(page.contains("signed in as <strong>ada</strong>"), "{page}");
            let csrf = hidden_field(&page, "csrf").unwrap_or_default();
            let req = hidden_field(&page, "req").unwrap_or_default();
            let url = format!("{}/select-account", server.server.issuer);
            browser.post_form(&url, &[("csrf", csrf.as_str()), ("req", req.as_str()), ("choice", choice)]).await
        }
    };
    // A choice that is neither: an error page, the request still waits.
    let bad = choose("maybe").await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);

    // Continue: the code comes for the same session.
    let resumed = browser.get(&Browser::location(&choose("continue").await, &issuer)).await;
    let callback = ok(url::Url::parse(&Browser::location(&resumed, &issuer)), "callback");
    let same = claims(webapp.tokens(&server, &callback).await["id_token"].as_str().unwrap_or_default());
    assert_eq!(same["sid"], ada_sid);

    // Switch: signed out, and the login page for the same request.
    let login = Browser::location(&choose("switch").await, &issuer);
    assert!(login.contains("/login?req="), "{login}");
    let after = browser.sign_in(&login, &issuer, "grace", support::flow::PASSWORD).await;
    let resumed = browser.get(&Browser::location(&after, &issuer)).await;
    let callback = ok(url::Url::parse(&Browser::location(&resumed, &issuer)), "callback");
    let grace = claims(webapp.tokens(&server, &callback).await["id_token"].as_str().unwrap_or_default());
    assert_ne!(grace["sid"], ada_sid);
    assert_ne!(grace["sub"], same["sub"], "now signed in as grace");
    server.stop().await;
}

#[tokio::test]
async fn the_check_session_iframe_is_framable_by_clients_and_session_state_is_recomputable() {
    let server = start(sqlite().await, Clock::system()).await;
    let (secret, _) = two_clients(&server).await;
    let webapp = Rp { id: "webapp", secret: &secret, callback: WEBAPP };
    let browser = Browser::new(server.server.addr);
    let issuer = server.server.issuer.clone();

    let page = browser.get(&format!("{issuer}/session/check")).await;
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers().get(CONTENT_SECURITY_POLICY).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert!(csp.contains("frame-ancestors https://app.example.com https://notes.example.com"), "{csp}");
    assert!(!csp.contains('*'), "{csp}");
    assert!(page.headers().get(X_FRAME_OPTIONS).is_none(), "X-Frame-Options would forbid the framing");
    let html = ok(page.text().await, "html");
    assert!(html.contains("/static/check_session.js") && !html.contains("<script>"), "{html}");
    // Every other page still refuses framing.
    let login = browser.get(&format!("{issuer}/login")).await;
    assert_eq!(login.headers().get(X_FRAME_OPTIONS).and_then(|v| v.to_str().ok()), Some("DENY"));

    // Sign in: the browser-state cookie is script-readable, cross-site, and session_state
    // is SHA-256(client_id origin browser_state salt) . salt.
    let location = webapp.start(&server, &browser, "openid", &[]).await;
    let signed_in = browser.sign_in(&location, &issuer, "ada", support::flow::PASSWORD).await;
    let cookie = signed_in
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("latchkey-browser-state="))
        .unwrap_or_default()
        .to_owned();
    assert!(cookie.contains("SameSite=None; Secure") && !cookie.contains("HttpOnly"), "{cookie}");
    let browser_state = cookie.trim_start_matches("latchkey-browser-state=").split(';').next().unwrap_or_default();
    assert_eq!(browser_state.len(), 32, "{cookie}");
    let resumed = browser.get(&Browser::location(&signed_in, &issuer)).await;
    let callback = ok(url::Url::parse(&Browser::location(&resumed, &issuer)), "callback");
    let session_state = param(&callback, "session_state").unwrap_or_default();
    let (hash, salt) = session_state.split_once('.').unwrap_or_default();
    let input = format!("webapp https://app.example.com {browser_state} {salt}");
    let expected = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, input.as_bytes());
    let expected: String = expected.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hash, expected);
    server.stop().await;
}

#[tokio::test]
async fn a_locked_users_session_is_not_honoured() {
    let server = start(sqlite().await, Clock::system()).await;
    let (secret, _) = two_clients(&server).await;
    let webapp = Rp { id: "webapp", secret: &secret, callback: WEBAPP };
    let browser = Browser::new(server.server.addr);
    let callback = webapp.sign_in(&server, &browser, "ada", "openid").await;
    let id = claims(webapp.tokens(&server, &callback).await["id_token"].as_str().unwrap_or_default());
    let sub = ok(latchkey_core::domain::SubjectId::parse(id["sub"].as_str().unwrap_or_default()), "sub");
    let users = server.state().services.users();
    let lock = latchkey_service::users::StateChange::Lock;
    ok(users.change_state(&TenantId::default_tenant(), &sub, lock, &latchkey_core::records::Actor::Cli).await, "lock");
    support::eventually(Duration::from_secs(5), "the cache drops the user", || async {
        webapp.start(&server, &browser, "openid", &[]).await.contains("/login?")
    })
    .await;
    server.stop().await;
}

#[tokio::test]
async fn signing_in_again_rotates_the_cookie_and_keeps_the_sid_while_another_user_replaces_the_session() {
    for db in all_backends().await {
        let b = db.backend;
        let server = start(db, frozen()).await;
        let (secret, _) = two_clients(&server).await;
        let grace = server.create_user("grace", support::flow::PASSWORD).await;
        let webapp = Rp { id: "webapp", secret: &secret, callback: WEBAPP };
        let browser = Browser::new(server.server.addr);
        let issuer = server.server.issuer.clone();
        let first = claims(
            webapp.tokens(&server, &webapp.sign_in(&server, &browser, "ada", "openid").await).await["id_token"]
                .as_str()
                .unwrap_or_default(),
        );
        let ada = ok(latchkey_core::domain::SubjectId::parse(first["sub"].as_str().unwrap_or_default()), "sub");
        let sessions_of = |sub: latchkey_core::domain::SubjectId| {
            let server = &server;
            async move {
                let (now, idle) = (server.clock.now(), Duration::from_secs(1_800));
                ok(
                    server.state().services.sessions().of_user(&TenantId::default_tenant(), &sub, now, idle).await,
                    "list",
                )
            }
        };

        // prompt=login: the same user again. New cookie, new auth_time, same sid and clients.
        server.clock.advance(Duration::from_secs(60));
        let login = webapp.start(&server, &browser, "openid", &[("prompt", "login")]).await;
        assert!(login.contains("/login?req="), "{b}: {login}");
        let after = browser.sign_in(&login, &issuer, "ada", support::flow::PASSWORD).await;
        let rotated = after
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|c| c.starts_with("latchkey-session=") && !c.contains("Max-Age=0"));
        assert!(rotated, "{b}: a new session cookie at every sign-in");
        let resumed = browser.get(&Browser::location(&after, &issuer)).await;
        let callback = ok(url::Url::parse(&Browser::location(&resumed, &issuer)), "callback");
        let again = claims(webapp.tokens(&server, &callback).await["id_token"].as_str().unwrap_or_default());
        assert_eq!(again["sid"], first["sid"], "{b}: the sid survives the rotation");
        assert_eq!(again["auth_time"].as_i64(), first["auth_time"].as_i64().map(|t| t + 60), "{b}");
        let listed = sessions_of(ada.clone()).await;
        assert_eq!((listed.len(), listed[0].clients.len()), (1, 1), "{b}: still one session with its client");

        // Another user signing in here ends ada's session.
        let login = webapp.start(&server, &browser, "openid", &[("prompt", "login")]).await;
        let after = browser.sign_in(&login, &issuer, "grace", support::flow::PASSWORD).await;
        let resumed = browser.get(&Browser::location(&after, &issuer)).await;
        let callback = ok(url::Url::parse(&Browser::location(&resumed, &issuer)), "callback");
        let other = claims(webapp.tokens(&server, &callback).await["id_token"].as_str().unwrap_or_default());
        assert_ne!(other["sid"], first["sid"], "{b}");
        assert!(sessions_of(ada).await.is_empty(), "{b}: ada's session ended");
        assert_eq!(sessions_of(grace).await.len(), 1, "{b}");
        server.stop().await;
    }
}

#[tokio::test]
async fn session_refresh_tokens_keep_the_session_active_and_die_with_it() {
    for db in all_backends().await {
        let b = db.backend;
        let server = start(db, frozen()).await;
        server.create_user("ada", support::flow::PASSWORD).await;
        let session_policy =
            latchkey_core::domain::ClientSessionPolicy { session_refresh_tokens: true, ..Default::default() };
        let spec = ClientSpec { redirect_uris: &[WEBAPP], first_party: true, session_policy, ..ClientSpec::default() };
        server.create_client(spec).await;
        let secret = secret_of("webapp");
        let webapp = Rp { id: "webapp", secret: &secret, callback: WEBAPP };
        let browser = Browser::new(server.server.addr);
        let tokens = webapp.tokens(&server, &webapp.sign_in(&server, &browser, "ada", "openid").await).await;
        let mut refresh = tokens["refresh_token"].as_str().unwrap_or_else(|| panic!("{b}: {tokens}")).to_owned();
        assert!(!tokens["scope"].as_str().unwrap_or_default().contains("offline_access"), "{b}");
        // The app refreshing every 25 minutes keeps the 30-minute idle timeout away.
        for _ in 0..3 {
            server.clock.advance(Duration::from_secs(1_500));
            let (status, body) = webapp.refresh(&server, &refresh).await;
            assert_eq!(status, StatusCode::OK, "{b}: {body}");
            refresh = body["refresh_token"].as_str().unwrap_or_default().to_owned();
        }
        assert!(webapp.start(&server, &browser, "openid", &[]).await.starts_with(WEBAPP), "{b}: still signed in");
        // Idle past the timeout, the session is over, and so is its refresh token.
        server.clock.advance(Duration::from_secs(1_860));
        let (status, body) = webapp.refresh(&server, &refresh).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "{b}");
        server.stop().await;
    }
}

#[tokio::test]
async fn session_pages_answer_bad_input_with_an_error_page() {
    let server = start(sqlite().await, Clock::system()).await;
    let (secret, _) = two_clients(&server).await;
    let webapp = Rp { id: "webapp", secret: &secret, callback: WEBAPP };
    let browser = Browser::new(server.server.addr);
    let issuer = server.server.issuer.clone();
    webapp.sign_in(&server, &browser, "ada", "openid").await;
    let page = ok(browser.get(&format!("{issuer}/account/sessions")).await.text().await, "account");
    let csrf = hidden_field(&page, "csrf").unwrap_or_default();

    // The account page: no session named.
    let none = browser.post_form(&format!("{issuer}/account/sessions/end"), &[("csrf", &csrf)]).await;
    assert_eq!(none.status(), StatusCode::BAD_REQUEST);
    // Select-account: an unknown request, a forged form, a request of another browser.
    let unknown = browser.get(&format!("{issuer}/select-account?req=no-such-request")).await;
    assert_eq!(unknown.status(), StatusCode::BAD_REQUEST);
    assert!(ok(unknown.text().await, "page").contains("expired"));
    let page_url = webapp.start(&server, &browser, "openid", &[("prompt", "select_account")]).await;
    let req = page_url.split("req=").nth(1).unwrap_or_default().to_owned();
    let post = format!("{issuer}/select-account");
    let forged = browser.post_form(&post, &[("csrf", "forged"), ("req", &req), ("choice", "continue")]).await;
    assert_eq!(forged.status(), StatusCode::BAD_REQUEST);
    let stranger = Browser::new(server.server.addr);
    let theirs = stranger.get(&page_url).await;
    assert_eq!(theirs.status(), StatusCode::BAD_REQUEST, "a pending request belongs to the browser that made it");
    // The request still waits and works for its own browser.
    let resumed = browser.post_form(&post, &[("csrf", &csrf), ("req", &req), ("choice", "continue")]).await;
    let next = browser.get(&Browser::location(&resumed, &issuer)).await;
    assert!(Browser::location(&next, &issuer).starts_with(WEBAPP));
    server.stop().await;
}
