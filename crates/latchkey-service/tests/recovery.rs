//! Recovery by email link on SQLite and PostgreSQL: the same answer for every request and a
//! link only to a verified address; the link is single-use and expires; a recovery session
//! can only add a passkey, which ends every session and replaces the recovery codes; an
//! authenticator app must be given or declared lost, and a lost one means waiting out
//! `recovery.delay` while a cancel link works.

mod support;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use latchkey_core::domain::{Email, ProfileClaims, SubjectId, TenantId, Username};
use latchkey_core::records::{Actor, NewPasskey, NewUser, User};
use latchkey_service::Latchkey;
use latchkey_service::recovery::{self, LINK_LIFETIME, Proof, RecoveryRefusal};
use latchkey_service::sessions::SignedIn;
use latchkey_service::testing::TestDatabase;
use support::{link_token, mail, ok, sent, services};

fn tenant() -> TenantId {
    TenantId::default_tenant()
}

fn ip() -> IpAddr {
    "192.0.2.9".parse().unwrap_or_else(|e| panic!("{e}"))
}

async fn user(s: &Latchkey, name: &str, verified: bool, locked: bool) -> User {
    let new = NewUser {
        sub: SubjectId::generate(),
        username: ok(Username::parse(name), "username"),
        email: Some(ok(Email::parse(&format!("{name}@example.test")), "email")),
        email_verified: verified,
        name: None,
        profile: ProfileClaims::default(),
        password_hash: None,
        service_account: false,
    };
    let u = ok(s.users().create(&tenant(), new, &Actor::Cli).await, "user");
    ok(s.factors().add_passkey(&tenant(), &u.sub, passkey(&format!("{name}-old")), &Actor::Cli).await, "passkey");
    if locked {
        let change = latchkey_service::users::StateChange::Lock;
        ok(s.users().change_state(&tenant(), &u.sub, change, &Actor::Cli).await, "lock");
    }
    u
}

fn passkey(id: &str) -> NewPasskey {
    NewPasskey {
        credential_id: id.into(),
        name: format!("key {id}"),
        credential: format!("{{\"id\":\"{id}\"}}"),
        sign_count: 0,
        backup_eligible: false,
        backup_state: false,
    }
}

/// The recovery links sent (waiting for the background sends first).
async fn links(s: &Latchkey, expect: usize) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for _ in 0..100 {
        for (kind, m) in sent(s).await {
            assert_eq!(kind, "recovery_link", "only recovery links are expected here");
            found.push((m.to.clone(), link_token(&m, recovery::LINK_PATH)));
        }
        if found.len() >= expect {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    found
}

async fn nodes(db: &TestDatabase, dir: &std::path::Path) -> Arc<Latchkey> {
    Arc::new(services(db, dir, |c| c.mail = Some(mail())).await)
}

#[tokio::test]
async fn every_request_gets_the_same_answer_and_only_a_verified_address_gets_a_link() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let s = nodes(&db, dir.path()).await;
        user(&s, "ada", true, false).await;
        user(&s, "una", false, false).await;
        user(&s, "lou", true, true).await;
        for typed in
            ["ada", "ada@EXAMPLE.test", "una", "una@example.test", "lou", "nobody", "nobody@example.test", "ada@"]
        {
            let answer = recovery::request(&s, &tenant(), typed, ip()).await;
            assert_eq!(answer, Ok(()), "{b}: `{typed}`");
        }
        let got = links(&s, 2).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let late = sent(&s).await;
        assert!(late.is_empty(), "{b}: nothing else was sent: {late:?}");
        let to: Vec<&str> = got.iter().map(|(to, _)| to.as_str()).collect();
        assert_eq!(to, ["ada@example.test", "ada@example.test"], "{b}: by username and by verified address only");
        assert_eq!(recovery::request(&s, &tenant(), "  ", ip()).await, Err(RecoveryRefusal::Gone), "{b}");
        let long = "x".repeat(400);
        assert_eq!(recovery::request(&s, &tenant(), &long, ip()).await, Err(RecoveryRefusal::Gone), "{b}");

        // The newer link replaced the older one (the two were sent in the background, in
        // either order).
        let mut live = 0;
        for (_, token) in &got {
            live += usize::from(ok(s.recovery().look(&tenant(), token).await, b).is_some());
        }
        assert_eq!(live, 1, "{b}");
    }
}

#[tokio::test]
async fn requests_are_limited_per_typed_name_and_ip_the_same_for_known_and_unknown_names() {
    use latchkey_service::message_limits::PER_RECIPIENT;
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let s = nodes(&db, dir.path()).await;
        user(&s, "ada", true, false).await;
        for typed in ["ada", "nobody"] {
            for i in 0..PER_RECIPIENT + 2 {
                let answer = recovery::request(&s, &tenant(), typed, ip()).await;
                let expected = if i < PER_RECIPIENT { Ok(()) } else { Err(RecoveryRefusal::TooMany) };
                assert_eq!(answer, expected, "{b}: `{typed}` #{i}");
            }
        }
    }
}

#[tokio::test]
async fn a_link_opens_a_recovery_that_adds_one_passkey_ends_every_session_and_replaces_the_codes() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let s = nodes(&db, dir.path()).await;
        let ada = user(&s, "ada", true, false).await;
        let signed_in = SignedIn {
            sub: ada.sub.clone(),
            amr: vec!["hwk".into()],
            acr: "2".into(),
            remember: false,
            user_agent: None,
            ip: None,
        };
        let old_session = ok(s.sessions().start(&tenant(), None, signed_in).await, "session");
        let old_codes = ok(s.factors().regenerate_recovery_codes(&tenant(), &ada.sub, &Actor::Cli).await, "codes");
        ok(recovery::request(&s, &tenant(), "ada", ip()).await.map_err(|e| format!("{e:?}")), b);
        let token = links(&s, 1).await.remove(0).1;

        for _ in 0..2 {
            let seen = ok(s.recovery().look(&tenant(), &token).await, b).map(|u| u.sub);
            assert_eq!(seen, Some(ada.sub.clone()), "{b}: looking uses nothing");
        }
        let session = s.recovery().begin(&tenant(), &token).await.unwrap_or_else(|e| panic!("{b}: {e:?}"));
        assert_eq!(session.proof, Proof::LinkIsEnough, "{b}: one passkey, lost, and no app");
        assert_eq!(s.recovery().begin(&tenant(), &token).await, Err(RecoveryRefusal::Gone), "{b}: used once");

        let codes =
            s.recovery().complete(&tenant(), &session, passkey("new")).await.unwrap_or_else(|e| panic!("{b}: {e:?}"));
        assert_eq!(codes.len(), 10, "{b}");
        assert!(s.sessions().live(&tenant(), &old_session.secret).await.is_none(), "{b}: the old session ended");
        let ids: Vec<String> =
            ok(s.factors().passkeys(&tenant(), &ada.sub).await, b).into_iter().map(|p| p.credential_id).collect();
        assert_eq!(ids.len(), 2, "{b}: {ids:?}");
        assert!(ids.contains(&"new".to_owned()), "{b}");
        assert!(!s.factors().redeem_recovery_code(&tenant(), &ada.sub, &old_codes[0]).await, "{b}: old codes are gone");
        assert!(s.factors().redeem_recovery_code(&tenant(), &ada.sub, &codes[0]).await, "{b}: new codes work");
        let told = sent(&s).await;
        assert_eq!(told.len(), 1, "{b}");
        assert_eq!((told[0].0.as_str(), told[0].1.to.as_str()), ("recovery_completed", "ada@example.test"), "{b}");

        // The session is spent: the same passkey again is refused, nothing changes.
        let again = s.recovery().complete(&tenant(), &session, passkey("new")).await;
        assert!(again.is_err(), "{b}: {again:?}");
        let audited = ok(latchkey_service::testing::store_of(&s).recent_audit_events(&tenant(), 50).await, b);
        for action in ["recovery.started", "recovery.completed"] {
            assert!(audited.iter().any(|e| e.action == action && e.target == ada.sub.as_str()), "{b}: {action}");
        }
    }
}

#[tokio::test]
async fn a_link_expires_and_a_recovery_session_expires() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let s = nodes(&db, dir.path()).await;
        user(&s, "ada", true, false).await;
        ok(recovery::request(&s, &tenant(), "ada", ip()).await.map_err(|e| format!("{e:?}")), b);
        let first = links(&s, 1).await.remove(0).1;
        s.clock.advance(LINK_LIFETIME + Duration::from_secs(1));
        assert_eq!(s.recovery().begin(&tenant(), &first).await, Err(RecoveryRefusal::Gone), "{b}: expired");

        ok(recovery::request(&s, &tenant(), "ada", ip()).await.map_err(|e| format!("{e:?}")), b);
        let second = links(&s, 1).await.remove(0).1;
        let session = s.recovery().begin(&tenant(), &second).await.unwrap_or_else(|e| panic!("{b}: {e:?}"));
        s.clock.advance(recovery::SESSION_LIFETIME + Duration::from_secs(1));
        let late = s.recovery().complete(&tenant(), &session, passkey("late")).await;
        assert_eq!(late, Err(RecoveryRefusal::Gone), "{b}");
        for bad in ["", "x", &"y".repeat(300)] {
            assert_eq!(s.recovery().begin(&tenant(), bad).await, Err(RecoveryRefusal::Gone), "{b}: `{bad}`");
        }
    }
}

#[tokio::test]
async fn an_authenticator_app_is_given_or_declared_lost_and_a_lost_one_waits_out_the_delay_unless_cancelled() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let s = nodes(&db, dir.path()).await;
        let ada = user(&s, "ada", true, false).await;
        let actor = Actor::User(ada.sub.to_string());
        ok(s.factors().begin_totp(&tenant(), &ada.sub).await, "begin");
        let secret =
            ok(s.factors().pending_totp(&tenant(), &ada.sub).await, "pending").unwrap_or_else(|| panic!("totp"));
        let code_now =
            |s: &Latchkey| secret.code_at(u64::try_from(s.clock.now().secs()).unwrap_or(0)).unwrap_or_default();
        ok(s.factors().confirm_totp_code(&tenant(), &ada.sub, &code_now(&s), &actor).await, "confirm");

        let begin = |s: Arc<Latchkey>| async move {
            ok(recovery::request(&s, &tenant(), "ada", ip()).await.map_err(|e| format!("{e:?}")), "request");
            let token = links(&s, 1).await.remove(0).1;
            s.recovery().begin(&tenant(), &token).await.unwrap_or_else(|e| panic!("{e:?}"))
        };
        let session = begin(s.clone()).await;
        assert_eq!(session.proof, Proof::AppCodeNeeded, "{b}");
        let early = s.recovery().complete(&tenant(), &session, passkey("early")).await;
        assert_eq!(early, Err(RecoveryRefusal::NotNow), "{b}: the link alone is not enough");
        let wrong = if code_now(&s) == "000000" { "111111" } else { "000000" };
        let refused = s.recovery().give_app_code(&tenant(), &session, wrong, ip()).await;
        assert_eq!(refused, Err(RecoveryRefusal::WrongCode), "{b}");

        // Given: a new 30-second step, so the code is not the confirming one.
        s.clock.advance(Duration::from_secs(30));
        let given = s.recovery().give_app_code(&tenant(), &session, &code_now(&s), ip()).await;
        let given = given.unwrap_or_else(|e| panic!("{b}: {e:?}"));
        assert_eq!(given.proof, Proof::Given, "{b}");
        ok(s.recovery().complete(&tenant(), &given, passkey("with-app")).await.map_err(|e| format!("{e:?}")), b);
        sent(&s).await;

        // Lost: waits out the delay; the verified address hears, with a cancel link.
        let session = begin(s.clone()).await;
        let waiting = s.recovery().declare_lost(&tenant(), &session).await.unwrap_or_else(|e| panic!("{b}: {e:?}"));
        assert!(matches!(waiting.proof, Proof::Waiting { .. }), "{b}");
        let pending = sent(&s).await;
        assert_eq!(pending.len(), 1, "{b}");
        assert_eq!(pending[0].0, "recovery_pending", "{b}");
        let cancel = link_token(&pending[0].1, recovery::CANCEL_PATH);
        let now = s.recovery().complete(&tenant(), &waiting, passkey("too-soon")).await;
        assert_eq!(now, Err(RecoveryRefusal::NotNow), "{b}: not before the delay");
        s.clock.advance(Duration::from_secs(86_400));
        let done = s.recovery().complete(&tenant(), &waiting, passkey("after-delay")).await;
        assert!(done.is_ok(), "{b}: after the delay: {done:?}");
        assert!(
            !ok(s.recovery().look_cancel(&tenant(), &cancel).await, b),
            "{b}: a completed recovery's cancel link is spent"
        );
        sent(&s).await;

        // Lost again, then cancelled: it never completes.
        let session = begin(s.clone()).await;
        let waiting = s.recovery().declare_lost(&tenant(), &session).await.unwrap_or_else(|e| panic!("{b}: {e:?}"));
        let cancel = link_token(&sent(&s).await[0].1, recovery::CANCEL_PATH);
        assert!(ok(s.recovery().look_cancel(&tenant(), &cancel).await, b), "{b}: looking uses nothing");
        ok(s.recovery().cancel(&tenant(), &cancel).await, b);
        assert!(s.recovery().cancel(&tenant(), &cancel).await.is_err(), "{b}: once");
        s.clock.advance(Duration::from_secs(86_400));
        let cancelled = s.recovery().complete(&tenant(), &waiting, passkey("never")).await;
        assert_eq!(cancelled, Err(RecoveryRefusal::Cancelled), "{b}");
        let ids: Vec<String> =
            ok(s.factors().passkeys(&tenant(), &ada.sub).await, b).into_iter().map(|p| p.credential_id).collect();
        assert!(!ids.contains(&"never".to_owned()) && !ids.contains(&"too-soon".to_owned()), "{b}: {ids:?}");
    }
}

#[tokio::test]
async fn without_mail_recovery_by_email_is_not_offered() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let s = Arc::new(services(&db, dir.path(), |_| {}).await);
        assert!(!s.recovery().offered(), "{b}");
        assert_eq!(recovery::request(&s, &tenant(), "ada", ip()).await, Err(RecoveryRefusal::NotNow), "{b}");
        let off = Arc::new(
            services(&db, dir.path(), |c| {
                c.mail = Some(mail());
                c.recovery.email = false;
            })
            .await,
        );
        assert!(!off.recovery().offered(), "{b}: recovery.email = false");
    }
}
