//! The accounts' retention rules on the test clock: unused accounts are told, then disabled
//! or deleted unless used meanwhile (a sign-in, a session used, a token refreshed); sign-ups
//! never verified are deleted. On SQLite and PostgreSQL.

mod support;

use std::time::Duration;

use latchkey_config::{Config, InactiveAccountAction};
use latchkey_core::crypto::TokenHash;
use latchkey_core::domain::{ClientId, RoleName, SubjectId, TenantId};
use latchkey_core::records::{Actor, AuditQuery, Membership, NewRefreshToken, User};
use latchkey_service::Latchkey;
use latchkey_service::account_retention::AccountsReport;
use latchkey_service::sessions::SignedIn;
use latchkey_service::testing::{TestDatabase, store_of};
use latchkey_service::users::StateChange;
use support::{Address, account, mail, ok, sent, services};

const DAY: u64 = 86_400;

fn tenant() -> TenantId {
    TenantId::default_tenant()
}

fn unused_for_a_year(action: InactiveAccountAction) -> impl FnOnce(&mut Config) {
    move |c| {
        c.mail = Some(mail());
        c.retention.inactive_accounts = Duration::from_secs(365 * DAY);
        c.retention.inactive_accounts_grace = Duration::from_secs(30 * DAY);
        c.retention.inactive_accounts_action = action;
    }
}

async fn sign_in(s: &Latchkey, sub: &SubjectId) {
    ok(try_sign_in(s, sub).await, "sign in");
}

async fn try_sign_in(s: &Latchkey, sub: &SubjectId) -> latchkey_service::ServiceResult<()> {
    let signed_in = SignedIn {
        sub: sub.clone(),
        amr: vec!["hwk".into()],
        acr: "1".into(),
        remember: false,
        user_agent: None,
        ip: None,
        authenticated_at: None,
    };
    s.sessions().start(&tenant(), None, signed_in).await.map(|_| ())
}

async fn refresh_token_for(s: &Latchkey, sub: &SubjectId, name: &str) {
    let token = NewRefreshToken {
        token_hash: TokenHash::from_stored(format!("refresh-{name}")),
        family_id: format!("family-{name}"),
        grant_id: format!("grant-{name}"),
        client_id: ok(ClientId::parse("app"), "client"),
        sub: sub.to_string(),
        grant_data: "{}".into(),
        expires_at: s.clock.now().plus(Duration::from_secs(400 * DAY)),
        sid: None,
        ends_with_session: false,
    };
    ok(store_of(s).insert_refresh_token(&tenant(), &token).await, "refresh token");
}

async fn user(s: &Latchkey, sub: &SubjectId) -> Option<User> {
    ok(s.users().by_sub(&tenant(), sub).await, "user")
}

/// The whole retention run, as `latchkey retention` does it: expired sessions go first, so
/// a sign-in counts through the account's own record of it.
async fn run(s: &Latchkey, dry_run: bool) -> AccountsReport {
    ok(s.retention().run(dry_run).await, "retention").accounts
}

/// How many audit entries of `action` there are (about `about`, if given).
async fn audited(s: &Latchkey, action: &str, about: Option<&SubjectId>) -> usize {
    let query = AuditQuery {
        action: Some(action.to_owned()),
        target: about.map(ToString::to_string),
        limit: 50,
        ..AuditQuery::default()
    };
    ok(s.audit().query(&tenant(), &query).await, "audit").len()
}

#[tokio::test]
async fn an_unused_account_is_told_then_disabled_unless_someone_signs_in() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let s = services(&db, dir.path(), unused_for_a_year(InactiveAccountAction::Disable)).await;
        let ada = account(&s, "ada", Address::Verified).await;
        let bob = account(&s, "bob", Address::Verified).await;
        let carol = account(&s, "carol", Address::Unverified).await;
        let mut new = latchkey_service::testing::sample_user("machine");
        new.service_account = true;
        let machine = ok(s.users().create(&tenant(), new, &Actor::Cli).await, "service account");
        // Imported (`latchkey user import`): unused counts from the import too.
        let dan = latchkey_service::testing::sample_user("dan");
        ok(s.users().import(&tenant(), std::slice::from_ref(&dan), &Actor::Cli).await, "import");
        assert_eq!(run(&s, false).await, AccountsReport::default(), "{b}: nobody is unused yet");

        s.clock.advance(Duration::from_secs(364 * DAY));
        sign_in(&s, &bob.sub).await;
        sign_in(&s, &dan.sub).await;
        s.clock.advance(Duration::from_secs(2 * DAY));
        // The dry run counts and changes nothing.
        let dry = run(&s, true).await;
        assert_eq!(dry, AccountsReport { noticed: 2, ..AccountsReport::default() }, "{b}: ada and carol");
        assert_eq!(run(&s, true).await, dry, "{b}: a dry run changes nothing");
        assert!(sent(&s).await.is_empty(), "{b}: a dry run sends nothing");

        // Two runs at once (the CLI beside a server): each owner is told once.
        let (first, second) = (s.account_retention(), s.account_retention());
        let (one, two) = tokio::join!(first.run(false), second.run(false));
        assert_eq!(ok(one, "one").noticed + ok(two, "two").noticed, 2, "{b}");
        let mails = sent(&s).await;
        assert_eq!(mails.len(), 1, "{b}: carol has no verified address to be told at: {mails:?}");
        let (kind, message) = &mails[0];
        assert_eq!(kind, "inactive_account", "{b}");
        assert_eq!(message.to, "ada@example.test", "{b}");
        assert!(message.text.contains("disabled on "), "{b}: {}", message.text);
        assert!(message.text.contains("/account/security"), "{b}: {}", message.text);
        let me = Actor::User(ada.sub.to_string());
        let export = ok(s.data_export().of(&tenant(), &ada.sub, &me).await, "export");
        assert!(export["told_unused_at"].is_string(), "{b}: her export says she was told: {export:#}");
        assert!(export["retention"]["unused_account"].as_str().is_some_and(|t| t.contains("disabled")), "{b}");
        assert_eq!(audited(&s, "user.inactivity_notice", None).await, 2, "{b}");
        for sub in [&ada.sub, &carol.sub] {
            assert_eq!(audited(&s, "user.inactivity_notice", Some(sub)).await, 1, "{b}");
        }
        assert_eq!(run(&s, false).await, AccountsReport::default(), "{b}: each is told once");

        // Carol signs in within the grace: her notice no longer holds.
        s.clock.advance(Duration::from_secs(29 * DAY));
        sign_in(&s, &carol.sub).await;
        assert_eq!(run(&s, false).await, AccountsReport::default(), "{b}: the grace is not over");
        s.clock.advance(Duration::from_secs(2 * DAY));
        assert_eq!(run(&s, false).await, AccountsReport { disabled: 1, ..AccountsReport::default() }, "{b}");
        assert!(ok(user(&s, &ada.sub).await.ok_or("ada"), "ada").locked, "{b}: ada is disabled");
        for (who, sub) in [("bob", &bob.sub), ("carol", &carol.sub), ("machine", &machine.sub)] {
            assert!(!ok(user(&s, sub).await.ok_or(who), who).locked, "{b}: {who} is not");
        }

        // An operator unlocks ada: a full period runs before she is told again.
        ok(s.users().change_state(&tenant(), &ada.sub, StateChange::Unlock, &Actor::Cli).await, "unlock");
        assert_eq!(run(&s, false).await, AccountsReport::default(), "{b}: an unlock counts as use");
        s.clock.advance(Duration::from_secs(366 * DAY));
        assert_eq!(run(&s, false).await.noticed, 4, "{b}: ada, bob, carol and dan, a year on");
    }
}

#[tokio::test]
async fn a_token_refreshed_or_a_session_used_counts_as_use_and_deletion_erases_the_rest() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let s = services(&db, dir.path(), unused_for_a_year(InactiveAccountAction::Delete)).await;
        let ada = account(&s, "ada", Address::Verified).await;
        let bob = account(&s, "bob", Address::Verified).await;
        let root = account(&s, "root", Address::Verified).await;
        // Eve has no verified address: she cannot be told, so she is disabled, not deleted.
        let eve = account(&s, "eve", Address::Unverified).await;
        let role = ok(RoleName::parse("latchkey-admin"), "role");
        ok(
            s.access().link(&tenant(), &Membership::UserRole { sub: root.sub.clone(), role }, &Actor::Cli).await,
            "admin",
        );

        // An app refreshes bob's tokens all year: he is never told.
        s.clock.advance(Duration::from_secs(300 * DAY));
        refresh_token_for(&s, &bob.sub, "bob-1").await;
        s.clock.advance(Duration::from_secs(66 * DAY));
        assert_eq!(run(&s, false).await.noticed, 3, "{b}: ada, root and eve");
        assert_eq!(audited(&s, "user.inactivity_notice", Some(&bob.sub)).await, 0, "{b}");
        let _ = sent(&s).await;

        // Ada's app refreshes a token after her notice: it no longer holds.
        s.clock.advance(Duration::from_secs(10 * DAY));
        refresh_token_for(&s, &ada.sub, "ada-1").await;
        s.clock.advance(Duration::from_secs(21 * DAY));
        let dry = run(&s, true).await;
        assert_eq!(dry, AccountsReport { deleted: 1, disabled: 1, ..AccountsReport::default() }, "{b}: root, eve");
        // Root is the last administrator: the step is refused and counted, nothing changes.
        let done = run(&s, false).await;
        assert_eq!(done, AccountsReport { refused: 1, disabled: 1, ..AccountsReport::default() }, "{b}");
        assert!(user(&s, &root.sub).await.is_some(), "{b}: root is kept");
        assert!(ok(user(&s, &eve.sub).await.ok_or("eve"), "eve").locked, "{b}: eve is disabled, not erased");
        assert!(user(&s, &ada.sub).await.is_some(), "{b}: ada is kept");

        // Another administrator: root goes, erased like `latchkey user delete`.
        let role = ok(RoleName::parse("latchkey-admin"), "role");
        ok(
            s.access().link(&tenant(), &Membership::UserRole { sub: bob.sub.clone(), role }, &Actor::Cli).await,
            "admin",
        );
        assert_eq!(run(&s, false).await, AccountsReport { deleted: 1, ..AccountsReport::default() }, "{b}");
        assert!(user(&s, &root.sub).await.is_none(), "{b}: root is erased");
        assert!(user(&s, &ada.sub).await.is_some() && user(&s, &bob.sub).await.is_some(), "{b}");
        assert_eq!(audited(&s, "user.erased", None).await, 1, "{b}");
    }
}

#[tokio::test]
async fn a_sign_up_never_verified_is_deleted_after_its_period() {
    use latchkey_core::records::{NewAccount, NewPasskey};
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let s = services(&db, dir.path(), |c| {
            c.mail = Some(mail());
            c.retention.unverified_sign_ups = Duration::from_secs(30 * DAY);
        })
        .await;
        let store = store_of(&s);
        let signed_up = |name: &str, email: Option<&str>| {
            let mut user = latchkey_service::testing::sample_user(name);
            user.email = email.map(|e| ok(latchkey_core::domain::Email::parse(e), "email"));
            NewAccount {
                user,
                webauthn_user_id: format!("handle-{name}"),
                passkey: NewPasskey {
                    credential_id: format!("key-{name}"),
                    name: "key".into(),
                    credential: format!("{{\"id\":\"{name}\"}}"),
                    sign_count: 0,
                    backup_eligible: false,
                    backup_state: false,
                },
                recovery_code_hashes: vec![],
                invitation: None,
            }
        };
        let ada = ok(
            store.create_account(&tenant(), signed_up("ada", Some("ada@example.test")), &Actor::System).await,
            "ada",
        );
        let bob = ok(
            store.create_account(&tenant(), signed_up("bob", Some("bob@example.test")), &Actor::System).await,
            "bob",
        );
        let carol = ok(store.create_account(&tenant(), signed_up("carol", None), &Actor::System).await, "carol");
        // Fay never verifies her address either, but signs in every week: in use, she stays.
        let fay = ok(
            store.create_account(&tenant(), signed_up("fay", Some("fay@example.test")), &Actor::System).await,
            "fay",
        );
        // Made by an operator, unverified: not a sign-up.
        let dora = account(&s, "dora", Address::Unverified).await;
        // Bob verifies his address; later he changes it, and the new one is unverified.
        let mut tx = ok(store.transaction().await, "tx");
        let address = ok(latchkey_core::domain::Email::parse("bob@example.test"), "email");
        ok(tx.verify_email(&tenant(), &bob.sub, &address, &Actor::User(bob.sub.to_string())).await, "verify");
        ok(tx.commit().await, "commit");
        let patch = latchkey_core::records::UserPatch {
            email: Some(Some(ok(latchkey_core::domain::Email::parse("bob@elsewhere.test"), "email"))),
            email_verified: Some(false),
            ..Default::default()
        };
        ok(store.update_user(&tenant(), &bob.sub, patch, &Actor::User(bob.sub.to_string())).await, "change");

        for _ in 0..4 {
            s.clock.advance(Duration::from_secs(7 * DAY));
            sign_in(&s, &fay.sub).await;
        }
        s.clock.advance(Duration::from_secs(DAY));
        assert_eq!(run(&s, true).await, AccountsReport::default(), "{b}: not yet");
        s.clock.advance(Duration::from_secs(2 * DAY));
        let dry = run(&s, true).await;
        assert_eq!(dry, AccountsReport { unverified_deleted: 1, ..AccountsReport::default() }, "{b}");
        assert!(user(&s, &ada.sub).await.is_some(), "{b}: a dry run deletes nothing");
        assert_eq!(run(&s, false).await, dry, "{b}");
        assert!(user(&s, &ada.sub).await.is_none(), "{b}: ada never verified her address");
        for (who, sub) in [("bob", &bob.sub), ("carol", &carol.sub), ("dora", &dora.sub), ("fay", &fay.sub)] {
            assert!(user(&s, sub).await.is_some(), "{b}: {who} stays");
        }
        assert_eq!(audited(&s, "user.erased", None).await, 1, "{b}");
        assert_eq!(run(&s, false).await, AccountsReport::default(), "{b}: once");
    }
}

#[tokio::test]
async fn each_step_checks_its_rule_again_with_the_row_held() {
    use latchkey_store::AccountRetention;
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let s = services(&db, dir.path(), unused_for_a_year(InactiveAccountAction::Delete)).await;
        let store = store_of(&s);
        let ada = account(&s, "ada", Address::Verified).await;
        let bob = account(&s, "bob", Address::Verified).await;
        let cy = account(&s, "cy", Address::Verified).await;
        let dee = account(&s, "dee", Address::Verified).await;
        let scopes = vec![ok(latchkey_core::domain::ScopeName::parse("openid"), "scope")];
        let spec = latchkey_service::api_keys::ApiKeySpec { name: "script".into(), scopes, ..Default::default() };
        let key = ok(s.api_keys().create(&tenant(), &cy.sub, spec, &Actor::Cli).await, "api key").key;
        s.clock.advance(Duration::from_secs(366 * DAY));
        assert_eq!(run(&s, false).await.noticed, 4, "{b}");
        let found = ok(store.inactive_accounts(s.clock.now(), None, 10).await, "inactive");
        let notice_at = ok(found.first().and_then(|a| a.notice_at).ok_or("no notice"), "notice");
        let applies = |sub: SubjectId| {
            let store = store.clone();
            async move {
                let mut tx = ok(store.transaction().await, "tx");
                let rule = AccountRetention::Inactive { notice_at };
                ok(tx.account_retention_applies(&tenant(), &sub, rule).await, "applies")
            }
        };
        for who in [&ada, &bob, &cy] {
            assert!(applies(who.sub.clone()).await, "{b}: {} is still unused", who.username);
        }
        // Between the page read and the step: ada signs in, an app refreshes bob's token, a
        // script uses cy's API key.
        s.clock.advance(Duration::from_secs(DAY));
        sign_in(&s, &ada.sub).await;
        refresh_token_for(&s, &bob.sub, "bob").await;
        ok(store.record_api_key_use(&tenant(), &key.id, s.clock.now()).await, "key used");
        assert!(!applies(ada.sub.clone()).await, "{b}: a sign-in since the notice");
        assert!(!applies(bob.sub.clone()).await, "{b}: a token refreshed since the notice");
        assert!(!applies(cy.sub.clone()).await, "{b}: an API key used since the notice");
        assert!(applies(dee.sub.clone()).await, "{b}: dee, untouched, still is");
        // Another notice time is not dee's notice.
        let mut tx = ok(store.transaction().await, "tx");
        let other = AccountRetention::Inactive { notice_at: notice_at.minus(Duration::from_secs(1)) };
        assert!(!ok(tx.account_retention_applies(&tenant(), &dee.sub, other).await, "applies"), "{b}");
        drop(tx);
        s.clock.advance(Duration::from_secs(40 * DAY));
        let report = run(&s, false).await;
        assert_eq!(report, AccountsReport { deleted: 1, ..AccountsReport::default() }, "{b}: only dee goes");
        assert!(user(&s, &dee.sub).await.is_none(), "{b}");
    }
}

#[tokio::test]
async fn an_account_whose_step_fails_is_counted_and_the_others_go_on() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let s = services(&db, dir.path(), unused_for_a_year(InactiveAccountAction::Disable)).await;
        let ada = account(&s, "ada", Address::Verified).await;
        let bob = account(&s, "bob", Address::Verified).await;
        // Ada's row is damaged: her sealed name no longer opens.
        latchkey_service::testing::execute_unchecked(
            &db,
            &format!("UPDATE users SET name = 'not sealed' WHERE sub = '{}'", ada.sub),
        )
        .await;
        s.clock.advance(Duration::from_secs(366 * DAY));
        let report = run(&s, false).await;
        assert_eq!(report, AccountsReport { noticed: 1, failed: 1, ..AccountsReport::default() }, "{b}");
        assert_eq!(audited(&s, "user.inactivity_notice", Some(&bob.sub)).await, 1, "{b}: bob is told all the same");
        let _ = ada;
    }
}

#[tokio::test]
async fn a_sign_in_during_a_step_waits_for_it_and_starts_no_session_for_a_disabled_account() {
    use latchkey_store::AccountRetention;
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let s = services(&db, dir.path(), unused_for_a_year(InactiveAccountAction::Disable)).await;
        let store = store_of(&s);
        let ada = account(&s, "ada", Address::Verified).await;
        s.clock.advance(Duration::from_secs(366 * DAY));
        assert_eq!(run(&s, false).await.noticed, 1, "{b}");
        s.clock.advance(Duration::from_secs(31 * DAY));
        let found = ok(store.inactive_accounts(s.clock.now(), None, 10).await, "inactive");
        let notice_at = ok(found.first().and_then(|a| a.notice_at).ok_or("no notice"), "notice");

        // The step holds ada's row; she signs in meanwhile.
        let mut tx = ok(store.transaction().await, "tx");
        ok(tx.lock_user(&tenant(), &ada.sub).await, "lock");
        let rule = AccountRetention::Inactive { notice_at };
        assert!(ok(tx.account_retention_applies(&tenant(), &ada.sub, rule).await, "applies"), "{b}");
        let signing_in = try_sign_in(&s, &ada.sub);
        tokio::pin!(signing_in);
        let early = tokio::time::timeout(Duration::from_millis(300), &mut signing_in).await;
        assert!(early.is_err(), "{b}: the sign-in waits for the step: {early:?}");
        ok(tx.set_user_locked(&tenant(), &ada.sub, true, &Actor::System).await, "disable");
        ok(tx.commit().await, "commit");
        let late = signing_in.await;
        assert!(late.is_err(), "{b}: no session for an account just disabled");
        let idle = Duration::from_secs(3_600);
        let sessions = ok(store.user_sessions(&tenant(), &ada.sub, s.clock.now(), idle).await, "sessions");
        assert!(sessions.is_empty(), "{b}: {sessions:?}");
    }
}
