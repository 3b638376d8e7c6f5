//! Text messages through a Twilio API stand-in on 127.0.0.1, reached through the outbound
//! guard (opened for `sms` in `outbound.allow`, as an operator would): each request is
//! checked exactly (path, Basic auth, form fields); a 201 delivers; a 400 with Twilio's
//! error 21211 gives the message up, one about the account (21608) keeps it waiting; 5xx answers are retried until the circuit opens, which
//! `/readyz` shows without failing; and a number confirmed on the security page.

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use base64::Engine as _;
use latchkey_config::{Purpose, SmsConfig, SmsDailyLimits};
use latchkey_core::domain::TenantId;
use latchkey_core::records::Actor;
use support::{TestServer, all_backends, allow_loopback, eventually, ok, sqlite};

const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "twilio-auth-token";
const FROM: &str = "+15005550006";

/// What the stand-in got, and how it answers (201, or a status to fail with).
#[derive(Clone, Default)]
struct Twilio {
    received: Arc<Mutex<Vec<HashMap<String, String>>>>,
    refused: Arc<Mutex<Vec<String>>>,
    fail_with: Arc<AtomicU16>,
    /// Requests answered with an error about the account (21608, a trial account).
    account_errors: Arc<AtomicU16>,
}

async fn messages(
    State(t): State<Twilio>,
    Path(account): Path<String>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> axum::response::Response {
    let expected = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{ACCOUNT}:{TOKEN}")));
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let mut problems = Vec::new();
    if account != ACCOUNT {
        problems.push(format!("path account {account}"));
    }
    if auth != expected {
        problems.push("basic auth".to_owned());
    }
    let keys: Vec<&str> = {
        let mut k: Vec<&str> = form.keys().map(String::as_str).collect();
        k.sort_unstable();
        k
    };
    if keys != ["Body", "From", "To"] || form.get("From").map(String::as_str) != Some(FROM) {
        problems.push(format!("fields {keys:?}"));
    }
    if !problems.is_empty() {
        if let Ok(mut r) = t.refused.lock() {
            r.push(problems.join(", "));
        }
        return (StatusCode::UNAUTHORIZED, axum::Json(serde_json::json!({"code": 20003, "status": 401})))
            .into_response();
    }
    if form.get("To").is_some_and(|to| to.ends_with("0000666")) {
        let body = serde_json::json!({"code": 21211, "message": "The 'To' number is not a valid phone number.", "status": 400});
        return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
    }
    if form.get("To").is_some_and(|to| to.ends_with("0000608")) {
        t.account_errors.fetch_add(1, Ordering::SeqCst);
        let body = serde_json::json!({"code": 21608, "message": "The number is unverified. Trial accounts cannot send messages to unverified numbers.", "status": 400});
        return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
    }
    let failing = t.fail_with.load(Ordering::SeqCst);
    if failing != 0 {
        return StatusCode::from_u16(failing).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR).into_response();
    }
    if let Ok(mut r) = t.received.lock() {
        r.push(form);
    }
    let body = serde_json::json!({"sid": "SM0123456789abcdef0123456789abcdef", "status": "queued"});
    (StatusCode::CREATED, axum::Json(body)).into_response()
}

async fn start_twilio() -> (Twilio, u16) {
    let twilio = Twilio::default();
    let app = axum::Router::new()
        .route("/2010-04-01/Accounts/{account}/Messages.json", axum::routing::post(messages))
        .with_state(twilio.clone());
    let listener = ok(tokio::net::TcpListener::bind("127.0.0.1:0").await, "bind");
    let port = ok(listener.local_addr(), "addr").port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (twilio, port)
}

fn sms(port: u16) -> SmsConfig {
    SmsConfig {
        base_url: format!("http://127.0.0.1:{port}"),
        account_sid: ACCOUNT.into(),
        api_key_sid: None,
        auth_token: latchkey_config::SecretRef::new(TOKEN),
        from: Some(FROM.into()),
        messaging_service_sid: None,
        allowed_countries: vec!["+44".into()],
        daily_limits: SmsDailyLimits::default(),
        timeout: Duration::from_secs(2),
        retry_base: Duration::from_secs(1),
        circuit_cool_down: Duration::from_secs(30),
    }
}

async fn queue(server: &TestServer, to: &str, body: &str) {
    let services = &server.state().services;
    let text = latchkey_service::sms::TextMessage { to: to.into(), body: body.into() };
    let store = latchkey_service::testing::store_of(services);
    let mut tx = ok(store.transaction().await, "tx");
    let expires = services.clock.now().plus(Duration::from_secs(600));
    let tenant = TenantId::default_tenant();
    ok(services.outbox().queue_text(tx.as_mut(), &tenant, "test", &text, expires, &Actor::Cli).await, "queue");
    ok(tx.commit().await, "commit");
}

#[tokio::test]
async fn texts_reach_the_api_exactly_as_twilio_expects_and_failures_wait_behind_the_breaker() {
    for db in all_backends().await {
        let b = db.backend;
        let (twilio, port) = start_twilio().await;
        let server = TestServer::start(db, move |c| {
            c.sms = Some(sms(port));
            c.outbound.allow.push(allow_loopback(Purpose::Sms, &[port]));
        })
        .await;
        queue(&server, "+447700900123", "123456 is your code").await;
        eventually(Duration::from_secs(5), &format!("{b}: the API got the text"), || async {
            twilio.received.lock().map(|r| r.len()).unwrap_or(0) == 1
        })
        .await;
        let got = twilio.received.lock().map(|r| r[0].clone()).unwrap_or_default();
        assert_eq!(got.get("To").map(String::as_str), Some("+447700900123"), "{b}");
        assert_eq!(got.get("Body").map(String::as_str), Some("123456 is your code"), "{b}");
        assert!(twilio.refused.lock().map(|r| r.is_empty()).unwrap_or(false), "{b}: {:?}", twilio.refused);

        // A number Twilio refuses (21211) is given up, audited with the code, not the number.
        queue(&server, "+447700000666", "x").await;
        let store = latchkey_service::testing::store_of(&server.state().services);
        eventually(Duration::from_secs(5), &format!("{b}: given up"), || async {
            let events = store.recent_audit_events(&TenantId::default_tenant(), 20).await.unwrap_or_default();
            events.iter().any(|e| e.action == "message.failed" && e.details.to_string().contains("21211"))
        })
        .await;
        let events = ok(store.recent_audit_events(&TenantId::default_tenant(), 20).await, b);
        assert!(!events.iter().any(|e| e.details.to_string().contains("0000666")), "{b}: no number in the audit log");

        // A 400 about the account (21608: a trial account) is the operator's to fix: the
        // message waits, it is not given up.
        queue(&server, "+447700000608", "y").await;
        eventually(Duration::from_secs(5), &format!("{b}: the API was asked"), || async {
            twilio.account_errors.load(Ordering::SeqCst) >= 1
        })
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let events = ok(store.recent_audit_events(&TenantId::default_tenant(), 20).await, b);
        assert!(
            !events.iter().any(|e| e.action == "message.failed" && e.details.to_string().contains("21608")),
            "{b}: an account error keeps the message waiting"
        );

        // An outage: 5xx answers are retried until the circuit opens; /readyz shows it.
        twilio.fail_with.store(503, Ordering::SeqCst);
        for i in 0..6 {
            queue(&server, &format!("+44770090020{i}"), "later").await;
        }
        eventually(Duration::from_secs(10), &format!("{b}: the circuit opens"), || async {
            server.state().services.outbox().sms_delayed()
        })
        .await;
        let ready = server.get_json("/readyz").await;
        assert_eq!((ready["status"].as_str(), ready["sms"].as_str()), (Some("ready"), Some("delayed")), "{b}: {ready}");
        assert_eq!(twilio.received.lock().map(|r| r.len()).unwrap_or(0), 1, "{b}: nothing more delivered");
    }
}

#[tokio::test]
async fn a_number_is_confirmed_on_the_security_page_with_the_texted_code() {
    let (twilio, port) = start_twilio().await;
    let server = TestServer::start(sqlite().await, move |c| {
        c.sms = Some(sms(port));
        c.outbound.allow.push(allow_loopback(Purpose::Sms, &[port]));
        c.registration.mode = latchkey_config::RegistrationMode::Open;
    })
    .await;
    let browser = support::passkey::PasskeyBrowser::new(&server);
    let mut device = support::authenticator::SoftAuthenticator::new(support::authenticator::Flags::default());
    let (status, page) = browser.sign_up(&mut device, "ada", "ada@example.com").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let (_, page, _) = browser.page("/account/security").await;
    assert!(page.contains("id=\"phone-form\""), "{page}");
    for bad in ["12345", "+1 202 555 0100", &"9".repeat(50)] {
        let refused = browser.security_post("/account/phone", &[("number", bad)]).await;
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST, "`{bad}`");
    }
    let sent = browser.security_post("/account/phone", &[("number", "+44 7700 900123")]).await;
    assert!(browser.location(&sent).ends_with("done=phone_code_sent"));
    eventually(Duration::from_secs(5), "the code was texted", || async {
        twilio.received.lock().map(|r| r.len()).unwrap_or(0) == 1
    })
    .await;
    let body = twilio.received.lock().map(|r| r[0].get("Body").cloned().unwrap_or_default()).unwrap_or_default();
    let code: String = body.chars().take(6).collect();
    let (_, page, _) = browser.page("/account/security").await;
    assert!(page.contains("Code texted to +447700900123"), "{page}");
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let refused = browser.security_post("/account/phone/confirm", &[("code", wrong)]).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let confirmed = browser.security_post("/account/phone/confirm", &[("code", &code)]).await;
    assert!(browser.location(&confirmed).ends_with("done=phone_verified"));
    let (_, page, _) = browser.page("/account/security").await;
    assert!(page.contains("+447700900123 <span class=\"tag\">verified</span>"), "{page}");
}

/// `login.sms_second_factor`: after the password, a code texted to the verified number
/// finishes the sign-in; a wrong one does not; without the setting nothing is offered.
#[tokio::test]
async fn a_texted_code_is_the_second_step_of_a_password_sign_in_where_turned_on() {
    for on in [true, false] {
        let (twilio, port) = start_twilio().await;
        let server = TestServer::start(sqlite().await, move |c| {
            c.sms = Some(sms(port));
            c.outbound.allow.push(allow_loopback(Purpose::Sms, &[port]));
            c.login.sms_second_factor = on;
        })
        .await;
        let services = &server.state().services;
        let tenant = TenantId::default_tenant();
        let ada = support::operator_made_user(&server, "ada", true).await;
        let store = latchkey_service::testing::store_of(services);
        let mut tx = ok(store.transaction().await, "tx");
        ok(tx.verify_phone(&tenant, &ada.sub, "+447700900123", &Actor::Cli).await, "phone");
        ok(tx.commit().await, "commit");

        let b = support::passkey::PasskeyBrowser::new(&server);
        let (_, _, csrf) = b.page("/login").await;
        let form = [("csrf", csrf.as_str()), ("username", "ada"), ("password", support::flow::PASSWORD)];
        let after_password = b.browser.post_form(&b.url("/login"), &form).await;
        if !on {
            assert_ne!(b.location(&after_password), b.url("/login/second-factor"), "off: the password is enough");
            continue;
        }
        assert_eq!(b.location(&after_password), b.url("/login/second-factor"));
        let (status, page, csrf) = b.page("/login/second-factor").await;
        assert_eq!(status, StatusCode::OK);
        assert!(page.contains("id=\"sms-send\"") && page.contains("+44 ••• ••23"), "{page}");
        assert!(!page.contains("7700900123"), "the number is masked");
        let no_csrf = b.browser.post_form(&b.url("/login/second-factor/sms"), &[]).await;
        assert_eq!(no_csrf.status(), StatusCode::BAD_REQUEST);
        let sent = b.browser.post_form(&b.url("/login/second-factor/sms"), &[("csrf", &csrf)]).await;
        assert_eq!(sent.status(), StatusCode::OK);
        let page = ok(sent.text().await, "page");
        assert!(page.contains("id=\"sms-sent\"") && page.contains("+44 ••• ••23"), "{page}");
        eventually(Duration::from_secs(5), "the code was texted", || async {
            twilio.received.lock().map(|r| r.len()).unwrap_or(0) == 1
        })
        .await;
        let body = twilio.received.lock().map(|r| r[0].get("Body").cloned().unwrap_or_default()).unwrap_or_default();
        assert!(body.contains("to sign in"), "{body}");
        let code: String = body.chars().take(6).collect();
        let wrong = if code == "000000" { "111111" } else { "000000" };
        let (_, _, csrf) = b.page("/login/second-factor").await;
        let form = [("csrf", csrf.as_str()), ("method", "sms"), ("code", wrong)];
        let refused = b.browser.post_form(&b.url("/login/second-factor"), &form).await;
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
        let form = [("csrf", csrf.as_str()), ("method", "sms"), ("code", code.as_str())];
        let done = b.browser.post_form(&b.url("/login/second-factor"), &form).await;
        assert!(done.status().is_redirection(), "{}", done.status());
        let (status, _, _) = b.page("/account/security").await;
        assert_eq!(status, StatusCode::OK, "signed in");
        let events = ok(store.recent_audit_events(&tenant, 20).await, "audit");
        assert!(events.iter().any(|e| e.action == "sign_in.code_sent"));
    }
}
