//! What an authorization request may ask for and what must happen before it gets a code,
//! and signing in with a password: through the services alone, on SQLite and PostgreSQL.

mod support;

use std::net::IpAddr;

use latchkey_core::crypto::PasswordPolicy;
use latchkey_core::domain::{AuthLevel, ClaimsRequest, ClientKind, ScopeName, SubjectId, TenantId, TypedPassword};
use latchkey_core::records::{Actor, BrowserSession, Client, NewClient, UserPatch};
use latchkey_service::Latchkey;
use latchkey_service::authorization::{Authorization, AuthorizationRequest, NextStep, Refusal, ResponseMode};
use latchkey_service::password_sign_in::PasswordRefusal;
use latchkey_service::testing::{TestDatabase, sample_client, sample_user};
use latchkey_service::users::StateChange;
use support::{browser_session, ok, services};

fn tenant() -> TenantId {
    TenantId::default_tenant()
}

async fn client(s: &Latchkey, id: &str, first_party: bool) -> Client {
    let new = sample_client(id, ClientKind::Public, &format!("https://{id}.example/cb"));
    let allowed_scopes = ["openid", "email"].iter().map(|n| ok(ScopeName::parse(n), "scope")).collect();
    ok(s.clients().create(&tenant(), NewClient { first_party, allowed_scopes, ..new }, &Actor::Cli).await, "client")
}

fn request(client: &Client) -> AuthorizationRequest {
    AuthorizationRequest {
        client_id: client.client_id.to_string(),
        redirect_uri: format!("https://{}.example/cb", client.client_id),
        scope: vec!["openid".into()],
        state: None,
        nonce: None,
        code_challenge: None,
        response_mode: ResponseMode::Query,
        prompt: vec![],
        max_age: None,
        login_hint: None,
        claims: None,
        hint_sub: None,
        audience: "aud".into(),
        created_at: 0,
        login_pending: false,
        replaced_login: None,
        account_chosen: false,
        required_level: None,
        minimum_level: None,
    }
}

fn session(s: &Latchkey, sub: &SubjectId, cookie: &str, level: AuthLevel, signed_in_ago: u64) -> BrowserSession {
    browser_session(s, sub, (cookie, &format!("sid-{cookie}")), level.acr(), signed_in_ago)
}

fn with(request: &AuthorizationRequest, change: impl FnOnce(&mut AuthorizationRequest)) -> AuthorizationRequest {
    let mut r = request.clone();
    change(&mut r);
    r
}

#[tokio::test]
async fn a_request_asks_for_sign_in_step_up_account_choice_and_consent_only_when_needed() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let s = services(&db, dir.path(), |_| {}).await;
        let ada = ok(s.users().create(&tenant(), sample_user("ada"), &Actor::Cli).await, "ada").sub;
        let (first, third) = (client(&s, "first", true).await, client(&s, "third", false).await);
        let step = |r: AuthorizationRequest, c: Client, sess: Option<BrowserSession>| {
            let authz = s.authorization();
            async move { ok(authz.next_step(&tenant(), &r, &c, sess.as_ref()).await, "next step") }
        };
        let fresh = session(&s, &ada, "c1", AuthLevel::SingleFactor, 10);
        let base = request(&first);

        assert_eq!(step(base.clone(), first.clone(), None).await, NextStep::SignIn, "{b}: nobody signed in");
        let none = with(&base, |r| r.prompt = vec!["none".into()]);
        assert!(matches!(step(none.clone(), first.clone(), None).await, NextStep::LoginRequired(_)), "{b}");
        assert_eq!(step(base.clone(), first.clone(), Some(fresh.clone())).await, NextStep::Issue, "{b}: first party");
        let login = with(&base, |r| r.prompt = vec!["login".into()]);
        assert_eq!(
            step(login.clone(), first.clone(), Some(fresh.clone())).await,
            NextStep::SignIn,
            "{b}: prompt=login"
        );
        let old = with(&base, |r| r.max_age = Some(5));
        assert_eq!(step(old, first.clone(), Some(fresh.clone())).await, NextStep::SignIn, "{b}: older than max_age");

        // Waiting for a sign-in: the session it replaces does not count, a new one does.
        let mut waiting = login.clone();
        waiting.wait_for_sign_in(Some(&fresh));
        assert_eq!(step(waiting.clone(), first.clone(), Some(fresh.clone())).await, NextStep::SignIn, "{b}");
        let renewed = session(&s, &ada, "c2", AuthLevel::SingleFactor, 0);
        assert_eq!(step(waiting.clone(), first.clone(), Some(renewed.clone())).await, NextStep::Issue, "{b}");

        // Step-up: a weaker session signs in again; a new one still too weak is refused.
        let strong = with(&base, |r| {
            r.required_level = Some(AuthLevel::PhishingResistant);
            r.minimum_level = Some(AuthLevel::PhishingResistant);
        });
        assert_eq!(step(strong.clone(), first.clone(), Some(fresh.clone())).await, NextStep::SignIn, "{b}");
        let mut strong_waiting = strong.clone();
        strong_waiting.wait_for_sign_in(Some(&fresh));
        let weak_again = step(strong_waiting, first.clone(), Some(renewed.clone())).await;
        assert_eq!(weak_again, NextStep::Insufficient(AuthLevel::PhishingResistant), "{b}");

        // The request names another user.
        let other = with(&base, |r| r.hint_sub = Some("someone-else".into()));
        assert_eq!(step(other, first.clone(), Some(fresh.clone())).await, NextStep::SignIn, "{b}");
        let mut other_waiting = with(&base, |r| r.hint_sub = Some("someone-else".into()));
        other_waiting.wait_for_sign_in(None);
        assert!(matches!(step(other_waiting, first.clone(), Some(fresh.clone())).await, NextStep::LoginRequired(_)));

        let choose = with(&base, |r| r.prompt = vec!["select_account".into()]);
        assert_eq!(step(choose.clone(), first.clone(), Some(fresh.clone())).await, NextStep::SelectAccount, "{b}");
        let chosen = with(&choose, |r| r.account_chosen = true);
        assert_eq!(step(chosen, first.clone(), Some(fresh.clone())).await, NextStep::Issue, "{b}");

        // A third-party client needs consent; with prompt=none it is refused.
        let third_request = request(&third);
        assert_eq!(step(third_request.clone(), third.clone(), Some(fresh.clone())).await, NextStep::Consent, "{b}");
        let silent = with(&third_request, |r| r.prompt = vec!["none".into()]);
        assert_eq!(step(silent, third.clone(), Some(fresh.clone())).await, NextStep::ConsentRequired, "{b}");
        s.system().close().await;
    }
}

#[tokio::test]
async fn a_request_gets_only_known_allowed_scopes_pkce_and_the_levels_policy_sets() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let s = services(&db, dir.path(), |c| c.login.require_mfa = true).await;
        let app = client(&s, "app", false).await;
        let authz = s.authorization();

        let scope = ok(authz.scope(&app, "openid  no-such-scope openid email").await, "scope");
        assert_eq!(scope, Ok(vec!["openid".to_owned(), "email".to_owned()]), "{b}: unknown ignored, repeats once");
        let refused = ok(authz.scope(&app, "openid phone").await, "scope");
        assert!(matches!(refused, Err(Refusal::InvalidScope(m)) if m.contains("phone")), "{b}");

        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert_eq!(Authorization::code_challenge(&app, Some(challenge), Some("S256")), Ok(Some(challenge.into())));
        assert!(Authorization::code_challenge(&app, Some(challenge), Some("plain")).is_err(), "{b}");
        assert!(Authorization::code_challenge(&app, Some("short"), Some("S256")).is_err(), "{b}");
        assert!(Authorization::code_challenge(&app, None, None).is_err(), "{b}: PKCE is required");

        // The server requires two factors: that is the floor, acr_values may ask for more.
        let mfa = Some(AuthLevel::MultiFactor);
        assert_eq!(authz.levels(&app, None, None), Ok((mfa, mfa)), "{b}");
        let asked = authz.levels(&app, Some("urn:latchkey:acr:phishing-resistant"), None);
        assert_eq!(asked, Ok((Some(AuthLevel::PhishingResistant), mfa)), "{b}: voluntary");
        let essential =
            ok(ClaimsRequest::parse(r#"{"id_token":{"acr":{"essential":true,"values":["urn:x"]}}}"#), "claims");
        assert!(matches!(authz.levels(&app, None, Some(&essential)), Err(Refusal::AccessDenied(_))), "{b}");

        // The claims parameter keeps only claims of scopes the client may have, with openid.
        let claims = ok(ClaimsRequest::parse(r#"{"userinfo":{"email":null,"phone_number":null}}"#), "claims");
        let kept = Authorization::claims(&app, &["openid".into()], claims.clone());
        assert_eq!(kept.as_ref().map(|c| c.user_claims()), Some(vec!["email"]), "{b}: phone is not the client's");
        assert_eq!(Authorization::claims(&app, &["email".into()], claims), None, "{b}: not without openid");
        s.system().close().await;
    }
}

fn ip() -> IpAddr {
    IpAddr::from([192, 0, 2, 7])
}

fn typed(p: &str) -> TypedPassword {
    ok(TypedPassword::parse(p.into()), "password")
}

#[tokio::test]
async fn a_password_sign_in_gives_one_answer_for_every_refusal_and_renews_an_old_hash() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let s = services(&db, dir.path(), |_| {}).await;
        let old_policy = PasswordPolicy { memory_kib: 32, iterations: 1, parallelism: 1 };
        let old_hash = ok(old_policy.hash("correct horse battery"), "hash");
        let mut new = sample_user("ada");
        new.password_hash = Some(old_hash.as_str().to_owned());
        new.email = Some(ok(latchkey_core::domain::Email::parse("ada@example.com"), "email"));
        let ada = ok(s.users().create(&tenant(), new, &Actor::Cli).await, "ada").sub;
        let sign_in = s.sign_in();

        for (name, password) in [("ada", "wrong password!"), ("nobody", "correct horse battery")] {
            let refused = sign_in.with_password(&tenant(), name, typed(password), ip()).await;
            assert_eq!(refused.err(), Some(PasswordRefusal::Wrong), "{b}: {name}");
        }
        // An unverified address names nobody; a verified one names its user.
        let by_email = sign_in.with_password(&tenant(), "ada@example.com", typed("correct horse battery"), ip()).await;
        assert_eq!(by_email.err(), Some(PasswordRefusal::Wrong), "{b}: unverified");
        let verified = UserPatch { email_verified: Some(true), ..Default::default() };
        ok(s.users().update(&tenant(), &ada, verified, &Actor::Cli).await, "verify");
        let user = sign_in.with_password(&tenant(), " ada@example.com ", typed("correct horse battery"), ip()).await;
        assert_eq!(user.map(|u| u.sub).ok(), Some(ada.clone()), "{b}: by verified email");

        // The hash made with an older policy was renewed at today's parameters.
        let stored = ok(s.users().by_sub(&tenant(), &ada).await, "user").and_then(|u| u.password_hash);
        assert!(stored.is_some_and(|h| h != old_hash.as_str()), "{b}: rehashed");
        let again = sign_in.with_password(&tenant(), "ada", typed("correct horse battery"), ip()).await;
        assert!(again.is_ok(), "{b}: the new hash works");

        ok(s.users().change_state(&tenant(), &ada, StateChange::Lock, &Actor::Cli).await, "lock");
        let locked = sign_in.with_password(&tenant(), "ada", typed("correct horse battery"), ip()).await;
        assert_eq!(locked.err(), Some(PasswordRefusal::Wrong), "{b}: locked looks like wrong");
        s.system().close().await;
    }
}
