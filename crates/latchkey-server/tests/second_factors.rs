//! Second factors and account security: TOTP enrolment and sign-in (single-use codes),
//! recovery codes, recent authentication for changes, passwords on the security page, and
//! step-up for clients that require more.

mod support;

use std::time::Duration;

use latchkey_core::crypto::TotpSecret;
use latchkey_core::domain::ClientSessionPolicy;
use latchkey_core::{Clock, UnixTime};
use reqwest::StatusCode;
use support::authenticator::{Flags, SoftAuthenticator};
use support::browser::hidden_field;
use support::flow::{PASSWORD, Rp, claims, secret_of};
use support::passkey::{PasskeyBrowser, recovery_codes};
use support::{ClientSpec, TestServer, all_backends, ok, sqlite};

const CALLBACK: &str = "https://app.example.com/callback";

fn frozen() -> Clock {
    Clock::frozen(UnixTime::from_secs(1_800_000_000))
}

async fn password_sign_in(b: &PasskeyBrowser, login_path: &str, username: &str, password: &str) -> reqwest::Response {
    let (_, html, csrf) = b.page(login_path).await;
    let mut form = vec![("csrf", csrf.clone()), ("username", username.to_owned()), ("password", password.to_owned())];
    for field in ["req", "return_to"] {
        if let Some(v) = hidden_field(&html, field) {
            form.push((field, v));
        }
    }
    let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    b.browser.post_form(&b.url("/login"), &pairs).await
}

async fn second_factor(b: &PasskeyBrowser, method: &str, code: &str) -> reqwest::Response {
    let (status, _, csrf) = b.page("/login/second-factor").await;
    assert_eq!(status, StatusCode::OK, "second-factor page");
    b.browser.post_form(&b.url("/login/second-factor"), &[("csrf", &csrf), ("method", method), ("code", code)]).await
}

fn totp_now(server: &TestServer, secret: &TotpSecret) -> String {
    secret.code_at(u64::try_from(server.clock.now().secs()).unwrap_or(0)).unwrap_or_default()
}

/// Enrols TOTP for the signed-in browser; returns the secret.
async fn enrol_totp(server: &TestServer, b: &PasskeyBrowser) -> TotpSecret {
    let started = b.security_post("/account/totp/start", &[]).await;
    assert_eq!(b.location(&started), b.url("/account/totp"));
    let (status, page, csrf) = b.page("/account/totp").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("<svg") && !page.contains("<?xml"), "an inline SVG QR code");
    let text =
        page.split("<code id=\"totp-secret\">").nth(1).and_then(|s| s.split("</code>").next()).unwrap_or_default();
    let secret = TotpSecret::from_base32(text).unwrap_or_else(|| panic!("a base32 secret on the page: {text:?}"));
    let wrong = b.browser.post_form(&b.url("/account/totp/confirm"), &[("csrf", &csrf), ("code", "000000")]).await;
    assert_eq!(wrong.status(), StatusCode::BAD_REQUEST, "a wrong code does not turn it on");
    let code = totp_now(server, &secret);
    let confirmed = b.browser.post_form(&b.url("/account/totp/confirm"), &[("csrf", &csrf), ("code", &code)]).await;
    assert_eq!(b.location(&confirmed), b.url("/account/security?done=totp_enabled"));
    secret
}

#[tokio::test]
async fn totp_is_enrolled_then_required_after_the_password_and_each_code_works_once() {
    for db in all_backends().await {
        let backend = db.backend;
        let server = ok(TestServer::try_start(db, frozen(), |_| {}).await, "start");
        server.create_user("ada", PASSWORD).await;
        server.create_client(ClientSpec { first_party: true, ..ClientSpec::default() }).await;
        let b = PasskeyBrowser::new(&server);
        let signed_in = password_sign_in(&b, "/login?return_to=security", "ada", PASSWORD).await;
        assert_eq!(b.location(&signed_in), b.url("/account/security"), "{backend}");
        let secret = enrol_totp(&server, &b).await;
        assert!(b.page("/account/security").await.1.contains("id=\"totp-state\">On."), "{backend}");

        // Password alone is no longer enough: the second step asks for a code.
        server.clock.advance(Duration::from_secs(30));
        let secret_of_app = secret_of("webapp");
        let rp = Rp { id: "webapp", secret: &secret_of_app, callback: CALLBACK };
        let other = PasskeyBrowser::new(&server);
        let login = rp.start(&server, &other.browser, "openid", &[]).await;
        let after_password = password_sign_in(&other, login.trim_start_matches(&other.issuer), "ada", PASSWORD).await;
        assert_eq!(other.location(&after_password), other.url("/login/second-factor"), "{backend}");
        // Its forms end at the client (no consent for a first-party client): CSP allows it.
        let page = other.browser.get(&other.url("/login/second-factor")).await;
        let csp = page.headers().get("content-security-policy").and_then(|v| v.to_str().ok()).unwrap_or_default();
        assert!(csp.contains("form-action 'self' https://app.example.com"), "{backend}: {csp}");
        let wrong = second_factor(&other, "totp", "123456").await;
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED, "{backend}");
        let code = totp_now(&server, &secret);
        let done = second_factor(&other, "totp", &code).await;
        let resumed = other.browser.get(&other.location(&done)).await;
        let callback = ok(url::Url::parse(&other.location(&resumed)), "callback");
        let id_token = claims(rp.tokens(&server, &callback).await["id_token"].as_str().unwrap_or_default());
        assert_eq!(id_token["amr"], serde_json::json!(["pwd", "otp", "mfa"]), "{backend}");
        assert_eq!(id_token["acr"], "urn:latchkey:acr:mfa", "{backend}");

        // The same code (same time step) does not work twice.
        let third = PasskeyBrowser::new(&server);
        password_sign_in(&third, "/login", "ada", PASSWORD).await;
        assert_eq!(second_factor(&third, "totp", &code).await.status(), StatusCode::UNAUTHORIZED, "{backend}: replay");
    }
}

#[tokio::test]
async fn changes_need_a_recent_sign_in_and_removing_a_factor_ends_other_sessions() {
    let server = ok(TestServer::try_start(sqlite().await, frozen(), |_| {}).await, "start");
    server.create_user("ada", PASSWORD).await;
    let b = PasskeyBrowser::new(&server);
    password_sign_in(&b, "/login", "ada", PASSWORD).await;
    let secret = enrol_totp(&server, &b).await;
    // Another browser signed in with both factors.
    server.clock.advance(Duration::from_secs(30));
    let elsewhere = PasskeyBrowser::new(&server);
    password_sign_in(&elsewhere, "/login", "ada", PASSWORD).await;
    let code = totp_now(&server, &secret);
    assert_eq!(second_factor(&elsewhere, "totp", &code).await.status(), StatusCode::SEE_OTHER);
    assert_eq!(elsewhere.page("/account/security").await.0, StatusCode::OK);

    // Six minutes later, removing the app asks to confirm it's you first.
    server.clock.advance(Duration::from_secs(360));
    let stale = b.security_post("/account/totp/remove", &[]).await;
    assert_eq!(b.location(&stale), b.url("/login?return_to=security"));
    assert!(b.page("/account/security").await.1.contains("id=\"totp-state\">On."), "still on");
    let codes = b.security_post("/account/recovery-codes", &[]).await;
    assert_eq!(b.location(&codes), b.url("/login?return_to=security"), "regenerating codes too");
    let (_, login_page, _) = b.page("/login?return_to=security").await;
    assert!(login_page.contains("confirm it"), "the login page says why");

    // Signing in again (both factors) makes it recent; removal ends the other session.
    let again = password_sign_in(&b, "/login?return_to=security", "ada", PASSWORD).await;
    assert_eq!(b.location(&again), b.url("/login/second-factor"));
    let code = totp_now(&server, &secret);
    let done = second_factor(&b, "totp", &code).await;
    assert_eq!(b.location(&done), b.url("/account/security"));
    let removed = b.security_post("/account/totp/remove", &[]).await;
    assert_eq!(b.location(&removed), b.url("/account/security?done=totp_removed"));
    let (status, _, _) = elsewhere.page("/account/security").await;
    assert_eq!(status, StatusCode::SEE_OTHER, "the other browser was signed out");
}

#[tokio::test]
async fn recovery_codes_sign_in_once_and_lead_to_adding_a_passkey() {
    for db in all_backends().await {
        let backend = db.backend;
        let server = TestServer::start(db, |c| c.registration.mode = latchkey_config::RegistrationMode::Open).await;
        let mut device = SoftAuthenticator::new(Flags::default());
        let (_, page) = PasskeyBrowser::new(&server).sign_up(&mut device, "ada", "").await;
        let codes = recovery_codes(&page);
        let b = PasskeyBrowser::new(&server);
        let (_, _, csrf) = b.page("/login/recovery").await;
        let use_code = |user: &'static str, code: String| {
            let (b, csrf) = (&b, csrf.clone());
            async move {
                b.browser
                    .post_form(&b.url("/login/recovery"), &[("csrf", &csrf), ("username", user), ("code", &code)])
                    .await
            }
        };
        assert_eq!(use_code("nobody", codes[0].clone()).await.status(), StatusCode::UNAUTHORIZED, "{backend}");
        assert_eq!(use_code("ada", "zzzzz-zzzzz".into()).await.status(), StatusCode::UNAUTHORIZED, "{backend}");
        // Typed in capitals with a space instead of the dash: still the code.
        let signed_in = use_code("ada", codes[0].to_uppercase().replace('-', " ")).await;
        assert_eq!(b.location(&signed_in), b.url("/account/security?recovered=1"), "{backend}");
        let (_, security, _) = b.page("/account/security?recovered=1").await;
        assert!(security.contains("id=\"recovered\"") && security.contains("9 of 10 left."), "{backend}");
        let other = PasskeyBrowser::new(&server);
        let (_, _, other_csrf) = other.page("/login/recovery").await;
        let reused = other
            .browser
            .post_form(
                &other.url("/login/recovery"),
                &[("csrf", &other_csrf), ("username", "ada"), ("code", &codes[0])],
            )
            .await;
        assert_eq!(reused.status(), StatusCode::UNAUTHORIZED, "{backend}: a used code");
        // The recovery sign-in is recent: a new passkey can be added right away.
        let mut new_device = SoftAuthenticator::new(Flags::default());
        let added = ok(b.add_passkey(&mut new_device, "New phone").await, "add");
        assert_eq!(b.location(&added), b.url("/account/security?done=passkey_added"), "{backend}");
        // Regenerating replaces every code.
        let fresh = b.security_post("/account/recovery-codes", &[]).await;
        let fresh = recovery_codes(&ok(fresh.text().await, "codes page"));
        assert_eq!(fresh.len(), 10);
        let old = other
            .browser
            .post_form(
                &other.url("/login/recovery"),
                &[("csrf", &other_csrf), ("username", "ada"), ("code", &codes[1])],
            )
            .await;
        assert_eq!(old.status(), StatusCode::UNAUTHORIZED, "{backend}: old codes die");
    }
}

#[tokio::test]
async fn passwords_are_set_changed_and_removed_on_the_security_page() {
    let server =
        TestServer::start(sqlite().await, |c| c.registration.mode = latchkey_config::RegistrationMode::Open).await;
    let mut device = SoftAuthenticator::new(Flags::default());
    let b = PasskeyBrowser::new(&server);
    b.sign_up(&mut device, "ada", "").await;
    for (password, confirm) in [("short", "short"), ("long enough 1", "long enough 2")] {
        let refused = b.security_post("/account/password", &[("password", password), ("confirm", confirm)]).await;
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST, "{password} / {confirm}");
    }
    let set = b.security_post("/account/password", &[("password", PASSWORD), ("confirm", PASSWORD)]).await;
    assert_eq!(b.location(&set), b.url("/account/security?done=password_set_signed_out"));
    // Now the password works, followed by the passkey as second factor.
    let other = PasskeyBrowser::new(&server);
    let first = password_sign_in(&other, "/login", "ada", PASSWORD).await;
    assert_eq!(other.location(&first), other.url("/login/second-factor"));
    let second = other.sign_in(&mut device, "/login/second-factor", None).await;
    assert_eq!(other.location(&second), other.url("/login/done"));
    // With a password, the only passkey is removable; then the password is the last way in.
    let removed = b.security_post("/account/password/remove", &[]).await;
    assert_eq!(b.location(&removed), b.url("/account/security?done=password_removed"));
    let again = b.security_post("/account/password/remove", &[]).await;
    assert_eq!(b.location(&again), b.url("/account/security?error=no_password"));
    assert_eq!(
        password_sign_in(&PasskeyBrowser::new(&server), "/login", "ada", PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // Forms need the CSRF token.
    let forged =
        b.browser.post_form(&b.url("/account/password"), &[("password", PASSWORD), ("confirm", PASSWORD)]).await;
    assert_eq!(forged.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn clients_that_require_more_get_a_step_up_or_nothing() {
    let server = ok(TestServer::try_start(sqlite().await, frozen(), |_| {}).await, "start");
    server.create_user("ada", PASSWORD).await;
    let policy = ClientSessionPolicy { require_mfa: true, ..ClientSessionPolicy::default() };
    server.create_client(ClientSpec { first_party: true, session_policy: policy, ..ClientSpec::default() }).await;
    let secret = secret_of("webapp");
    let rp = Rp { id: "webapp", secret: &secret, callback: CALLBACK };
    // A password-only user cannot meet it: a page says what to do, nothing reaches the client.
    let b = PasskeyBrowser::new(&server);
    let login = rp.start(&server, &b.browser, "openid", &[]).await;
    let signed_in = password_sign_in(&b, login.trim_start_matches(&b.issuer), "ada", PASSWORD).await;
    let refused = b.browser.get(&b.location(&signed_in)).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(ok(refused.text().await, "page").contains("security page"), "the page says where to add a factor");
    // With an authenticator app the same request steps up: the single-factor session is
    // asked to sign in again, with both factors.
    let secret = enrol_totp(&server, &b).await;
    server.clock.advance(Duration::from_secs(30));
    let plain = PasskeyBrowser::new(&server);
    let step_up = rp.start(&server, &plain.browser, "openid", &[("acr_values", "urn:latchkey:acr:mfa")]).await;
    let first = password_sign_in(&plain, step_up.trim_start_matches(&plain.issuer), "ada", PASSWORD).await;
    assert_eq!(plain.location(&first), plain.url("/login/second-factor"));
    let done = second_factor(&plain, "totp", &totp_now(&server, &secret)).await;
    let resumed = plain.browser.get(&plain.location(&done)).await;
    let callback = ok(url::Url::parse(&plain.location(&resumed)), "callback");
    let id_token = claims(rp.tokens(&server, &callback).await["id_token"].as_str().unwrap_or_default());
    assert_eq!(id_token["acr"], "urn:latchkey:acr:mfa");
    // An essential acr nobody issues fails the request at the client.
    let unknown = rp
        .start(
            &server,
            &plain.browser,
            "openid",
            &[("claims", r#"{"id_token":{"acr":{"essential":true,"value":"urn:other"}}}"#)],
        )
        .await;
    assert!(unknown.starts_with(CALLBACK) && unknown.contains("error=access_denied"), "{unknown}");
    let discovery = server.get_json("/.well-known/openid-configuration").await;
    assert_eq!(
        discovery["acr_values_supported"],
        serde_json::json!(["urn:latchkey:acr:password", "urn:latchkey:acr:mfa", "urn:latchkey:acr:phishing-resistant"])
    );
}

#[tokio::test]
async fn password_sign_in_can_be_turned_off() {
    let server = TestServer::start(sqlite().await, |c| c.login.passwords = false).await;
    server.create_user("ada", PASSWORD).await;
    let b = PasskeyBrowser::new(&server);
    let (_, page, _) = b.page("/login").await;
    assert!(!page.contains("name=\"password\""), "no password field");
    assert!(page.contains("autocomplete=\"username webauthn\""), "autofill for passkeys");
    let refused = password_sign_in(&b, "/login", "ada", PASSWORD).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn security_and_second_step_endpoints_answer_bad_input_with_an_error() {
    for db in all_backends().await {
        let backend = db.backend;
        let server = ok(TestServer::try_start(db, frozen(), |_| {}).await, "start");
        server.create_user("ada", PASSWORD).await;
        let b = PasskeyBrowser::new(&server);
        // Nobody signed in: the security page and its JSON endpoint ask for a sign-in.
        assert_eq!(b.page("/account/security").await.0, StatusCode::SEE_OTHER, "{backend}");
        let (_, _, csrf) = b.page("/login").await;
        let (status, body) = b.options("/account/passkeys/options", &[("csrf", &csrf)]).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{backend}: {body}");
        assert!(body["reauthenticate"].as_str().is_some_and(|u| u.ends_with("/login?return_to=security")), "{backend}");
        // No pending sign-in: the second step is an error page, whatever is posted.
        assert_eq!(b.page("/login/second-factor").await.0, StatusCode::BAD_REQUEST, "{backend}");
        let orphan = b
            .browser
            .post_form(&b.url("/login/second-factor"), &[("csrf", &csrf), ("method", "totp"), ("code", "123456")])
            .await;
        assert_eq!(orphan.status(), StatusCode::BAD_REQUEST, "{backend}");
        let forged = b.browser.post_form(&b.url("/login/recovery"), &[("username", "ada"), ("code", "x")]).await;
        assert_eq!(forged.status(), StatusCode::BAD_REQUEST, "{backend}: no CSRF token");

        password_sign_in(&b, "/login", "ada", PASSWORD).await;
        let secret = enrol_totp(&server, &b).await;
        // A second enrolment while one is on is refused; confirming with nothing pending
        // just goes back to the page.
        assert_eq!(b.security_post("/account/totp/start", &[]).await.status(), StatusCode::CONFLICT, "{backend}");
        let (_, _, csrf) = b.page("/account/security").await;
        let nothing = b.browser.post_form(&b.url("/account/totp/confirm"), &[("csrf", &csrf), ("code", "1")]).await;
        assert_eq!(b.location(&nothing), b.url("/account/security"), "{backend}");
        // Passkey names and ids are checked; a registration needs its options first.
        let long = "x".repeat(65);
        for (id, name, error) in
            [("k", "", "bad_name"), ("k", long.as_str(), "bad_name"), ("unknown", "Phone", "not_found")]
        {
            let renamed = b.security_post("/account/passkeys/rename", &[("id", id), ("name", name)]).await;
            assert_eq!(b.location(&renamed), b.url(&format!("/account/security?error={error}")), "{backend}: {name:?}");
        }
        let unasked = b.security_post("/account/passkeys", &[("credential", "{}"), ("name", "Phone")]).await;
        assert_eq!(unasked.status(), StatusCode::BAD_REQUEST, "{backend}: no registration was started");
        let (_, _, csrf) = b.page("/account/security").await;
        let (status, _) = b.options("/account/passkeys/options", &[("csrf", &csrf)]).await;
        assert_eq!(status, StatusCode::OK, "{backend}");
        let junk = b
            .browser
            .post_form(&b.url("/account/passkeys"), &[("csrf", &csrf), ("credential", "{junk"), ("name", "Phone")])
            .await;
        assert_eq!(junk.status(), StatusCode::BAD_REQUEST, "{backend}: a malformed credential");
        let forged = b.browser.post_form(&b.url("/account/recovery-codes"), &[("csrf", "forged")]).await;
        assert_eq!(forged.status(), StatusCode::BAD_REQUEST, "{backend}: forged CSRF token");

        // The second step refuses an unknown method and keeps the pending sign-in.
        server.clock.advance(Duration::from_secs(30));
        let other = PasskeyBrowser::new(&server);
        password_sign_in(&other, "/login", "ada", PASSWORD).await;
        assert_eq!(second_factor(&other, "fax", "1").await.status(), StatusCode::BAD_REQUEST, "{backend}");
        let done = second_factor(&other, "totp", &totp_now(&server, &secret)).await;
        assert_eq!(other.location(&done), other.url("/login/done"), "{backend}: still pending after bad input");
    }
}

/// Statuses of `attempts` posted at once: each a browser and the form it sends to `path`.
async fn all_at_once(attempts: Vec<(PasskeyBrowser, Vec<(String, String)>)>, path: &str) -> Vec<StatusCode> {
    let mut running = tokio::task::JoinSet::new();
    for (b, form) in attempts {
        let url = b.url(path);
        running.spawn(async move {
            let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            b.browser.post_form(&url, &pairs).await.status()
        });
    }
    let mut statuses = Vec::new();
    while let Some(done) = running.join_next().await {
        statuses.push(ok(done, "join"));
    }
    statuses
}

fn tally(statuses: &[StatusCode]) -> (usize, usize) {
    let count = |s| statuses.iter().filter(|x| **x == s).count();
    (count(StatusCode::UNAUTHORIZED), count(StatusCode::TOO_MANY_REQUESTS))
}

#[tokio::test]
async fn parallel_wrong_totp_codes_reach_the_check_no_more_than_the_limit() {
    for db in all_backends().await {
        let backend = db.backend;
        let server = ok(TestServer::try_start(db, frozen(), |_| {}).await, "start");
        server.create_user("ada", PASSWORD).await;
        let b = PasskeyBrowser::new(&server);
        password_sign_in(&b, "/login?return_to=security", "ada", PASSWORD).await;
        let secret = enrol_totp(&server, &b).await;
        server.clock.advance(Duration::from_secs(30));
        // 25 browsers, each past the password and at the second step.
        let mut attempts = Vec::new();
        for i in 0..25 {
            let other = PasskeyBrowser::new(&server);
            let after_password = password_sign_in(&other, "/login", "ada", PASSWORD).await;
            assert_eq!(other.location(&after_password), other.url("/login/second-factor"), "{backend}");
            let (_, _, csrf) = other.page("/login/second-factor").await;
            let code = format!("{:06}", (i * 7919) % 1_000_000);
            let form = vec![("csrf".into(), csrf), ("method".into(), "totp".into()), ("code".into(), code)];
            attempts.push((other, form));
        }
        let right = totp_now(&server, &secret);
        attempts.retain(|(_, form)| form[2].1 != right);
        let sent = attempts.len();
        let statuses = all_at_once(attempts, "/login/second-factor").await;
        // A 401 comes only after a code was checked.
        assert_eq!(tally(&statuses), (5, sent - 5), "{backend}: {statuses:?}");
        let late = PasskeyBrowser::new(&server);
        password_sign_in(&late, "/login", "ada", PASSWORD).await;
        let refused = second_factor(&late, "totp", &right).await;
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS, "{backend}: even the right code waits");
    }
}

#[tokio::test]
async fn parallel_wrong_recovery_codes_reach_the_check_no_more_than_the_limit() {
    for db in all_backends().await {
        let backend = db.backend;
        let server = TestServer::start(db, |c| c.registration.mode = latchkey_config::RegistrationMode::Open).await;
        let mut device = SoftAuthenticator::new(Flags::default());
        let (_, page) = PasskeyBrowser::new(&server).sign_up(&mut device, "ada", "").await;
        let codes = recovery_codes(&page);
        let mut attempts = Vec::new();
        for i in 0..25 {
            let other = PasskeyBrowser::new(&server);
            let (_, _, csrf) = other.page("/login/recovery").await;
            let code = format!("wrong-{i:05}");
            attempts
                .push((other, vec![("csrf".into(), csrf), ("username".into(), "ada".into()), ("code".into(), code)]));
        }
        let statuses = all_at_once(attempts, "/login/recovery").await;
        assert_eq!(tally(&statuses), (5, 20), "{backend}: {statuses:?}");
        let late = PasskeyBrowser::new(&server);
        let (_, _, csrf) = late.page("/login/recovery").await;
        let form = [("csrf", csrf.as_str()), ("username", "ada"), ("code", codes[0].as_str())];
        let refused = late.browser.post_form(&late.url("/login/recovery"), &form).await;
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS, "{backend}: even a right code waits");
    }
}

#[tokio::test]
async fn a_password_too_long_in_bytes_gets_a_clear_400_wherever_it_is_typed() {
    let server =
        TestServer::start(sqlite().await, |c| c.registration.mode = latchkey_config::RegistrationMode::Open).await;
    let mut device = SoftAuthenticator::new(Flags::default());
    let b = PasskeyBrowser::new(&server);
    b.sign_up(&mut device, "ada", "").await;
    // 600 characters, 1,200 bytes: under a limit counted in characters, over the hasher's.
    let accents = "é".repeat(600);
    let refused = b.security_post("/account/password", &[("password", &accents), ("confirm", &accents)]).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert!(ok(refused.text().await, "page").contains("at most 1024 bytes"));
    let other = PasskeyBrowser::new(&server);
    let before = server.state().passwords.verifications();
    let sign_in = password_sign_in(&other, "/login", "ada", &accents).await;
    assert_eq!(sign_in.status(), StatusCode::BAD_REQUEST);
    assert!(ok(sign_in.text().await, "page").contains("at most 1024 bytes"));
    assert_eq!(server.state().passwords.verifications(), before, "refused before any hashing");
    // At the limit, it is a password like any other.
    let at_limit = "é".repeat(512);
    let set = b.security_post("/account/password", &[("password", &at_limit), ("confirm", &at_limit)]).await;
    assert_eq!(b.location(&set), b.url("/account/security?done=password_set_signed_out"));
    let first = password_sign_in(&other, "/login", "ada", &at_limit).await;
    assert_eq!(other.location(&first), other.url("/login/second-factor"));
}

#[tokio::test]
async fn a_hash_made_with_weaker_parameters_is_replaced_at_sign_in() {
    for db in all_backends().await {
        let backend = db.backend;
        let server = TestServer::start(db, |_| {}).await;
        let sub = server.create_user("ada", "a password replaced below").await;
        let tenant = latchkey_core::domain::TenantId::default_tenant();
        let weaker = latchkey_core::crypto::PasswordPolicy { memory_kib: 32, iterations: 1, parallelism: 1 };
        let old = ok(weaker.hash(PASSWORD), "weaker hash");
        let store = latchkey_service::testing::store_of(&server.state().services);
        ok(
            store
                .set_password_hash(&tenant, &sub, Some(old.as_str().to_owned()), &latchkey_core::records::Actor::Cli)
                .await,
            "set",
        );
        let stored = || async { ok(store.user_by_sub(&tenant, &sub).await, "user").and_then(|u| u.password_hash) };

        // A wrong password changes nothing.
        let b = PasskeyBrowser::new(&server);
        assert_eq!(password_sign_in(&b, "/login", "ada", "wrong").await.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(stored().await.as_deref(), Some(old.as_str()), "{backend}");
        // The right one signs in and leaves a hash at today's parameters (the test config's).
        let signed_in = password_sign_in(&b, "/login", "ada", PASSWORD).await;
        assert_eq!(b.location(&signed_in), b.url("/login/done"), "{backend}");
        let new = stored().await.unwrap_or_default();
        assert!(new.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{backend}: {new}");
        let policy = server.state().passwords.policy();
        assert!(!policy.needs_rehash(&latchkey_core::crypto::PasswordHash::from_stored(new.clone())));
        // It is the same password, and it is not hashed again.
        let again = PasskeyBrowser::new(&server);
        let signed_in = password_sign_in(&again, "/login", "ada", PASSWORD).await;
        assert_eq!(again.location(&signed_in), again.url("/login/done"), "{backend}");
        assert_eq!(stored().await, Some(new), "{backend}");
    }
}

#[tokio::test]
async fn an_imported_bcrypt_hash_signs_in_and_is_replaced_by_argon2id() {
    for db in all_backends().await {
        let backend = db.backend;
        let server = TestServer::start(db, |_| {}).await;
        let tenant = latchkey_core::domain::TenantId::default_tenant();
        let bcrypt = ok(bcrypt::hash(PASSWORD, 4), "bcrypt");
        let line = serde_json::json!({"username": "ada", "password_hash": bcrypt, "sub": "legacy|42"}).to_string();
        let store = latchkey_service::testing::store_of(&server.state().services);
        let imported = latchkey_service::user_import::import(
            &server.state().services,
            &tenant,
            &line,
            &latchkey_core::records::Actor::Cli,
        )
        .await;
        assert_eq!(imported.ok(), Some(1), "{backend}");
        let sub = ok(latchkey_core::domain::SubjectId::parse("legacy|42"), "sub");
        let stored = || async { ok(store.user_by_sub(&tenant, &sub).await, "user").and_then(|u| u.password_hash) };
        assert_eq!(stored().await.as_deref(), Some(bcrypt.as_str()), "{backend}");

        let b = PasskeyBrowser::new(&server);
        let signed_in = password_sign_in(&b, "/login", "ada", PASSWORD).await;
        assert_eq!(b.location(&signed_in), b.url("/login/done"), "{backend}");
        let new = stored().await.unwrap_or_default();
        assert!(new.starts_with("$argon2id$"), "{backend}: the bcrypt hash was kept: {new}");
        let again = PasskeyBrowser::new(&server);
        let signed_in = password_sign_in(&again, "/login", "ada", PASSWORD).await;
        assert_eq!(again.location(&signed_in), again.url("/login/done"), "{backend}");
    }
}
