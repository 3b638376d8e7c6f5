//! Email verification through the pages, with a stand-in SMTP relay: the link sent at
//! sign-up verifies the address only through its confirmation page's POST (a GET, as a mail
//! scanner does, uses nothing), once; a changed address waits for its own link and the old
//! one is told; bad links, forms and addresses get clear pages and change nothing.

mod support;

use std::time::Duration;

use latchkey_core::domain::{TenantId, Username};
use latchkey_core::records::User;
use reqwest::StatusCode;
use support::authenticator::{Flags, SoftAuthenticator};
use support::browser::hidden_field;
use support::passkey::PasskeyBrowser;
use support::smtp::{Relay, header, link_token, mail};
use support::{TestServer, all_backends, eventually, ok, sqlite};

const VERIFY: &str = "/email/verify";

async fn user(server: &TestServer, name: &str) -> User {
    let username = ok(Username::parse(name), "username");
    let found = ok(server.state().services.users().by_username(&TenantId::default_tenant(), &username).await, name);
    found.unwrap_or_else(|| panic!("no user {name}"))
}

/// Waits for the relay's `n`th message (counting from 1) and returns it.
async fn nth_message(relay: &Relay, n: usize, what: &str) -> String {
    eventually(Duration::from_secs(10), what, || async { relay.messages().len() >= n }).await;
    relay.messages().remove(n - 1)
}

async fn signed_up(server: &TestServer, name: &str) -> PasskeyBrowser {
    let b = PasskeyBrowser::new(server);
    let mut device = SoftAuthenticator::new(Flags::default());
    let (status, page) = b.sign_up(&mut device, name, &format!("{name}@example.com")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    b
}

#[tokio::test]
async fn the_sign_up_link_verifies_only_through_its_confirmation_post_and_only_once() {
    for db in all_backends().await {
        let b = db.backend;
        let relay = Relay::start().await;
        let port = relay.port;
        let server = TestServer::start(db, move |c| {
            c.mail = Some(mail(port));
            c.registration.mode = latchkey_config::RegistrationMode::Open;
        })
        .await;
        let browser = signed_up(&server, "ada").await;
        assert!(!user(&server, "ada").await.email_verified, "{b}");
        let message = nth_message(&relay, 1, "the verification email").await;
        assert_eq!(header(&message, "To"), Some("ada@example.com"), "{b}");
        assert_eq!(header(&message, "Subject"), Some("Confirm your email address"), "{b}");
        let token = link_token(&message, VERIFY).unwrap_or_else(|| panic!("{b}: no link in {message}"));
        let link = format!("{VERIFY}?token={token}");

        // A scanner (no cookies) opens the link: it is asked to sign in as ada, and nothing
        // is used; so does the person, signed in, who gets the button.
        let scanner = PasskeyBrowser::new(&server);
        for _ in 0..2 {
            let (status, html, _) = scanner.page(&link).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{b}: {html}");
            assert!(html.contains("confirms the email address of the account ada"), "{b}: {html}");
            assert!(!html.contains(&token), "{b}: no form for a browser not signed in as ada");
        }
        let (status, html, csrf) = browser.page(&link).await;
        assert_eq!(status, StatusCode::OK, "{b}: {html}");
        assert!(html.contains("Confirm that ada@example.com is the email address of your account ada"), "{b}");
        assert!(!user(&server, "ada").await.email_verified, "{b}: a GET verifies nothing");

        // A POST from a browser not signed in as ada uses nothing.
        let (_, _, scanner_csrf) = scanner.page("/login").await;
        let stranger =
            scanner.browser.post_form(&scanner.url(VERIFY), &[("csrf", &scanner_csrf), ("token", &token)]).await;
        assert_eq!(stranger.status(), StatusCode::FORBIDDEN, "{b}");
        assert_eq!(hidden_field(&html, "token").as_deref(), Some(token.as_str()), "{b}");
        let no_csrf = browser.browser.post_form(&browser.url(VERIFY), &[("token", &token)]).await;
        assert_eq!(no_csrf.status(), StatusCode::BAD_REQUEST, "{b}");
        assert!(!user(&server, "ada").await.email_verified, "{b}: neither changed anything");
        let done = browser.browser.post_form(&browser.url(VERIFY), &[("csrf", &csrf), ("token", &token)]).await;
        assert_eq!(done.status(), StatusCode::OK, "{b}");
        let page = ok(done.text().await, "page");
        assert!(page.contains("ada@example.com is now the verified email address"), "{b}: {page}");
        assert!(user(&server, "ada").await.email_verified, "{b}");

        let again = browser.browser.post_form(&browser.url(VERIFY), &[("csrf", &csrf), ("token", &token)]).await;
        assert_eq!(again.status(), StatusCode::BAD_REQUEST, "{b}: used once");
        assert!(ok(again.text().await, "page").contains("expired or was already used"), "{b}");
        let (status, html, _) = browser.page(&link).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{b}");
        assert!(html.contains("expired or was already used"), "{b}");
        assert!(!html.contains(&token), "{b}: a dead link's page does not repeat the token");
    }
}

#[tokio::test]
async fn bad_links_get_a_clear_page() {
    let relay = Relay::start().await;
    let port = relay.port;
    let server = TestServer::start(sqlite().await, move |c| c.mail = Some(mail(port))).await;
    let b = PasskeyBrowser::new(&server);
    let long = "a".repeat(5_000);
    for link in [
        VERIFY.to_owned(),
        format!("{VERIFY}?token="),
        format!("{VERIFY}?token=nope"),
        format!("{VERIFY}?token={long}"),
        format!("{VERIFY}?token=%00%00%00%00%00%00%00%00%00%00%00%00%00%00%00%00%00"),
        format!("{VERIFY}?token=abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"),
    ] {
        let (status, html, _) = b.page(&link).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{link}");
        assert!(html.contains("expired or was already used"), "{link}: {html}");
    }
    let (_, _, csrf) = b.page("/login").await;
    let posted = b.browser.post_form(&b.url(VERIFY), &[("csrf", &csrf), ("token", &long)]).await;
    assert_eq!(posted.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_changed_address_waits_for_its_own_link_and_the_old_one_is_told() {
    for db in all_backends().await {
        let b = db.backend;
        let relay = Relay::start().await;
        let port = relay.port;
        let server = TestServer::start(db, move |c| {
            c.mail = Some(mail(port));
            c.registration.mode = latchkey_config::RegistrationMode::Open;
        })
        .await;
        let browser = signed_up(&server, "ada").await;
        let first = nth_message(&relay, 1, "the sign-up link").await;
        let token = link_token(&first, VERIFY).unwrap_or_default();
        let (_, _, csrf) = browser.page(&format!("{VERIFY}?token={token}")).await;
        browser.browser.post_form(&browser.url(VERIFY), &[("csrf", &csrf), ("token", &token)]).await;
        assert!(user(&server, "ada").await.email_verified, "{b}");

        let (_, page, _) = browser.page("/account/security").await;
        assert!(page.contains("ada@example.com <span class=\"tag\">verified</span>"), "{b}: {page}");
        for bad in ["", "not an address", "a@", &format!("{}@example.com", "x".repeat(300))] {
            let refused = browser.security_post("/account/email", &[("email", bad)]).await;
            let to = refused.headers().get("location").and_then(|l| l.to_str().ok()).unwrap_or_default().to_owned();
            assert!(to.ends_with("error=bad_email"), "{b}: `{bad}`: {to}");
        }
        let changed = browser.security_post("/account/email", &[("email", "ada@new.example")]).await;
        let to = changed.headers().get("location").and_then(|l| l.to_str().ok()).unwrap_or_default().to_owned();
        assert!(to.ends_with("done=email_link_sent"), "{b}: {to}");
        let (_, page, _) = browser.page("/account/security?done=email_link_sent").await;
        assert!(page.contains("Waiting for confirmation: ada@new.example"), "{b}: {page}");
        assert!(page.contains("It becomes your address once you open the link"), "{b}");
        let still = user(&server, "ada").await;
        assert_eq!(still.email.map(|e| e.to_string()).as_deref(), Some("ada@example.com"), "{b}: kept until confirmed");

        let link_mail = nth_message(&relay, 2, "the link to the new address").await;
        assert_eq!(header(&link_mail, "To"), Some("ada@new.example"), "{b}");
        let token = link_token(&link_mail, VERIFY).unwrap_or_default();
        let (_, _, csrf) = browser.page(&format!("{VERIFY}?token={token}")).await;
        let done = browser.browser.post_form(&browser.url(VERIFY), &[("csrf", &csrf), ("token", &token)]).await;
        assert_eq!(done.status(), StatusCode::OK, "{b}");
        let now = user(&server, "ada").await;
        assert_eq!((now.email.map(|e| e.to_string()).as_deref(), now.email_verified), (Some("ada@new.example"), true));

        let told = nth_message(&relay, 3, "the notice to the old address").await;
        assert_eq!(header(&told, "To"), Some("ada@example.com"), "{b}");
        assert_eq!(header(&told, "Subject"), Some("A change to your account"), "{b}");
        assert!(support::smtp::decoded(&told).contains("ada@new.example"), "{b}: {told}");
    }
}

#[tokio::test]
async fn the_email_forms_need_their_csrf_token_and_a_signed_in_recent_session() {
    let relay = Relay::start().await;
    let port = relay.port;
    let server = TestServer::start(sqlite().await, move |c| {
        c.mail = Some(mail(port));
        c.registration.mode = latchkey_config::RegistrationMode::Open;
    })
    .await;
    let browser = signed_up(&server, "ada").await;
    nth_message(&relay, 1, "the sign-up link").await;
    let forged = browser.browser.post_form(&browser.url("/account/email"), &[("email", "eve@example.com")]).await;
    assert_eq!(forged.status(), StatusCode::BAD_REQUEST);
    let forged = browser.browser.post_form(&browser.url("/account/email/verify"), &[("csrf", "x")]).await;
    assert_eq!(forged.status(), StatusCode::BAD_REQUEST);

    let stranger = PasskeyBrowser::new(&server);
    let (_, _, csrf) = stranger.page("/login").await;
    let anonymous = stranger
        .browser
        .post_form(&stranger.url("/account/email"), &[("csrf", &csrf), ("email", "eve@example.com")])
        .await;
    assert!(anonymous.status().is_redirection(), "sign in first");
    assert!(
        ok(anonymous.headers().get("location").map(|l| l.to_str()).transpose(), "loc")
            .unwrap_or_default()
            .contains("/login")
    );

    // Resend: a fresh link; the earlier one stops working.
    let resent = browser.security_post("/account/email/verify", &[]).await;
    let to = resent.headers().get("location").and_then(|l| l.to_str().ok()).unwrap_or_default().to_owned();
    assert!(to.ends_with("done=email_link_sent"), "{to}");
    let first = link_token(&relay.messages()[0], VERIFY).unwrap_or_default();
    let second = link_token(&nth_message(&relay, 2, "the second link").await, VERIFY).unwrap_or_default();
    assert_ne!(first, second);
    let (status, _, _) = browser.page(&format!("{VERIFY}?token={first}")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "the earlier link was replaced");
    let (status, _, _) = browser.page(&format!("{VERIFY}?token={second}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(relay.messages().len(), 2, "nothing else was sent");
}

#[tokio::test]
async fn without_mail_the_security_page_says_so_and_nothing_is_sent() {
    let server =
        TestServer::start(sqlite().await, |c| c.registration.mode = latchkey_config::RegistrationMode::Open).await;
    let browser = signed_up(&server, "ada").await;
    let (_, page, _) = browser.page("/account/security").await;
    assert!(page.contains("This server sends no email"), "{page}");
    assert!(!page.contains("resend-verification"), "no button that cannot work");
    let refused = browser.security_post("/account/email/verify", &[]).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert!(ok(refused.text().await, "page").contains("needs mail"));
    let changed = browser.security_post("/account/email", &[("email", "ada@new.example")]).await;
    let to = changed.headers().get("location").and_then(|l| l.to_str().ok()).unwrap_or_default().to_owned();
    assert!(to.ends_with("done=email_replaced"), "{to}");
    let now = user(&server, "ada").await;
    assert_eq!((now.email.map(|e| e.to_string()).as_deref(), now.email_verified), (Some("ada@new.example"), false));
}

#[tokio::test]
async fn a_link_confirms_only_in_a_browser_signed_in_to_its_own_account() {
    let relay = Relay::start().await;
    let port = relay.port;
    let server = TestServer::start(sqlite().await, move |c| {
        c.mail = Some(mail(port));
        c.registration.mode = latchkey_config::RegistrationMode::Open;
    })
    .await;
    // Mallory's link, sent to an address he typed, is opened by Ada, signed in to her own
    // account: it does not verify anything for either.
    signed_up(&server, "mallory").await;
    let sent = nth_message(&relay, 1, "mallory's link").await;
    let token = link_token(&sent, VERIFY).unwrap_or_default();
    let ada = signed_up(&server, "ada").await;
    let (status, html, _) = ada.page(&format!("{VERIFY}?token={token}")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{html}");
    assert!(html.contains("the account mallory"), "the page names the account: {html}");
    let (_, _, csrf) = ada.page("/account/security").await;
    let forced = ada.browser.post_form(&ada.url(VERIFY), &[("csrf", &csrf), ("token", &token)]).await;
    assert_eq!(forced.status(), StatusCode::FORBIDDEN);
    assert!(!user(&server, "mallory").await.email_verified, "nothing changed");
    assert!(support::smtp::decoded(&sent).contains("account mallory"), "the email names the account too");
}
