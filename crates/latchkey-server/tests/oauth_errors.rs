//! Every rule of the authorization server, from the side of a client or attacker that
//! breaks it: the error comes in the endpoint's own format, and nothing is granted.

mod support;

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use latchkey_core::domain::GrantType;
use reqwest::StatusCode;
use reqwest::header::{LOCATION, WWW_AUTHENTICATE};
use support::browser::{Browser, hidden_field};
use support::flow::{VERIFIER, authorize_url};
use support::{ClientSpec, TestServer, ok, sqlite};

const SECRET: &str = "secret-of-webapp-0123456789abcdef";
const CALLBACK: &str = "https://app.example.com/callback";

async fn setup() -> (TestServer, Browser) {
    let server = TestServer::start(sqlite().await, |_| {}).await;
    server.create_user("ada", "correct horse battery").await;
    server.create_client(ClientSpec { first_party: true, ..ClientSpec::default() }).await;
    let browser = Browser::new(server.server.addr);
    (server, browser)
}

fn callback_params(location: &str) -> Vec<(String, String)> {
    ok(url::Url::parse(location), "callback").query_pairs().into_owned().collect()
}

fn get<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// Signs in and returns the code for an authorization request with `extra` parameters.
async fn code(server: &TestServer, browser: &Browser, extra: &[(&str, &str)]) -> String {
    let issuer = server.server.issuer.clone();
    let first = browser.get(&authorize_url(server, extra)).await;
    let mut location = Browser::location(&first, &issuer);
    if location.contains("/login?") {
        let after = browser.sign_in(&location, &issuer, "ada", "correct horse battery").await;
        let resumed = browser.get(&Browser::location(&after, &issuer)).await;
        location = Browser::location(&resumed, &issuer);
    }
    if location.contains("/consent?") {
        location = Browser::location(&browser.consent(&location, &issuer, "allow").await, &issuer);
    }
    get(&callback_params(&location), "code").unwrap_or_default().to_owned()
}

async fn token(server: &TestServer, form: &[(&str, &str)]) -> (StatusCode, serde_json::Value) {
    let response =
        ok(server.http.post(server.url("/token")).basic_auth("webapp", Some(SECRET)).form(form).send().await, "token");
    let status = response.status();
    (status, response.json().await.unwrap_or_default())
}

#[tokio::test]
async fn an_unknown_client_or_unregistered_redirect_uri_gets_a_page_never_a_redirect() {
    let (server, browser) = setup().await;
    for extra in [
        vec![("client_id", "no-such-client")],
        vec![("redirect_uri", "https://evil.example/callback")],
        vec![("redirect_uri", "https://app.example.com/callback/")],
        vec![("redirect_uri", "")],
    ] {
        let response = browser.get(&authorize_url(&server, &extra)).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{extra:?}");
        assert!(response.headers().get(LOCATION).is_none(), "{extra:?}: never redirect");
        let html = ok(response.text().await, "page");
        assert!(html.contains("<h1>Bad Request</h1>"), "{html}");
    }
    let dup = browser.get(&format!("{}&client_id=webapp", authorize_url(&server, &[]))).await;
    assert_eq!(dup.status(), StatusCode::BAD_REQUEST, "a parameter sent twice");
    assert!(dup.headers().get(LOCATION).is_none());
    server.stop().await;
}

#[tokio::test]
async fn bad_requests_from_a_known_client_are_redirected_with_state_and_iss() {
    let (server, browser) = setup().await;
    let issuer = server.server.issuer.clone();
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![("code_challenge", ""), ("code_challenge_method", "")], "invalid_request"),
        (vec![("code_challenge_method", "plain")], "invalid_request"),
        (vec![("response_type", "token")], "unsupported_response_type"),
        (vec![("response_type", "code id_token")], "unsupported_response_type"),
        (vec![("request", "eyJhbGciOiJub25lIn0.e30.")], "request_not_supported"),
        (vec![("request_uri", "https://x.example/r")], "request_uri_not_supported"),
        (vec![("scope", "openid phone")], "invalid_scope"),
        (vec![("prompt", "none")], "login_required"),
        (vec![("prompt", "none login")], "invalid_request"),
        (vec![("max_age", "soon")], "invalid_request"),
        (vec![("id_token_hint", "not.a.token")], "invalid_request"),
        (vec![("response_mode", "fragment")], "invalid_request"),
    ];
    for (extra, expected) in cases {
        let response = browser.get(&authorize_url(&server, &extra)).await;
        let location = Browser::location(&response, &issuer);
        assert!(location.starts_with(CALLBACK), "{extra:?}: {location}");
        let params = callback_params(&location);
        assert_eq!(get(&params, "error"), Some(expected), "{extra:?}");
        assert_eq!(get(&params, "state"), Some("st-123"), "{extra:?}");
        assert_eq!(get(&params, "iss"), Some(issuer.as_str()), "{extra:?}");
        assert!(get(&params, "code").is_none());
    }
    // Display and locale hints are accepted, never an error.
    let fine = browser
        .get(&authorize_url(&server, &[("ui_locales", "de"), ("display", "popup"), ("claims_locales", "fr")]))
        .await;
    assert!(Browser::location(&fine, &issuer).contains("/login?req="));
    server.stop().await;
}

#[tokio::test]
async fn a_session_issues_codes_without_a_page_and_prompt_and_max_age_force_sign_in() {
    let (server, browser) = setup().await;
    let issuer = server.server.issuer.clone();
    let first = code(&server, &browser, &[]).await;
    assert!(!first.is_empty());
    // Signed in: the next request gets a code straight away, even with prompt=none.
    let silent = browser.get(&authorize_url(&server, &[("prompt", "none")])).await;
    assert!(get(&callback_params(&Browser::location(&silent, &issuer)), "code").is_some());
    // prompt=login and an exceeded max_age send the user to the login page again.
    let login = browser.get(&authorize_url(&server, &[("prompt", "login")])).await;
    assert!(Browser::location(&login, &issuer).contains("/login?req="));
    server.clock.advance(Duration::from_secs(120));
    let aged = browser.get(&authorize_url(&server, &[("max_age", "60")])).await;
    assert!(Browser::location(&aged, &issuer).contains("/login?req="));
    let recent = browser.get(&authorize_url(&server, &[("max_age", "3600")])).await;
    assert!(get(&callback_params(&Browser::location(&recent, &issuer)), "code").is_some());
    server.stop().await;
}

#[tokio::test]
async fn the_token_endpoint_enforces_every_binding_of_the_code() {
    let (server, browser) = setup().await;
    let c = code(&server, &browser, &[]).await;
    fn base(code: &str) -> Vec<(&str, &str)> {
        vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", CALLBACK),
            ("code_verifier", VERIFIER),
        ]
    }

    let mut wrong_uri = base(&c);
    wrong_uri[2] = ("redirect_uri", "https://app.example.com/other");
    let (status, body) = token(&server, &wrong_uri).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));

    // The code was spent by that attempt; a fresh one for the verifier tests.
    let c = code(&server, &browser, &[]).await;
    let mut wrong_verifier = base(&c);
    wrong_verifier[3] = ("code_verifier", "x".repeat(43).leak());
    assert_eq!(token(&server, &wrong_verifier).await.1["error"], "invalid_grant");

    let c = code(&server, &browser, &[]).await;
    let (status, body) = token(&server, &base(&c)[..3]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "verifier missing");

    let c = code(&server, &browser, &[]).await;
    server.clock.advance(Duration::from_secs(61));
    assert_eq!(token(&server, &base(&c)).await.1["error"], "invalid_grant", "codes live 60 s");

    let (status, body) = token(&server, &base("no-such-code")).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
    server.stop().await;
}

#[tokio::test]
async fn the_token_endpoint_takes_form_posts_with_one_client_authentication() {
    let (server, _) = setup().await;
    let url = server.url("/token");
    let get_status = ok(server.http.get(&url).send().await, "get").status();
    assert_eq!(get_status, StatusCode::METHOD_NOT_ALLOWED);

    let json = ok(
        server
            .http
            .post(&url)
            .basic_auth("webapp", Some(SECRET))
            .json(&serde_json::json!({"grant_type": "client_credentials"}))
            .send()
            .await,
        "json",
    );
    assert_eq!(json.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = ok(json.json().await, "body");
    assert_eq!(body["error"], "invalid_request");

    let dup = ok(
        server
            .http
            .post(&url)
            .basic_auth("webapp", Some(SECRET))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("grant_type=refresh_token&grant_type=refresh_token")
            .send()
            .await,
        "dup",
    );
    assert_eq!(ok(dup.json::<serde_json::Value>().await, "body")["error"], "invalid_request");

    let (_, body) = token(&server, &[("grant_type", "password"), ("username", "ada"), ("password", "x")]).await;
    assert_eq!(body["error"], "unsupported_grant_type", "OAuth 2.1 has no password grant");

    let wrong = ok(
        server
            .http
            .post(&url)
            .basic_auth("webapp", Some("wrong"))
            .form(&[("grant_type", "refresh_token"), ("refresh_token", "x")])
            .send()
            .await,
        "wrong",
    );
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong.headers().get(WWW_AUTHENTICATE).is_some_and(|v| v.to_str().unwrap_or("").starts_with("Basic")));
    assert_eq!(wrong.headers()["cache-control"], "no-store");
    assert_eq!(ok(wrong.json::<serde_json::Value>().await, "body")["error"], "invalid_client");

    let both = ok(
        server
            .http
            .post(&url)
            .basic_auth("webapp", Some(SECRET))
            .form(&[("grant_type", "refresh_token"), ("refresh_token", "x"), ("client_secret", SECRET)])
            .send()
            .await,
        "both",
    );
    assert_eq!(ok(both.json::<serde_json::Value>().await, "body")["error"], "invalid_request", "two methods at once");

    // The client is registered for client_secret_basic: the post method is refused.
    let post = ok(
        server
            .http
            .post(&url)
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", "x"),
                ("client_id", "webapp"),
                ("client_secret", SECRET),
            ])
            .send()
            .await,
        "post",
    );
    assert_eq!(post.status(), StatusCode::UNAUTHORIZED);

    let (_, body) = token(&server, &[("grant_type", "client_credentials")]).await;
    assert_eq!(body["error"], "unauthorized_client", "a grant the client is not registered for");
    server.stop().await;
}

#[tokio::test]
async fn revoked_and_foreign_tokens_are_inactive_and_userinfo_says_why() {
    let (server, browser) = setup().await;
    server
        .create_client(ClientSpec { id: "other", grants: &[GrantType::ClientCredentials], ..ClientSpec::default() })
        .await;
    let c = code(&server, &browser, &[]).await;
    let (_, tokens) = token(
        &server,
        &[("grant_type", "authorization_code"), ("code", &c), ("redirect_uri", CALLBACK), ("code_verifier", VERIFIER)],
    )
    .await;
    let access = tokens["access_token"].as_str().unwrap_or_default().to_owned();

    let introspect = |client: &'static str, secret: String, t: String| {
        server.http.post(server.url("/introspect")).basic_auth(client, Some(secret)).form(&[("token", t)]).send()
    };
    let active: serde_json::Value =
        ok(ok(introspect("webapp", SECRET.into(), access.clone()).await, "i").json().await, "j");
    assert_eq!(active["active"], true);
    assert_eq!(active["client_id"], "webapp");
    assert_eq!(active["username"], "ada");
    assert_eq!(active["token_type"], "Bearer");
    let foreign: serde_json::Value = ok(
        ok(introspect("other", "secret-of-other-0123456789abcdef".into(), access.clone()).await, "i").json().await,
        "j",
    );
    assert_eq!(foreign, serde_json::json!({"active": false}), "another client learns nothing");

    let info = ok(server.http.get(server.url("/userinfo")).bearer_auth(&access).send().await, "userinfo");
    assert_eq!(info.status(), StatusCode::OK);
    let no_token = ok(server.http.get(server.url("/userinfo")).send().await, "userinfo");
    assert_eq!(no_token.status(), StatusCode::UNAUTHORIZED);
    assert!(no_token.headers().get(WWW_AUTHENTICATE).is_some());
    let mut tampered = access.clone();
    tampered.push('x');
    let bad = ok(server.http.get(server.url("/userinfo")).bearer_auth(&tampered).send().await, "userinfo");
    assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
    assert!(bad.headers()[WWW_AUTHENTICATE].to_str().unwrap_or("").contains("error=\"invalid_token\""));

    // Another client's revocation of this token changes nothing; the owner's does.
    let revoke = |client: &'static str, secret: String| {
        server
            .http
            .post(server.url("/revoke"))
            .basic_auth(client, Some(secret))
            .form(&[("token", access.clone())])
            .send()
    };
    assert_eq!(ok(revoke("other", "secret-of-other-0123456789abcdef".into()).await, "r").status(), StatusCode::OK);
    let still: serde_json::Value =
        ok(ok(introspect("webapp", SECRET.into(), access.clone()).await, "i").json().await, "j");
    assert_eq!(still["active"], true);
    assert_eq!(ok(revoke("webapp", SECRET.into()).await, "r").status(), StatusCode::OK);
    let revoked: serde_json::Value =
        ok(ok(introspect("webapp", SECRET.into(), access.clone()).await, "i").json().await, "j");
    assert_eq!(revoked["active"], false);
    let after = ok(server.http.get(server.url("/userinfo")).bearer_auth(&access).send().await, "userinfo");
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
    let unknown = ok(
        server
            .http
            .post(server.url("/revoke"))
            .basic_auth("webapp", Some(SECRET))
            .form(&[("token", "nothing")])
            .send()
            .await,
        "r",
    );
    assert_eq!(unknown.status(), StatusCode::OK, "RFC 7009: unknown tokens are fine");
    server.stop().await;
}

#[tokio::test]
async fn sign_in_does_not_tell_unknown_accounts_apart_and_is_throttled() {
    let (server, browser) = setup().await;
    let issuer = server.server.issuer.clone();
    let login = format!("{issuer}/login");
    async fn attempt_at(browser: &Browser, login: &str, user: &str, password: &str) -> reqwest::Response {
        let page = ok(ok(browser.http.get(login).send().await, "page").text().await, "html");
        let csrf = hidden_field(&page, "csrf").unwrap_or_default();
        browser.post_form(login, &[("csrf", &csrf), ("username", user), ("password", password)]).await
    }
    let attempt = |user, password| attempt_at(&browser, &login, user, password);
    let wrong = attempt("ada", "wrong").await;
    let (wrong_status, wrong_body) = (wrong.status(), ok(wrong.text().await, "t"));
    let unknown = attempt("nobody", "wrong").await;
    let (unknown_status, unknown_body) = (unknown.status(), ok(unknown.text().await, "t"));
    assert_eq!(wrong_status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong_status, unknown_status);
    let message =
        |b: &str| b.split("role=\"alert\">").nth(1).and_then(|r| r.split('<').next()).unwrap_or("").to_owned();
    assert_eq!(message(&wrong_body), message(&unknown_body), "same answer for unknown accounts");
    assert!(!message(&wrong_body).is_empty());

    for _ in 0..4 {
        attempt("ada", "wrong").await;
    }
    let throttled = attempt("ada", "correct horse battery").await;
    assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS, "5 failures throttle the account");
    assert!(throttled.headers().get("retry-after").is_some());
    server.clock.advance(Duration::from_secs(901));
    let after_window = attempt("ada", "correct horse battery").await;
    assert_eq!(after_window.status(), StatusCode::SEE_OTHER, "the window passes");
    let set_cookie: Vec<String> = after_window
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_owned))
        .collect();
    assert!(
        set_cookie
            .iter()
            .any(|c| c.starts_with("latchkey-session=") && c.contains("HttpOnly") && c.contains("SameSite=Lax")),
        "{set_cookie:?}"
    );

    let forged = browser
        .post_form(&login, &[("csrf", "forged"), ("username", "ada"), ("password", "correct horse battery")])
        .await;
    assert_eq!(forged.status(), StatusCode::BAD_REQUEST, "CSRF");
    server.stop().await;
}

#[tokio::test]
async fn a_correct_password_clears_the_accounts_failures() {
    let (server, _) = setup().await;
    let login = format!("{}/login", server.server.issuer);
    // Each attempt from a new browser, so a session from the last one changes nothing.
    let attempt = |password: &'static str| {
        let (browser, login) = (Browser::new(server.server.addr), login.clone());
        async move {
            let page = ok(ok(browser.http.get(&login).send().await, "page").text().await, "html");
            let csrf = hidden_field(&page, "csrf").unwrap_or_default();
            browser.post_form(&login, &[("csrf", &csrf), ("username", "ada"), ("password", password)]).await.status()
        }
    };
    for round in 0..3 {
        for _ in 0..4 {
            assert_eq!(attempt("wrong").await, StatusCode::UNAUTHORIZED, "round {round}");
        }
        // Four failures, not five: the right password still gets in, and starts the count
        // again (without that, the second round would reach 8 and be throttled).
        assert_eq!(attempt("correct horse battery").await, StatusCode::SEE_OTHER, "round {round}");
    }
    for _ in 0..5 {
        attempt("wrong").await;
    }
    assert_eq!(attempt("correct horse battery").await, StatusCode::TOO_MANY_REQUESTS, "five in a row still throttle");
    server.stop().await;
}

#[tokio::test]
async fn consent_is_asked_remembered_and_can_be_denied() {
    let server = TestServer::start(sqlite().await, |_| {}).await;
    server.create_user("ada", "correct horse battery").await;
    server.create_client(ClientSpec::default()).await; // not first party
    let browser = Browser::new(server.server.addr);
    let issuer = server.server.issuer.clone();
    let first = browser.get(&authorize_url(&server, &[])).await;
    let after = browser.sign_in(&Browser::location(&first, &issuer), &issuer, "ada", "correct horse battery").await;
    let resumed = browser.get(&Browser::location(&after, &issuer)).await;
    let consent_url = Browser::location(&resumed, &issuer);
    assert!(consent_url.contains("/consent?req="));
    let page = ok(browser.get(&consent_url).await.text().await, "consent");
    assert!(page.contains("webapp app") && page.contains("Your email address"), "client name and scope descriptions");
    let denied = browser.consent(&consent_url, &issuer, "deny").await;
    let params = callback_params(&Browser::location(&denied, &issuer));
    assert_eq!(get(&params, "error"), Some("access_denied"));

    let again = browser.get(&authorize_url(&server, &[])).await;
    let consent_url = Browser::location(&again, &issuer);
    let allowed = browser.consent(&consent_url, &issuer, "allow").await;
    assert!(get(&callback_params(&Browser::location(&allowed, &issuer)), "code").is_some());
    // Remembered for the same scopes; asked again for new ones and with prompt=consent.
    let remembered = browser.get(&authorize_url(&server, &[])).await;
    assert!(get(&callback_params(&Browser::location(&remembered, &issuer)), "code").is_some());
    let wider = browser.get(&authorize_url(&server, &[("scope", "openid email profile")])).await;
    assert!(Browser::location(&wider, &issuer).contains("/consent?req="));
    let forced = browser.get(&authorize_url(&server, &[("prompt", "consent")])).await;
    assert!(Browser::location(&forced, &issuer).contains("/consent?req="));
    let none = browser.get(&authorize_url(&server, &[("scope", "openid profile"), ("prompt", "none")])).await;
    assert_eq!(get(&callback_params(&Browser::location(&none, &issuer)), "error"), Some("consent_required"));
    server.stop().await;
}

#[tokio::test]
async fn form_post_responses_submit_with_an_external_script_to_the_clients_origin() {
    let (server, browser) = setup().await;
    let issuer = server.server.issuer.clone();
    let first = browser.get(&authorize_url(&server, &[("response_mode", "form_post")])).await;
    let after = browser.sign_in(&Browser::location(&first, &issuer), &issuer, "ada", "correct horse battery").await;
    let page = browser.get(&Browser::location(&after, &issuer)).await;
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()["content-security-policy"].to_str().unwrap_or("").to_owned();
    assert!(csp.contains("form-action 'self' https://app.example.com;"), "{csp}");
    assert!(!csp.contains("unsafe-inline"));
    // minijinja escapes `/` in attributes as &#x2f;, which browsers read back as `/`.
    let html = ok(page.text().await, "html").replace("&#x2f;", "/");
    assert!(html.contains(&format!("action=\"{CALLBACK}\"")), "{html}");
    assert!(html.contains("static/form_post.js") && !html.contains("<script>"));
    assert!(hidden_field(&html, "code").is_some() && hidden_field(&html, "state").as_deref() == Some("st-123"));
    assert_eq!(hidden_field(&html, "iss").as_deref(), Some(issuer.as_str()));
    server.stop().await;
}

#[tokio::test]
async fn logout_needs_a_verified_hint_or_the_users_confirmation() {
    let (server, browser) = setup().await;
    let issuer = server.server.issuer.clone();
    let c = code(&server, &browser, &[]).await;
    let (_, tokens) = token(
        &server,
        &[("grant_type", "authorization_code"), ("code", &c), ("redirect_uri", CALLBACK), ("code_verifier", VERIFIER)],
    )
    .await;
    let id_token = tokens["id_token"].as_str().unwrap_or_default().to_owned();

    // A bare GET (an <img> on another site) only asks; the session survives.
    let bare = browser.get(&format!("{issuer}/logout")).await;
    assert_eq!(bare.status(), StatusCode::OK);
    assert!(ok(bare.text().await, "t").contains("Sign out?"));
    let still = browser.get(&authorize_url(&server, &[("prompt", "none")])).await;
    assert!(get(&callback_params(&Browser::location(&still, &issuer)), "code").is_some(), "still signed in");

    let mut tampered = id_token.clone();
    tampered.insert(tampered.len() - 3, 'A');
    let bad = browser.get(&format!("{issuer}/logout?id_token_hint={tampered}")).await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let unregistered = browser
        .get(&format!("{issuer}/logout?id_token_hint={id_token}&post_logout_redirect_uri=https://evil.example/"))
        .await;
    assert_eq!(unregistered.status(), StatusCode::BAD_REQUEST);
    assert!(unregistered.headers().get(LOCATION).is_none());

    // Expiry of the hint does not matter (RP-Initiated Logout §2).
    server.clock.advance(Duration::from_secs(7_200));
    let url = format!(
        "{issuer}/logout?id_token_hint={id_token}&post_logout_redirect_uri=https://app.example.com/signed-out&state=bye"
    );
    let out = browser.get(&url).await;
    assert_eq!(Browser::location(&out, &issuer), "https://app.example.com/signed-out?state=bye");
    let gone = browser.get(&authorize_url(&server, &[("prompt", "none")])).await;
    assert_eq!(get(&callback_params(&Browser::location(&gone, &issuer)), "error"), Some("login_required"));
    server.stop().await;
}

#[tokio::test]
async fn every_endpoint_discovery_advertises_answers() {
    let (server, _) = setup().await;
    let doc = server.get_json("/.well-known/openid-configuration").await;
    let issuer = server.server.issuer.clone();
    for key in [
        "authorization_endpoint",
        "token_endpoint",
        "userinfo_endpoint",
        "jwks_uri",
        "revocation_endpoint",
        "introspection_endpoint",
        "end_session_endpoint",
    ] {
        let url = doc[key].as_str().unwrap_or_default();
        assert!(url.starts_with(&issuer), "{key}: {url}");
        let local = url.replace(&issuer, &server.base);
        let get = ok(server.http.get(&local).send().await, key).status();
        let post = ok(server.http.post(&local).form(&[("x", "y")]).send().await, key).status();
        assert!(get != StatusCode::NOT_FOUND && post != StatusCode::NOT_FOUND, "{key} answers: GET {get}, POST {post}");
    }
    assert_eq!(doc["code_challenge_methods_supported"], serde_json::json!(["S256"]));
    assert_eq!(doc["response_types_supported"], serde_json::json!(["code"]));
    assert_eq!(doc["request_uri_parameter_supported"], false);
    assert_eq!(doc["authorization_response_iss_parameter_supported"], true);
    server.stop().await;
}

#[tokio::test]
async fn the_claims_parameter_puts_individual_claims_in_the_id_token_and_essential_acr_is_enforced() {
    let (server, browser) = setup().await;
    let issuer = server.server.issuer.clone();
    let claims = r#"{"id_token":{"email":null,"given_name":{"essential":true},"phone_number":null}}"#;
    let c = code(&server, &browser, &[("claims", claims), ("scope", "openid email profile")]).await;
    let (_, tokens) = token(
        &server,
        &[("grant_type", "authorization_code"), ("code", &c), ("redirect_uri", CALLBACK), ("code_verifier", VERIFIER)],
    )
    .await;
    let id_token = tokens["id_token"].as_str().unwrap_or_default();
    let payload = id_token.split('.').nth(1).unwrap_or_default();
    let body: serde_json::Value = ok(serde_json::from_slice(&ok(URL_SAFE_NO_PAD.decode(payload), "b64")), "claims");
    assert_eq!(body["email"], "ada@example.com");
    assert_eq!(body["given_name"], "Test");
    assert!(body.get("family_name").is_none(), "only what was asked for");
    assert!(body.get("phone_number").is_none(), "nothing beyond the granted scopes");
    assert_eq!(body["acr"], "urn:latchkey:acr:password");
    assert_eq!(body["amr"], serde_json::json!(["pwd"]));
    assert!(body["sid"].as_str().is_some_and(|s| !s.is_empty()));

    // OIDC Core §5.5.1.1: an essential acr that cannot be met fails the request.
    let unmet = r#"{"id_token":{"acr":{"essential":true,"values":["urn:example:loa:4"]}}}"#;
    let response = browser.get(&authorize_url(&server, &[("claims", unmet)])).await;
    let params = callback_params(&Browser::location(&response, &issuer));
    assert_eq!(get(&params, "error"), Some("access_denied"));
    let malformed = browser.get(&authorize_url(&server, &[("claims", "[1,2]")])).await;
    assert_eq!(get(&callback_params(&Browser::location(&malformed, &issuer)), "error"), Some("invalid_request"));
    server.stop().await;
}

#[tokio::test]
async fn a_rotated_client_secret_keeps_working_for_its_grace_period_only() {
    let (server, _) = setup().await;
    let id = ok(latchkey_core::domain::ClientId::parse("webapp"), "id");
    let new_hash = server.state().token_hasher.hash("client_secret", "the-new-secret");
    let until = server.clock.now().plus(Duration::from_secs(3_600));
    let tenant = latchkey_core::domain::TenantId::default_tenant();
    ok(
        latchkey_service::testing::store_of(&server.state().services)
            .rotate_client_secret(&tenant, &id, &new_hash, until, &latchkey_core::records::Actor::Cli)
            .await,
        "rotate",
    );
    let try_secret = |secret: &'static str| {
        server
            .http
            .post(server.url("/token"))
            .basic_auth("webapp", Some(secret))
            .form(&[("grant_type", "refresh_token"), ("refresh_token", "unknown")])
            .send()
    };
    // The client cache follows the change; then both secrets authenticate (invalid_grant,
    // not invalid_client) until the grace period ends.
    support::eventually(Duration::from_secs(3), "the new secret is accepted", || async {
        try_secret("the-new-secret").await.is_ok_and(|r| r.status() == StatusCode::BAD_REQUEST)
    })
    .await;
    assert_eq!(ok(try_secret(SECRET).await, "old").status(), StatusCode::BAD_REQUEST, "old secret in grace");
    server.clock.advance(Duration::from_secs(3_601));
    assert_eq!(ok(try_secret(SECRET).await, "old").status(), StatusCode::UNAUTHORIZED, "grace over");
    assert_eq!(ok(try_secret("the-new-secret").await, "new").status(), StatusCode::BAD_REQUEST);
    server.stop().await;
}

#[tokio::test]
async fn sign_in_and_consent_pages_let_their_form_end_at_the_client() {
    // Browsers check form-action against every redirect after a form POST, so the pages
    // whose form ends (after 303s) at the client must allow the client's origin.
    let server = TestServer::start(sqlite().await, |_| {}).await;
    server.create_user("ada", "correct horse battery").await;
    server.create_client(ClientSpec::default()).await;
    let browser = Browser::new(server.server.addr);
    let issuer = server.server.issuer.clone();
    let first = browser.get(&authorize_url(&server, &[])).await;
    let login_url = Browser::location(&first, &issuer);
    let login_page = browser.get(&login_url).await;
    let csp = login_page.headers()["content-security-policy"].to_str().unwrap_or("").to_owned();
    assert!(csp.contains("form-action 'self' https://app.example.com"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe-inline"), "{csp}");
    let after = browser.sign_in(&login_url, &issuer, "ada", "correct horse battery").await;
    let consent_url = Browser::location(&browser.get(&Browser::location(&after, &issuer)).await, &issuer);
    let consent_page = browser.get(&consent_url).await;
    let csp = consent_page.headers()["content-security-policy"].to_str().unwrap_or("").to_owned();
    assert!(csp.contains("form-action 'self' https://app.example.com"), "{csp}");
    // A plain sign-in page (no client) allows only itself.
    let plain = browser.get(&format!("{issuer}/login")).await;
    assert!(plain.headers()["content-security-policy"].to_str().unwrap_or("").contains("form-action 'self';"));
    server.stop().await;
}

#[tokio::test]
async fn revoking_a_refresh_token_ends_the_grants_access_tokens_too() {
    let (server, browser) = setup().await;
    let c = code(&server, &browser, &[("scope", "openid offline_access")]).await;
    let (_, tokens) = token(
        &server,
        &[("grant_type", "authorization_code"), ("code", &c), ("redirect_uri", CALLBACK), ("code_verifier", VERIFIER)],
    )
    .await;
    let access = tokens["access_token"].as_str().unwrap_or_default().to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap_or_default().to_owned();
    assert!(!refresh.is_empty(), "{tokens}");
    assert_eq!(
        ok(server.http.get(server.url("/userinfo")).bearer_auth(&access).send().await, "u").status(),
        StatusCode::OK
    );
    let revoked = ok(
        server
            .http
            .post(server.url("/revoke"))
            .basic_auth("webapp", Some(SECRET))
            .form(&[("token", refresh.as_str()), ("token_type_hint", "refresh_token")])
            .send()
            .await,
        "revoke",
    );
    assert_eq!(revoked.status(), StatusCode::OK);
    assert_eq!(
        ok(server.http.get(server.url("/userinfo")).bearer_auth(&access).send().await, "u").status(),
        StatusCode::UNAUTHORIZED
    );
    let (_, body) = token(&server, &[("grant_type", "refresh_token"), ("refresh_token", &refresh)]).await;
    assert_eq!(body["error"], "invalid_grant");
    // The audit log names the client that revoked, as a client, not as a user.
    let events = ok(
        server.server.state.services.audit().recent(&latchkey_core::domain::TenantId::default_tenant(), 50).await,
        "audit",
    );
    let revoked_by: Vec<_> = events.iter().filter(|e| e.action == "grant.revoked").map(|e| e.actor.as_str()).collect();
    assert_eq!(revoked_by, ["client:webapp"], "{events:?}");
    server.stop().await;
}

#[tokio::test]
async fn offline_access_without_the_refresh_grant_is_not_reported_as_granted() {
    let server = TestServer::start(sqlite().await, |_| {}).await;
    server.create_user("ada", "correct horse battery").await;
    server
        .create_client(ClientSpec {
            first_party: true,
            grants: &[GrantType::AuthorizationCode],
            ..ClientSpec::default()
        })
        .await;
    let browser = Browser::new(server.server.addr);
    let issuer = server.server.issuer.clone();
    let first = browser.get(&authorize_url(&server, &[("scope", "openid offline_access")])).await;
    let after = browser.sign_in(&Browser::location(&first, &issuer), &issuer, "ada", "correct horse battery").await;
    let consent = Browser::location(&browser.get(&Browser::location(&after, &issuer)).await, &issuer);
    let done = browser.consent(&consent, &issuer, "allow").await;
    let c = get(&callback_params(&Browser::location(&done, &issuer)), "code").unwrap_or_default().to_owned();
    let (_, tokens) = token(
        &server,
        &[("grant_type", "authorization_code"), ("code", &c), ("redirect_uri", CALLBACK), ("code_verifier", VERIFIER)],
    )
    .await;
    assert!(tokens.get("refresh_token").is_none());
    assert_eq!(tokens["scope"], "openid");
    server.stop().await;
}

#[tokio::test]
async fn failed_client_authentication_is_throttled_per_address() {
    let server = TestServer::start(sqlite().await, |c| c.login.max_failures_per_ip = 3).await;
    server
        .create_client(ClientSpec { grants: &[GrantType::ClientCredentials], scopes: &[], ..ClientSpec::default() })
        .await;
    let attempt = |secret: &'static str| {
        server
            .http
            .post(server.url("/token"))
            .basic_auth("webapp", Some(secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
    };
    assert_eq!(ok(attempt(SECRET).await, "ok").status(), StatusCode::OK, "successes are never counted");
    for _ in 0..3 {
        assert_eq!(ok(attempt("wrong").await, "wrong").status(), StatusCode::UNAUTHORIZED);
    }
    let blocked = ok(attempt(SECRET).await, "blocked");
    assert_eq!(blocked.status(), StatusCode::TOO_MANY_REQUESTS, "even the right secret waits");
    assert!(blocked.headers().get("retry-after").is_some());
    assert_eq!(ok(blocked.json::<serde_json::Value>().await, "json")["error"], "invalid_client");
    server.clock.advance(Duration::from_secs(901));
    assert_eq!(ok(attempt(SECRET).await, "after").status(), StatusCode::OK, "the window passes");
    server.stop().await;
}

#[tokio::test]
async fn a_consent_post_without_its_request_gets_a_page() {
    let (server, browser) = setup().await;
    let issuer = server.server.issuer.clone();
    let page = ok(browser.get(&format!("{issuer}/login")).await.text().await, "login");
    let csrf = hidden_field(&page, "csrf").unwrap_or_default();
    let response = browser.post_form(&format!("{issuer}/consent"), &[("csrf", &csrf), ("decision", "allow")]).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.headers()["content-type"].to_str().unwrap_or("").starts_with("text/html"));
    server.stop().await;
}
