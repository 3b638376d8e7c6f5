//! Email verification on SQLite and PostgreSQL: the link is single-use, purpose-bound and
//! expires; looking at it uses nothing; a changed address replaces the old one only once
//! confirmed (and the old one is told); whoever verifies an address first holds it; sends
//! are limited per account, per address and per IP across the shared counters.

mod support;

use std::time::Duration;

use latchkey_core::domain::{Email, ProfileClaims, SubjectId, TenantId, Username};
use latchkey_core::records::{Actor, NewUser, User};
use latchkey_service::email_verification::{AddressChange, LINK_LIFETIME};
use latchkey_service::mail::Email as Message;
use latchkey_service::testing::TestDatabase;
use latchkey_service::{Latchkey, ServiceError};
use support::{mail, ok, sent, services};

fn email(raw: &str) -> Email {
    ok(Email::parse(raw), raw)
}

async fn user(s: &Latchkey, name: &str, address: Option<&str>, verified: bool) -> User {
    let new = NewUser {
        sub: SubjectId::generate(),
        username: ok(Username::parse(name), "username"),
        email: address.map(email),
        email_verified: verified,
        name: None,
        profile: ProfileClaims::default(),
        password_hash: None,
        service_account: false,
    };
    ok(s.users().create(&TenantId::default_tenant(), new, &Actor::Cli).await, "user")
}

fn token_in(message: &Message) -> String {
    support::link_token(message, "/email/verify")
}

#[tokio::test]
async fn a_link_is_looked_at_without_being_used_then_used_once() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let t = TenantId::default_tenant();
        let s = services(&db, dir.path(), |c| c.mail = Some(mail())).await;
        let ada = user(&s, "ada", Some("ada@example.test"), false).await;
        ok(s.email_verification().send_link(&t, &ada, &email("ada@example.test"), None, &Actor::Cli).await, b);
        let messages = sent(&s).await;
        assert_eq!(messages.len(), 1, "{b}");
        let (kind, message) = &messages[0];
        assert_eq!((kind.as_str(), message.to.as_str()), ("verify_email", "ada@example.test"), "{b}");
        let token = token_in(message);
        assert!(message.html.contains(&format!("verify?token={token}")), "{b}: the HTML has the link too");

        for _ in 0..3 {
            let seen = ok(s.email_verification().look(&t, &token).await, b);
            assert_eq!(seen.map(|(u, a)| (u.sub, a)), Some((ada.sub.clone(), email("ada@example.test"))), "{b}");
        }
        let still = ok(s.users().by_sub(&t, &ada.sub).await, b).map(|u| u.email_verified);
        assert_eq!(still, Some(false), "{b}: looking verifies nothing");

        // Only for the account it was sent for: another account's session cannot use it.
        let mallory = user(&s, "mallory", None, false).await;
        let foreign = s.email_verification().confirm(&t, &token, &mallory.sub).await;
        assert!(matches!(foreign, Err(ServiceError::Invalid(_))), "{b}: {foreign:?}");
        assert!(ok(s.email_verification().look(&t, &token).await, b).is_some(), "{b}: still usable");
        let (who, address) = ok(s.email_verification().confirm(&t, &token, &ada.sub).await, b);
        assert_eq!((who.sub, address), (ada.sub.clone(), email("ada@example.test")), "{b}");
        let now = ok(s.users().by_sub(&t, &ada.sub).await, b).map(|u| u.email_verified);
        assert_eq!(now, Some(true), "{b}");
        let again = s.email_verification().confirm(&t, &token, &ada.sub).await;
        assert!(matches!(again, Err(ServiceError::NotFound(_))), "{b}: used once: {again:?}");
        assert!(ok(s.email_verification().look(&t, &token).await, b).is_none(), "{b}");

        for bad in ["", "short", &"x".repeat(400), "ünïcode-ünïcode-ünïcode", &format!("{token}x")] {
            let refused = s.email_verification().confirm(&t, bad, &ada.sub).await;
            assert!(matches!(refused, Err(ServiceError::NotFound(_))), "{b}: `{bad}`: {refused:?}");
        }
        let done = s
            .email_verification()
            .send_link(&t, &who_again(&s, &ada).await, &email("ada@example.test"), None, &Actor::Cli)
            .await;
        assert!(done.is_err_and(|e| e.to_string().contains("verified already")), "{b}");
    }
}

async fn who_again(s: &Latchkey, u: &User) -> User {
    ok(s.users().by_sub(&TenantId::default_tenant(), &u.sub).await, "user").unwrap_or_else(|| panic!("gone"))
}

#[tokio::test]
async fn a_link_expires_and_a_newer_link_replaces_it() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let t = TenantId::default_tenant();
        let s = services(&db, dir.path(), |c| c.mail = Some(mail())).await;
        let ada = user(&s, "ada", Some("ada@example.test"), false).await;
        let verification = s.email_verification();
        ok(verification.send_link(&t, &ada, &email("ada@example.test"), None, &Actor::Cli).await, b);
        let first = token_in(&sent(&s).await[0].1);
        ok(verification.send_link(&t, &ada, &email("ada@example.test"), None, &Actor::Cli).await, b);
        let second = token_in(&sent(&s).await[0].1);
        assert!(
            matches!(verification.confirm(&t, &first, &ada.sub).await, Err(ServiceError::NotFound(_))),
            "{b}: replaced"
        );

        s.clock.advance(LINK_LIFETIME + Duration::from_secs(1));
        assert!(ok(verification.look(&t, &second).await, b).is_none(), "{b}: expired");
        assert!(
            matches!(verification.confirm(&t, &second, &ada.sub).await, Err(ServiceError::NotFound(_))),
            "{b}: expired"
        );
        assert_eq!(ok(s.users().by_sub(&t, &ada.sub).await, b).map(|u| u.email_verified), Some(false), "{b}");
    }
}

#[tokio::test]
async fn a_changed_address_replaces_the_old_one_only_once_confirmed_and_the_old_one_is_told() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let t = TenantId::default_tenant();
        let s = services(&db, dir.path(), |c| c.mail = Some(mail())).await;
        let ada = user(&s, "ada", Some("ada@example.test"), true).await;
        let ip = "192.0.2.1".parse().unwrap_or_else(|e| panic!("{e}"));
        let actor = Actor::User(ada.sub.to_string());
        let change = ok(s.email_verification().change_address(&t, &ada, email("ada@new.test"), ip, &actor).await, b);
        assert_eq!(change, AddressChange::LinkSent, "{b}");
        let same = ok(s.email_verification().change_address(&t, &ada, email("ada@example.test"), ip, &actor).await, b);
        assert_eq!(same, AddressChange::Unchanged, "{b}");
        let current = who_again(&s, &ada).await;
        assert_eq!((current.email, current.email_verified), (Some(email("ada@example.test")), true), "{b}: kept");
        assert_eq!(ok(s.email_verification().pending(&t, &ada).await, b), Some(email("ada@new.test")), "{b}");
        let messages = sent(&s).await;
        assert_eq!(messages[0].1.to, "ada@new.test", "{b}: the link goes to the new address");

        ok(s.email_verification().confirm(&t, &token_in(&messages[0].1), &ada.sub).await, b);
        let current = who_again(&s, &ada).await;
        assert_eq!((current.email, current.email_verified), (Some(email("ada@new.test")), true), "{b}");
        assert_eq!(ok(s.email_verification().pending(&t, &ada).await, b), None, "{b}");
        let told = sent(&s).await;
        assert_eq!(told.len(), 1, "{b}: {told:?}");
        assert_eq!((told[0].0.as_str(), told[0].1.to.as_str()), ("security_notice", "ada@example.test"), "{b}");
        assert!(told[0].1.text.contains("ada@new.test"), "{b}");
    }
}

#[tokio::test]
async fn an_unverified_address_reserves_nothing_and_the_first_to_verify_holds_it() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let t = TenantId::default_tenant();
        let s = services(&db, dir.path(), |c| c.mail = Some(mail())).await;
        let eve = user(&s, "eve", Some("ada@example.test"), false).await;
        let ada = user(&s, "ada", Some("ada@example.test"), false).await;
        ok(s.email_verification().send_link(&t, &eve, &email("ada@example.test"), None, &Actor::Cli).await, b);
        let eves = token_in(&sent(&s).await[0].1);
        ok(s.email_verification().send_link(&t, &ada, &email("ada@example.test"), None, &Actor::Cli).await, b);
        let adas = token_in(&sent(&s).await[0].1);
        ok(s.email_verification().confirm(&t, &adas, &ada.sub).await, b);
        let taken = s.email_verification().confirm(&t, &eves, &eve.sub).await;
        assert!(matches!(taken, Err(ServiceError::Conflict(_))), "{b}: {taken:?}");
        assert!(ok(s.email_verification().look(&t, &eves).await, b).is_some(), "{b}: the refused link is not used up");
        assert!(!who_again(&s, &eve).await.email_verified, "{b}");
    }
}

#[tokio::test]
async fn sends_are_limited_per_account_address_and_ip_across_nodes_and_refusals_count_nothing() {
    use latchkey_service::message_limits::{PER_ACCOUNT, PER_IP};
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let t = TenantId::default_tenant();
        // Two nodes over one database.
        let one = std::sync::Arc::new(services(&db, dir.path(), |c| c.mail = Some(mail())).await);
        let two = std::sync::Arc::new(services(&db, dir.path(), |c| c.mail = Some(mail())).await);
        let ada = user(&one, "ada", Some("ada@example.test"), false).await;
        // In parallel, on both nodes.
        let sends: Vec<_> = (0..PER_ACCOUNT + 3)
            .map(|i| {
                let node = if i % 2 == 0 { one.clone() } else { two.clone() };
                let (t, ada) = (t.clone(), ada.clone());
                tokio::spawn(async move {
                    let address = email("ada@example.test");
                    node.email_verification().send_link(&t, &ada, &address, None, &Actor::Cli).await
                })
            })
            .collect();
        let mut results = Vec::new();
        for send in sends {
            results.push(ok(send.await, "join"));
        }
        let accepted = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(accepted as i64, PER_ACCOUNT, "{b}: {results:?}");
        assert!(results.iter().any(|r| matches!(r, Err(ServiceError::Invalid(m)) if m.contains("try again"))), "{b}");

        // Per IP: other accounts from one address.
        let ip: std::net::IpAddr = "198.51.100.7".parse().unwrap_or_else(|e| panic!("{e}"));
        let mut accepted = 0;
        for i in 0..PER_IP + 2 {
            let u = user(&one, &format!("u{i}"), Some(&format!("u{i}@example.test")), false).await;
            let node = if i % 2 == 0 { &one } else { &two };
            let address = u.email.clone().unwrap_or_else(|| panic!("address"));
            accepted +=
                usize::from(node.email_verification().send_link(&t, &u, &address, Some(ip), &Actor::Cli).await.is_ok());
        }
        assert_eq!(accepted as i64, PER_IP, "{b}");
        let elsewhere = "198.51.100.8".parse().unwrap_or_else(|e| panic!("{e}"));
        let other = user(&one, "other", Some("other@example.test"), false).await;
        let fine = two
            .email_verification()
            .send_link(&t, &other, &email("other@example.test"), Some(elsewhere), &Actor::Cli)
            .await;
        assert!(fine.is_ok(), "{b}: another IP is not limited: {fine:?}");
    }
}

#[tokio::test]
async fn without_mail_nothing_is_sent_and_a_self_service_change_replaces_the_address_unverified() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let t = TenantId::default_tenant();
        let s = services(&db, dir.path(), |_| {}).await;
        let ada = user(&s, "ada", Some("ada@example.test"), true).await;
        let refused = s.email_verification().send_link(&t, &ada, &email("x@example.test"), None, &Actor::Cli).await;
        assert!(refused.is_err_and(|e| e.to_string().contains("[mail]")), "{b}");
        let ip = "192.0.2.1".parse().unwrap_or_else(|e| panic!("{e}"));
        let change = s.email_verification().change_address(&t, &ada, email("ada@new.test"), ip, &Actor::Cli).await;
        assert_eq!(ok(change, b), AddressChange::Replaced, "{b}");
        let now = who_again(&s, &ada).await;
        assert_eq!((now.email.clone(), now.email_verified), (Some(email("ada@new.test")), false), "{b}");
        assert!(!ok(s.email_verification().after_operator_change(&t, &now, &Actor::Cli).await, b), "{b}");
    }
}
