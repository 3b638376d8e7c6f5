//! Who may sign up, what the account is called, how many accounts one address may create,
//! and the account with its invitation used up: through the services alone, on SQLite and
//! PostgreSQL.

mod support;

use std::net::IpAddr;

use latchkey_config::{Identifier, RegistrationMode};
use latchkey_core::domain::{TenantId, Username};
use latchkey_core::records::{Actor, NewPasskey};
use latchkey_service::Latchkey;
use latchkey_service::sign_up::{NewAccountRequest, SignUpRefusal};
use latchkey_service::testing::{TestDatabase, sample_user};
use support::{ok, services};

fn tenant() -> TenantId {
    TenantId::default_tenant()
}

fn account(username: &str, key: &str, invitation: Option<latchkey_core::crypto::TokenHash>) -> NewAccountRequest {
    NewAccountRequest {
        user: sample_user(username),
        webauthn_user_id: format!("handle-{key}"),
        passkey: NewPasskey {
            credential_id: key.into(),
            name: "Passkey".into(),
            credential: "{}".into(),
            sign_count: 0,
            backup_eligible: true,
            backup_state: true,
        },
        invitation,
    }
}

async fn opened(
    db: &TestDatabase,
    dir: &std::path::Path,
    configure: impl FnOnce(&mut latchkey_config::Config),
) -> Latchkey {
    services(db, dir, configure).await
}

#[tokio::test]
async fn sign_up_is_closed_open_or_by_invitation_and_an_invitation_works_once() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let closed = opened(&db, dir.path(), |_| {}).await;
        assert_eq!(closed.sign_up().admission(&tenant(), None).await, Err(SignUpRefusal::Closed), "{b}: the default");
        closed.system().close().await;
        let open = opened(&db, dir.path(), |c| c.registration.mode = RegistrationMode::Open).await;
        assert_eq!(open.sign_up().admission(&tenant(), None).await, Ok(None), "{b}");
        open.system().close().await;

        let s = opened(&db, dir.path(), |c| c.registration.mode = RegistrationMode::Invite).await;
        let sign_up = s.sign_up();
        assert_eq!(sign_up.admission(&tenant(), None).await, Err(SignUpRefusal::InvitationNeeded), "{b}");
        let long = "x".repeat(65);
        assert_eq!(sign_up.admission(&tenant(), Some(&long)).await, Err(SignUpRefusal::InvitationNeeded), "{b}");
        let bad = sign_up.admission(&tenant(), Some("no-such-invitation")).await;
        assert_eq!(bad, Err(SignUpRefusal::InvitationUnusable), "{b}");
        let invitation = ok(s.invitations().create(&tenant(), None, None, &Actor::Cli).await, "invite");
        let hash = ok(sign_up.admission(&tenant(), Some(&invitation.token)).await.map_err(|e| format!("{e:?}")), "ok");
        assert!(hash.is_some(), "{b}: the invitation is needed for the account");

        let (user, codes) = ok(sign_up.create(&tenant(), account("ada", "k1", hash.clone()), ip(1)).await, "create");
        assert_eq!(codes.len(), 10, "{b}: recovery codes to show once");
        assert_eq!(ok(s.factors().recovery_codes_left(&tenant(), &user.sub).await, "left"), 10, "{b}");
        let used = sign_up.admission(&tenant(), Some(&invitation.token)).await;
        assert_eq!(used, Err(SignUpRefusal::InvitationUnusable), "{b}: used up");
        let again = sign_up.create(&tenant(), account("bob", "k2", hash), ip(2)).await;
        assert!(again.is_err(), "{b}: a used invitation creates no second account");
        let bob = ok(Username::parse("bob"), "name");
        assert!(ok(s.users().by_username(&tenant(), &bob).await, "bob").is_none(), "{b}: nothing half-written");
        s.system().close().await;
    }
}

fn ip(last: u8) -> IpAddr {
    IpAddr::from([192, 0, 2, last])
}

#[tokio::test]
async fn an_account_is_named_as_the_configuration_says_and_a_taken_username_is_said() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let s = opened(&db, dir.path(), |c| c.registration.mode = RegistrationMode::Open).await;
        let sign_up = s.sign_up();
        ok(s.users().create(&tenant(), sample_user("ada"), &Actor::Cli).await, "ada");
        let named = sign_up.identity(&tenant(), Some("grace"), Some(" grace@example.com ")).await;
        let (username, email) = ok(named.map_err(|e| format!("{e:?}")), "identity");
        assert_eq!((username.as_str(), email.map(|e| e.to_string())), ("grace", Some("grace@example.com".into())));
        assert_eq!(sign_up.identity(&tenant(), Some("ada"), None).await.err(), Some(SignUpRefusal::UsernameTaken));
        for bad in ["", "a@b", &"x".repeat(65)] {
            let refused = sign_up.identity(&tenant(), Some(bad), None).await.err();
            assert_eq!(refused, Some(SignUpRefusal::UsernameMalformed), "{b}: `{bad}`");
        }
        let email = sign_up.identity(&tenant(), Some("grace"), Some("not an address")).await.err();
        assert_eq!(email, Some(SignUpRefusal::EmailMalformed), "{b}");
        s.system().close().await;

        let by_email = opened(&db, dir.path(), |c| c.registration.identifier = Identifier::Email).await;
        let sign_up = by_email.sign_up();
        assert!(sign_up.email_required() && !sign_up.asks_username(), "{b}");
        let missing = sign_up.identity(&tenant(), None, None).await.err();
        assert_eq!(missing, Some(SignUpRefusal::EmailRequired), "{b}");
        let made_up = sign_up.identity(&tenant(), Some("ignored"), Some("h@example.com")).await;
        let username = ok(made_up.map_err(|e| format!("{e:?}")), "made up").0;
        assert!(username.as_str().starts_with("user-"), "{b}: {username}");
        by_email.system().close().await;
    }
}

#[tokio::test]
async fn one_address_creates_only_so_many_accounts_in_a_window() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let s = opened(&db, dir.path(), |c| {
            c.registration.mode = RegistrationMode::Open;
            c.login.max_failures_per_ip = 2;
        })
        .await;
        let sign_up = s.sign_up();
        for (i, name) in ["ada", "bob"].iter().enumerate() {
            assert_eq!(sign_up.allowed_from(&tenant(), ip(1)).await, Ok(()), "{b}: {name}");
            ok(sign_up.create(&tenant(), account(name, &format!("k{i}"), None), ip(1)).await, "create");
        }
        let third = sign_up.allowed_from(&tenant(), ip(1)).await;
        assert_eq!(third, Err(SignUpRefusal::TooManyFromHere), "{b}");
        assert_eq!(sign_up.allowed_from(&tenant(), ip(9)).await, Ok(()), "{b}: another address may");
        s.system().close().await;
    }
}
