//! Sessions and second factors, through the services alone (no HTTP server), on SQLite and
//! PostgreSQL: a sign-in starts a session or renews this browser's, another user's sign-in
//! replaces it, a locked user's session is no session; an authenticator app counts only
//! once confirmed and each of its codes works once; recovery codes work once and
//! regenerating them ends the old ones.

mod support;

use latchkey_core::domain::TenantId;
use latchkey_core::records::Actor;
use latchkey_service::factors::TotpConfirmation;
use latchkey_service::sessions::SignedIn;
use latchkey_service::testing::{TestDatabase, sample_user};
use latchkey_service::users::StateChange;
use latchkey_service::{Latchkey, ServiceError};
use support::{ok, services};

fn tenant() -> TenantId {
    TenantId::default_tenant()
}

fn signed_in(sub: &latchkey_core::domain::SubjectId) -> SignedIn {
    SignedIn {
        sub: sub.clone(),
        amr: vec!["pwd".into()],
        acr: "1".into(),
        remember: false,
        user_agent: Some("x".repeat(1_000)),
        ip: Some("192.0.2.1".into()),
        authenticated_at: None,
    }
}

async fn user(s: &Latchkey, name: &str) -> latchkey_core::domain::SubjectId {
    ok(s.users().create(&tenant(), sample_user(name), &Actor::Cli).await, "user").sub
}

#[tokio::test]
async fn a_sign_in_renews_this_browsers_session_for_the_same_user_and_replaces_it_for_another() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let s = services(&db, dir.path(), |c| c.privacy.user_agent = latchkey_config::UserAgentRecording::Full).await;
        let (ada, bob) = (user(&s, "ada").await, user(&s, "bob").await);

        let first = ok(s.sessions().start(&tenant(), None, signed_in(&ada)).await, "sign-in");
        assert_eq!(first.session.user_agent.as_ref().map(String::len), Some(256), "{b}: the user agent is capped");
        let live = s.sessions().live(&tenant(), &first.secret).await;
        assert_eq!(live.map(|l| l.sid), Some(first.session.sid.clone()), "{b}: the secret finds the session");

        // Ada again (a step-up): same sid, new secret; the old secret is spent.
        let again = ok(s.sessions().start(&tenant(), Some(&first.secret), signed_in(&ada)).await, "again");
        assert_eq!(again.session.sid, first.session.sid, "{b}: the session keeps its sid");
        assert_ne!(again.secret, first.secret, "{b}: a new secret at every sign-in");
        assert!(s.sessions().live(&tenant(), &first.secret).await.is_none(), "{b}: the old secret is spent");

        // Bob in the same browser: ada's session ends, bob's is new.
        let bobs = ok(s.sessions().start(&tenant(), Some(&again.secret), signed_in(&bob)).await, "bob");
        assert_ne!(bobs.session.sid, first.session.sid, "{b}: another user gets another session");
        assert!(s.sessions().live(&tenant(), &again.secret).await.is_none(), "{b}: ada's session ended");
        let now = s.clock.now();
        let idle = s.config.sessions.idle_timeout;
        assert!(ok(s.sessions().of_user(&tenant(), &ada, now, idle).await, "ada's").is_empty(), "{b}");

        // A locked user's session is no session.
        ok(s.users().change_state(&tenant(), &bob, StateChange::Lock, &Actor::Cli).await, "lock");
        assert!(s.sessions().live(&tenant(), &bobs.secret).await.is_none(), "{b}: locked");
        assert!(s.sessions().live(&tenant(), "no-such-secret").await.is_none(), "{b}: unknown");
        s.system().close().await;
    }
}

#[tokio::test]
async fn an_authenticator_app_counts_once_confirmed_each_code_works_once_and_removing_it_ends_other_sessions() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let s = services(&db, dir.path(), |_| {}).await;
        let ada = user(&s, "ada").await;
        let factors = s.factors();
        let actor = Actor::User(ada.to_string());

        let nothing = ok(factors.confirm_totp_code(&tenant(), &ada, "123456", &actor).await, "confirm");
        assert_eq!(nothing, TotpConfirmation::NothingPending, "{b}");
        ok(factors.begin_totp(&tenant(), &ada).await, "begin");
        let secret =
            ok(factors.pending_totp(&tenant(), &ada).await, "pending").unwrap_or_else(|| panic!("{b}: pending"));
        let now = u64::try_from(s.clock.now().secs()).unwrap_or(0);
        let code = secret.code_at(now).unwrap_or_default();
        assert!(!factors.check_totp(&tenant(), &ada, &code).await, "{b}: an unconfirmed app is no factor");
        let wrong = if code == "000000" { "111111" } else { "000000" };
        let refused = ok(factors.confirm_totp_code(&tenant(), &ada, wrong, &actor).await, "wrong");
        assert_eq!(refused, TotpConfirmation::WrongCode, "{b}");
        let confirmed = ok(factors.confirm_totp_code(&tenant(), &ada, &code, &actor).await, "right");
        assert_eq!(confirmed, TotpConfirmation::Confirmed, "{b}");
        assert!(matches!(factors.pending_totp(&tenant(), &ada).await, Ok(None)), "{b}: nothing pending now");
        assert!(factors.begin_totp(&tenant(), &ada).await.is_err(), "{b}: a confirmed app is not replaced");

        // The confirming code's time step is used up: the same code does not sign in.
        assert!(!factors.check_totp(&tenant(), &ada, &code).await, "{b}: the confirming code is spent");

        // Removing it ends the user's other sessions, not this one.
        let here = ok(s.sessions().start(&tenant(), None, signed_in(&ada)).await, "here");
        let elsewhere = ok(s.sessions().start(&tenant(), None, signed_in(&ada)).await, "elsewhere");
        ok(factors.remove_totp(&tenant(), &ada, &here.session.sid, &actor).await, "remove");
        assert!(s.sessions().live(&tenant(), &here.secret).await.is_some(), "{b}: this session stays");
        assert!(s.sessions().live(&tenant(), &elsewhere.secret).await.is_none(), "{b}: the other one ended");
        assert!(matches!(factors.totp(&tenant(), &ada).await, Ok(None)), "{b}: removed");
        let again = factors.remove_totp(&tenant(), &ada, &here.session.sid, &actor).await;
        assert!(matches!(again, Err(ServiceError::NotFound(_))), "{b}: {again:?}");
        s.system().close().await;
    }
}

#[tokio::test]
async fn recovery_codes_work_once_and_regenerating_ends_the_old_ones() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let s = services(&db, dir.path(), |_| {}).await;
        let ada = user(&s, "ada").await;
        let factors = s.factors();
        let actor = Actor::User(ada.to_string());

        let old = ok(factors.regenerate_recovery_codes(&tenant(), &ada, &actor).await, "codes");
        assert_eq!(old.len(), 10, "{b}");
        let typed = old[0].to_uppercase().replace('-', " ");
        assert!(factors.redeem_recovery_code(&tenant(), &ada, &typed).await, "{b}: case and separators do not matter");
        assert!(!factors.redeem_recovery_code(&tenant(), &ada, &old[0]).await, "{b}: a code works once");
        assert_eq!(ok(factors.recovery_codes_left(&tenant(), &ada).await, "left"), 9, "{b}");

        let new = ok(factors.regenerate_recovery_codes(&tenant(), &ada, &actor).await, "again");
        assert!(!factors.redeem_recovery_code(&tenant(), &ada, &old[1]).await, "{b}: the old codes are gone");
        assert!(factors.redeem_recovery_code(&tenant(), &ada, &new[1]).await, "{b}: the new ones work");
        assert!(!factors.redeem_recovery_code(&tenant(), &ada, "").await, "{b}: nothing is no code");
        let bob = user(&s, "bob").await;
        assert!(!factors.redeem_recovery_code(&tenant(), &bob, &new[2]).await, "{b}: ada's code is not bob's");
        s.system().close().await;
    }
}

fn passkey(id: &str) -> latchkey_core::records::NewPasskey {
    latchkey_core::records::NewPasskey {
        credential_id: id.into(),
        name: format!("key {id}"),
        credential: format!("{{\"id\":\"{id}\"}}"),
        sign_count: 0,
        backup_eligible: false,
        backup_state: false,
    }
}

async fn passkey_ids(s: &Latchkey, sub: &latchkey_core::domain::SubjectId) -> Vec<String> {
    ok(s.factors().passkeys(&tenant(), sub).await, "passkeys").into_iter().map(|p| p.credential_id).collect()
}

#[tokio::test]
async fn the_last_way_to_sign_in_is_never_removed() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let s = services(&db, dir.path(), |_| {}).await;
        let ada = user(&s, "ada").await;
        let actor = Actor::User(ada.to_string());
        let factors = s.factors();
        ok(factors.add_passkey(&tenant(), &ada, passkey("k1"), &actor).await, "k1");

        let last = factors.remove_passkey(&tenant(), &ada, "k1", "sid", &actor).await;
        assert!(matches!(last, Err(ServiceError::Invalid(_))), "{b}: the only passkey stays: {last:?}");
        assert_eq!(passkey_ids(&s, &ada).await, ["k1"], "{b}: and nothing was removed");
        let none = s.users().remove_password(&tenant(), &ada, "sid", &actor).await;
        assert!(matches!(none, Err(ServiceError::Invalid(_))), "{b}: there is no password: {none:?}");

        // With a password, the last passkey may go; then the password is the last way in.
        let password = ok(latchkey_core::domain::NewPassword::parse("correct horse battery".into()), "password");
        let change = latchkey_service::users::PasswordChange::ByOperator;
        ok(s.users().set_password(&tenant(), &ada, password, change, &Actor::Cli).await, "password");
        ok(factors.remove_passkey(&tenant(), &ada, "k1", "sid", &actor).await, "remove k1");
        assert!(passkey_ids(&s, &ada).await.is_empty(), "{b}");
        let last = s.users().remove_password(&tenant(), &ada, "sid", &actor).await;
        assert!(matches!(last, Err(ServiceError::Invalid(_))), "{b}: the password stays: {last:?}");
        ok(factors.add_passkey(&tenant(), &ada, passkey("k2"), &actor).await, "k2");
        ok(s.users().remove_password(&tenant(), &ada, "sid", &actor).await, "now the password may go");

        let unknown = factors.remove_passkey(&tenant(), &ada, "no-such-key", "sid", &actor).await;
        assert!(matches!(unknown, Err(ServiceError::NotFound(_))), "{b}: {unknown:?}");
        s.system().close().await;
    }
}

#[tokio::test]
async fn with_passwords_off_a_password_does_not_keep_the_last_passkey_removable() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let s = services(&db, dir.path(), |c| c.login.passwords = false).await;
        let ada = user(&s, "ada").await;
        let actor = Actor::User(ada.to_string());
        let password = ok(latchkey_core::domain::NewPassword::parse("correct horse battery".into()), "password");
        let change = latchkey_service::users::PasswordChange::ByOperator;
        ok(s.users().set_password(&tenant(), &ada, password, change, &Actor::Cli).await, "password");
        ok(s.factors().add_passkey(&tenant(), &ada, passkey("k1"), &actor).await, "k1");
        let last = s.factors().remove_passkey(&tenant(), &ada, "k1", "sid", &actor).await;
        assert!(matches!(last, Err(ServiceError::Invalid(_))), "{b}: {last:?}");
        assert_eq!(passkey_ids(&s, &ada).await, ["k1"], "{b}");
        s.system().close().await;
    }
}

#[tokio::test]
async fn removing_two_passkeys_at_once_never_leaves_a_user_without_one() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let s = std::sync::Arc::new(services(&db, dir.path(), |_| {}).await);
        for round in 0..10 {
            let ada = user(&s, &format!("ada{round}")).await;
            let actor = Actor::User(ada.to_string());
            for k in ["a", "b"] {
                ok(s.factors().add_passkey(&tenant(), &ada, passkey(&format!("{k}{round}")), &actor).await, "add");
            }
            let remove = |k: String| {
                let (s, ada, actor) = (s.clone(), ada.clone(), actor.clone());
                tokio::spawn(async move { s.factors().remove_passkey(&tenant(), &ada, &k, "sid", &actor).await })
            };
            let (one, two) = (remove(format!("a{round}")), remove(format!("b{round}")));
            let (one, two) = (ok(one.await, "join"), ok(two.await, "join"));
            assert_eq!(one.is_ok() as u8 + two.is_ok() as u8, 1, "{b}: exactly one removal wins: {one:?} {two:?}");
            assert_eq!(passkey_ids(&s, &ada).await.len(), 1, "{b}: one passkey is left");
        }
        s.system().close().await;
    }
}

#[tokio::test]
async fn built_in_scopes_cannot_be_deleted_custom_ones_can() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let s = services(&db, dir.path(), |_| {}).await;
        let scope = |n: &str| ok(latchkey_core::domain::ScopeName::parse(n), "scope");
        let built_in = s.scopes().delete(&tenant(), &scope("openid"), &Actor::Cli).await;
        assert!(matches!(built_in, Err(ServiceError::Forbidden(_))), "{b}: {built_in:?}");
        assert!(ok(s.scopes().list(&tenant()).await, "list").iter().any(|d| d.name.as_str() == "openid"), "{b}");
        ok(s.scopes().put(&tenant(), &scope("reports"), "Reports", &Actor::Cli).await, "put");
        ok(s.scopes().delete(&tenant(), &scope("reports"), &Actor::Cli).await, "delete");
        let again = s.scopes().delete(&tenant(), &scope("reports"), &Actor::Cli).await;
        assert!(matches!(again, Err(ServiceError::NotFound(_))), "{b}: {again:?}");
        s.system().close().await;
    }
}
