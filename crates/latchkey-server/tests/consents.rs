//! Withdrawing a consent from the admin API: the client's refresh and access tokens for the
//! user stop working, the client gets a back-channel logout, other clients keep theirs, and
//! the user is asked again.

mod support;

use std::sync::Arc;
use std::time::Duration;

use latchkey_config::Purpose;
use latchkey_core::Clock;
use latchkey_core::domain::{ClientSessionPolicy, LogoutUri};
use reqwest::StatusCode;
use serde_json::json;
use support::admin::{call, machine_client, machine_token};
use support::browser::Browser;
use support::flow::{Rp, claims, secret_of};
use support::rp::RelyingParty;
use support::{ClientSpec, TestServer, all_backends, eventually, ok};

const NOTES: &str = "https://notes.example.com/callback";
const WEBAPP: &str = "https://app.example.com/callback";
const DELIVERY: Duration = Duration::from_secs(10);

async fn userinfo(server: &TestServer, access: &str) -> StatusCode {
    ok(server.http.get(server.url("/userinfo")).bearer_auth(access).send().await, "userinfo").status()
}

#[tokio::test]
async fn a_withdrawn_consent_ends_the_clients_tokens_tells_it_and_asks_again() {
    for db in all_backends().await {
        let b = db.backend;
        let rp = RelyingParty::start(0).await;
        let dir = Arc::new(ok(tempfile::tempdir(), "dir"));
        let port = rp.addr.port();
        let server = ok(
            TestServer::start_in(db, dir, Clock::system(), |c| {
                c.logout.backchannel_poll_interval = Duration::from_millis(100);
                c.outbound.allow = vec![support::allow_loopback(Purpose::BackchannelLogout, &[port])];
            })
            .await,
            "start",
        );
        let sub = server.create_user("ada", support::flow::PASSWORD).await;
        let uri = ok(LogoutUri::parse(&rp.backchannel_uri("notes")), "uri");
        let policy = ClientSessionPolicy { backchannel_logout_uri: Some(uri), ..Default::default() };
        let notes_spec =
            ClientSpec { id: "notes", redirect_uris: &[NOTES], session_policy: policy, ..Default::default() };
        server.create_client(notes_spec).await;
        server.create_client(ClientSpec { id: "webapp", redirect_uris: &[WEBAPP], ..Default::default() }).await;
        machine_client(&server, "ops").await;
        let admin = machine_token(&server, "ops", "admin:users:read admin:users:write").await;
        let (notes_secret, webapp_secret) = (secret_of("notes"), secret_of("webapp"));
        let notes = Rp { id: "notes", secret: &notes_secret, callback: NOTES };
        let webapp = Rp { id: "webapp", secret: &webapp_secret, callback: WEBAPP };
        let browser = Browser::new(server.server.addr);

        let n =
            notes.tokens(&server, &notes.sign_in(&server, &browser, "ada", "openid email offline_access").await).await;
        // A second grant without a refresh token: only the consent's revocation ends it.
        let plain = notes.tokens(&server, &notes.sign_in(&server, &browser, "ada", "openid").await).await;
        assert!(plain.get("refresh_token").is_none(), "{b}: {plain}");
        let plain_access = plain["access_token"].as_str().unwrap_or_default();
        // A code issued before the withdrawal, redeemed after it.
        let held_code = notes.sign_in(&server, &browser, "ada", "openid").await;
        let w = webapp.tokens(&server, &webapp.sign_in(&server, &browser, "ada", "openid").await).await;
        let (notes_access, webapp_access) =
            (n["access_token"].as_str().unwrap_or_default(), w["access_token"].as_str().unwrap_or_default());
        let notes_refresh = n["refresh_token"].as_str().unwrap_or_else(|| panic!("{b}: refresh token"));
        let sid = claims(n["id_token"].as_str().unwrap_or_default())["sid"].as_str().unwrap_or_default().to_owned();
        assert_eq!(userinfo(&server, notes_access).await, StatusCode::OK, "{b}");

        let path = format!("/users/{sub}/consents");
        let (status, list) = call(&server, &admin, "GET", &path, None).await;
        assert_eq!(status, StatusCode::OK, "{b}: {list}");
        let clients: Vec<&str> =
            list.as_array().into_iter().flatten().filter_map(|c| c["client_id"].as_str()).collect();
        assert_eq!(clients, ["notes", "webapp"], "{b}: {list}");
        assert_eq!(list[0]["scopes"], json!(["openid", "email", "offline_access"]), "{b}");
        assert_eq!(list[0]["how"], "page", "{b}: {list}");
        assert!(list[0]["version"].as_str().is_some_and(|v| v.len() == 22), "{b}: {list}");

        // Bad input: an unknown user, a malformed client id, a client never allowed anything.
        assert_eq!(call(&server, &admin, "GET", "/users/nobody/consents", None).await.0, StatusCode::NOT_FOUND, "{b}");
        assert_eq!(call(&server, &admin, "DELETE", &format!("{path}/no%20such"), None).await.0, StatusCode::NOT_FOUND);
        assert_eq!(call(&server, &admin, "DELETE", &format!("{path}/ops"), None).await.0, StatusCode::NOT_FOUND, "{b}");
        // Reading is not withdrawing.
        let reader = machine_token(&server, "ops", "admin:users:read").await;
        assert_eq!(call(&server, &reader, "DELETE", &format!("{path}/notes"), None).await.0, StatusCode::FORBIDDEN);

        let (status, done) = call(&server, &admin, "DELETE", &format!("{path}/notes"), None).await;
        assert_eq!(status, StatusCode::OK, "{b}: {done}");
        assert_eq!(done, json!({"grants_revoked": 1, "logouts_queued": 1}), "{b}");
        assert_eq!(userinfo(&server, notes_access).await, StatusCode::UNAUTHORIZED, "{b}: notes' access token");
        assert_eq!(userinfo(&server, plain_access).await, StatusCode::UNAUTHORIZED, "{b}: without a refresh token");
        let (status, body) = notes.refresh(&server, notes_refresh).await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "{b}");
        assert_eq!(userinfo(&server, webapp_access).await, StatusCode::OK, "{b}: webapp keeps its tokens");
        eventually(DELIVERY, "notes' back-channel logout", || async { !rp.received().is_empty() }).await;
        let received = rp.received();
        assert_eq!(received.len(), 1, "{b}: only notes is told");
        let keys = ok(serde_json::from_value(server.get_json("/jwks.json").await), "jwks");
        let logout = support::rp::verify_logout_token(&received[0].1, &keys, &server.server.issuer, "notes");
        assert_eq!(logout["sid"].as_str(), Some(sid.as_str()), "{b}");
        let (_, list) = call(&server, &admin, "GET", &path, None).await;
        assert_eq!(list.as_array().map(Vec::len), Some(1), "{b}: {list}");
        assert_eq!(call(&server, &admin, "DELETE", &format!("{path}/notes"), None).await.0, StatusCode::NOT_FOUND);
        // The withdrawal stays on record.
        let (status, history) = call(&server, &admin, "GET", &format!("/users/{sub}/consent-history"), None).await;
        assert_eq!(status, StatusCode::OK, "{b}: {history}");
        let entries = history.as_array().cloned().unwrap_or_default();
        let notes_entries: Vec<_> = entries.iter().filter(|h| h["client_id"] == "notes").collect();
        assert!(
            !notes_entries.is_empty() && notes_entries.iter().all(|h| h["withdrawn_at"].is_i64()),
            "{b}: {history}"
        );
        assert!(entries.iter().any(|h| h["client_id"] == "webapp" && h["withdrawn_at"].is_null()), "{b}: {history}");
        let (status, _) = call(&server, &admin, "GET", "/users/nobody/consent-history", None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{b}");
        // The person's export, as an operator reads it: the same history and recipients.
        let (status, doc) = call(&server, &admin, "GET", &format!("/users/{sub}/export"), None).await;
        assert_eq!(status, StatusCode::OK, "{b}: {doc}");
        assert_eq!(doc["profile"]["username"], "ada", "{b}");
        assert!(doc["recipients"].as_array().is_some_and(|r| r.iter().any(|x| x["app"] == "webapp")), "{b}: {doc}");
        assert_eq!(call(&server, &admin, "GET", "/users/nobody/export", None).await.0, StatusCode::NOT_FOUND, "{b}");

        // The user is asked again (the browser is still signed in), and new tokens work:
        // those issued in the second of the withdrawal are refused, so a second passes.
        server.clock.advance(Duration::from_secs(2));
        let code = support::flow::param(&held_code, "code").unwrap_or_default();
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", NOTES),
            ("code_verifier", support::flow::VERIFIER),
        ];
        let request = server.http.post(server.url("/token")).basic_auth("notes", Some(&notes_secret)).form(&form);
        let response = ok(request.send().await, "token");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{b}: a code from before the withdrawal");
        let body: serde_json::Value = ok(response.json().await, "json");
        assert_eq!(body["error"], "invalid_grant", "{b}: {body}");
        assert!(notes.start(&server, &browser, "openid", &[]).await.contains("/consent?"), "{b}: asked again");
        let again = notes.tokens(&server, &notes.sign_in(&server, &browser, "ada", "openid").await).await;
        assert_eq!(userinfo(&server, again["access_token"].as_str().unwrap_or_default()).await, StatusCode::OK, "{b}");
        server.stop().await;
    }
}

#[tokio::test]
async fn a_user_removes_an_apps_access_from_the_account_page() {
    for db in all_backends().await {
        let b = db.backend;
        let server = TestServer::start(db, |_| {}).await;
        server.create_user("ada", support::flow::PASSWORD).await;
        server.create_client(ClientSpec { id: "notes", redirect_uris: &[NOTES], ..Default::default() }).await;
        let notes_secret = secret_of("notes");
        let notes = Rp { id: "notes", secret: &notes_secret, callback: NOTES };
        let base = server.server.issuer.clone();
        let browser = Browser::new(server.server.addr);
        let page = browser.get(&format!("{base}/account/apps")).await;
        assert_eq!(page.status(), StatusCode::SEE_OTHER, "{b}: signed out");
        assert!(Browser::location(&page, &base).contains("/login?return_to=apps"), "{b}");

        let tokens = notes.tokens(&server, &notes.sign_in(&server, &browser, "ada", "openid email").await).await;
        let access = tokens["access_token"].as_str().unwrap_or_default().to_owned();
        let page = browser.get(&format!("{base}/account/apps")).await;
        assert_eq!(page.status(), StatusCode::OK, "{b}");
        assert_eq!(page.headers().get("cache-control").and_then(|v| v.to_str().ok()), Some("no-store"), "{b}");
        let html = ok(page.text().await, "html");
        assert!(html.contains("notes app") && html.contains("data-client-id=\"notes\""), "{b}: {html}");
        assert!(html.contains("<code>email</code>"), "{b}: what it may see: {html}");
        let csrf = support::browser::hidden_field(&html, "csrf").unwrap_or_default();
        let withdraw = |client: &'static str, csrf: String| {
            let browser = &browser;
            let url = format!("{base}/account/apps/withdraw");
            async move { browser.post_form(&url, &[("csrf", csrf.as_str()), ("client_id", client)]).await }
        };

        // Bad input: a forged form, a client with no access, a malformed id. Nothing changes.
        assert_eq!(withdraw("notes", "forged".into()).await.status(), StatusCode::BAD_REQUEST, "{b}");
        for client in ["webapp", "not a client"] {
            let refused = withdraw(client, csrf.clone()).await;
            assert!(Browser::location(&refused, &base).ends_with("/account/apps?error=not_found"), "{b}: {client}");
        }
        assert_eq!(userinfo(&server, &access).await, StatusCode::OK, "{b}: still allowed");

        let done = withdraw("notes", csrf.clone()).await;
        assert!(Browser::location(&done, &base).ends_with("/account/apps?done=withdrawn"), "{b}");
        assert_eq!(userinfo(&server, &access).await, StatusCode::UNAUTHORIZED, "{b}: the app's token stops");
        let html = ok(browser.get(&format!("{base}/account/apps?done=withdrawn")).await.text().await, "html");
        assert!(html.contains("Access removed") && html.contains("id=\"no-apps\""), "{b}: {html}");
        server.stop().await;
    }
}

#[tokio::test]
async fn a_user_deletes_their_account_from_the_account_page() {
    for db in all_backends().await {
        let b = db.backend;
        let server = TestServer::start(db, |_| {}).await;
        server.create_user("ada", support::flow::PASSWORD).await;
        server.create_client(ClientSpec { id: "notes", redirect_uris: &[NOTES], ..Default::default() }).await;
        let notes_secret = secret_of("notes");
        let notes = Rp { id: "notes", secret: &notes_secret, callback: NOTES };
        let base = server.server.issuer.clone();
        let page_url = format!("{base}/account/delete");

        let stranger = Browser::new(server.server.addr);
        let page = stranger.get(&page_url).await;
        assert!(Browser::location(&page, &base).contains("/login?return_to=delete-account"), "{b}: signed out");

        // A sign-in that is no longer recent: asked to confirm it's them first.
        let earlier = Browser::new(server.server.addr);
        notes.sign_in(&server, &earlier, "ada", "openid").await;
        server.clock.advance(Duration::from_secs(301));
        let html = ok(earlier.get(&page_url).await.text().await, "html");
        assert!(html.contains("id=\"confirm-first\"") && !html.contains("id=\"delete-form\""), "{b}: {html}");
        // A form sent anyway (its token taken from another page) is refused too.
        let other = ok(earlier.get(&format!("{base}/account/apps")).await.text().await, "apps");
        let csrf = support::browser::hidden_field(&other, "csrf").unwrap_or_default();
        let refused = earlier.post_form(&page_url, &[("csrf", csrf.as_str()), ("confirm", "ada")]).await;
        assert!(Browser::location(&refused, &base).contains("return_to=delete-account"), "{b}: not recent");

        let browser = Browser::new(server.server.addr);
        let tokens = notes.tokens(&server, &notes.sign_in(&server, &browser, "ada", "openid").await).await;
        let access = tokens["access_token"].as_str().unwrap_or_default().to_owned();
        // First, a copy of everything held about them.
        let export = browser.get(&format!("{base}/account/export")).await;
        assert_eq!(export.status(), StatusCode::OK, "{b}");
        let header =
            |name: &str| export.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        assert_eq!(header("cache-control"), "no-store", "{b}");
        assert!(header("content-disposition").starts_with("attachment"), "{b}");
        let doc: serde_json::Value = ok(export.json().await, "export");
        assert_eq!(doc["profile"]["username"], "ada", "{b}");
        assert_eq!(doc["consents"][0]["app"], "notes", "{b}: {doc}");
        assert!(!doc.to_string().contains("$argon2"), "{b}: no password hash");
        let not_recent = earlier.get(&format!("{base}/account/export")).await;
        assert!(Browser::location(&not_recent, &base).contains("return_to=export"), "{b}: not a recent sign-in");
        let page = browser.get(&page_url).await;
        assert_eq!(page.status(), StatusCode::OK, "{b}");
        assert_eq!(page.headers().get("cache-control").and_then(|v| v.to_str().ok()), Some("no-store"), "{b}");
        let html = ok(page.text().await, "html");
        assert!(html.contains("id=\"delete-form\""), "{b}: {html}");
        let csrf = support::browser::hidden_field(&html, "csrf").unwrap_or_default();

        // Bad input: a forged form, the wrong username. Nothing is deleted.
        let forged = browser.post_form(&page_url, &[("csrf", "forged"), ("confirm", "ada")]).await;
        assert_eq!(forged.status(), StatusCode::BAD_REQUEST, "{b}");
        let wrong = browser.post_form(&page_url, &[("csrf", csrf.as_str()), ("confirm", "bob")]).await;
        assert_eq!(wrong.status(), StatusCode::BAD_REQUEST, "{b}");
        assert!(ok(wrong.text().await, "html").contains("Nothing was deleted"), "{b}");
        assert_eq!(userinfo(&server, &access).await, StatusCode::OK, "{b}: still there");

        let done = browser.post_form(&page_url, &[("csrf", csrf.as_str()), ("confirm", " ADA ")]).await;
        assert_eq!(done.status(), StatusCode::OK, "{b}");
        let cleared = done
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|c| c.contains("Max-Age=0"));
        assert!(cleared, "{b}: the session cookie is cleared");
        let html = ok(done.text().await, "html");
        assert!(html.contains("id=\"receipt-id\"") && html.contains("account: 1"), "{b}: {html}");
        assert!(!html.contains("ada"), "{b}: the receipt names nothing erased: {html}");
        assert_eq!(userinfo(&server, &access).await, StatusCode::UNAUTHORIZED, "{b}: the app's token stops");
        let users = server.state().services.users();
        let found = users.find(&latchkey_core::domain::TenantId::default_tenant(), "ada").await;
        assert!(matches!(found, Err(latchkey_service::ServiceError::NotFound(_))), "{b}: gone: {found:?}");
        let after = browser.get(&page_url).await;
        assert!(Browser::location(&after, &base).contains("/login"), "{b}: signed out");
        server.stop().await;
    }
}
