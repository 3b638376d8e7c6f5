//! Passkeys end to end against a real server, with a software authenticator: sign-up,
//! usernameless and username-first sign-in, several passkeys per user, the last way in
//! kept, cloned-authenticator detection, single-use challenges, and the `amr`/`acr` of
//! ID tokens. Ceremonies run on SQLite and PostgreSQL.

mod support;

use latchkey_core::domain::TenantId;
use reqwest::StatusCode;
use support::authenticator::{Flags, SoftAuthenticator};
use support::browser::Browser;
use support::flow::{Rp, claims, secret_of};
use support::passkey::{PasskeyBrowser, recovery_codes};
use support::{ClientSpec, TestServer, all_backends, ok, sqlite};

const CALLBACK: &str = "https://app.example.com/callback";

fn open_registration(c: &mut latchkey_config::Config) {
    c.registration.mode = latchkey_config::RegistrationMode::Open;
}

async fn webapp(server: &TestServer) {
    server.create_client(ClientSpec { first_party: true, ..ClientSpec::default() }).await;
}

/// Runs the code flow for `webapp` with a passkey sign-in; returns the ID token's claims.
async fn passkey_flow(server: &TestServer, auth: &mut SoftAuthenticator, extra: &[(&str, &str)]) -> serde_json::Value {
    let secret = secret_of("webapp");
    let rp = Rp { id: "webapp", secret: &secret, callback: CALLBACK };
    let b = PasskeyBrowser::new(server);
    let login = rp.start(server, &b.browser, "openid profile", extra).await;
    assert!(login.contains("/login?req="), "{login}");
    let path = login.trim_start_matches(&b.issuer).to_owned();
    let signed_in = b.sign_in(auth, &path, None).await;
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER, "passkey sign-in");
    let resumed = b.browser.get(&b.location(&signed_in)).await;
    let callback = ok(url::Url::parse(&b.location(&resumed)), "callback");
    assert!(callback.as_str().starts_with(CALLBACK), "{callback}");
    let tokens = rp.tokens(server, &callback).await;
    claims(tokens["id_token"].as_str().unwrap_or_default())
}

#[tokio::test]
async fn sign_up_with_a_passkey_then_sign_in_without_a_username() {
    for db in all_backends().await {
        let backend = db.backend;
        let server = TestServer::start(db, open_registration).await;
        webapp(&server).await;
        let mut device = SoftAuthenticator::new(Flags::default());
        let b = PasskeyBrowser::new(&server);
        let (status, page) = b.sign_up(&mut device, "ada", "ada@example.com").await;
        assert_eq!(status, StatusCode::OK, "{backend}: {page}");
        let codes = recovery_codes(&page);
        assert_eq!(codes.len(), 10, "{backend}: ten recovery codes shown");
        assert!(page.contains("download=\"latchkey-recovery-codes.txt\""), "{backend}");
        let unescaped = page.replace("&#x2f;", "/");
        let download =
            unescaped.split("href=\"data:text/plain").nth(1).and_then(|s| s.split('"').next()).unwrap_or_default();
        assert!(codes.iter().all(|c| download.contains(c.as_str())), "{backend}: the download holds the same codes");

        // Signed in by the sign-up; the account holds the passkey and no password.
        let (status, security, _) = b.page("/account/security").await;
        assert_eq!(status, StatusCode::OK, "{backend}");
        let ids = device.credential_ids();
        assert!(security.contains(&format!("data-credential-id=\"{}\"", ids[0])), "{backend}");
        assert!(security.contains("your last way to sign in"), "{backend}: the only passkey is not removable");
        let tenant = TenantId::default_tenant();
        let user = ok(
            server
                .state()
                .services
                .users()
                .by_username(&tenant, &ok(latchkey_core::domain::Username::parse("ada"), "u"))
                .await,
            "user",
        );
        let user = user.unwrap_or_else(|| panic!("{backend}: user"));
        assert!(!user.has_password && !user.email_verified, "{backend}: passkey only, email unverified");
        assert_eq!(ok(server.state().services.factors().recovery_codes_left(&tenant, &user.sub).await, "codes"), 10);

        // A new browser signs in usernameless; the ID token says how.
        let id_token = passkey_flow(&server, &mut device, &[]).await;
        assert_eq!(id_token["sub"], user.sub.as_str(), "{backend}");
        assert_eq!(id_token["amr"], serde_json::json!(["hwk", "user", "mfa"]), "{backend}");
        assert_eq!(id_token["acr"], "urn:latchkey:acr:phishing-resistant", "{backend}");
    }
}

#[tokio::test]
async fn several_passkeys_per_user_and_never_the_last_one_removed() {
    for db in all_backends().await {
        let backend = db.backend;
        let server = TestServer::start(db, open_registration).await;
        webapp(&server).await;
        let mut first = SoftAuthenticator::new(Flags::default());
        let mut second = SoftAuthenticator::new(Flags::synced());
        let b = PasskeyBrowser::new(&server);
        assert_eq!(b.sign_up(&mut first, "ada", "").await.0, StatusCode::OK, "{backend}");

        // excludeCredentials names the first passkey, so its authenticator refuses to make another.
        let again = b.add_passkey(&mut first, "Again").await;
        assert!(again.as_ref().is_err_and(|e| e.starts_with("InvalidStateError")), "{backend}: {:?}", again.err());
        let added = ok(b.add_passkey(&mut second, "Phone").await, "add");
        assert_eq!(b.location(&added), b.url("/account/security?done=passkey_added"), "{backend}");
        let (_, page, _) = b.page("/account/security").await;
        let (a, c) = (first.credential_ids()[0].clone(), second.credential_ids()[0].clone());
        assert!(page.contains(&format!("data-credential-id=\"{a}\"")), "{backend}");
        assert!(page.contains(&format!("data-credential-id=\"{c}\"")) && page.contains("Phone"), "{backend}");
        assert!(page.contains(">synced<"), "{backend}: backup-eligible passkeys say so");

        // Rename, then remove the first; it no longer signs anyone in.
        let renamed = b.security_post("/account/passkeys/rename", &[("id", &c), ("name", "My phone")]).await;
        assert_eq!(b.location(&renamed), b.url("/account/security?done=passkey_renamed"), "{backend}");
        let removed = b.security_post("/account/passkeys/remove", &[("id", &a)]).await;
        assert_eq!(b.location(&removed), b.url("/account/security?done=passkey_removed"), "{backend}");
        let other = PasskeyBrowser::new(&server);
        let refused = other.sign_in(&mut first, "/login", None).await;
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED, "{backend}: a removed passkey");

        // The second one works, and says it is synced.
        let id_token = passkey_flow(&server, &mut second, &[]).await;
        assert_eq!(id_token["amr"], serde_json::json!(["swk", "user", "mfa"]), "{backend}");

        // It is the last way in: not removable, even by a forged request.
        let last = b.security_post("/account/passkeys/remove", &[("id", &c)]).await;
        assert_eq!(b.location(&last), b.url("/account/security?error=last_method"), "{backend}");
        let (_, page, _) = b.page("/account/security").await;
        assert!(page.contains(&format!("data-credential-id=\"{c}\"")), "{backend}: still there");
        // Another user's passkey id is not found.
        let foreign = b.security_post("/account/passkeys/remove", &[("id", "bm90LW1pbmU")]).await;
        assert_eq!(b.location(&foreign), b.url("/account/security?error=not_found"), "{backend}");
    }
}

#[tokio::test]
async fn username_first_options_do_not_tell_which_email_belongs_to_which_username() {
    let server = TestServer::start(sqlite().await, open_registration).await;
    let mut device = SoftAuthenticator::new(Flags::default());
    let b = PasskeyBrowser::new(&server);
    b.sign_up(&mut device, "ada", "ada@example.com").await;
    let stranger = PasskeyBrowser::new(&server);
    let (_, _, csrf) = stranger.page("/login").await;
    let allow = |options: &serde_json::Value| -> Vec<String> {
        options["publicKey"]["allowCredentials"]
            .as_array()
            .map(|a| a.iter().filter_map(|c| c["id"].as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    };
    // The account's username, its email address, an unknown name and no name at all get
    // the same options: no credential ids that could be compared across names.
    for name in ["ADA", "ada@example.com", "nobody", "nobody@example.com", ""] {
        let (status, options) =
            stranger.options("/login/passkey/options", &[("csrf", &csrf), ("username", name)]).await;
        assert_eq!(status, StatusCode::OK, "{name}: {options}");
        assert_eq!(allow(&options), Vec::<String>::new(), "{name}: {options}");
        assert_eq!(options["publicKey"]["userVerification"], "required", "{name}");
    }
    // Username-first sign-in works with the named account's passkey, by either name.
    for name in ["ada", "ada@example.com"] {
        let signed_in = PasskeyBrowser::new(&server).sign_in(&mut device, "/login", Some(name)).await;
        assert_eq!(stranger.location(&signed_in), stranger.url("/login/done"), "{name}");
    }
    // Options need the page's CSRF token.
    let (status, body) = stranger.options("/login/passkey/options", &[("csrf", "forged")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
}

#[tokio::test]
async fn a_signature_counter_that_does_not_grow_is_refused() {
    for db in all_backends().await {
        let backend = db.backend;
        let server = TestServer::start(db, open_registration).await;
        let mut device = SoftAuthenticator::new(Flags::default());
        PasskeyBrowser::new(&server).sign_up(&mut device, "ada", "").await;
        let b = PasskeyBrowser::new(&server);
        assert_eq!(b.sign_in(&mut device, "/login", None).await.status(), StatusCode::SEE_OTHER, "{backend}");
        assert_eq!(b.sign_in(&mut device, "/login", None).await.status(), StatusCode::SEE_OTHER, "{backend}");
        let id = device.credential_ids()[0].clone();
        // A clone that has signed less: its next counter is at most what the server saw.
        device.set_sign_count(&id, 0);
        let refused = PasskeyBrowser::new(&server).sign_in(&mut device, "/login", None).await;
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED, "{backend}");
        // A counter that stays 0 (a synced passkey) is "no counter", accepted every time.
        let mut synced = SoftAuthenticator::new(Flags::synced());
        synced.keep_counter_at_zero(true);
        PasskeyBrowser::new(&server).sign_up(&mut synced, "bob", "").await;
        for _ in 0..2 {
            let ok_again = PasskeyBrowser::new(&server).sign_in(&mut synced, "/login", None).await;
            assert_eq!(ok_again.status(), StatusCode::SEE_OTHER, "{backend}");
        }
    }
}

#[tokio::test]
async fn a_challenge_works_once_and_only_in_the_browser_that_asked() {
    let server = TestServer::start(sqlite().await, open_registration).await;
    let mut device = SoftAuthenticator::new(Flags::default());
    PasskeyBrowser::new(&server).sign_up(&mut device, "ada", "").await;
    let b = PasskeyBrowser::new(&server);
    let (_, _, csrf) = b.page("/login").await;
    let (_, options) = b.options("/login/passkey/options", &[("csrf", &csrf)]).await;
    let credential = ok(device.authenticate(&options, &b.issuer), "assertion").to_string();
    // Another browser cannot finish it (no ceremony cookie; its own CSRF token).
    let thief = PasskeyBrowser::new(&server);
    let (_, _, thief_csrf) = thief.page("/login").await;
    let stolen = thief
        .browser
        .post_form(&thief.url("/login/passkey"), &[("csrf", &thief_csrf), ("credential", &credential)])
        .await;
    assert_eq!(stolen.status(), StatusCode::BAD_REQUEST);
    let first = b.browser.post_form(&b.url("/login/passkey"), &[("csrf", &csrf), ("credential", &credential)]).await;
    assert_eq!(first.status(), StatusCode::SEE_OTHER);
    let replay = b.browser.post_form(&b.url("/login/passkey"), &[("csrf", &csrf), ("credential", &credential)]).await;
    assert_eq!(replay.status(), StatusCode::BAD_REQUEST, "the challenge was used");
    // Garbage instead of a credential is a clear error, not a crash.
    let (_, _, csrf) = b.page("/login").await;
    b.options("/login/passkey/options", &[("csrf", &csrf)]).await;
    let junk = b.browser.post_form(&b.url("/login/passkey"), &[("csrf", &csrf), ("credential", "{not json")]).await;
    assert_eq!(junk.status(), StatusCode::UNAUTHORIZED);
    assert!(ok(junk.text().await, "page").contains("could not sign you in"));
}

#[tokio::test]
async fn sign_up_reports_a_taken_username_but_never_a_taken_email_and_obeys_the_mode() {
    let server = TestServer::start(sqlite().await, open_registration).await;
    server.create_user("taken", support::flow::PASSWORD).await;
    let b = PasskeyBrowser::new(&server);
    let (_, _, csrf) = b.page("/signup").await;
    let form = |u: &'static str, e: &'static str| {
        [("csrf", csrf.clone()), ("name", "X".into()), ("username", u.into()), ("email", e.into())]
    };
    let post = |f: [(&'static str, String); 4]| {
        let b = &b;
        async move {
            let pairs: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
            b.options("/signup/options", &pairs).await
        }
    };
    let (status, body) = post(form("taken", "")).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body["error"].as_str().unwrap_or_default().contains("taken"));
    // taken@example.com belongs to `taken`: sign-up goes on as for any address.
    let (status, body) = post(form("fresh", "taken@example.com")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for (username, email) in [("", ""), ("has space", ""), ("a@b", ""), ("ok", "not-an-email")] {
        let pairs = [("csrf", csrf.as_str()), ("name", "X"), ("username", username), ("email", email)];
        let (status, body) = b.options("/signup/options", &pairs).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{username:?} {email:?}: {body}");
    }
    let no_name = [("csrf", csrf.as_str()), ("name", " "), ("username", "ok")];
    assert_eq!(b.options("/signup/options", &no_name).await.0, StatusCode::BAD_REQUEST);
    // Finishing without a pending sign-up, or with junk, stores nothing.
    let other = PasskeyBrowser::new(&server);
    let (_, _, other_csrf) = other.page("/signup").await;
    let orphan = other.browser.post_form(&other.url("/signup"), &[("csrf", &other_csrf), ("credential", "{}")]).await;
    assert_eq!(orphan.status(), StatusCode::BAD_REQUEST);

    // Closed (the default): no sign-up page.
    let closed = TestServer::start(sqlite().await, |_| {}).await;
    assert_eq!(
        Browser::new(closed.server.addr).get(&closed.issuer_url("/signup")).await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn invitations_open_sign_up_once() {
    let server = TestServer::start(sqlite().await, |c| {
        c.registration.mode = latchkey_config::RegistrationMode::Invite;
    })
    .await;
    let state = server.state();
    let hash = latchkey_server::signup::invitation_hash(state, "the-invitation-token");
    let later = state.clock.now().plus(std::time::Duration::from_secs(3_600));
    let tenant = TenantId::default_tenant();
    ok(
        latchkey_service::testing::store_of(&state.services)
            .create_invitation(&tenant, &hash, "i1", None, later, &latchkey_core::records::Actor::Cli)
            .await,
        "invite",
    );
    let b = PasskeyBrowser::new(&server);
    assert_eq!(b.page("/signup").await.0, StatusCode::FORBIDDEN, "no invitation");
    assert_eq!(b.page("/signup?invite=wrong").await.0, StatusCode::FORBIDDEN);
    let (status, _, csrf) = b.page("/signup?invite=the-invitation-token").await;
    assert_eq!(status, StatusCode::OK);
    let mut device = SoftAuthenticator::new(Flags::default());
    let form = [("csrf", csrf.as_str()), ("name", "Ada"), ("username", "ada"), ("invite", "the-invitation-token")];
    let (status, options) = b.options("/signup/options", &form).await;
    assert_eq!(status, StatusCode::OK, "{options}");
    let credential = ok(device.register(&options, &b.issuer), "register").to_string();
    let done = b.browser.post_form(&b.url("/signup"), &[("csrf", &csrf), ("credential", &credential)]).await;
    assert_eq!(done.status(), StatusCode::OK);
    assert_eq!(b.page("/signup?invite=the-invitation-token").await.0, StatusCode::FORBIDDEN, "used up");
}

#[tokio::test]
async fn a_ceremony_started_on_one_node_finishes_on_another() {
    for db in all_backends().await {
        let backend = db.backend;
        let a = TestServer::start(db.clone(), open_registration).await;
        let issuer = a.server.issuer.clone();
        let public = ok(url::Url::parse(&issuer), "issuer");
        let b = TestServer::start(db, |c| {
            open_registration(c);
            c.server.public_url = Some(public);
        })
        .await;
        assert_eq!(b.server.issuer, issuer, "{backend}: one public URL, two nodes");
        let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
        let via = |node: &TestServer| {
            ok(
                reqwest::Client::builder()
                    .cookie_provider(jar.clone())
                    .redirect(reqwest::redirect::Policy::none())
                    .resolve("localhost", node.server.addr)
                    .no_proxy()
                    .build(),
                "client",
            )
        };
        let (to_a, to_b) = (via(&a), via(&b));
        let mut device = SoftAuthenticator::new(Flags::default());
        // Sign up: options from node A, the passkey's answer to node B.
        let page = ok(ok(to_a.get(format!("{issuer}/signup")).send().await, "page").text().await, "html");
        let csrf = support::browser::hidden_field(&page, "csrf").unwrap_or_default();
        let form = [("csrf", csrf.as_str()), ("name", "Ada"), ("username", "ada")];
        let options: serde_json::Value = ok(
            ok(to_a.post(format!("{issuer}/signup/options")).form(&form).send().await, "options").json().await,
            "json",
        );
        let credential = ok(device.register(&options, &issuer), "register").to_string();
        let done = ok(
            to_b.post(format!("{issuer}/signup")).form(&[("csrf", &csrf), ("credential", &credential)]).send().await,
            "finish",
        );
        assert_eq!(done.status(), StatusCode::OK, "{backend}: node B finished node A's sign-up");
        // Sign in the same way.
        let options: serde_json::Value = ok(
            ok(to_b.post(format!("{issuer}/login/passkey/options")).form(&[("csrf", &csrf)]).send().await, "options")
                .json()
                .await,
            "json",
        );
        let assertion = ok(device.authenticate(&options, &issuer), "assert").to_string();
        let signed_in = ok(
            to_a.post(format!("{issuer}/login/passkey"))
                .form(&[("csrf", &csrf), ("credential", &assertion)])
                .send()
                .await,
            "post",
        );
        assert_eq!(signed_in.status(), StatusCode::SEE_OTHER, "{backend}: node A finished node B's sign-in");
    }
}
