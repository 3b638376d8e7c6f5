//! Sign-in by emailed link through the pages, with a stand-in SMTP relay: the sign-in page
//! offers it where turned on; asking answers the same for every name; the link's page works
//! only in the browser that asked (a GET elsewhere, as a scanner or another device, uses
//! nothing and signs nobody in); its POST signs that browser in, once.

mod support;

use std::time::Duration;

use latchkey_core::domain::{Email, ProfileClaims, SubjectId, TenantId, Username};
use latchkey_core::records::{Actor, NewUser};
use reqwest::StatusCode;
use support::passkey::PasskeyBrowser;
use support::smtp::{Relay, header, link_token, mail};
use support::{TestServer, all_backends, eventually, ok};

const LINK: &str = "/login/link";

async fn ask(server: &TestServer, who: &str) -> (PasskeyBrowser, StatusCode, String) {
    let b = PasskeyBrowser::new(server);
    let (_, login, csrf) = b.page("/login").await;
    assert!(login.contains("id=\"email-link-form\""), "the sign-in page offers links: {login}");
    let answer = b.browser.post_form(&b.url("/login/email-link"), &[("csrf", &csrf), ("identifier", who)]).await;
    let status = answer.status();
    let page = ok(answer.text().await, "page");
    (b, status, page)
}

#[tokio::test]
async fn a_link_signs_in_only_the_browser_that_asked_for_it_once() {
    for db in all_backends().await {
        let b = db.backend;
        let relay = Relay::start().await;
        let port = relay.port;
        let server = TestServer::start(db, move |c| {
            c.mail = Some(mail(port));
            c.login.email_link = true;
        })
        .await;
        let new = NewUser {
            sub: SubjectId::generate(),
            username: ok(Username::parse("una"), "username"),
            email: Some(ok(Email::parse("una@example.com"), "email")),
            email_verified: true,
            name: None,
            profile: ProfileClaims::default(),
            password_hash: None,
            service_account: false,
        };
        ok(server.state().services.users().create(&TenantId::default_tenant(), new, &Actor::Cli).await, b);

        let (_, unknown_status, unknown) = ask(&server, "nobody").await;
        let (browser, status, known) = ask(&server, "una").await;
        assert_eq!((status, unknown_status), (StatusCode::OK, StatusCode::OK), "{b}");
        assert_eq!(known, unknown, "{b}: the same answer for an unknown name");
        eventually(Duration::from_secs(10), "the link", || async { relay.messages().len() == 1 }).await;
        let message = relay.messages().remove(0);
        assert_eq!(header(&message, "To"), Some("una@example.com"), "{b}");
        let token = link_token(&message, LINK).unwrap_or_else(|| panic!("{b}: no link in {message}"));
        let link = format!("{LINK}?token={token}");

        // Another browser (a scanner, another device) gets nothing and uses nothing.
        let other = PasskeyBrowser::new(&server);
        for _ in 0..2 {
            let (status, html, _) = other.page(&link).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{b}: {html}");
            assert!(html.contains("asked for in another browser"), "{b}");
        }
        let (_, _, other_csrf) = other.page("/login").await;
        let forged = other.browser.post_form(&other.url(LINK), &[("csrf", &other_csrf), ("token", &token)]).await;
        assert_eq!(forged.status(), StatusCode::BAD_REQUEST, "{b}");

        let (status, html, csrf) = browser.page(&link).await;
        assert_eq!(status, StatusCode::OK, "{b}: {html}");
        assert!(html.contains("Sign in to your account una in this browser?"), "{b}: {html}");
        let no_csrf = browser.browser.post_form(&browser.url(LINK), &[("token", &token)]).await;
        assert_eq!(no_csrf.status(), StatusCode::BAD_REQUEST, "{b}");
        let done = browser.browser.post_form(&browser.url(LINK), &[("csrf", &csrf), ("token", &token)]).await;
        assert_eq!(browser.location(&done), browser.url("/login/done"), "{b}");
        let (status, _, _) = browser.page("/account/security").await;
        assert_eq!(status, StatusCode::OK, "{b}: signed in");
        let (status, _, _) = other.page("/account/security").await;
        assert_ne!(status, StatusCode::OK, "{b}: the other browser is not");
        let again = browser.browser.post_form(&browser.url(LINK), &[("csrf", &csrf), ("token", &token)]).await;
        assert_eq!(again.status(), StatusCode::BAD_REQUEST, "{b}: once");

        // An account with an authenticator app still gives its code after the link.
        let services = &server.state().services;
        let tenant = TenantId::default_tenant();
        let una = ok(services.users().by_username(&tenant, &ok(Username::parse("una"), "name")).await, b);
        let una = una.unwrap_or_else(|| panic!("una"));
        ok(services.factors().begin_totp(&tenant, &una.sub).await, b);
        let secret = ok(services.factors().pending_totp(&tenant, &una.sub).await, b).unwrap_or_else(|| panic!("app"));
        let code = secret.code_at(u64::try_from(server.clock.now().secs()).unwrap_or(0)).unwrap_or_default();
        ok(services.factors().confirm_totp_code(&tenant, &una.sub, &code, &Actor::Cli).await, b);
        let (browser, _, _) = ask(&server, "una").await;
        eventually(Duration::from_secs(10), "the second link", || async { relay.messages().len() == 2 }).await;
        let token = link_token(&relay.messages().remove(1), LINK).unwrap_or_default();
        let (_, _, csrf) = browser.page(&format!("{LINK}?token={token}")).await;
        let done = browser.browser.post_form(&browser.url(LINK), &[("csrf", &csrf), ("token", &token)]).await;
        assert_eq!(browser.location(&done), browser.url("/login/second-factor"), "{b}: the app is still asked for");
        let (status, _, _) = browser.page("/account/security").await;
        assert_ne!(status, StatusCode::OK, "{b}: not signed in by the link alone");
    }
}

#[tokio::test]
async fn without_the_setting_nothing_is_offered_and_bad_input_gets_a_clear_page() {
    let relay = Relay::start().await;
    let port = relay.port;
    let server = TestServer::start(support::sqlite().await, move |c| c.mail = Some(mail(port))).await;
    let b = PasskeyBrowser::new(&server);
    let (_, login, csrf) = b.page("/login").await;
    assert!(!login.contains("email-link-form"));
    let refused = b.browser.post_form(&b.url("/login/email-link"), &[("csrf", &csrf), ("identifier", "una")]).await;
    assert_eq!(refused.status(), StatusCode::NOT_FOUND);
    let (status, _, _) = b.page(&format!("{LINK}?token=abc")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let on = TestServer::start(support::sqlite().await, move |c| {
        c.mail = Some(mail(port));
        c.login.email_link = true;
    })
    .await;
    let b = PasskeyBrowser::new(&on);
    let (_, _, csrf) = b.page("/login").await;
    let long = "a".repeat(400);
    for bad in ["", "   ", long.as_str()] {
        let refused = b.browser.post_form(&b.url("/login/email-link"), &[("csrf", &csrf), ("identifier", bad)]).await;
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST, "`{bad}`");
    }
    let no_csrf = b.browser.post_form(&b.url("/login/email-link"), &[("identifier", "una")]).await;
    assert_eq!(no_csrf.status(), StatusCode::BAD_REQUEST);
    for link in [LINK.to_owned(), format!("{LINK}?token="), format!("{LINK}?token={long}")] {
        let (status, html, _) = b.page(&link).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{link}");
        assert!(html.contains("expired"), "{link}: {html}");
    }
}
