//! Phone numbers and recovery by text message, on SQLite and PostgreSQL: numbers are E.164
//! and only to listed countries; daily caps per number, account, IP and in all; a code
//! works once, for its account, within 5 attempts; texts are sealed in the outbox; a code
//! texted to a verified number opens the same recovery session as an emailed link, and
//! every channel hears when it completes.

mod support;

use std::net::IpAddr;
use std::sync::Arc;

use latchkey_core::domain::TenantId;
use latchkey_core::records::{Actor, Channel, NewPasskey, User};
use latchkey_service::recovery::{self, Proof, RecoveryRefusal, Via};
use latchkey_service::sms_second_factor::Step;
use latchkey_service::testing::{TestDatabase, store_of};
use latchkey_service::{Latchkey, ServiceError};
use support::{
    Address, account, code_in, mail, ok, recovery_link_when_sent, sent, services, sms, texts, texts_when_sent,
};

fn tenant() -> TenantId {
    TenantId::default_tenant()
}

fn ip(last: u8) -> IpAddr {
    IpAddr::from([192, 0, 2, last])
}

async fn user(s: &Latchkey, name: &str) -> User {
    let u = account(s, name, Address::Verified).await;
    let passkey = NewPasskey {
        credential_id: format!("{name}-old"),
        name: "old".into(),
        credential: "{}".into(),
        sign_count: 0,
        backup_eligible: false,
        backup_state: false,
    };
    ok(s.factors().add_passkey(&tenant(), &u.sub, passkey, &Actor::Cli).await, "passkey");
    u
}

async fn again(s: &Latchkey, u: &User) -> User {
    ok(s.users().by_sub(&tenant(), &u.sub).await, "user").unwrap_or_else(|| panic!("gone"))
}

#[tokio::test]
async fn a_number_is_confirmed_by_the_code_texted_to_it_once_within_its_attempts() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let s = services(&db, dir.path(), |c| c.sms = Some(sms())).await;
        let ada = user(&s, "ada").await;
        let phones = s.phone_verification();
        for (bad, why) in [
            ("", "international form"),
            ("07946 000000", "international form"),
            ("+44 20", "international form"),
            ("+44 20 7946 0000 0000 00", "international form"),
            ("+1 202 555 0100", "that country"),
            ("+33 1 23 45 67 89", "that country"),
        ] {
            let refused = phones.send_code(&tenant(), &ada, bad, Some(ip(1))).await;
            assert!(refused.as_ref().is_err_and(|e| e.to_string().contains(why)), "{b}: `{bad}`: {refused:?}");
        }
        assert!(texts(&s).await.is_empty(), "{b}: nothing was sent");

        let number = ok(phones.send_code(&tenant(), &ada, "+44 (20) 7946-0000", Some(ip(1))).await, b);
        assert_eq!(number, "+442079460000", "{b}");
        let lease = std::time::Duration::from_secs(1);
        let raw = ok(store_of(&s).claim_messages(Channel::Sms, s.clock.now(), lease, 10).await, b);
        assert_eq!(raw.len(), 1, "{b}");
        let readable = String::from_utf8_lossy(&raw[0].sealed).into_owned();
        assert!(!readable.contains("2079460000") && !readable.contains("code"), "{b}: sealed in the database");
        s.clock.advance(std::time::Duration::from_secs(2));
        let sent = texts(&s).await;
        assert_eq!(sent.len(), 1, "{b}");
        assert_eq!((sent[0].0.as_str(), sent[0].1.to.as_str()), ("phone_verification", "+442079460000"), "{b}");
        let code = code_in(&sent[0].1);
        assert!(code.bytes().all(|c| c.is_ascii_digit()) && code.len() == 6, "{b}: {}", sent[0].1.body);
        assert_eq!(ok(phones.pending(&tenant(), &ada).await, b).as_deref(), Some("+442079460000"), "{b}");

        let wrong = if code == "000000" { "111111" } else { "000000" };
        let refused = phones.confirm(&tenant(), &ada, wrong).await;
        assert!(matches!(refused, Err(ServiceError::Invalid(_))), "{b}: {refused:?}");
        // Another account cannot use Ada's code.
        let bob = user(&s, "bob").await;
        assert!(phones.confirm(&tenant(), &bob, &code).await.is_err(), "{b}");
        ok(phones.confirm(&tenant(), &ada, &format!("{} {}", &code[..3], &code[3..])).await, b);
        let now = again(&s, &ada).await;
        assert_eq!(now.profile.phone_number.as_deref(), Some("+442079460000"), "{b}");
        assert!(now.profile.phone_number_verified, "{b}");
        assert!(phones.confirm(&tenant(), &ada, &code).await.is_err(), "{b}: once");

        // Five attempts per ten minutes, right or wrong.
        ok(phones.send_code(&tenant(), &bob, "+442079460001", Some(ip(2))).await, b);
        let code = code_in(&texts(&s).await[0].1);
        for _ in 0..4 {
            assert!(phones.confirm(&tenant(), &bob, wrong).await.is_err(), "{b}");
        }
        let limited = phones.confirm(&tenant(), &bob, &code).await;
        assert!(limited.is_err_and(|e| e.to_string().contains("try again")), "{b}: the sixth attempt is refused");
        assert!(!again(&s, &bob).await.profile.phone_number_verified, "{b}");
    }
}

#[tokio::test]
async fn texts_are_capped_per_day_per_number_account_ip_and_in_all_across_nodes() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let capped = |c: &mut latchkey_config::Config| {
            let mut config = sms();
            config.daily_limits =
                latchkey_config::SmsDailyLimits { per_number: 2, per_account: 3, per_ip: 4, total: 10 };
            c.sms = Some(config);
        };
        let one = Arc::new(services(&db, dir.path(), capped).await);
        let two = Arc::new(services(&db, dir.path(), capped).await);
        let ada = user(&one, "ada").await;
        let send = |node: &Arc<Latchkey>, u: &User, number: &str, from: u8| {
            let (node, u, number) = (node.clone(), u.clone(), number.to_owned());
            async move { node.phone_verification().send_code(&tenant(), &u, &number, Some(ip(from))).await.is_ok() }
        };
        // Per number: 2 a day, whichever node and account.
        assert!(send(&one, &ada, "+447700900001", 1).await, "{b}");
        assert!(send(&two, &ada, "+447700900001", 2).await, "{b}");
        assert!(!send(&one, &ada, "+447700900001", 3).await, "{b}: per number");
        // Per account: 3 (the refused one counted nothing).
        assert!(send(&two, &ada, "+447700900002", 4).await, "{b}");
        assert!(!send(&one, &ada, "+447700900003", 5).await, "{b}: per account");
        // Per IP: 4, across accounts.
        let bob = user(&one, "bob").await;
        let cy = user(&one, "cy").await;
        assert!(send(&one, &bob, "+447700900010", 9).await, "{b}");
        assert!(send(&two, &bob, "+447700900011", 9).await, "{b}");
        assert!(send(&one, &cy, "+447700900012", 9).await, "{b}");
        assert!(send(&two, &cy, "+447700900013", 9).await, "{b}");
        assert!(!send(&one, &cy, "+447700900014", 9).await, "{b}: per IP");
        // In all: 10 a day for the tenant (7 so far).
        let (dee, eve) = (user(&one, "dee").await, user(&one, "eve").await);
        assert!(send(&two, &dee, "+447700900020", 20).await, "{b}");
        assert!(send(&one, &dee, "+447700900021", 21).await, "{b}");
        assert!(send(&two, &eve, "+447700900022", 22).await, "{b}");
        assert!(!send(&one, &eve, "+447700900023", 23).await, "{b}: in all");
        assert_eq!(texts(&one).await.len(), 10, "{b}: exactly what the caps allowed was queued");
    }
}

#[tokio::test]
async fn a_code_texted_to_a_verified_number_opens_a_recovery_and_every_channel_hears_of_it() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let s = Arc::new(
            services(&db, dir.path(), |c| {
                c.sms = Some(sms());
                c.mail = Some(mail());
                c.recovery.sms = true;
            })
            .await,
        );
        let ada = user(&s, "ada").await;
        ok(s.phone_verification().send_code(&tenant(), &ada, "+447700900123", None).await, b);
        let code = code_in(&texts(&s).await[0].1);
        ok(s.phone_verification().confirm(&tenant(), &ada, &code).await, b);
        let _ = user(&s, "una").await; // has no phone

        for typed in ["ada", "una", "nobody"] {
            assert_eq!(recovery::request(&s, &tenant(), typed, ip(7)).await, Ok(()), "{b}: `{typed}`");
        }
        let mut got = texts_when_sent(&s).await;
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        got.extend(texts(&s).await);
        assert_eq!(got.len(), 1, "{b}: one code, to ada's verified number: {got:?}");
        assert_eq!((got[0].0.as_str(), got[0].1.to.as_str()), ("recovery_code", "+447700900123"), "{b}");
        let code = code_in(&got[0].1);
        sent(&s).await;

        let wrong = if code == "000000" { "111111" } else { "000000" };
        for typed in ["ada", "una", "nobody"] {
            let refused = s.recovery().begin_with_code(&tenant(), typed, wrong, ip(7)).await;
            assert_eq!(refused, Err(RecoveryRefusal::WrongCode), "{b}: the same answer for `{typed}`");
        }
        let session = s.recovery().begin_with_code(&tenant(), "ada", &code, ip(7)).await;
        let session = session.unwrap_or_else(|e| panic!("{b}: {e:?}"));
        assert_eq!((session.via, session.proof.clone()), (Via::Sms, Proof::LinkIsEnough), "{b}");
        let reused = s.recovery().begin_with_code(&tenant(), "ada", &code, ip(7)).await;
        assert_eq!(reused, Err(RecoveryRefusal::WrongCode), "{b}: once");

        let passkey = NewPasskey {
            credential_id: "new".into(),
            name: "New".into(),
            credential: "{}".into(),
            sign_count: 0,
            backup_eligible: false,
            backup_state: false,
        };
        ok(s.recovery().complete(&tenant(), &session, passkey).await.map_err(|e| format!("{e:?}")), b);
        let by_text = texts(&s).await;
        assert_eq!(by_text.len(), 1, "{b}: the phone hears");
        assert_eq!(by_text[0].0, "recovery_completed", "{b}");
        let by_mail = sent(&s).await;
        assert_eq!(by_mail.len(), 1, "{b}: the address hears");
        assert_eq!(
            (by_mail[0].0.as_str(), by_mail[0].1.to.as_str()),
            ("recovery_completed", "ada@example.test"),
            "{b}"
        );
        let store = store_of(&s);
        assert!(
            ok(store.claim_messages(Channel::Sms, s.clock.now(), std::time::Duration::from_secs(1), 10).await, b)
                .is_empty()
        );
    }
}

/// The answer shows only the typed name's and the IP's limits; wrong codes for one account
/// under any of its names stop its codes working without the answer saying so.
#[tokio::test]
async fn wrong_codes_are_limited_per_typed_name_openly_and_per_account_silently() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let s = Arc::new(
            services(&db, dir.path(), |c| {
                c.sms = Some(sms());
                c.recovery.sms = true;
            })
            .await,
        );
        let ada = user(&s, "ada").await;
        ok(s.phone_verification().send_code(&tenant(), &ada, "+447700900123", None).await, b);
        ok(s.phone_verification().confirm(&tenant(), &ada, &code_in(&texts(&s).await[0].1)).await, b);
        assert_eq!(recovery::request(&s, &tenant(), "ada", ip(7)).await, Ok(()), "{b}");
        let got = texts_when_sent(&s).await;
        assert_eq!(got.len(), 1, "{b}: {got:?}");
        let code = code_in(&got[0].1);
        let wrong = if code == "000000" { "111111" } else { "000000" };

        // Five wrong under each name, then the other name of the same account (or of
        // nobody): the same answer either way, so the limits tell nothing.
        for (first, second) in [("nobody", "nobody@example.test"), ("ada", "ada@example.test")] {
            for _ in 0..recovery::CODE_ATTEMPTS {
                let refused = s.recovery().begin_with_code(&tenant(), first, wrong, ip(7)).await;
                assert_eq!(refused, Err(RecoveryRefusal::WrongCode), "{b}: `{first}`");
            }
            let refused = s.recovery().begin_with_code(&tenant(), first, wrong, ip(7)).await;
            assert_eq!(refused, Err(RecoveryRefusal::TooMany), "{b}: the typed name's own limit");
            let other = s.recovery().begin_with_code(&tenant(), second, wrong, ip(7)).await;
            assert_eq!(other, Err(RecoveryRefusal::WrongCode), "{b}: `{second}` answers like any name");
        }
        // The sixth wrong code for ada's account retired her codes: the right one is refused.
        let refused = s.recovery().begin_with_code(&tenant(), "ada@example.test", &code, ip(8)).await;
        assert_eq!(refused, Err(RecoveryRefusal::WrongCode), "{b}: the account's codes stopped working");
        let store = store_of(&s);
        let audit = ok(store.recent_audit_events(&tenant(), 50).await, b);
        assert!(audit.iter().any(|e| e.action == "recovery.codes_retired" && e.target == ada.sub.as_str()), "{b}");

        // A new code works again (the per-account count is per code lifetime).
        s.clock.advance(recovery::CODE_LIFETIME + std::time::Duration::from_secs(1));
        assert_eq!(recovery::request(&s, &tenant(), "ada", ip(9)).await, Ok(()), "{b}");
        let got = texts_when_sent(&s).await;
        let code = code_in(&got[0].1);
        let session = s.recovery().begin_with_code(&tenant(), "ada", &code, ip(9)).await;
        assert!(session.is_ok(), "{b}: {session:?}");
    }
}

#[tokio::test]
async fn a_texted_sign_in_code_is_offered_only_without_a_stronger_factor_and_works_once() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let s = services(&db, dir.path(), |c| {
            c.sms = Some(sms());
            c.login.sms_second_factor = true;
        })
        .await;
        let store = store_of(&s);
        let with_passkey = user(&s, "ada").await;
        let bob = account(&s, "bob", Address::None).await;
        for who in [&with_passkey, &bob] {
            let mut tx = ok(store.transaction().await, b);
            ok(tx.verify_phone(&tenant(), &who.sub, "+447700900123", &Actor::Cli).await, b);
            ok(tx.commit().await, b);
        }
        let texted = s.sms_second_factor();
        assert_eq!(ok(texted.number_for(&tenant(), &with_passkey.sub).await, b), None, "{b}: never round a passkey");
        let sent = texted.send(&tenant(), &with_passkey.sub, ip(1), Step::SignIn).await;
        assert!(matches!(sent, Err(ServiceError::Invalid(_))), "{b}: {sent:?}");
        assert_eq!(ok(texted.number_for(&tenant(), &bob.sub).await, b).as_deref(), Some("+447700900123"), "{b}");

        ok(texted.send(&tenant(), &bob.sub, ip(1), Step::SignIn).await, b);
        let code = code_in(&texts(&s).await[0].1);
        let wrong = if code == "000000" { "111111" } else { "000000" };
        assert!(!texted.check(&tenant(), &bob.sub, wrong).await, "{b}");
        assert!(!texted.check(&tenant(), &with_passkey.sub, &code).await, "{b}: another account's code");
        assert!(texted.check(&tenant(), &bob.sub, &code).await, "{b}");
        assert!(!texted.check(&tenant(), &bob.sub, &code).await, "{b}: once");

        // A new code replaces the old; past the per-account limit nothing more is sent.
        ok(texted.send(&tenant(), &bob.sub, ip(1), Step::SignIn).await, b);
        let older = code_in(&texts(&s).await[0].1);
        ok(texted.send(&tenant(), &bob.sub, ip(1), Step::SignIn).await, b);
        let newer = code_in(&texts(&s).await[0].1);
        if older != newer {
            assert!(!texted.check(&tenant(), &bob.sub, &older).await, "{b}: replaced");
        }
        let refused = texted.send(&tenant(), &bob.sub, ip(1), Step::SignIn).await;
        assert!(refused.is_err(), "{b}: the fourth code in 10 minutes");
        assert!(texts(&s).await.is_empty(), "{b}: nothing queued");

        let off = services(&db, dir.path(), |c| c.sms = Some(sms())).await;
        assert_eq!(ok(off.sms_second_factor().number_for(&tenant(), &bob.sub).await, b), None, "{b}: off by default");
    }
}

/// An account whose second step is a code by text gives that code in a recovery by email
/// too (or says the phone is lost): the mailbox alone is not enough.
#[tokio::test]
async fn a_recovery_by_email_asks_for_the_texted_code_of_an_account_that_signs_in_with_one() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let s = Arc::new(
            services(&db, dir.path(), |c| {
                c.sms = Some(sms());
                c.mail = Some(mail());
                c.login.sms_second_factor = true;
            })
            .await,
        );
        let bob = account(&s, "bob", Address::Verified).await;
        let store = store_of(&s);
        let mut tx = ok(store.transaction().await, b);
        ok(tx.verify_phone(&tenant(), &bob.sub, "+447700900123", &Actor::Cli).await, b);
        ok(tx.commit().await, b);

        assert_eq!(recovery::request(&s, &tenant(), "bob", ip(3)).await, Ok(()), "{b}");
        let link = recovery_link_when_sent(&s).await;
        let session = s.recovery().begin(&tenant(), &link).await.unwrap_or_else(|e| panic!("{b}: {e:?}"));
        assert_eq!(session.proof, Proof::TextCodeNeeded, "{b}");
        let passkey = NewPasskey {
            credential_id: "new".into(),
            name: "New".into(),
            credential: "{}".into(),
            sign_count: 0,
            backup_eligible: false,
            backup_state: false,
        };
        let early = s.recovery().complete(&tenant(), &session, passkey.clone()).await;
        assert_eq!(early, Err(RecoveryRefusal::NotNow), "{b}: the link alone is not enough");
        ok(s.recovery().send_text_code(&tenant(), &session, ip(3)).await.map_err(|e| format!("{e:?}")), b);
        let code = code_in(&texts(&s).await[0].1);
        let wrong = if code == "000000" { "111111" } else { "000000" };
        let refused = s.recovery().give_text_code(&tenant(), &session, wrong, ip(3)).await;
        assert_eq!(refused, Err(RecoveryRefusal::WrongCode), "{b}");
        let given = s.recovery().give_text_code(&tenant(), &session, &code, ip(3)).await;
        let given = given.unwrap_or_else(|e| panic!("{b}: {e:?}"));
        assert_eq!(given.proof, Proof::Given, "{b}");
        ok(s.recovery().complete(&tenant(), &given, passkey).await.map_err(|e| format!("{e:?}")), b);
    }
}

#[tokio::test]
async fn without_sms_nothing_needs_a_phone_and_recovery_sms_is_off_by_default() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let s = services(&db, dir.path(), |c| c.mail = Some(mail())).await;
        let ada = user(&s, "ada").await;
        let refused = s.phone_verification().send_code(&tenant(), &ada, "+447700900123", None).await;
        assert!(refused.is_err_and(|e| e.to_string().contains("[sms]")), "{b}");
        let with_sms = services(&db, dir.path(), |c| c.sms = Some(sms())).await;
        assert!(!with_sms.recovery().offered_sms(), "{b}: recovery.sms is off by default");
        let refused = with_sms.recovery().begin_with_code(&tenant(), "ada", "123456", ip(1)).await;
        assert_eq!(refused, Err(RecoveryRefusal::NotNow), "{b}");
    }
}
