//! Sign-in through an upstream OpenID Connect provider (a stand-in, `support::upstream`),
//! through the pages: a first sign-in makes an account where `new_accounts` allows and an
//! app's ID token says `fed`; every check of the ID token and the answer refuses with a page
//! that names the problem, and nothing is made or linked; `state` is bound to the browser and
//! used once, and an answer for one provider is refused at another's address; an address
//! matching an account never signs into it, the owner proves the account and confirms; an
//! address changed upstream moves nothing; the last way in stays; groups are mapped.

mod support;

use latchkey_config::{GroupMapping, NewAccounts, ProviderConfig, ProviderKind, Purpose, SecretRef};
use latchkey_core::domain::{GroupName, RoleName, TenantId};
use latchkey_core::records::{Actor, NewRole};
use reqwest::StatusCode;
use serde_json::json;
use support::browser::Browser;
use support::flow::{PASSWORD, Rp, claims, secret_of};
use support::passkey::PasskeyBrowser;
use support::upstream::{CLIENT_ID, CLIENT_SECRET, Tamper, Upstream};
use support::{ClientSpec, TestServer, all_backends, allow_loopback, ok, sqlite};

fn provider(upstream: &Upstream, new_accounts: NewAccounts) -> ProviderConfig {
    ProviderConfig {
        kind: ProviderKind::Oidc,
        name: "Corp SSO".into(),
        issuer: Some(upstream.issuer()),
        discovery_url: None,
        client_id: CLIENT_ID.into(),
        client_secret: Some(SecretRef::new(CLIENT_SECRET)),
        private_key: None,
        private_key_alg: "ES256".into(),
        scopes: None,
        userinfo: false,
        new_accounts,
        account_domains: vec![],
        hosted_domains: vec![],
        allowed_tenants: vec![],
        base_url: None,
        api_url: None,
        authorization_url: None,
        token_url: None,
        userinfo_url: None,
        subject_field: None,
        email_field: "email".into(),
        email_verified_field: None,
        claims: Default::default(),
        groups_claim: None,
        groups: Default::default(),
    }
}

async fn server_with(
    db: std::sync::Arc<latchkey_service::testing::TestDatabase>,
    upstream: &Upstream,
    providers: Vec<(&str, ProviderConfig)>,
) -> TestServer {
    let port = upstream.port;
    TestServer::start(db, move |c| {
        c.outbound.allow.push(allow_loopback(Purpose::Federation, &[port]));
        for (id, p) in providers {
            c.federation.providers.insert(id.into(), p);
        }
    })
    .await
}

/// Clicks "Sign in with …" for `provider` and follows the provider's redirect; returns the
/// callback URL (not yet opened).
async fn to_upstream_and_back(b: &PasskeyBrowser, provider: &str, extra: &[(&str, &str)]) -> String {
    let (_, login, csrf) = b.page("/login").await;
    assert!(login.contains(&format!("/federation/{provider}/start")), "the sign-in page has the button: {login}");
    let mut form = vec![("csrf", csrf.as_str())];
    form.extend_from_slice(extra);
    let started = b.browser.post_form(&b.url(&format!("/federation/{provider}/start")), &form).await;
    if !started.status().is_redirection() {
        panic!("start: {} {}", started.status(), started.text().await.unwrap_or_default());
    }
    let at_upstream = b.location(&started);
    let answer = b.browser.get(&at_upstream).await;
    assert_eq!(answer.status(), StatusCode::SEE_OTHER, "the stand-in answers at once");
    Browser::location(&answer, "")
}

/// The whole sign-in through `provider`: the callback's response.
async fn sign_in_through(b: &PasskeyBrowser, provider: &str) -> reqwest::Response {
    let callback = to_upstream_and_back(b, provider, &[]).await;
    b.browser.get(&callback).await
}

async fn page_of(response: reqwest::Response) -> (StatusCode, String) {
    let status = response.status();
    (status, ok(response.text().await, "page"))
}

async fn users(server: &TestServer) -> Vec<String> {
    let list = ok(server.state().services.users().list(&TenantId::default_tenant()).await, "users");
    list.into_iter().map(|u| u.username.to_string()).collect()
}

#[tokio::test]
async fn a_first_sign_in_makes_an_account_and_the_app_learns_it_was_federated() {
    for db in all_backends().await {
        let b = db.backend;
        let upstream = Upstream::start().await;
        let server = server_with(db, &upstream, vec![("corp", provider(&upstream, NewAccounts::On))]).await;
        server.create_client(ClientSpec { first_party: true, ..ClientSpec::default() }).await;
        upstream.sign_in_as(json!({
            "sub": "u-1", "email": "Fed.User@Example.com", "email_verified": true, "name": "Fed User",
            "preferred_username": "fed", "given_name": "Fed",
        }));
        let rp = Rp { id: "webapp", secret: &secret_of("webapp"), callback: "https://app.example.com/callback" };
        let browser = PasskeyBrowser::new(&server);
        let login = rp.start(&server, &browser.browser, "openid email profile", &[]).await;
        let req = url::Url::parse(&login).ok().and_then(|u| support::flow::param(&u, "req"));
        let req = req.unwrap_or_else(|| panic!("{b}: the login page carries the request: {login}"));
        let callback = to_upstream_and_back(&browser, "corp", &[("req", &req)]).await;
        let resumed = browser.browser.get(&callback).await;
        let resume = browser.location(&resumed);
        assert!(resume.contains("/authorize/resume?req="), "{b}: {resume}");
        let at_app = Browser::location(&browser.browser.get(&resume).await, "");
        let at_app = ok(url::Url::parse(&at_app), "callback");
        let tokens = rp.tokens(&server, &at_app).await;
        let id = claims(tokens["id_token"].as_str().unwrap_or_default());
        assert_eq!(id["amr"], json!(["fed"]), "{b}: {id}");
        assert_eq!(id["acr"], "urn:latchkey:acr:federated", "{b}");
        let access_token = tokens["access_token"].as_str().unwrap_or_default();
        let info = ok(server.http.get(server.url("/userinfo")).bearer_auth(access_token).send().await, "userinfo");
        let info: serde_json::Value = ok(info.json().await, "userinfo json");
        assert_eq!(info["email"], "Fed.User@example.com", "{b}: {info}");
        assert_eq!(info["email_verified"], true, "{b}");
        assert_eq!(info["name"], "Fed User", "{b}");
        assert_eq!(info["given_name"], "Fed", "{b}");
        assert_eq!(info["preferred_username"], "fed", "{b}: the username came from upstream");

        // The next sign-in finds the link (an address changed upstream moves nothing).
        upstream.sign_in_as(json!({"sub": "u-1", "email": "other@example.com", "email_verified": true}));
        let again = PasskeyBrowser::new(&server);
        let done = sign_in_through(&again, "corp").await;
        assert_eq!(again.location(&done), again.url("/login/done"), "{b}");
        assert_eq!(users(&server).await, ["fed"], "{b}: still one account");
        let (_, security, _) = again.page("/account/security").await;
        assert!(security.contains("Unlink Corp SSO") && security.contains("other@example.com"), "{b}: {security}");
        assert!(upstream.problems().is_empty(), "{b}: {:?}", upstream.problems());
    }
}

#[tokio::test]
async fn every_broken_answer_is_refused_with_its_reason_and_nothing_is_made() {
    let upstream = Upstream::start().await;
    let server = server_with(sqlite().await, &upstream, vec![("corp", provider(&upstream, NewAccounts::On))]).await;
    upstream.sign_in_as(json!({"sub": "victim", "email": "v@example.com", "email_verified": true}));
    for (tamper, expected) in [
        (Tamper::WrongIssuer, "from another issuer"),
        (Tamper::WrongAudience, "issued to another client"),
        (Tamper::BadSignature, "signature does not verify"),
        (Tamper::Expired, "it has expired"),
        (Tamper::WrongNonce, "nonce is not the one"),
        (Tamper::OldIat, "(iat)"),
        (Tamper::OtherAzp, "(azp)"),
        (Tamper::ExtraAudience, "several audiences and no azp"),
        (Tamper::NoIssInAnswer, "has no iss"),
        (Tamper::OtherIssInAnswer, "wrong provider"),
        (Tamper::TokenError, "refused: invalid_grant"),
        (Tamper::AlgNone, "not a signed JWT"),
        (Tamper::Hs256, "asymmetric algorithm"),
    ] {
        upstream.tamper(tamper);
        let browser = PasskeyBrowser::new(&server);
        let (status, page) = page_of(sign_in_through(&browser, "corp").await).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{tamper:?}: {page}");
        assert!(page.contains("Sign-in through Corp SSO failed") && page.contains(expected), "{tamper:?}: {page}");
        let (status, _, _) = browser.page("/account/security").await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{tamper:?}: not signed in, sent to sign in");
    }
    assert!(users(&server).await.is_empty(), "nothing was made");
    // A rotated key is fetched again (the old one is gone from the JWKS).
    upstream.tamper(Tamper::None);
    upstream.rotate();
    let browser = PasskeyBrowser::new(&server);
    let done = sign_in_through(&browser, "corp").await;
    assert_eq!(browser.location(&done), browser.url("/login/done"), "after a key rotation");
    assert!(upstream.problems().is_empty(), "{:?}", upstream.problems());
}

#[tokio::test]
async fn state_is_bound_to_the_browser_used_once_and_to_its_provider() {
    let upstream = Upstream::start().await;
    let server = server_with(
        sqlite().await,
        &upstream,
        vec![("corp", provider(&upstream, NewAccounts::On)), ("other", provider(&upstream, NewAccounts::On))],
    )
    .await;
    upstream.sign_in_as(json!({"sub": "u-2", "email": "u2@example.com", "email_verified": true}));

    // Opened in another browser: nothing waits there.
    let starter = PasskeyBrowser::new(&server);
    let callback = to_upstream_and_back(&starter, "corp", &[]).await;
    let elsewhere = PasskeyBrowser::new(&server);
    let (status, page) = page_of(elsewhere.browser.get(&callback).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{page}");
    assert!(page.contains("started in this browser"), "{page}");

    // A changed state is refused, and ends the flow.
    let tampered = callback.replace("state=", "state=x");
    let (status, page) = page_of(starter.browser.get(&tampered).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{page}");
    let (status, _) = page_of(starter.browser.get(&callback).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "the flow is over after a wrong state");

    // An answer for `corp` delivered to `other`'s address (a mix-up).
    let b = PasskeyBrowser::new(&server);
    let callback = to_upstream_and_back(&b, "corp", &[]).await;
    let mixed = callback.replace("/federation/corp/callback", "/federation/other/callback");
    let (status, page) = page_of(b.browser.get(&mixed).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{page}");
    assert!(page.contains("wrong provider"), "{page}");

    // A good answer works once; replayed, it finds nothing.
    let b = PasskeyBrowser::new(&server);
    let callback = to_upstream_and_back(&b, "corp", &[]).await;
    let first = b.browser.get(&callback).await;
    assert_eq!(b.location(&first), b.url("/login/done"));
    let (status, page) = page_of(b.browser.get(&callback).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "replayed: {page}");
    assert_eq!(users(&server).await.len(), 1, "one account, made once");
    // An error from the provider is shown as its refusal.
    let b = PasskeyBrowser::new(&server);
    let callback = to_upstream_and_back(&b, "corp", &[]).await;
    let state = url::Url::parse(&callback).ok().and_then(|u| support::flow::param(&u, "state")).unwrap_or_default();
    let denied = format!("{}?error=access_denied&state={state}", b.url("/federation/corp/callback"));
    let (status, page) = page_of(b.browser.get(&denied).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{page}");
    assert!(page.contains("refused: access_denied"), "{page}");
}

#[tokio::test]
async fn a_matching_address_links_only_after_the_owner_proves_the_account() {
    for db in all_backends().await {
        let b = db.backend;
        let upstream = Upstream::start().await;
        let server = server_with(db, &upstream, vec![("corp", provider(&upstream, NewAccounts::On))]).await;
        server.create_user("ada", PASSWORD).await;
        server.create_user("bob", PASSWORD).await;

        // Unverified upstream: refused, nothing kept.
        upstream.sign_in_as(json!({"sub": "mallory", "email": "ada@example.com", "email_verified": false}));
        let mallory = PasskeyBrowser::new(&server);
        let (status, page) = page_of(sign_in_through(&mallory, "corp").await).await;
        assert_eq!(status, StatusCode::CONFLICT, "{b}: {page}");
        assert!(page.contains("not verified"), "{b}: {page}");

        // Verified upstream: the owner must sign in first; nothing is linked before.
        upstream.sign_in_as(json!({"sub": "ada-at-corp", "email": "ada@example.com", "email_verified": true}));
        let browser = PasskeyBrowser::new(&server);
        let (status, page) = page_of(sign_in_through(&browser, "corp").await).await;
        assert_eq!(status, StatusCode::OK, "{b}: {page}");
        assert!(page.contains("Link your account") && page.contains("return_to=security"), "{b}: {page}");
        let (status, _, _) = browser.page("/account/security").await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{b}: not signed in yet");
        // Bob signs in in that browser: the waiting link is not his to confirm.
        let signed_in = browser.browser.sign_in(&browser.url("/login"), &browser.url(""), "bob", PASSWORD).await;
        assert_eq!(browser.location(&signed_in), browser.url("/login/done"), "{b}");
        let (_, security, csrf) = browser.page("/account/security").await;
        assert!(!security.contains("id=\"waiting-link\""), "{b}: {security}");
        let refused =
            browser.browser.post_form(&browser.url("/account/federation/corp/confirm"), &[("csrf", &csrf)]).await;
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST, "{b}: not bob's");
        let signed_in = browser.browser.sign_in(&browser.url("/login"), &browser.url(""), "ada", PASSWORD).await;
        assert_eq!(browser.location(&signed_in), browser.url("/login/done"), "{b}");
        let (_, security, csrf) = browser.page("/account/security").await;
        assert!(security.contains("id=\"waiting-link\""), "{b}: {security}");
        let confirmed =
            browser.browser.post_form(&browser.url("/account/federation/corp/confirm"), &[("csrf", &csrf)]).await;
        assert_eq!(browser.location(&confirmed), browser.url("/account/security?done=provider_linked"), "{b}");
        let again =
            browser.browser.post_form(&browser.url("/account/federation/corp/confirm"), &[("csrf", &csrf)]).await;
        assert_eq!(again.status(), StatusCode::BAD_REQUEST, "{b}: confirmed once");

        // Now the upstream account signs into ada, even with bob's address upstream.
        upstream.sign_in_as(json!({"sub": "ada-at-corp", "email": "bob@example.com", "email_verified": true}));
        let next = PasskeyBrowser::new(&server);
        let done = sign_in_through(&next, "corp").await;
        assert_eq!(next.location(&done), next.url("/login/done"), "{b}");
        let (_, security, _) = next.page("/account/security").await;
        assert!(security.contains("Signed in as ada"), "{b}: {security}");
        // Another upstream account with bob's verified address does not get into bob's.
        upstream.sign_in_as(json!({"sub": "not-bob", "email": "bob@example.com", "email_verified": true}));
        let stranger = PasskeyBrowser::new(&server);
        let (status, page) = page_of(sign_in_through(&stranger, "corp").await).await;
        assert_eq!(status, StatusCode::OK, "{b}");
        assert!(page.contains("Link your account"), "{b}: {page}");
        let (_, security, _) = stranger.page("/account/security").await;
        assert!(!security.contains("Signed in as"), "{b}: not signed in");
        let sub = ok(server.state().services.users().find(&TenantId::default_tenant(), "bob").await, b).sub;
        let linked = ok(server.state().services.federation().identities(&TenantId::default_tenant(), &sub).await, b);
        assert!(linked.is_empty(), "{b}: nothing linked to bob");
    }
}

#[tokio::test]
async fn linking_from_the_security_page_and_the_last_way_in() {
    let upstream = Upstream::start().await;
    let server = server_with(sqlite().await, &upstream, vec![("corp", provider(&upstream, NewAccounts::On))]).await;
    server.create_user("ada", PASSWORD).await;
    let browser = PasskeyBrowser::new(&server);
    let signed_in = browser.browser.sign_in(&browser.url("/login"), &browser.url(""), "ada", PASSWORD).await;
    assert!(signed_in.status().is_redirection());
    let (_, security, csrf) = browser.page("/account/security").await;
    assert!(security.contains("Link Corp SSO"), "{security}");
    // Without the CSRF token: refused.
    let forged = browser.browser.post_form(&browser.url("/account/federation/corp/link"), &[]).await;
    assert_eq!(forged.status(), StatusCode::BAD_REQUEST);
    upstream.sign_in_as(json!({"sub": "ada-corp", "email": "elsewhere@example.org", "email_verified": true}));
    let started = browser.browser.post_form(&browser.url("/account/federation/corp/link"), &[("csrf", &csrf)]).await;
    let at_upstream = browser.location(&started);
    // Linking asks the provider for a sign-in now, not the session a shared browser holds.
    assert!(at_upstream.contains("max_age=0") && at_upstream.contains("prompt=login"), "{at_upstream}");
    let callback = Browser::location(&browser.browser.get(&at_upstream).await, "");
    let linked = browser.browser.get(&callback).await;
    assert_eq!(browser.location(&linked), browser.url("/account/security?done=provider_linked"));

    // A just-in-time account has only its link: it cannot be unlinked.
    upstream.sign_in_as(json!({"sub": "jit", "email": "jit@example.com", "email_verified": true}));
    let jit = PasskeyBrowser::new(&server);
    let done = sign_in_through(&jit, "corp").await;
    assert_eq!(jit.location(&done), jit.url("/login/done"));
    let (_, security, csrf) = jit.page("/account/security").await;
    assert!(security.contains("Unlink Corp SSO"), "{security}");
    let (status, page) =
        page_of(jit.browser.post_form(&jit.url("/account/federation/corp/unlink"), &[("csrf", &csrf)]).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{page}");
    assert!(page.contains("last way in"), "{page}");
    // Ada has a password: she can unlink, and whoever signed in through it is out.
    let through_corp = PasskeyBrowser::new(&server);
    upstream.sign_in_as(json!({"sub": "ada-corp"}));
    let done = sign_in_through(&through_corp, "corp").await;
    assert_eq!(through_corp.location(&done), through_corp.url("/login/done"));
    let (_, _, csrf) = browser.page("/account/security").await;
    let unlinked = browser.browser.post_form(&browser.url("/account/federation/corp/unlink"), &[("csrf", &csrf)]).await;
    assert_eq!(browser.location(&unlinked), browser.url("/account/security?done=provider_unlinked"));
    let (status, _, _) = through_corp.page("/account/security").await;
    assert_eq!(status, StatusCode::SEE_OTHER, "the session through the provider ended");
    let (status, _, _) = browser.page("/account/security").await;
    assert_eq!(status, StatusCode::OK, "the session that unlinked stays");
    let (status, page) =
        page_of(browser.browser.post_form(&browser.url("/account/federation/corp/unlink"), &[("csrf", &csrf)]).await)
            .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing left to unlink: {page}");
    assert!(page.contains("unlinked already"), "{page}");
}

#[tokio::test]
async fn new_accounts_follow_the_provider_rule_and_groups_are_mapped() {
    let upstream = Upstream::start().await;
    let mut listed = provider(&upstream, NewAccounts::ListedDomains);
    listed.account_domains = vec!["corp.example".into()];
    listed.groups_claim = Some("groups".into());
    listed
        .groups
        .insert("eng".into(), GroupMapping { groups: vec!["engineering".into()], roles: vec!["deployer".into()] });
    let server = server_with(
        sqlite().await,
        &upstream,
        vec![("corp", listed), ("closed", provider(&upstream, NewAccounts::Off))],
    )
    .await;
    let tenant = TenantId::default_tenant();
    let access = server.state().services.access();
    ok(access.create_group(&tenant, &ok(GroupName::parse("engineering"), "g"), "", &Actor::Cli).await, "group");
    ok(
        access
            .create_role(
                &tenant,
                NewRole {
                    name: ok(RoleName::parse("deployer"), "r"),
                    description: String::new(),
                    application: None,
                    entitlements: vec![],
                },
                &Actor::Cli,
            )
            .await,
        "role",
    );

    for (account, why) in [
        (json!({"sub": "a", "email": "a@gmail.com", "email_verified": true}), "listed domains"),
        (json!({"sub": "b", "email": "b@corp.example", "email_verified": false}), "listed domains"),
    ] {
        upstream.sign_in_as(account);
        let b = PasskeyBrowser::new(&server);
        let (status, page) = page_of(sign_in_through(&b, "corp").await).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{page}");
        assert!(page.contains(why), "{page}");
    }
    upstream.sign_in_as(json!({"sub": "c", "email": "c@example.net", "email_verified": true}));
    let b = PasskeyBrowser::new(&server);
    let (status, page) = page_of(sign_in_through(&b, "closed").await).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{page}");
    assert!(page.contains("accounts are not made through it"), "{page}");
    assert!(users(&server).await.is_empty());

    upstream.sign_in_as(
        json!({"sub": "d", "email": "dev@corp.example", "email_verified": true, "groups": ["eng", "other"]}),
    );
    let b = PasskeyBrowser::new(&server);
    let done = sign_in_through(&b, "corp").await;
    assert_eq!(b.location(&done), b.url("/login/done"));
    let dev = ok(server.state().services.users().find(&tenant, "dev").await, "dev");
    let held = ok(access.user_access(&tenant, &dev.sub).await, "access");
    assert_eq!(held.groups.iter().map(ToString::to_string).collect::<Vec<_>>(), ["engineering"]);
    assert!(held.roles.iter().any(|r| r.name.as_str() == "deployer" && r.direct), "{held:?}");
    // Out of the upstream group: out of what it mapped to, at the next sign-in.
    upstream.sign_in_as(json!({"sub": "d", "email": "dev@corp.example", "email_verified": true, "groups": []}));
    let b = PasskeyBrowser::new(&server);
    let done = sign_in_through(&b, "corp").await;
    assert_eq!(b.location(&done), b.url("/login/done"));
    let held = ok(access.user_access(&tenant, &dev.sub).await, "access");
    assert!(held.groups.is_empty() && held.roles.is_empty(), "{held:?}");
}

#[tokio::test]
async fn a_link_is_told_and_this_was_not_me_takes_it_back() {
    use std::time::Duration;
    use support::smtp::{Relay, decoded, link_token, mail};
    let upstream = Upstream::start().await;
    let relay = Relay::start().await;
    let (port, up) = (relay.port, upstream.port);
    let corp = provider(&upstream, NewAccounts::Off);
    let server = TestServer::start(sqlite().await, move |c| {
        c.mail = Some(mail(port));
        c.outbound.allow.push(allow_loopback(Purpose::Federation, &[up]));
        c.federation.providers.insert("corp".into(), corp);
    })
    .await;
    server.create_user("ada", PASSWORD).await;
    let browser = PasskeyBrowser::new(&server);
    browser.browser.sign_in(&browser.url("/login"), &browser.url(""), "ada", PASSWORD).await;
    server.clock.advance(Duration::from_secs(5));
    upstream.sign_in_as(json!({"sub": "intruder", "email": "intruder@example.net", "email_verified": true}));
    let (_, _, csrf) = browser.page("/account/security").await;
    let started = browser.browser.post_form(&browser.url("/account/federation/corp/link"), &[("csrf", &csrf)]).await;
    let callback = Browser::location(&browser.browser.get(&browser.location(&started)).await, "");
    let linked = browser.browser.get(&callback).await;
    assert_eq!(browser.location(&linked), browser.url("/account/security?done=provider_linked"));
    support::eventually(Duration::from_secs(10), "the notice", || async { !relay.messages().is_empty() }).await;
    let notice = relay.messages().remove(0);
    assert!(decoded(&notice).contains("Sign-in with Corp SSO was linked to your account"), "{notice}");
    let token = link_token(&notice, "/security/not-me").unwrap_or_else(|| panic!("no link in {notice}"));

    let owner = PasskeyBrowser::new(&server);
    let (_, _, csrf) = owner.page(&format!("/security/not-me?token={token}")).await;
    let done = owner.browser.post_form(&owner.url("/security/not-me"), &[("csrf", &csrf), ("token", &token)]).await;
    let page = ok(done.text().await, "page");
    assert!(page.contains("1 linked sign-in provider(s)"), "{page}");
    // The intruder's upstream account signs into nothing now.
    let intruder = PasskeyBrowser::new(&server);
    let (status, page) = page_of(sign_in_through(&intruder, "corp").await).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{page}");
}

#[tokio::test]
async fn private_key_jwt_authenticates_latchkey_to_the_provider_with_a_published_key() {
    use latchkey_core::crypto::SigningKeyPair;
    use latchkey_core::domain::SigningAlg;
    let upstream = Upstream::start().await;
    let dir = ok(tempfile::tempdir(), "dir");
    let (_, der) = ok(SigningKeyPair::generate(SigningAlg::Es256, 2048), "key");
    let pem = pem::encode(&pem::Pem::new("PRIVATE KEY", der));
    let key_file = dir.path().join("corp-client.pem");
    ok(std::fs::write(&key_file, pem), "write key");
    let mut corp = provider(&upstream, NewAccounts::On);
    corp.client_secret = None;
    corp.private_key = Some(SecretRef::new(format!("file:{}", key_file.display())));
    let server = server_with(sqlite().await, &upstream, vec![("corp", corp)]).await;
    let jwks = server.get_json("/federation/jwks.json").await;
    assert_eq!(jwks["keys"].as_array().map(Vec::len), Some(1), "{jwks}");
    let members: Vec<&str> = jwks["keys"][0].as_object().into_iter().flatten().map(|(k, _)| k.as_str()).collect();
    assert!(
        members.iter().all(|m| ["kty", "use", "alg", "kid", "crv", "x", "y"].contains(m)),
        "public only: {members:?}"
    );
    upstream.lock().client_jwks_uri = Some(server.url("/federation/jwks.json"));
    upstream.sign_in_as(json!({"sub": "pkj", "email": "pkj@example.com", "email_verified": true}));
    let b = PasskeyBrowser::new(&server);
    let done = sign_in_through(&b, "corp").await;
    assert_eq!(b.location(&done), b.url("/login/done"));
    assert_eq!(upstream.lock().assertions, 1);
    assert!(upstream.problems().is_empty(), "{:?}", upstream.problems());
}

#[tokio::test]
async fn starts_are_limited_per_address_even_in_parallel() {
    let upstream = Upstream::start().await;
    let (port, corp) = (upstream.port, provider(&upstream, NewAccounts::On));
    let server = TestServer::start(sqlite().await, move |c| {
        c.outbound.allow.push(allow_loopback(Purpose::Federation, &[port]));
        c.federation.providers.insert("corp".into(), corp);
        c.federation.max_starts_per_ip = 30;
    })
    .await;
    let b = PasskeyBrowser::new(&server);
    let (_, _, csrf) = b.page("/login").await;
    let url = b.url("/federation/corp/start");
    let mut running = tokio::task::JoinSet::new();
    for _ in 0..40 {
        let (http, url, csrf) = (b.browser.http.clone(), url.clone(), csrf.clone());
        running.spawn(async move { http.post(&url).form(&[("csrf", csrf.as_str())]).send().await.map(|r| r.status()) });
    }
    let mut statuses = Vec::new();
    while let Some(done) = running.join_next().await {
        statuses.push(ok(ok(done, "join"), "start"));
    }
    let redirected = statuses.iter().filter(|s| s.is_redirection()).count();
    let limited = statuses.iter().filter(|s| **s == StatusCode::TOO_MANY_REQUESTS).count();
    let expected = 30;
    assert_eq!((redirected, limited), (expected, 40 - expected), "{statuses:?}");
}

#[tokio::test]
async fn bad_requests_to_the_federation_pages_get_clear_pages_and_change_nothing() {
    let upstream = Upstream::start().await;
    let server = server_with(sqlite().await, &upstream, vec![("corp", provider(&upstream, NewAccounts::On))]).await;
    let b = PasskeyBrowser::new(&server);
    let (_, _, csrf) = b.page("/login").await;
    for (path, form, expected) in [
        ("/federation/corp/start", vec![], StatusCode::BAD_REQUEST),
        ("/federation/corp/start", vec![("csrf", "forged")], StatusCode::BAD_REQUEST),
        ("/federation/nobody/start", vec![("csrf", csrf.as_str())], StatusCode::NOT_FOUND),
        ("/federation/Not%20An%20Id/start", vec![("csrf", csrf.as_str())], StatusCode::NOT_FOUND),
        ("/account/federation/corp/link", vec![("csrf", csrf.as_str())], StatusCode::SEE_OTHER),
        ("/account/federation/corp/confirm", vec![], StatusCode::BAD_REQUEST),
        ("/account/federation/corp/unlink", vec![], StatusCode::BAD_REQUEST),
    ] {
        let (status, page) = page_of(b.browser.post_form(&b.url(path), &form).await).await;
        assert_eq!(status, expected, "{path} {form:?}: {page}");
    }
    for (query, expected) in [
        ("/federation/nobody/callback?code=c&state=s", StatusCode::NOT_FOUND),
        ("/federation/corp/callback", StatusCode::BAD_REQUEST),
        ("/federation/corp/callback?code=c&state=s", StatusCode::BAD_REQUEST),
        (&*format!("/federation/corp/callback?code={}&state=s", "x".repeat(5000)), StatusCode::BAD_REQUEST),
    ] {
        let (status, page) = page_of(b.browser.get(&b.url(query)).await).await;
        assert_eq!(status, expected, "{query}: {page}");
        assert!(expected == StatusCode::NOT_FOUND || page.contains("Sign-in through Corp SSO failed"), "{page}");
    }
    let keys = server.get_json("/federation/jwks.json").await;
    assert_eq!(keys, json!({"keys": []}), "no provider uses a key");
    assert!(users(&server).await.is_empty());
    assert!(upstream.problems().is_empty(), "{:?}", upstream.problems());
}

#[tokio::test]
async fn a_sign_in_again_asks_the_provider_for_one_too() {
    let upstream = Upstream::start().await;
    let server = server_with(sqlite().await, &upstream, vec![("corp", provider(&upstream, NewAccounts::On))]).await;
    upstream.sign_in_as(json!({"sub": "again", "email": "again@example.com", "email_verified": true}));
    let b = PasskeyBrowser::new(&server);
    // The first sign-in takes the provider's session as it is.
    let (_, _, csrf) = b.page("/login").await;
    let first = b.browser.post_form(&b.url("/federation/corp/start"), &[("csrf", &csrf)]).await;
    let at_upstream = b.location(&first);
    assert!(!at_upstream.contains("max_age") && !at_upstream.contains("prompt="), "{at_upstream}");
    let callback = Browser::location(&b.browser.get(&at_upstream).await, "");
    assert_eq!(b.location(&b.browser.get(&callback).await), b.url("/login/done"));
    // Signed in, a sign-in again (a confirmation, a step up) must be a new one upstream.
    upstream.tamper(Tamper::StaleAuthTime);
    let (_, _, csrf) = b.page("/login").await;
    let again = b.browser.post_form(&b.url("/federation/corp/start"), &[("csrf", &csrf)]).await;
    let at_upstream = b.location(&again);
    assert!(at_upstream.contains("max_age=0") && at_upstream.contains("prompt=login"), "{at_upstream}");
    let callback = Browser::location(&b.browser.get(&at_upstream).await, "");
    let (status, page) = page_of(b.browser.get(&callback).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{page}");
    assert!(page.contains("did not sign you in again"), "{page}");
    upstream.tamper(Tamper::None);
    let callback = to_upstream_and_back(&b, "corp", &[]).await;
    assert_eq!(b.location(&b.browser.get(&callback).await), b.url("/login/done"), "a new sign-in upstream");
}

#[tokio::test]
async fn a_provider_session_from_earlier_is_not_a_recent_sign_in_here() {
    let upstream = Upstream::start().await;
    let server = server_with(sqlite().await, &upstream, vec![("corp", provider(&upstream, NewAccounts::On))]).await;
    upstream.sign_in_as(json!({"sub": "early", "email": "early@example.com", "email_verified": true}));
    upstream.tamper(Tamper::StaleAuthTime);
    let b = PasskeyBrowser::new(&server);
    let done = sign_in_through(&b, "corp").await;
    assert_eq!(b.location(&done), b.url("/login/done"), "a first sign-in takes the provider's session");
    let (status, security, _) = b.page("/account/security").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        security.contains("you will be asked to confirm it"),
        "signed in an hour ago upstream: not recent: {security}"
    );
    upstream.tamper(Tamper::None);
    let fresh = PasskeyBrowser::new(&server);
    let done = sign_in_through(&fresh, "corp").await;
    assert_eq!(fresh.location(&done), fresh.url("/login/done"));
    let (_, security, _) = fresh.page("/account/security").await;
    assert!(!security.contains("you will be asked to confirm it"), "a new sign-in upstream is recent: {security}");
}
