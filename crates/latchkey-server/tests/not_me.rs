//! "This wasn't me" through the pages, with a stand-in SMTP relay: a change on the security
//! page sends a notice whose link opens a confirmation page (a GET, as a mail scanner does,
//! uses nothing); its POST signs the account out everywhere, takes back what was added since,
//! and blocks changes, which the security page then refuses with a clear page; the link works
//! once, and bad links and forms get clear pages and change nothing.

mod support;

use std::time::Duration;

use latchkey_core::domain::{TenantId, Username};
use latchkey_core::records::{Actor, User, UserPatch};
use reqwest::StatusCode;
use support::authenticator::{Flags, SoftAuthenticator};
use support::passkey::PasskeyBrowser;
use support::smtp::{Relay, header, link_token, mail};
use support::{TestServer, all_backends, eventually, ok};

const NOT_ME: &str = "/security/not-me";

async fn user(server: &TestServer, name: &str) -> User {
    let username = ok(Username::parse(name), "username");
    let found = ok(server.state().services.users().by_username(&TenantId::default_tenant(), &username).await, name);
    found.unwrap_or_else(|| panic!("no user {name}"))
}

#[tokio::test]
async fn a_notice_link_secures_the_account_only_through_its_post_and_blocks_changes() {
    for db in all_backends().await {
        let b = db.backend;
        let relay = Relay::start().await;
        let port = relay.port;
        let server = TestServer::start(db, move |c| {
            c.mail = Some(mail(port));
            c.registration.mode = latchkey_config::RegistrationMode::Open;
        })
        .await;
        let browser = PasskeyBrowser::new(&server);
        let mut own = SoftAuthenticator::new(Flags::default());
        let (status, page) = browser.sign_up(&mut own, "ada", "ada@example.com").await;
        assert_eq!(status, StatusCode::OK, "{b}: {page}");
        let ada = user(&server, "ada").await;
        let verified = UserPatch { email_verified: Some(true), ..UserPatch::default() };
        let tenant = TenantId::default_tenant();
        ok(server.state().services.users().update(&tenant, &ada.sub, verified, &Actor::Cli).await, b);
        eventually(Duration::from_secs(10), "the sign-up email", || async { relay.messages().len() == 1 }).await;

        // Later, from ada's session, a passkey is added: the notice names it.
        server.clock.advance(Duration::from_secs(5));
        let mut intruder = SoftAuthenticator::new(Flags::default());
        let added = ok(browser.add_passkey(&mut intruder, "Intruder").await, "add");
        assert!(added.status().is_redirection(), "{b}: {}", added.status());
        eventually(Duration::from_secs(10), "the notice", || async { relay.messages().len() == 2 }).await;
        let notice = relay.messages().remove(1);
        assert_eq!(header(&notice, "To"), Some("ada@example.com"), "{b}");
        assert!(support::smtp::decoded(&notice).contains("A passkey (Intruder) was added"), "{b}: {notice}");
        let token = link_token(&notice, NOT_ME).unwrap_or_else(|| panic!("{b}: no link in {notice}"));

        // A scanner opens the link twice: a button, nothing used.
        let scanner = PasskeyBrowser::new(&server);
        for _ in 0..2 {
            let (status, html, _) = scanner.page(&format!("{NOT_ME}?token={token}")).await;
            assert_eq!(status, StatusCode::OK, "{b}: {html}");
            assert!(html.contains("Secure my account") && html.contains("ada"), "{b}: {html}");
        }
        let (status, _, _) = browser.page("/account/security").await;
        assert_eq!(status, StatusCode::OK, "{b}: still signed in");
        let no_csrf = scanner.browser.post_form(&scanner.url(NOT_ME), &[("token", &token)]).await;
        assert_eq!(no_csrf.status(), StatusCode::BAD_REQUEST, "{b}");
        assert_eq!(ok(server.state().services.factors().passkeys(&tenant, &ada.sub).await, b).len(), 2, "{b}");

        let (_, _, csrf) = scanner.page(&format!("{NOT_ME}?token={token}")).await;
        let done = scanner.browser.post_form(&scanner.url(NOT_ME), &[("csrf", &csrf), ("token", &token)]).await;
        assert_eq!(done.status(), StatusCode::OK, "{b}");
        let page = ok(done.text().await, "page");
        assert!(page.contains("signed out everywhere (1 session(s))") && page.contains("1 passkey(s)"), "{b}: {page}");
        let names: Vec<String> = ok(server.state().services.factors().passkeys(&tenant, &ada.sub).await, b)
            .into_iter()
            .map(|p| p.name)
            .collect();
        assert!(!names.contains(&"Intruder".to_owned()) && names.len() == 1, "{b}: {names:?}");
        let (status, html, _) = browser.page("/account/security").await;
        assert_ne!(status, StatusCode::OK, "{b}: ada's session ended: {html}");
        let again = scanner.browser.post_form(&scanner.url(NOT_ME), &[("csrf", &csrf), ("token", &token)]).await;
        assert_eq!(again.status(), StatusCode::BAD_REQUEST, "{b}: once");

        // Signed in again with her own passkey, ada sees the block and changes nothing.
        let again = PasskeyBrowser::new(&server);
        let signed_in = again.sign_in(&mut own, "/login", None).await;
        assert!(signed_in.status().is_redirection() || signed_in.status().is_success(), "{b}");
        let (status, html, _) = again.page("/account/security").await;
        assert_eq!(status, StatusCode::OK, "{b}");
        assert!(html.contains("id=\"changes-blocked\""), "{b}: {html}");
        let refused = again.security_post("/account/recovery-codes", &[]).await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{b}");
        assert!(ok(refused.text().await, "page").contains("blocked"), "{b}");
        assert_eq!(ok(server.state().services.factors().recovery_codes_left(&tenant, &ada.sub).await, b), 0, "{b}");
    }
}

#[tokio::test]
async fn bad_not_me_links_get_a_clear_page() {
    let relay = Relay::start().await;
    let port = relay.port;
    let server = TestServer::start(support::sqlite().await, move |c| c.mail = Some(mail(port))).await;
    let b = PasskeyBrowser::new(&server);
    let long = "a".repeat(5_000);
    for link in [NOT_ME.to_owned(), format!("{NOT_ME}?token="), format!("{NOT_ME}?token={long}")] {
        let (status, html, _) = b.page(&link).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{link}");
        assert!(html.contains("expired or was already used"), "{link}: {html}");
    }
    let (_, _, csrf) = b.page("/login").await;
    let posted = b.browser.post_form(&b.url(NOT_ME), &[("csrf", &csrf), ("token", &long)]).await;
    assert_eq!(posted.status(), StatusCode::BAD_REQUEST);
}

/// `login.notify_new_device`: a password sign-in from a browser the account never used is
/// told (once per browser); the same browser again is not.
#[tokio::test]
async fn a_sign_in_from_a_new_browser_is_told_to_the_owner() {
    let relay = Relay::start().await;
    let port = relay.port;
    let server = TestServer::start(support::sqlite().await, move |c| {
        c.mail = Some(mail(port));
        c.login.notify_new_device = true;
    })
    .await;
    support::operator_made_user(&server, "ada", true).await;
    async fn sign_in(b: &PasskeyBrowser) {
        let (_, _, csrf) = b.page("/login").await;
        let form = [("csrf", csrf.as_str()), ("username", "ada"), ("password", support::flow::PASSWORD)];
        let done = b.browser.post_form(&b.url("/login"), &form).await;
        assert!(done.status().is_redirection(), "{}", done.status());
    }
    let first = PasskeyBrowser::new(&server);
    sign_in(&first).await;
    eventually(Duration::from_secs(10), "the first notice", || async { relay.messages().len() == 1 }).await;
    sign_in(&first).await;
    let second = PasskeyBrowser::new(&server);
    sign_in(&second).await;
    eventually(Duration::from_secs(10), "the second notice", || async { relay.messages().len() == 2 }).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(relay.messages().len(), 2, "the same browser again is not told");
    assert!(support::smtp::decoded(&relay.messages()[1]).contains("signed in from a new device"));
}
