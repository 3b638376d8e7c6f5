//! Sign-in by emailed link (`login.email_link`), on SQLite and PostgreSQL: the same answer for
//! every name; only an account with a verified address and no passkey gets a link; the link
//! works once, only with the secret of the browser that asked, and not once the account
//! changed its address or was locked.

mod support;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use latchkey_core::domain::{Email, TenantId};
use latchkey_core::records::{Actor, NewPasskey, User};
use latchkey_service::email_sign_in::{self, LINK_PATH};
use latchkey_service::testing::TestDatabase;
use latchkey_service::{Latchkey, ServiceError};
use support::{Address, account, link_token, mail, ok, sent, services};

fn tenant() -> TenantId {
    TenantId::default_tenant()
}

fn ip() -> IpAddr {
    IpAddr::from([192, 0, 2, 9])
}

async fn user(s: &Latchkey, name: &str, verified: bool) -> User {
    let address = if verified { Address::Verified } else { Address::Unverified };
    account(s, name, address).await
}

/// The sign-in links sent so far (after the background sends).
async fn links(s: &Latchkey) -> Vec<(String, String)> {
    tokio::time::sleep(Duration::from_millis(300)).await;
    sent(s).await.into_iter().map(|(kind, m)| (format!("{kind} {}", m.to), link_token(&m, LINK_PATH))).collect()
}

#[tokio::test]
async fn a_link_goes_only_to_a_verified_address_without_a_passkey_and_signs_in_only_the_browser_that_asked() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let s = Arc::new(
            services(&db, dir.path(), |c| {
                c.mail = Some(mail());
                c.login.email_link = true;
            })
            .await,
        );
        let una = user(&s, "una", true).await;
        let _ = user(&s, "unverified", false).await;
        let ada = user(&s, "ada", true).await;
        let passkey = NewPasskey {
            credential_id: "ada-key".into(),
            name: "key".into(),
            credential: "{}".into(),
            sign_count: 0,
            backup_eligible: false,
            backup_state: false,
        };
        ok(s.factors().add_passkey(&tenant(), &ada.sub, passkey, &Actor::Cli).await, b);

        for typed in ["ada", "unverified", "nobody", "una@example.test"] {
            let answer = email_sign_in::request(&s, &tenant(), typed, "browser-one", ip()).await;
            assert_eq!(answer, Ok(()), "{b}: `{typed}`");
        }
        let got = links(&s).await;
        assert_eq!(got.len(), 1, "{b}: only una: {got:?}");
        assert_eq!(got[0].0, "sign_in_link una@example.test", "{b}");
        let token = got[0].1.clone();

        let signin = s.email_sign_in();
        assert!(ok(signin.look(&tenant(), &token, "browser-two").await, b).is_none(), "{b}: another browser");
        let elsewhere = signin.use_link(&tenant(), &token, "browser-two").await;
        assert!(matches!(elsewhere, Err(ServiceError::NotFound(_))), "{b}: {elsewhere:?}");
        let seen = ok(signin.look(&tenant(), &token, "browser-one").await, b).map(|u| u.sub);
        assert_eq!(seen, Some(una.sub.clone()), "{b}: still usable where it was asked for");
        let signed_in = signin.use_link(&tenant(), &token, "browser-one").await.unwrap_or_else(|e| panic!("{b}: {e}"));
        assert_eq!(signed_in.sub, una.sub, "{b}");
        let again = signin.use_link(&tenant(), &token, "browser-one").await;
        assert!(matches!(again, Err(ServiceError::NotFound(_))), "{b}: once");

        // A link stops working when the account's address changes …
        assert_eq!(email_sign_in::request(&s, &tenant(), "una", "browser-one", ip()).await, Ok(()), "{b}");
        let token = links(&s).await.remove(0).1;
        let patch = latchkey_core::records::UserPatch {
            email: Some(Some(ok(Email::parse("una@elsewhere.test"), "email"))),
            email_verified: Some(true),
            ..Default::default()
        };
        ok(s.users().update(&tenant(), &una.sub, patch, &Actor::Cli).await, b);
        let moved = signin.use_link(&tenant(), &token, "browser-one").await;
        assert!(matches!(moved, Err(ServiceError::NotFound(_))), "{b}: the address changed");

        // … and when the account is locked.
        assert_eq!(email_sign_in::request(&s, &tenant(), "una", "browser-one", ip()).await, Ok(()), "{b}");
        let token = links(&s).await.remove(0).1;
        ok(
            s.users().change_state(&tenant(), &una.sub, latchkey_service::users::StateChange::Lock, &Actor::Cli).await,
            b,
        );
        let locked = signin.use_link(&tenant(), &token, "browser-one").await;
        assert!(matches!(locked, Err(ServiceError::NotFound(_))), "{b}: locked");

        let off = Arc::new(services(&db, dir.path(), |c| c.mail = Some(mail())).await);
        assert!(!off.email_sign_in().offered(), "{b}: off by default");
        assert_eq!(email_sign_in::request(&off, &tenant(), "una", "x", ip()).await, Ok(()), "{b}");
        assert!(links(&off).await.is_empty(), "{b}: nothing sent when off");
    }
}
