//! Security notices and "this wasn't me", on SQLite and PostgreSQL: a change made from the
//! account is told to its verified address (a changed address at the old one, a changed
//! number at the old number too), with a link that signs the account out everywhere, takes
//! back what was added since, withdraws the recovery codes and blocks changes until the
//! owner recovers; an operator's change is not told; recovering lifts the block.

mod support;

use std::sync::Arc;
use std::time::Duration;

use latchkey_core::domain::{Email, NewPassword, TenantId};
use latchkey_core::records::{Actor, NewPasskey, User};
use latchkey_service::recovery;
use latchkey_service::security_notices::NOT_ME_PATH;
use latchkey_service::sessions::SignedIn;
use latchkey_service::testing::TestDatabase;
use latchkey_service::users::PasswordChange;
use latchkey_service::{Latchkey, ServiceError};
use support::{Address, account, code_in, link_token, mail, ok, recovery_link_when_sent, sent, services, sms, texts};

fn tenant() -> TenantId {
    TenantId::default_tenant()
}

fn passkey(id: &str) -> NewPasskey {
    NewPasskey {
        credential_id: id.into(),
        name: format!("key {id}"),
        credential: "{}".into(),
        sign_count: 0,
        backup_eligible: false,
        backup_state: false,
    }
}

async fn user(s: &Latchkey, name: &str) -> User {
    let u = account(s, name, Address::Verified).await;
    ok(s.factors().add_passkey(&tenant(), &u.sub, passkey(&format!("{name}-own")), &Actor::Cli).await, "passkey");
    u
}

async fn signed_in(s: &Latchkey, u: &User) -> String {
    let who = SignedIn {
        sub: u.sub.clone(),
        amr: vec!["hwk".into()],
        acr: "2".into(),
        remember: false,
        user_agent: None,
        ip: None,
        authenticated_at: None,
    };
    ok(s.sessions().start(&tenant(), None, who).await, "session").secret
}

#[tokio::test]
async fn a_change_by_the_owner_is_told_with_a_link_that_takes_it_back_and_blocks_changes_until_recovery() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let s = Arc::new(services(&db, dir.path(), |c| c.mail = Some(mail())).await);
        let ada = user(&s, "ada").await;
        let owner = Actor::User(ada.sub.to_string());
        assert!(sent(&s).await.is_empty(), "{b}: an operator's changes are not told");

        // Someone in ada's account adds a passkey, a password and new recovery codes.
        s.clock.advance(Duration::from_secs(5));
        ok(s.factors().add_passkey(&tenant(), &ada.sub, passkey("intruder"), &owner).await, b);
        let told = sent(&s).await;
        assert_eq!(told.len(), 1, "{b}: {told:?}");
        assert_eq!((told[0].0.as_str(), told[0].1.to.as_str()), ("security_notice", "ada@example.test"), "{b}");
        assert!(told[0].1.text.contains("A passkey (key intruder) was added"), "{b}: {}", told[0].1.text);
        let token = link_token(&told[0].1, NOT_ME_PATH);
        let password = ok(NewPassword::parse("a new long password".into()), "password");
        let change = PasswordChange::BySelf { current_sid: "x".into() };
        ok(s.users().set_password(&tenant(), &ada.sub, password, change, &owner).await, b);
        ok(s.factors().regenerate_recovery_codes(&tenant(), &ada.sub, &owner).await, b);
        // An authenticator app set up a while later (its setup started before the notice).
        ok(s.factors().begin_totp(&tenant(), &ada.sub).await, b);
        let secret = ok(s.factors().pending_totp(&tenant(), &ada.sub).await, b).unwrap_or_else(|| panic!("app"));
        s.clock.advance(Duration::from_secs(40));
        let code = secret.code_at(u64::try_from(s.clock.now().secs()).unwrap_or(0)).unwrap_or_default();
        ok(s.factors().confirm_totp_code(&tenant(), &ada.sub, &code, &owner).await, b);
        assert_eq!(sent(&s).await.len(), 3, "{b}: each change is told");
        let session = signed_in(&s, &ada).await;

        // Looking uses nothing; a wrong link is refused and changes nothing.
        for _ in 0..2 {
            let seen = ok(s.security_notices().look(&tenant(), &token).await, b).map(|u| u.sub);
            assert_eq!(seen, Some(ada.sub.clone()), "{b}");
        }
        let wrong = s.security_notices().disown(&tenant(), "not-a-token").await;
        assert!(matches!(wrong, Err(ServiceError::NotFound(_))), "{b}: {wrong:?}");

        let (_, done) = s.security_notices().disown(&tenant(), &token).await.unwrap_or_else(|e| panic!("{b}: {e}"));
        assert_eq!((done.passkeys_removed, done.password_removed, done.sessions_ended), (1, true, 1), "{b}");
        assert!(done.app_removed, "{b}: the app confirmed after the notice goes too");
        assert!(s.sessions().live(&tenant(), &session).await.is_none(), "{b}: signed out everywhere");
        let left: Vec<String> =
            ok(s.factors().passkeys(&tenant(), &ada.sub).await, b).into_iter().map(|p| p.credential_id).collect();
        assert_eq!(left, ["ada-own"], "{b}: the passkey from before stays");
        let now = ok(s.users().by_sub(&tenant(), &ada.sub).await, b).unwrap_or_else(|| panic!("gone"));
        assert!(!now.has_password && now.changes_blocked_at.is_some(), "{b}");
        assert_eq!(ok(s.factors().recovery_codes_left(&tenant(), &ada.sub).await, b), 0, "{b}: codes withdrawn");
        let again = s.security_notices().disown(&tenant(), &token).await;
        assert!(matches!(again, Err(ServiceError::NotFound(_))), "{b}: once");

        // Blocked: the owner's changes are refused, nothing changes; an operator's are not.
        let refused = s.factors().add_passkey(&tenant(), &ada.sub, passkey("again"), &owner).await;
        assert!(matches!(&refused, Err(ServiceError::Invalid(m)) if m.contains("blocked")), "{b}: {refused:?}");
        let refused = s.factors().regenerate_recovery_codes(&tenant(), &ada.sub, &owner).await;
        assert!(refused.is_err(), "{b}");
        let count = ok(s.factors().passkeys(&tenant(), &ada.sub).await, b).len();
        assert_eq!(count, 1, "{b}: nothing added");

        // Recovering lifts the block.
        let ip = std::net::IpAddr::from([192, 0, 2, 1]);
        ok(recovery::request(&s, &tenant(), "ada", ip).await.map_err(|e| format!("{e:?}")), b);
        let link = recovery_link_when_sent(&s).await;
        let rs = s.recovery().begin(&tenant(), &link).await.unwrap_or_else(|e| panic!("{b}: {e:?}"));
        ok(s.recovery().complete(&tenant(), &rs, passkey("recovered")).await.map_err(|e| format!("{e:?}")), b);
        let now = ok(s.users().by_sub(&tenant(), &ada.sub).await, b).unwrap_or_else(|| panic!("gone"));
        assert!(now.changes_blocked_at.is_none(), "{b}: recovered, unblocked");
        ok(s.factors().add_passkey(&tenant(), &ada.sub, passkey("later"), &owner).await, b);
        let audit = ok(latchkey_service::testing::store_of(&s).recent_audit_events(&tenant(), 80).await, b);
        for action in
            ["security.notice_sent", "security.change_disowned", "user.changes_blocked", "user.changes_unblocked"]
        {
            assert!(audit.iter().any(|e| e.action == action && e.target == ada.sub.as_str()), "{b}: {action}");
        }
    }
}

#[tokio::test]
async fn a_changed_address_is_told_at_the_old_one_and_a_changed_number_at_the_old_number() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let s = Arc::new(
            services(&db, dir.path(), |c| {
                c.mail = Some(mail());
                c.sms = Some(sms());
            })
            .await,
        );
        let ada = user(&s, "ada").await;
        let owner = Actor::User(ada.sub.to_string());
        let phones = s.phone_verification();
        ok(phones.send_code(&tenant(), &ada, "+447700900123", None).await, b);
        ok(phones.confirm(&tenant(), &ada, &code_in(&texts(&s).await[0].1)).await, b);
        let told = sent(&s).await;
        assert_eq!(told.len(), 1, "{b}: a new number is told to the address: {told:?}");
        assert!(told[0].1.text.contains("phone number was changed"), "{b}");
        let ada = ok(s.users().by_sub(&tenant(), &ada.sub).await, b).unwrap_or_else(|| panic!("gone"));
        ok(phones.send_code(&tenant(), &ada, "+447700900999", None).await, b);
        ok(phones.confirm(&tenant(), &ada, &code_in(&texts(&s).await[0].1)).await, b);
        let to_old: Vec<String> = texts(&s).await.into_iter().map(|(k, t)| format!("{k} {}", t.to)).collect();
        assert_eq!(to_old, ["security_notice +447700900123"], "{b}: the old number hears");

        let new = ok(Email::parse("ada@new.test"), "email");
        let ip = std::net::IpAddr::from([192, 0, 2, 1]);
        let ada = ok(s.users().by_sub(&tenant(), &ada.sub).await, b).unwrap_or_else(|| panic!("gone"));
        ok(s.email_verification().change_address(&tenant(), &ada, new, ip, &owner).await, b);
        let link = sent(&s).await.into_iter().find(|(k, _)| k == "verify_email").map(|(_, m)| m);
        let link =
            link_token(&link.unwrap_or_else(|| panic!("{b}: no link")), latchkey_service::email_verification::PATH);
        ok(s.email_verification().confirm(&tenant(), &link, &ada.sub).await, b);
        let told = sent(&s).await;
        assert_eq!(told.len(), 1, "{b}: {told:?}");
        assert_eq!(
            (told[0].0.as_str(), told[0].1.to.as_str()),
            ("security_notice", "ada@example.test"),
            "{b}: the old address"
        );
        assert!(told[0].1.text.contains("ada@new.test"), "{b}");

        // Disowned: the address the change put there is no longer trusted, and the old one
        // is not verified again (its reader may be someone the owner left behind).
        let token = link_token(&told[0].1, NOT_ME_PATH);
        ok(s.security_notices().disown(&tenant(), &token).await, b);
        let now = ok(s.users().by_sub(&tenant(), &ada.sub).await, b).unwrap_or_else(|| panic!("gone"));
        assert_eq!((now.email.map(|e| e.to_string()), now.email_verified), (Some("ada@new.test".into()), false), "{b}");
        assert_eq!(now.profile.phone_number.as_deref(), Some("+447700900999"), "{b}: the phone was not part of it");
        assert!(now.profile.phone_number_verified, "{b}: verified before the change, so still");
    }
}

#[tokio::test]
async fn a_sign_in_from_a_new_browser_is_told_once_where_turned_on() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let s = services(&db, dir.path(), |c| {
            c.mail = Some(mail());
            c.login.notify_new_device = true;
        })
        .await;
        let ada = user(&s, "ada").await;
        let notices = s.security_notices();
        ok(notices.remember_device(&tenant(), &ada, "first-browser-secret").await, b);
        ok(notices.signed_in_on(&tenant(), &ada, "first-browser-secret", "Firefox").await, b);
        assert!(sent(&s).await.is_empty(), "{b}: the browser the account was made in is known");
        ok(notices.signed_in_on(&tenant(), &ada, "second-browser-secret", "Chromium on Linux").await, b);
        let told = sent(&s).await;
        assert_eq!(told.len(), 1, "{b}: {told:?}");
        assert!(told[0].1.text.contains("calls itself \"Chromium on Linux\""), "{b}: {}", told[0].1.text);
        ok(notices.signed_in_on(&tenant(), &ada, "second-browser-secret", "Chromium on Linux").await, b);
        assert!(sent(&s).await.is_empty(), "{b}: known now");

        let off = services(&db, dir.path(), |c| c.mail = Some(mail())).await;
        ok(off.security_notices().signed_in_on(&tenant(), &ada, "third-browser-secret", "x").await, b);
        assert!(sent(&off).await.is_empty(), "{b}: off by default");
    }
}

/// After "this wasn't me" every browser is new again, the intruder's too: its next sign-in
/// is told once more.
#[tokio::test]
async fn after_this_wasnt_me_a_known_browser_is_told_again() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let s = services(&db, dir.path(), |c| {
            c.mail = Some(mail());
            c.login.notify_new_device = true;
        })
        .await;
        let ada = user(&s, "ada").await;
        let notices = s.security_notices();
        ok(notices.signed_in_on(&tenant(), &ada, "intruder-browser", "Evil/1.0 <b>").await, b);
        let told = sent(&s).await;
        assert_eq!(told.len(), 1, "{b}");
        assert!(told[0].1.text.contains("a browser that calls itself \"Evil/1.0 b\""), "{b}: {}", told[0].1.text);
        ok(notices.disown(&tenant(), &link_token(&told[0].1, NOT_ME_PATH)).await, b);
        ok(notices.signed_in_on(&tenant(), &ada, "intruder-browser", "Evil/1.0").await, b);
        assert_eq!(sent(&s).await.len(), 1, "{b}: told again after the disown");
    }
}
