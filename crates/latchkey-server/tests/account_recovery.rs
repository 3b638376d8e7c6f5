//! Recovery by email link through the pages, with a stand-in SMTP relay and a software
//! authenticator: someone who lost their passkey asks from the sign-in page, gets the same
//! answer as for an unknown name, opens the emailed link (a GET uses nothing), adds a new
//! passkey and signs in with it; their old sessions are over. An account with an
//! authenticator app must give its code or say it is lost (then it waits, and the cancel
//! link stops it).

mod support;

use std::time::Duration;

use latchkey_core::domain::{TenantId, Username};
use reqwest::StatusCode;
use support::authenticator::{Flags, SoftAuthenticator};
use support::browser::hidden_field;
use support::passkey::{PasskeyBrowser, recovery_codes};
use support::smtp::{Relay, header, link_token, mail};
use support::{TestServer, all_backends, eventually, ok, sqlite};

const VERIFY: &str = "/email/verify";
const LINK: &str = "/recover/link";

async fn nth_message(relay: &Relay, n: usize, what: &str) -> String {
    eventually(Duration::from_secs(10), what, || async { relay.messages().len() >= n }).await;
    relay.messages().remove(n - 1)
}

fn open(c: &mut latchkey_config::Config, port: u16) {
    c.mail = Some(mail(port));
    c.registration.mode = latchkey_config::RegistrationMode::Open;
}

/// Ada signs up with `device` and verifies her address; returns her signed-in browser.
async fn ada_with_verified_address(
    server: &TestServer,
    relay: &Relay,
    device: &mut SoftAuthenticator,
) -> PasskeyBrowser {
    let b = PasskeyBrowser::new(server);
    let (status, page) = b.sign_up(device, "ada", "ada@example.com").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let token = link_token(&nth_message(relay, 1, "the sign-up link").await, VERIFY).unwrap_or_default();
    let (_, _, csrf) = b.page(&format!("{VERIFY}?token={token}")).await;
    let done = b.browser.post_form(&b.url(VERIFY), &[("csrf", &csrf), ("token", &token)]).await;
    assert_eq!(done.status(), StatusCode::OK);
    b
}

/// Asks for a recovery link for `who` from a fresh browser; returns the answer page.
async fn ask(server: &TestServer, who: &str) -> (PasskeyBrowser, String) {
    let b = PasskeyBrowser::new(server);
    let (status, login, _) = b.page("/login").await;
    assert_eq!(status, StatusCode::OK);
    assert!(login.contains("id=\"cant-sign-in\""), "the sign-in page offers recovery");
    let (status, _, csrf) = b.page("/recover").await;
    assert_eq!(status, StatusCode::OK);
    let answer = b.browser.post_form(&b.url("/recover"), &[("csrf", &csrf), ("identifier", who)]).await;
    assert_eq!(answer.status(), StatusCode::OK, "{who}");
    let page = ok(answer.text().await, "page");
    (b, page)
}

/// The page without what differs between any two renderings (the CSRF token).
fn without_csrf(page: &str) -> String {
    match hidden_field(page, "csrf") {
        Some(t) => page.replace(&t, ""),
        None => page.to_owned(),
    }
}

#[tokio::test]
async fn someone_who_lost_their_passkey_recovers_by_email_and_signs_in_with_a_new_one() {
    for db in all_backends().await {
        let b = db.backend;
        let relay = Relay::start().await;
        let port = relay.port;
        let server = TestServer::start(db, move |c| open(c, port)).await;
        let mut lost_device = SoftAuthenticator::new(Flags::default());
        let old_browser = ada_with_verified_address(&server, &relay, &mut lost_device).await;
        let (status, _, _) = old_browser.page("/account/security").await;
        assert_eq!(status, StatusCode::OK, "{b}: signed in before");

        let (_, unknown) = ask(&server, "nobody").await;
        let (browser, known) = ask(&server, "ada").await;
        assert_eq!(without_csrf(&known), without_csrf(&unknown), "{b}: the same answer for an unknown name");
        assert!(known.contains("If an account with a verified email address matches"), "{b}: {known}");

        let message = nth_message(&relay, 2, "the recovery link").await;
        assert_eq!(header(&message, "To"), Some("ada@example.com"), "{b}");
        assert_eq!(header(&message, "Subject"), Some("Recover your account"), "{b}");
        let token = link_token(&message, LINK).unwrap_or_else(|| panic!("{b}: no link in {message}"));
        let link = format!("{LINK}?token={token}");

        // A mail scanner fetches the link: nothing is used.
        let scanner = PasskeyBrowser::new(&server);
        for _ in 0..2 {
            let (status, html, _) = scanner.page(&link).await;
            assert_eq!(status, StatusCode::OK, "{b}: {html}");
            assert!(html.contains("Recover the account ada?"), "{b}: {html}");
        }

        let (_, _, csrf) = browser.page(&link).await;
        let opened = browser.browser.post_form(&browser.url(LINK), &[("csrf", &csrf), ("token", &token)]).await;
        assert_eq!(browser.location(&opened), browser.url("/recover/session"), "{b}");
        let again = scanner.browser.post_form(&scanner.url(LINK), &[("csrf", &csrf), ("token", &token)]).await;
        assert_eq!(again.status(), StatusCode::BAD_REQUEST, "{b}: the link works once");

        // The recovery session is no sign-in: the account pages still ask to sign in.
        let security = browser.browser.get(&browser.url("/account/security")).await;
        assert!(browser.location(&security).contains("/login"), "{b}: a recovery session is not a session");

        let (status, page, csrf) = browser.page("/recover/session").await;
        assert_eq!(status, StatusCode::OK, "{b}");
        assert!(page.contains("id=\"recovery-ready\""), "{b}: {page}");
        assert!(page.contains("id=\"add-passkey\""), "{b}: the passkey form");
        let mut new_device = SoftAuthenticator::new(Flags::default());
        let (status, options) = browser.options("/recover/passkey/options", &[("csrf", &csrf)]).await;
        assert_eq!(status, StatusCode::OK, "{b}: {options}");
        let credential = ok(new_device.register(&options, &browser.issuer), "register");
        let added = browser
            .browser
            .post_form(
                &browser.url("/recover/passkey"),
                &[("csrf", &csrf), ("credential", &credential.to_string()), ("name", "New phone")],
            )
            .await;
        assert_eq!(added.status(), StatusCode::OK, "{b}");
        let codes_page = ok(added.text().await, "codes");
        assert_eq!(recovery_codes(&codes_page).len(), 10, "{b}: new recovery codes, shown once");

        let told = nth_message(&relay, 3, "the recovery notice").await;
        assert_eq!(header(&told, "Subject"), Some("Your account was recovered"), "{b}");
        let (status, _, _) = browser.page("/recover/session").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{b}: the recovery session is over");

        // The old browser's session ended; the new passkey signs in.
        let old = old_browser.browser.get(&old_browser.url("/account/security")).await;
        assert!(old_browser.location(&old).contains("/login"), "{b}: the old session ended");
        let signed_in = browser.sign_in(&mut new_device, "/login", None).await;
        assert_eq!(signed_in.status(), StatusCode::SEE_OTHER, "{b}");
        let (status, page, _) = browser.page("/account/security").await;
        assert_eq!(status, StatusCode::OK, "{b}");
        assert!(page.contains("New phone"), "{b}");
        let user = server
            .state()
            .services
            .users()
            .by_username(&TenantId::default_tenant(), &ok(Username::parse("ada"), "u"))
            .await;
        let sub = ok(user, "user").unwrap_or_else(|| panic!("ada")).sub;
        let passkeys =
            ok(server.state().services.factors().passkeys(&TenantId::default_tenant(), &sub).await, "passkeys");
        assert_eq!(passkeys.len(), 2, "{b}: the lost passkey stays until she removes it");
    }
}

#[tokio::test]
async fn an_account_with_an_authenticator_app_asks_for_its_code_or_waits_and_the_cancel_link_stops_it() {
    let relay = Relay::start().await;
    let port = relay.port;
    let server = TestServer::start(sqlite().await, move |c| open(c, port)).await;
    let mut device = SoftAuthenticator::new(Flags::default());
    let owner = ada_with_verified_address(&server, &relay, &mut device).await;
    let tenant = TenantId::default_tenant();
    let services = &server.state().services;
    let sub = ok(services.users().by_username(&tenant, &ok(Username::parse("ada"), "u")).await, "user")
        .unwrap_or_else(|| panic!("ada"))
        .sub;
    let actor = latchkey_core::records::Actor::Cli;
    ok(services.factors().begin_totp(&tenant, &sub).await, "totp");
    let secret =
        ok(services.factors().pending_totp(&tenant, &sub).await, "pending").unwrap_or_else(|| panic!("pending"));
    let code = secret.code_at(u64::try_from(services.clock.now().secs()).unwrap_or(0)).unwrap_or_default();
    ok(services.factors().confirm_totp_code(&tenant, &sub, &code, &actor).await, "confirm");

    let (browser, _) = ask(&server, "ada@example.com").await;
    let token = link_token(&nth_message(&relay, 2, "the recovery link").await, LINK).unwrap_or_default();
    let (_, _, csrf) = browser.page(&format!("{LINK}?token={token}")).await;
    browser.browser.post_form(&browser.url(LINK), &[("csrf", &csrf), ("token", &token)]).await;
    let (_, page, csrf) = browser.page("/recover/session").await;
    assert!(page.contains("id=\"app-code-form\"") && !page.contains("id=\"add-passkey\""), "{page}");
    let (status, options) = browser.options("/recover/passkey/options", &[("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "no passkey before the second proof: {options}");
    let wrong = browser.browser.post_form(&browser.url("/recover/app-code"), &[("csrf", &csrf), ("code", "12")]).await;
    assert_eq!(wrong.status(), StatusCode::BAD_REQUEST);
    assert!(ok(wrong.text().await, "page").contains("That code is not right"));

    let lost = browser.browser.post_form(&browser.url("/recover/lost"), &[("csrf", &csrf)]).await;
    assert_eq!(browser.location(&lost), browser.url("/recover/session"));
    let (_, page, _) = browser.page("/recover/session").await;
    assert!(page.contains("id=\"recovery-waiting\""), "{page}");
    let pending = nth_message(&relay, 3, "the waiting notice").await;
    assert!(header(&pending, "Subject").is_some_and(|s| s.contains("unless you stop it")), "{pending}");
    let cancel = link_token(&pending, "/recover/cancel").unwrap_or_else(|| panic!("no cancel link in {pending}"));
    // The owner, still signed in elsewhere, sees it on the security page.
    let (_, security, _) = owner.page("/account/security").await;
    assert!(security.contains("id=\"waiting-recovery\"") && security.contains("id=\"cancel-recovery\""), "{security}");
    let scanner = PasskeyBrowser::new(&server);
    let (status, html, csrf) = scanner.page(&format!("/recover/cancel?token={cancel}")).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    let (status, page, _) = browser.page("/recover/session").await;
    assert!(status == StatusCode::OK && page.contains("recovery-waiting"), "a GET of the cancel link stops nothing");
    let stopped =
        scanner.browser.post_form(&scanner.url("/recover/cancel"), &[("csrf", &csrf), ("token", &cancel)]).await;
    assert_eq!(stopped.status(), StatusCode::OK);
    assert!(ok(stopped.text().await, "page").contains("The recovery was stopped"));
    let (status, page, _) = browser.page("/recover/session").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("cancelled"), "{page}");
}

#[tokio::test]
async fn recovery_pages_refuse_bad_input_and_are_off_without_mail() {
    let relay = Relay::start().await;
    let port = relay.port;
    let server = TestServer::start(sqlite().await, move |c| open(c, port)).await;
    let b = PasskeyBrowser::new(&server);
    let (_, _, csrf) = b.page("/recover").await;
    let forged = b.browser.post_form(&b.url("/recover"), &[("identifier", "ada")]).await;
    assert_eq!(forged.status(), StatusCode::BAD_REQUEST, "no CSRF token");
    let empty = b.browser.post_form(&b.url("/recover"), &[("csrf", &csrf), ("identifier", " ")]).await;
    assert_eq!(empty.status(), StatusCode::BAD_REQUEST);
    let long = "x".repeat(5_000);
    let too_long = b.browser.post_form(&b.url("/recover"), &[("csrf", &csrf), ("identifier", &long)]).await;
    assert_eq!(too_long.status(), StatusCode::BAD_REQUEST);
    for path in [
        LINK.to_owned(),
        format!("{LINK}?token=nope"),
        format!("{LINK}?token={long}"),
        "/recover/cancel?token=x".into(),
    ] {
        let (status, _, _) = b.page(&path).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
    }
    let (status, _, _) = b.page("/recover/session").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "no recovery session in this browser");
    for path in [
        "/recover/app-code",
        "/recover/text-code/send",
        "/recover/text-code",
        "/recover/lost",
        "/recover/passkey",
        "/recover/password",
    ] {
        let fields = [
            ("csrf", csrf.as_str()),
            ("code", "123456"),
            ("password", "long enough pw"),
            ("confirm", "long enough pw"),
        ];
        let r = b.browser.post_form(&b.url(path), &fields).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{path}: no recovery session in this browser");
        let forged = b.browser.post_form(&b.url(path), &fields[1..]).await;
        assert_eq!(forged.status(), StatusCode::BAD_REQUEST, "{path}: no CSRF token");
    }
    assert!(relay.messages().is_empty(), "nothing was sent");

    let off = TestServer::start(sqlite().await, |_| {}).await;
    let b = PasskeyBrowser::new(&off);
    let (_, login, _) = b.page("/login").await;
    assert!(!login.contains("cant-sign-in"), "no recovery offered without mail");
    let (status, _, _) = b.page("/recover").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_owner_stops_a_waiting_recovery_from_the_security_page() {
    let relay = Relay::start().await;
    let port = relay.port;
    let server = TestServer::start(sqlite().await, move |c| open(c, port)).await;
    let mut device = SoftAuthenticator::new(Flags::default());
    let owner = ada_with_verified_address(&server, &relay, &mut device).await;
    let mut second = SoftAuthenticator::new(Flags::default());
    let added = ok(owner.add_passkey(&mut second, "Second").await, "second passkey");
    assert!(added.status().is_redirection());
    let notice = nth_message(&relay, 2, "the security notice").await;
    assert!(notice.contains("/security/not-me?token="), "the new passkey is told: {notice}");

    let (attacker, _) = ask(&server, "ada").await;
    let token = link_token(&nth_message(&relay, 3, "the recovery link").await, LINK).unwrap_or_default();
    let (_, _, csrf) = attacker.page(&format!("{LINK}?token={token}")).await;
    attacker.browser.post_form(&attacker.url(LINK), &[("csrf", &csrf), ("token", &token)]).await;
    let (_, page, csrf) = attacker.page("/recover/session").await;
    assert!(page.contains("more than one passkey"), "{page}");
    attacker.browser.post_form(&attacker.url("/recover/lost"), &[("csrf", &csrf)]).await;
    nth_message(&relay, 4, "the waiting notice").await;

    let (_, security, csrf) = owner.page("/account/security").await;
    assert!(security.contains("id=\"waiting-recovery\""), "{security}");
    let forged = owner.browser.post_form(&owner.url("/account/recovery/cancel"), &[]).await;
    assert_eq!(forged.status(), StatusCode::BAD_REQUEST, "CSRF");
    let stopped = owner.browser.post_form(&owner.url("/account/recovery/cancel"), &[("csrf", &csrf)]).await;
    assert!(owner.location(&stopped).ends_with("done=recovery_cancelled"));
    let (_, security, _) = owner.page("/account/security").await;
    assert!(!security.contains("id=\"waiting-recovery\""));
    let (status, page, _) = attacker.page("/recover/session").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("cancelled"), "{page}");
}

/// Where passwords are on, the recovery sets a new password instead of a passkey; the two
/// fields must match; the password then signs in.
#[tokio::test]
async fn a_recovery_sets_a_new_password_where_passwords_are_on() {
    let relay = Relay::start().await;
    let port = relay.port;
    let server = TestServer::start(sqlite().await, move |c| open(c, port)).await;
    let mut device = SoftAuthenticator::new(Flags::default());
    ada_with_verified_address(&server, &relay, &mut device).await;
    let (browser, _) = ask(&server, "ada").await;
    let token = link_token(&nth_message(&relay, 2, "the recovery link").await, LINK).unwrap_or_default();
    let (_, _, csrf) = browser.page(&format!("{LINK}?token={token}")).await;
    browser.browser.post_form(&browser.url(LINK), &[("csrf", &csrf), ("token", &token)]).await;
    let (status, page, csrf) = browser.page("/recover/session").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("id=\"recover-password\""), "{page}");
    let pw = "a brand new passphrase";
    let mismatch = [("csrf", csrf.as_str()), ("password", pw), ("confirm", "something else")];
    let refused = browser.browser.post_form(&browser.url("/recover/password"), &mismatch).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let no_csrf =
        browser.browser.post_form(&browser.url("/recover/password"), &[("password", pw), ("confirm", pw)]).await;
    assert_eq!(no_csrf.status(), StatusCode::BAD_REQUEST);
    let set = [("csrf", csrf.as_str()), ("password", pw), ("confirm", pw)];
    let done = browser.browser.post_form(&browser.url("/recover/password"), &set).await;
    assert_eq!(done.status(), StatusCode::OK);
    assert_eq!(support::passkey::recovery_codes(&ok(done.text().await, "codes")).len(), 10);
    let again = browser.browser.post_form(&browser.url("/recover/password"), &set).await;
    assert_eq!(again.status(), StatusCode::BAD_REQUEST, "once");

    let fresh = PasskeyBrowser::new(&server);
    let (_, _, csrf) = fresh.page("/login").await;
    let signed_in =
        fresh.browser.post_form(&fresh.url("/login"), &[("csrf", &csrf), ("username", "ada"), ("password", pw)]).await;
    // Ada's passkey is still a second factor: the password leads to the second step.
    assert_eq!(fresh.location(&signed_in), fresh.url("/login/second-factor"));
}
