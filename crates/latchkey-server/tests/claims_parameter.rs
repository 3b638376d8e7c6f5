//! The `claims` request parameter (OIDC Core §5.5): claims asked for one by one reach
//! UserInfo and the ID token, after the user allowed them, for every token of the grant.

mod support;

use reqwest::StatusCode;
use support::browser::Browser;
use support::flow::{PASSWORD, Rp, claims, param, secret_of};
use support::{ClientSpec, TestServer, all_backends, ok};

const CALLBACK: &str = "https://app.example.com/callback";

/// A server with ada (name "Test User", email ada@example.com, given name "Test") and
/// `webapp`, a third-party client that may have `openid profile email offline_access`.
async fn start(db: std::sync::Arc<latchkey_service::testing::TestDatabase>, first_party: bool) -> (TestServer, String) {
    let server = TestServer::start(db, |_| {}).await;
    server.create_user("ada", PASSWORD).await;
    server.create_client(ClientSpec { first_party, ..ClientSpec::default() }).await;
    (server, secret_of("webapp"))
}

/// Runs an authorization request, signing ada in if asked: where the browser ends (the
/// consent page or the callback).
async fn authorize(server: &TestServer, browser: &Browser, rp: &Rp<'_>, scope: &str, extra: &[(&str, &str)]) -> String {
    let issuer = server.server.issuer.clone();
    let mut location = rp.start(server, browser, scope, extra).await;
    if location.contains("/login?") {
        let after = browser.sign_in(&location, &issuer, "ada", PASSWORD).await;
        let resumed = browser.get(&Browser::location(&after, &issuer)).await;
        location = Browser::location(&resumed, &issuer);
    }
    location
}

/// The consent page's HTML, then the callback after allowing.
async fn allow(server: &TestServer, browser: &Browser, consent_url: &str) -> (String, url::Url) {
    assert!(consent_url.contains("/consent?"), "expected the consent page, got {consent_url}");
    let html = ok(browser.get(consent_url).await.text().await, "consent page");
    let issuer = server.server.issuer.clone();
    let callback = Browser::location(&browser.consent(consent_url, &issuer, "allow").await, &issuer);
    (html, ok(url::Url::parse(&callback), "callback"))
}

async fn userinfo(server: &TestServer, access_token: &str) -> serde_json::Value {
    let response = ok(server.http.get(server.url("/userinfo")).bearer_auth(access_token).send().await, "userinfo");
    assert_eq!(response.status(), StatusCode::OK, "userinfo");
    ok(response.json().await, "userinfo json")
}

fn access_token(tokens: &serde_json::Value) -> &str {
    tokens["access_token"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn userinfo_releases_a_claim_asked_for_by_name_without_its_scope_after_consent() {
    for db in all_backends().await {
        let b = db.backend;
        let (server, secret) = start(db, false).await;
        let rp = Rp { id: "webapp", secret: &secret, callback: CALLBACK };
        let browser = Browser::new(server.server.addr);
        let asked = r#"{"userinfo":{"name":{"essential":true}}}"#;
        let consent = authorize(&server, &browser, &rp, "openid", &[("claims", asked)]).await;
        let (page, callback) = allow(&server, &browser, &consent).await;
        assert!(page.contains("<code>name</code>"), "{b}: the consent page names the claim: {page}");
        assert!(page.contains("Your full name"), "{b}: and says what it is: {page}");
        assert!(page.contains("says it needs this"), "{b}: an essential claim is marked: {page}");
        assert!(!page.contains("<code>email</code>") && !page.contains("<code>profile</code>"), "{b}: {page}");

        let tokens = rp.tokens(&server, &callback).await;
        assert_eq!(tokens["scope"], "openid", "{b}: the claim is not a scope");
        let info = userinfo(&server, access_token(&tokens)).await;
        assert_eq!(info["name"], "Test User", "{b}: {info}");
        // Only what was asked for: no other profile claim, no email.
        let mut released: Vec<&String> = info.as_object().map(|o| o.keys().collect()).unwrap_or_default();
        released.sort();
        assert_eq!(released, ["name", "sub"], "{b}: {info}");
        let id = claims(tokens["id_token"].as_str().unwrap_or_default());
        assert!(id.get("name").is_none(), "{b}: asked of UserInfo, not of the ID token: {id}");
        server.stop().await;
    }
}

#[tokio::test]
async fn the_id_token_carries_a_claim_asked_for_in_its_id_token_member() {
    for db in all_backends().await {
        let b = db.backend;
        let (server, secret) = start(db, false).await;
        let rp = Rp { id: "webapp", secret: &secret, callback: CALLBACK };
        let browser = Browser::new(server.server.addr);
        let asked = r#"{"id_token":{"email":null,"given_name":{"value":"Test"},"family_name":null}}"#;
        let consent = authorize(&server, &browser, &rp, "openid", &[("claims", asked)]).await;
        let (page, callback) = allow(&server, &browser, &consent).await;
        for name in ["email", "given_name", "family_name"] {
            assert!(page.contains(&format!("<code>{name}</code>")), "{b}: {name} is on the consent page: {page}");
        }
        let tokens = rp.tokens(&server, &callback).await;
        let id = claims(tokens["id_token"].as_str().unwrap_or_default());
        assert_eq!(id["email"], "ada@example.com", "{b}: {id}");
        assert_eq!(id["given_name"], "Test", "{b}: the value asked for is ada's: {id}");
        assert!(id.get("family_name").is_none(), "{b}: ada has no family name, and that is no error: {id}");
        assert!(id.get("name").is_none() && id.get("email_verified").is_none(), "{b}: nothing else: {id}");
        let info = userinfo(&server, access_token(&tokens)).await;
        assert!(info.get("email").is_none(), "{b}: asked of the ID token, not of UserInfo: {info}");
        server.stop().await;
    }
}

#[tokio::test]
async fn requested_claims_outlive_a_refresh() {
    for db in all_backends().await {
        let b = db.backend;
        let (server, secret) = start(db, false).await;
        let rp = Rp { id: "webapp", secret: &secret, callback: CALLBACK };
        let browser = Browser::new(server.server.addr);
        let asked = r#"{"userinfo":{"name":null},"id_token":{"email":null}}"#;
        let consent = authorize(&server, &browser, &rp, "openid offline_access", &[("claims", asked)]).await;
        let (_, callback) = allow(&server, &browser, &consent).await;
        let tokens = rp.tokens(&server, &callback).await;
        let refresh_token = tokens["refresh_token"].as_str().unwrap_or_default();
        assert!(!refresh_token.is_empty(), "{b}: {tokens}");

        let (status, refreshed) = rp.refresh(&server, refresh_token).await;
        assert_eq!(status, StatusCode::OK, "{b}: {refreshed}");
        let info = userinfo(&server, access_token(&refreshed)).await;
        assert_eq!(info["name"], "Test User", "{b}: the refreshed access token keeps the claim: {info}");
        assert!(info.get("email").is_none(), "{b}: {info}");
        let id = claims(refreshed["id_token"].as_str().unwrap_or_default());
        assert_eq!(id["email"], "ada@example.com", "{b}: so does the refreshed ID token: {id}");

        // And the next refresh, narrowed to `openid`.
        let next = refreshed["refresh_token"].as_str().unwrap_or_default();
        let form = [("grant_type", "refresh_token"), ("refresh_token", next), ("scope", "openid")];
        let response = ok(
            server.http.post(server.url("/token")).basic_auth("webapp", Some(&secret)).form(&form).send().await,
            "t",
        );
        let narrowed: serde_json::Value = ok(response.json().await, "narrowed");
        assert_eq!(narrowed["scope"], "openid", "{b}: {narrowed}");
        assert_eq!(userinfo(&server, access_token(&narrowed)).await["name"], "Test User", "{b}");
        server.stop().await;
    }
}

#[tokio::test]
async fn consent_to_a_claim_is_remembered_and_a_new_claim_is_asked_for() {
    for db in all_backends().await {
        let b = db.backend;
        let (server, secret) = start(db, false).await;
        let rp = Rp { id: "webapp", secret: &secret, callback: CALLBACK };
        let browser = Browser::new(server.server.addr);
        let name = r#"{"userinfo":{"name":null}}"#;
        let consent = authorize(&server, &browser, &rp, "openid", &[("claims", name)]).await;
        allow(&server, &browser, &consent).await;

        let again = authorize(&server, &browser, &rp, "openid", &[("claims", name)]).await;
        assert!(again.starts_with(CALLBACK), "{b}: an allowed claim is not asked for again: {again}");
        // prompt=none cannot ask: a claim not yet allowed is consent_required.
        let email = r#"{"userinfo":{"email":null}}"#;
        let silent = authorize(&server, &browser, &rp, "openid", &[("claims", email), ("prompt", "none")]).await;
        let silent = ok(url::Url::parse(&silent), "silent");
        assert_eq!(param(&silent, "error").as_deref(), Some("consent_required"), "{b}: {silent}");

        let asked = authorize(&server, &browser, &rp, "openid", &[("claims", email)]).await;
        let (page, callback) = allow(&server, &browser, &asked).await;
        assert!(page.contains("<code>email</code>"), "{b}: {page}");
        let tokens = rp.tokens(&server, &callback).await;
        let info = userinfo(&server, access_token(&tokens)).await;
        assert_eq!(info["email"], "ada@example.com", "{b}: {info}");
        assert!(info.get("name").is_none(), "{b}: this grant did not ask for the name: {info}");

        // A scope allowed before covers its claims: no new question.
        let profile = authorize(&server, &browser, &rp, "openid profile", &[]).await;
        let (_, _) = allow(&server, &browser, &profile).await;
        let given = r#"{"id_token":{"given_name":null}}"#;
        let covered = authorize(&server, &browser, &rp, "openid", &[("claims", given)]).await;
        assert!(covered.starts_with(CALLBACK), "{b}: the profile scope was allowed: {covered}");
        server.stop().await;
    }
}

#[tokio::test]
async fn a_first_party_client_gets_requested_claims_without_a_consent_page() {
    for db in all_backends().await {
        let b = db.backend;
        let (server, secret) = start(db, true).await;
        let rp = Rp { id: "webapp", secret: &secret, callback: CALLBACK };
        let browser = Browser::new(server.server.addr);
        let asked = r#"{"userinfo":{"email":null},"id_token":{"name":null}}"#;
        let location = authorize(&server, &browser, &rp, "openid", &[("claims", asked)]).await;
        assert!(location.starts_with(CALLBACK), "{b}: no consent page: {location}");
        let tokens = rp.tokens(&server, &ok(url::Url::parse(&location), "callback")).await;
        assert_eq!(userinfo(&server, access_token(&tokens)).await["email"], "ada@example.com", "{b}");
        assert_eq!(claims(tokens["id_token"].as_str().unwrap_or_default())["name"], "Test User", "{b}");
        server.stop().await;
    }
}

#[tokio::test]
async fn claims_not_asked_for_not_allowed_to_the_client_or_with_another_value_are_not_released() {
    for db in all_backends().await {
        let b = db.backend;
        let (server, secret) = start(db, true).await;
        let rp = Rp { id: "webapp", secret: &secret, callback: CALLBACK };
        let browser = Browser::new(server.server.addr);
        // webapp may not have the `phone` scope, so not its claims either; the email asked
        // for is not ada's; an unknown claim is ignored.
        let asked = r#"{"userinfo":{"phone_number":{"essential":true},"email":{"value":"bob@example.com"},
            "locale":null,"http://example.com/claims/groups":null},"id_token":{"phone_number":null}}"#;
        let location = authorize(&server, &browser, &rp, "openid", &[("claims", asked)]).await;
        let tokens = rp.tokens(&server, &ok(url::Url::parse(&location), "callback")).await;
        let info = userinfo(&server, access_token(&tokens)).await;
        assert_eq!(info.as_object().map(|o| o.len()), Some(1), "{b}: only sub: {info}");
        let id = claims(tokens["id_token"].as_str().unwrap_or_default());
        assert!(id.get("phone_number").is_none(), "{b}: {id}");
        // The access token carries no request for what may not be released.
        let at = claims(access_token(&tokens));
        let carried: Vec<&String> = at["userinfo_claims"].as_object().map(|o| o.keys().collect()).unwrap_or_default();
        assert_eq!(carried, ["email", "locale"], "{b}: {at}");

        // The same value as ada's is released.
        let asked = r#"{"userinfo":{"email":{"values":["bob@example.com","ada@example.com"]}}}"#;
        let location = authorize(&server, &browser, &rp, "openid", &[("claims", asked)]).await;
        let tokens = rp.tokens(&server, &ok(url::Url::parse(&location), "callback")).await;
        assert_eq!(userinfo(&server, access_token(&tokens)).await["email"], "ada@example.com", "{b}");
        server.stop().await;
    }
}

#[tokio::test]
async fn a_malformed_claims_parameter_is_an_invalid_request() {
    let db = support::sqlite().await;
    let (server, secret) = start(db, true).await;
    let rp = Rp { id: "webapp", secret: &secret, callback: CALLBACK };
    let browser = Browser::new(server.server.addr);
    for bad in [
        "{",
        r#"["userinfo"]"#,
        r#"{"userinfo":{"name":null},"userinfo":{"email":null}}"#,
        r#"{"userinfo":{"name":{"essential":1}}}"#,
        r#"{"userinfo":{"name":"yes"}}"#,
        r#"{"id_token":{"email_verified":{"value":"true"}}}"#,
        r#"{"id_token":{"acr":{"values":[]}}}"#,
    ] {
        let location = rp.start(&server, &browser, "openid", &[("claims", bad)]).await;
        let url = ok(url::Url::parse(&location), "redirect");
        assert!(location.starts_with(CALLBACK), "{bad}: {location}");
        assert_eq!(param(&url, "error").as_deref(), Some("invalid_request"), "{bad}: {location}");
        assert!(param(&url, "error_description").is_some_and(|d| d.contains("claims")), "{bad}: {location}");
    }
    server.stop().await;
}

#[tokio::test]
async fn a_sub_claim_with_a_value_allows_a_code_for_that_user_only() {
    for db in all_backends().await {
        let b = db.backend;
        let (server, secret) = start(db, true).await;
        let bob = server.create_user("bob", PASSWORD).await;
        let rp = Rp { id: "webapp", secret: &secret, callback: CALLBACK };
        let browser = Browser::new(server.server.addr);
        let first = authorize(&server, &browser, &rp, "openid", &[]).await;
        let ada = claims(
            rp.tokens(&server, &ok(url::Url::parse(&first), "cb")).await["id_token"].as_str().unwrap_or(""),
        )["sub"]
            .as_str()
            .unwrap_or_default()
            .to_owned();

        let for_ada = format!(r#"{{"id_token":{{"sub":{{"value":"{ada}"}}}}}}"#);
        let location = rp.start(&server, &browser, "openid", &[("claims", &for_ada)]).await;
        assert!(location.starts_with(CALLBACK) && location.contains("code="), "{b}: ada is signed in: {location}");

        let for_bob = format!(r#"{{"id_token":{{"sub":{{"value":"{bob}"}}}}}}"#);
        let silent = rp.start(&server, &browser, "openid", &[("claims", &for_bob), ("prompt", "none")]).await;
        let silent = ok(url::Url::parse(&silent), "silent");
        assert_eq!(param(&silent, "error").as_deref(), Some("login_required"), "{b}: {silent}");
        // Asked to sign in as bob, ada signs in again: still no code for ada.
        let again = authorize(&server, &browser, &rp, "openid", &[("claims", &for_bob)]).await;
        let again = ok(url::Url::parse(&again), "again");
        assert_eq!(param(&again, "error").as_deref(), Some("login_required"), "{b}: {again}");
        assert!(param(&again, "code").is_none(), "{b}: {again}");
        server.stop().await;
    }
}
