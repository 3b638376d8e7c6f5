//! Recovery by email link on SQLite and PostgreSQL: the same answer for every request and a
//! link only to a verified address; the link is single-use and expires; a recovery session
//! can only add a passkey, which ends every session and replaces the recovery codes; an
//! authenticator app must be given or declared lost, and a lost one means waiting out
//! `recovery.delay` while a cancel link works.

mod support;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use latchkey_core::domain::{Email, TenantId};
use latchkey_core::records::{Actor, NewPasskey, User};
use latchkey_service::Latchkey;
use latchkey_service::recovery::{self, LINK_LIFETIME, Proof, RecoveryRefusal};
use latchkey_service::sessions::SignedIn;
use latchkey_service::testing::TestDatabase;
use support::{Address, account, link_token, mail, ok, sent, services};

fn tenant() -> TenantId {
    TenantId::default_tenant()
}

fn ip() -> IpAddr {
    "192.0.2.9".parse().unwrap_or_else(|e| panic!("{e}"))
}

async fn user(s: &Latchkey, name: &str, verified: bool, locked: bool) -> User {
    let u = account(s, name, if verified { Address::Verified } else { Address::Unverified }).await;
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
        for typed in [
            "ada",
            "ada@EXAMPLE.test",
            "ADA@example.test",
            "una",
            "una@example.test",
            "lou",
            "nobody",
            "nobody@example.test",
            "ada@",
        ] {
            let answer = recovery::request(&s, &tenant(), typed, ip()).await;
            assert_eq!(answer, Ok(()), "{b}: `{typed}`");
        }
        let got = links(&s, 3).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let late = sent(&s).await;
        assert!(late.is_empty(), "{b}: nothing else was sent: {late:?}");
        let to: Vec<&str> = got.iter().map(|(to, _)| to.as_str()).collect();
        assert_eq!(
            to,
            ["ada@example.test", "ada@example.test", "ada@example.test"],
            "{b}: by username and by verified address (in any case) only"
        );
        assert_eq!(recovery::request(&s, &tenant(), "  ", ip()).await, Err(RecoveryRefusal::Gone), "{b}");
        let long = "x".repeat(400);
        assert_eq!(recovery::request(&s, &tenant(), &long, ip()).await, Err(RecoveryRefusal::Gone), "{b}");

        // Links live side by side: asking again never kills the link the owner is about to
        // open.
        for (_, token) in &got {
            assert!(ok(s.recovery().look(&tenant(), token).await, b).is_some(), "{b}");
        }
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
            authenticated_at: None,
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

        // The session is spent: another passkey through it is refused, nothing changes.
        let again = s.recovery().complete(&tenant(), &session, passkey("newer")).await;
        assert_eq!(again, Err(RecoveryRefusal::Gone), "{b}: once");
        let count = ok(s.factors().passkeys(&tenant(), &ada.sub).await, b).len();
        assert_eq!(count, 2, "{b}");
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
        let told: Vec<String> = sent(&s).await.into_iter().map(|(kind, _)| kind).collect();
        assert_eq!(told, ["security_notice"], "{b}: the app set up is told");

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

#[tokio::test]
async fn a_recovery_ends_when_the_address_changes_and_completes_once_under_parallel_requests() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let s = nodes(&db, dir.path()).await;
        let ada = user(&s, "ada", true, false).await;
        ok(recovery::request(&s, &tenant(), "ada", ip()).await.map_err(|e| format!("{e:?}")), b);
        let token = links(&s, 1).await.remove(0).1;
        let session = s.recovery().begin(&tenant(), &token).await.unwrap_or_else(|e| panic!("{b}: {e:?}"));
        let tries: Vec<_> = (0..4)
            .map(|i| {
                let (s, session) = (s.clone(), session.clone());
                tokio::spawn(async move { s.recovery().complete(&tenant(), &session, passkey(&format!("p{i}"))).await })
            })
            .collect();
        let mut done = 0;
        for t in tries {
            done += usize::from(ok(t.await, "join").is_ok());
        }
        assert_eq!(done, 1, "{b}: one completion");
        assert_eq!(ok(s.factors().passkeys(&tenant(), &ada.sub).await, b).len(), 2, "{b}");
        sent(&s).await;

        // A link sent to the old address does nothing once the address changed.
        ok(recovery::request(&s, &tenant(), "ada", ip()).await.map_err(|e| format!("{e:?}")), b);
        let token = links(&s, 1).await.remove(0).1;
        let patch = latchkey_core::records::UserPatch {
            email: Some(Some(ok(Email::parse("ada@new.test"), "email"))),
            ..Default::default()
        };
        ok(s.users().update(&tenant(), &ada.sub, patch, &Actor::Cli).await, b);
        assert!(ok(s.recovery().look(&tenant(), &token).await, b).is_none(), "{b}");
        assert_eq!(s.recovery().begin(&tenant(), &token).await, Err(RecoveryRefusal::Gone), "{b}");
    }
}

#[tokio::test]
async fn a_waiting_recovery_is_shown_resumed_not_restarted_and_cancelled_by_a_sign_in_or_its_owner() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let s = nodes(&db, dir.path()).await;
        let ada = user(&s, "ada", true, false).await;
        ok(s.factors().add_passkey(&tenant(), &ada.sub, passkey("second"), &Actor::Cli).await, "second passkey");
        let begin = |s: Arc<Latchkey>| async move {
            ok(recovery::request(&s, &tenant(), "ada", ip()).await.map_err(|e| format!("{e:?}")), "request");
            let token = links(&s, 1).await.remove(0).1;
            s.recovery().begin(&tenant(), &token).await.unwrap_or_else(|e| panic!("{e:?}"))
        };
        let session = begin(s.clone()).await;
        assert_eq!(session.proof, Proof::OtherPasskeyLost, "{b}: two passkeys");
        let waiting = s.recovery().declare_lost(&tenant(), &session).await.unwrap_or_else(|e| panic!("{b}: {e:?}"));
        let Proof::Waiting { ready_at } = waiting.proof else { panic!("{b}: {:?}", waiting.proof) };
        assert_eq!(sent(&s).await.len(), 1, "{b}: the waiting notice");
        let shown = ok(s.recovery().waiting_for(&tenant(), &ada.sub).await, b).map(|t| t.secs());
        assert_eq!(shown, Some(ready_at), "{b}: the security page can show it");

        // Later, a new link (another browser): it goes on where it stands.
        s.clock.advance(Duration::from_secs(3_600));
        let resumed = begin(s.clone()).await;
        assert_eq!(resumed.proof, Proof::Waiting { ready_at }, "{b}: not restarted");
        assert!(sent(&s).await.is_empty(), "{b}: no second notice");

        // The owner signs in during the delay: it is cancelled.
        let signed_in = SignedIn {
            sub: ada.sub.clone(),
            amr: vec!["hwk".into()],
            acr: "2".into(),
            remember: false,
            user_agent: None,
            ip: None,
            authenticated_at: None,
        };
        ok(s.sessions().start(&tenant(), None, signed_in).await, "sign-in");
        assert_eq!(ok(s.recovery().waiting_for(&tenant(), &ada.sub).await, b), None, "{b}");
        s.clock.advance(Duration::from_secs(86_400));
        let late = s.recovery().complete(&tenant(), &resumed, passkey("attacker")).await;
        assert_eq!(late, Err(RecoveryRefusal::Cancelled), "{b}");

        // Again, and its owner stops it from the security page.
        let session = begin(s.clone()).await;
        let waiting = s.recovery().declare_lost(&tenant(), &session).await.unwrap_or_else(|e| panic!("{b}: {e:?}"));
        assert!(ok(s.recovery().cancel_for(&tenant(), &ada.sub, "security_page").await, b), "{b}");
        assert!(!ok(s.recovery().cancel_for(&tenant(), &ada.sub, "security_page").await, b), "{b}: nothing left");
        s.clock.advance(Duration::from_secs(86_400));
        let late = s.recovery().complete(&tenant(), &waiting, passkey("attacker-2")).await;
        assert!(late.is_err(), "{b}: {late:?}");
        let ids: Vec<String> =
            ok(s.factors().passkeys(&tenant(), &ada.sub).await, b).into_iter().map(|p| p.credential_id).collect();
        assert!(!ids.iter().any(|i| i.starts_with("attacker")), "{b}: {ids:?}");
    }
}

#[tokio::test]
async fn a_recovery_sets_a_new_password_instead_where_passwords_are_on() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let s = nodes(&db, dir.path()).await;
        let ada = user(&s, "ada", true, false).await;
        let begin = |s: Arc<Latchkey>| async move {
            ok(recovery::request(&s, &tenant(), "ada", ip()).await.map_err(|e| format!("{e:?}")), "request");
            let token = links(&s, 1).await.remove(0).1;
            s.recovery().begin(&tenant(), &token).await.unwrap_or_else(|e| panic!("{e:?}"))
        };
        let session = begin(s.clone()).await;
        let good = ok(latchkey_core::domain::NewPassword::parse("a brand new passphrase".into()), "parse");
        let codes = s.recovery().complete_with_password(&tenant(), &session, good).await;
        assert_eq!(codes.map(|c| c.len()).map_err(|e| format!("{e:?}")), Ok(10), "{b}");
        let now = ok(s.users().by_sub(&tenant(), &ada.sub).await, b).unwrap_or_else(|| panic!("gone"));
        assert!(now.has_password, "{b}");
        let told = sent(&s).await;
        assert_eq!(told.len(), 1, "{b}");
        assert!(told[0].1.text.contains("a new password was set"), "{b}: {}", told[0].1.text);
        let again = ok(latchkey_core::domain::NewPassword::parse("another new passphrase".into()), "parse");
        assert_eq!(
            s.recovery().complete_with_password(&tenant(), &session, again).await,
            Err(RecoveryRefusal::Gone),
            "{b}: once"
        );

        let no_passwords = Arc::new(
            support::services(&db, dir.path(), |c| {
                c.mail = Some(support::mail());
                c.login.passwords = false;
            })
            .await,
        );
        let session = begin(no_passwords.clone()).await;
        let pw = ok(latchkey_core::domain::NewPassword::parse("a brand new passphrase".into()), "parse");
        let refused = no_passwords.recovery().complete_with_password(&tenant(), &session, pw).await;
        assert_eq!(refused, Err(RecoveryRefusal::NotNow), "{b}: passwords are off");
    }
}
