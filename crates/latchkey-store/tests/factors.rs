//! Passkeys, TOTP, recovery codes, ceremonies and invitations in the store, on SQLite and
//! (when LATCHKEY_TEST_POSTGRES_URL is set) PostgreSQL.

use std::sync::Arc;
use std::time::Duration;

use latchkey_core::crypto::TokenHash;
use latchkey_core::domain::*;
use latchkey_core::records::*;
use latchkey_core::{Clock, UnixTime};
use latchkey_store::cleanup::Expired;
use latchkey_store::testing::{TestDatabase, clean};
use latchkey_store::*;

fn ok<T, E: std::fmt::Display>(r: Result<T, E>, what: &str) -> T {
    r.unwrap_or_else(|e| panic!("{what}: {e}"))
}

fn tenant() -> TenantId {
    TenantId::default_tenant()
}

fn new_user(username: &str, email: Option<&str>, password: Option<&str>) -> NewUser {
    NewUser {
        sub: SubjectId::generate(),
        username: ok(Username::parse(username), "username"),
        email: email.map(|e| ok(Email::parse(e), "email")),
        email_verified: false,
        name: None,
        profile: ProfileClaims::default(),
        password_hash: password.map(str::to_owned),
        service_account: false,
    }
}

fn passkey(id: &str, count: u32) -> NewPasskey {
    NewPasskey {
        credential_id: id.into(),
        name: format!("key {id}"),
        credential: format!("{{\"id\":\"{id}\"}}"),
        sign_count: count,
        backup_eligible: false,
        backup_state: false,
    }
}

fn hash(s: &str) -> TokenHash {
    TokenHash::from_stored(format!("h-{s}"))
}

async fn open(db: &TestDatabase) -> (Arc<dyn Store>, Clock) {
    let clock = Clock::frozen(UnixTime::from_secs(1_800_000_000));
    let store = ok(db.open_store(4, clock.clone()).await, db.backend);
    ok(store.migrate().await, db.backend);
    (store, clock)
}

fn account(username: &str, email: Option<&str>, key: &str, invitation: Option<TokenHash>) -> NewAccount {
    NewAccount {
        user: new_user(username, email, None),
        webauthn_user_id: format!("handle-{username}"),
        passkey: passkey(key, 0),
        recovery_code_hashes: (0..10).map(|i| hash(&format!("{username}-{i}"))).collect(),
        invitation,
    }
}

#[tokio::test]
async fn sign_up_creates_user_passkey_and_codes_together_and_uses_up_the_invitation() {
    for db in TestDatabase::all().await {
        let (store, clock) = open(&db).await;
        let b = db.backend;
        let invite = hash("invite");
        let later = clock.now().plus(Duration::from_secs(3600));
        ok(store.create_invitation(&tenant(), &invite, "inv1", Some("for ada"), later, &Actor::Cli).await, b);
        assert!(ok(store.invitation_usable(&tenant(), &invite, clock.now()).await, b), "{b}");
        let ada =
            ok(store.create_account(&tenant(), account("ada", None, "k1", Some(invite.clone())), &Actor::Cli).await, b);
        assert!(!ok(store.invitation_usable(&tenant(), &invite, clock.now()).await, b), "{b}: used");
        let listed = ok(store.invitations(&tenant()).await, b);
        assert_eq!(listed[0].used_by.as_ref(), Some(&ada.sub), "{b}");
        assert_eq!(ok(store.passkeys(&tenant(), &ada.sub).await, b).len(), 1, "{b}");
        assert_eq!(ok(store.recovery_codes_left(&tenant(), &ada.sub).await, b), 10, "{b}");
        let found = ok(store.user_by_webauthn_id(&tenant(), "handle-ada").await, b);
        assert_eq!(found.map(|u| u.sub), Some(ada.sub.clone()), "{b}");

        // A used invitation makes the whole sign-up fail, and nothing of it is stored.
        let again =
            store.create_account(&tenant(), account("bob", None, "k2", Some(invite.clone())), &Actor::Cli).await;
        assert!(matches!(again, Err(StoreError::Invalid(_))), "{b}: {again:?}");
        assert!(ok(store.user_by_username(&tenant(), &ok(Username::parse("bob"), "u")).await, b).is_none(), "{b}");
        assert!(ok(store.passkey(&tenant(), "k2").await, b).is_none(), "{b}");

        // A taken username is a conflict; a taken passkey id too; neither leaves a user.
        let taken = store.create_account(&tenant(), account("ada", None, "k3", None), &Actor::Cli).await;
        assert!(matches!(taken, Err(StoreError::Conflict(_))), "{b}: {taken:?}");
        let dup_key = store.create_account(&tenant(), account("carol", None, "k1", None), &Actor::Cli).await;
        assert!(matches!(dup_key, Err(StoreError::Conflict(_))), "{b}: {dup_key:?}");
        assert!(ok(store.user_by_username(&tenant(), &ok(Username::parse("carol"), "u")).await, b).is_none(), "{b}");

        // Revoking: only unused invitations, by public id.
        ok(store.create_invitation(&tenant(), &hash("i2"), "inv2", None, later, &Actor::Cli).await, b);
        ok(store.revoke_invitation(&tenant(), "inv2", &Actor::Cli).await, b);
        assert!(store.revoke_invitation(&tenant(), "inv1", &Actor::Cli).await.is_err(), "{b}: used ones stay");
    }
}

#[tokio::test]
async fn an_unverified_email_claims_nothing() {
    for db in TestDatabase::all().await {
        let (store, _) = open(&db).await;
        let b = db.backend;
        let first = ok(
            store.create_account(&tenant(), account("ada", Some("x@example.com"), "k1", None), &Actor::Cli).await,
            b,
        );
        let second = ok(
            store.create_account(&tenant(), account("eve", Some("x@example.com"), "k2", None), &Actor::Cli).await,
            b,
        );
        assert_ne!(first.sub, second.sub, "{b}");
        // Once verified, the address is unique.
        let patch = UserPatch { email_verified: Some(true), ..Default::default() };
        ok(store.update_user(&tenant(), &first.sub, patch.clone(), &Actor::Cli).await, b);
        let email = ok(Email::parse("x@example.com"), "e");
        assert_eq!(ok(store.user_by_email(&tenant(), &email).await, b).map(|u| u.sub), Some(first.sub.clone()), "{b}");
        let clash = store.update_user(&tenant(), &second.sub, patch, &Actor::Cli).await;
        assert!(matches!(clash, Err(StoreError::Conflict(_))), "{b}: {clash:?}");
    }
}

#[tokio::test]
async fn passkeys_are_renamed_used_and_removed() {
    for db in TestDatabase::all().await {
        let (store, clock) = open(&db).await;
        let b = db.backend;
        let ada = ok(store.create_account(&tenant(), account("ada", None, "k1", None), &Actor::Cli).await, b).sub;
        let methods = |password, passkeys| SignInMethods { password, passkeys, linked_providers: vec![] };
        let mut tx = ok(store.transaction().await, b);
        assert_eq!(ok(tx.sign_in_methods(&tenant(), &ada).await, b), methods(false, 1), "{b}");
        ok(tx.delete_passkey(&tenant(), &ada, "k1", &Actor::Cli).await, b);
        drop(tx);
        assert_eq!(ok(store.passkeys(&tenant(), &ada).await, b).len(), 1, "{b}: not committed, still there");

        ok(store.add_passkey(&tenant(), &ada, passkey("k2", 5), &Actor::Cli).await, b);
        ok(store.rename_passkey(&tenant(), &ada, "k2", "Laptop", &Actor::Cli).await, b);
        let k2 = ok(store.passkey(&tenant(), "k2").await, b).unwrap_or_else(|| panic!("{b}: k2"));
        assert_eq!((k2.name.as_str(), k2.sign_count, k2.last_used_at), ("Laptop", 5, None), "{b}");

        // The counter must grow; a lower or equal one changes nothing.
        let used = |count| PasskeyUse {
            credential_id: "k2".into(),
            credential: "{}".into(),
            sign_count: count,
            backup_state: true,
            at: clock.now(),
        };
        assert!(!ok(store.record_passkey_use(&tenant(), used(5)).await, b), "{b}: equal counter");
        assert!(!ok(store.record_passkey_use(&tenant(), used(3)).await, b), "{b}: lower counter");
        assert!(ok(store.record_passkey_use(&tenant(), used(6)).await, b), "{b}: higher counter");
        let k2 = ok(store.passkey(&tenant(), "k2").await, b).unwrap_or_else(|| panic!("{b}: k2"));
        assert_eq!((k2.sign_count, k2.backup_state, k2.last_used_at), (6, true, Some(clock.now())), "{b}");
        // A credential that keeps no counter (0) may be used again and again.
        let zero = PasskeyUse {
            credential_id: "k1".into(),
            credential: "{}".into(),
            sign_count: 0,
            backup_state: false,
            at: clock.now(),
        };
        assert!(ok(store.record_passkey_use(&tenant(), zero.clone()).await, b), "{b}");
        assert!(ok(store.record_passkey_use(&tenant(), zero).await, b), "{b}");

        let mut tx = ok(store.transaction().await, b);
        assert_eq!(ok(tx.sign_in_methods(&tenant(), &ada).await, b), methods(false, 2), "{b}");
        ok(tx.delete_passkey(&tenant(), &ada, "k1", &Actor::Cli).await, b);
        ok(tx.commit().await, b);
        assert_eq!(ok(store.passkeys(&tenant(), &ada).await, b).len(), 1, "{b}: removed");
        // Another user's passkey is not found, not removed.
        let bob = ok(store.create_account(&tenant(), account("bob", None, "kb", None), &Actor::Cli).await, b).sub;
        ok(store.add_passkey(&tenant(), &bob, passkey("kb2", 0), &Actor::Cli).await, b);
        let mut tx = ok(store.transaction().await, b);
        let other = tx.delete_passkey(&tenant(), &ada, "kb2", &Actor::Cli).await;
        assert!(matches!(other, Err(StoreError::NotFound(_))), "{b}: {other:?}");
        drop(tx);
        ok(store.set_password_hash(&tenant(), &ada, Some("$argon2id$x".into()), &Actor::Cli).await, b);
        let mut tx = ok(store.transaction().await, b);
        assert_eq!(ok(tx.sign_in_methods(&tenant(), &ada).await, b), methods(true, 1), "{b}");
        let nobody = ok(latchkey_core::domain::SubjectId::parse("nobody"), "sub");
        assert!(matches!(tx.sign_in_methods(&tenant(), &nobody).await, Err(StoreError::NotFound(_))), "{b}");
        drop(tx);

        // The WebAuthn user handle is given once and kept.
        let carol =
            ok(store.create_user(&tenant(), new_user("carol", None, Some("$argon2id$x")), &Actor::Cli).await, b).sub;
        let first = ok(store.webauthn_user_id(&tenant(), &carol, "h1").await, b);
        let again = ok(store.webauthn_user_id(&tenant(), &carol, "h2").await, b);
        assert_eq!((first.as_str(), again.as_str()), ("h1", "h1"), "{b}");

        // Deleting a user deletes their passkeys.
        ok(store.delete_user(&tenant(), &bob, &Actor::Cli).await, b);
        assert!(ok(store.passkey(&tenant(), "kb2").await, b).is_none(), "{b}");
    }
}

#[tokio::test]
async fn totp_is_confirmed_once_and_each_step_works_once() {
    for db in TestDatabase::all().await {
        let (store, _) = open(&db).await;
        let b = db.backend;
        let ada =
            ok(store.create_user(&tenant(), new_user("ada", None, Some("$argon2id$x")), &Actor::Cli).await, b).sub;
        assert!(!ok(store.use_totp_step(&tenant(), &ada, 10).await, b), "{b}: nothing enrolled");
        ok(store.start_totp(&tenant(), &ada, "sealed-1").await, b);
        ok(store.start_totp(&tenant(), &ada, "sealed-2").await, b);
        let t = ok(store.totp(&tenant(), &ada).await, b).unwrap_or_else(|| panic!("{b}: totp"));
        assert_eq!((t.secret_sealed.as_str(), t.confirmed), ("sealed-2", false), "{b}: restarted");
        assert!(!ok(store.use_totp_step(&tenant(), &ada, 10).await, b), "{b}: unconfirmed is unusable");
        assert!(ok(store.confirm_totp(&tenant(), &ada, 10, &Actor::Cli).await, b), "{b}");
        assert!(!ok(store.confirm_totp(&tenant(), &ada, 11, &Actor::Cli).await, b), "{b}: already confirmed");
        assert!(matches!(store.start_totp(&tenant(), &ada, "s3").await, Err(StoreError::Conflict(_))), "{b}");
        assert!(!ok(store.use_totp_step(&tenant(), &ada, 10).await, b), "{b}: the confirming step is used");
        assert!(ok(store.use_totp_step(&tenant(), &ada, 11).await, b), "{b}");
        assert!(!ok(store.use_totp_step(&tenant(), &ada, 11).await, b), "{b}: replay");
        assert!(!ok(store.use_totp_step(&tenant(), &ada, 9).await, b), "{b}: older step");
        let mut tx = ok(store.transaction().await, b);
        ok(tx.remove_totp(&tenant(), &ada, &Actor::Cli).await, b);
        ok(tx.commit().await, b);
        assert!(ok(store.totp(&tenant(), &ada).await, b).is_none(), "{b}");
        let mut tx = ok(store.transaction().await, b);
        assert!(matches!(tx.remove_totp(&tenant(), &ada, &Actor::Cli).await, Err(StoreError::NotFound(_))), "{b}");
    }
}

#[tokio::test]
async fn recovery_codes_are_single_use_and_regenerating_kills_the_old_ones() {
    for db in TestDatabase::all().await {
        let (store, _) = open(&db).await;
        let b = db.backend;
        let ada = ok(store.create_account(&tenant(), account("ada", None, "k1", None), &Actor::Cli).await, b).sub;
        let bob = ok(store.create_account(&tenant(), account("bob", None, "k2", None), &Actor::Cli).await, b).sub;
        assert!(!ok(store.use_recovery_code(&tenant(), &bob, &hash("ada-0"), &Actor::Cli).await, b), "{b}: not bob's");
        assert!(ok(store.use_recovery_code(&tenant(), &ada, &hash("ada-0"), &Actor::Cli).await, b), "{b}");
        assert!(!ok(store.use_recovery_code(&tenant(), &ada, &hash("ada-0"), &Actor::Cli).await, b), "{b}: used");
        assert_eq!(ok(store.recovery_codes_left(&tenant(), &ada).await, b), 9, "{b}");
        let fresh: Vec<TokenHash> = (0..10).map(|i| hash(&format!("new-{i}"))).collect();
        ok(store.replace_recovery_codes(&tenant(), &ada, &fresh, &Actor::Cli).await, b);
        // An operator's reset removes passkeys, TOTP and codes together.
        ok(store.start_totp(&tenant(), &bob, "sealed").await, b);
        assert_eq!(ok(store.reset_sign_in_factors(&tenant(), &bob, &Actor::Cli).await, b), 1, "{b}");
        assert!(ok(store.passkeys(&tenant(), &bob).await, b).is_empty(), "{b}");
        assert!(ok(store.totp(&tenant(), &bob).await, b).is_none(), "{b}");
        assert_eq!(ok(store.recovery_codes_left(&tenant(), &bob).await, b), 0, "{b}");
        assert_eq!(ok(store.recovery_codes_left(&tenant(), &ada).await, b), 10, "{b}");
        assert!(!ok(store.use_recovery_code(&tenant(), &ada, &hash("ada-1"), &Actor::Cli).await, b), "{b}: old code");
        assert!(ok(store.use_recovery_code(&tenant(), &ada, &hash("new-1"), &Actor::Cli).await, b), "{b}");
    }
}

#[tokio::test]
async fn ceremonies_are_taken_once_and_expire() {
    for db in TestDatabase::all().await {
        let (store, clock) = open(&db).await;
        let b = db.backend;
        let soon = clock.now().plus(Duration::from_secs(60));
        ok(store.put_ceremony(&tenant(), &hash("c1"), "passkey_sign_in", "{\"a\":1}", soon).await, b);
        assert!(
            ok(store.take_ceremony(&tenant(), &hash("c1"), "passkey_registration", clock.now()).await, b).is_none(),
            "{b}: other purpose"
        );
        let taken = ok(store.take_ceremony(&tenant(), &hash("c1"), "passkey_sign_in", clock.now()).await, b);
        assert_eq!(taken.as_deref(), Some("{\"a\":1}"), "{b}");
        assert!(
            ok(store.take_ceremony(&tenant(), &hash("c1"), "passkey_sign_in", clock.now()).await, b).is_none(),
            "{b}: once"
        );
        ok(store.put_ceremony(&tenant(), &hash("c2"), "passkey_sign_in", "{}", soon).await, b);
        let late = soon.plus(Duration::from_secs(1));
        assert!(
            ok(store.take_ceremony(&tenant(), &hash("c2"), "passkey_sign_in", late).await, b).is_none(),
            "{b}: expired"
        );
        ok(store.put_ceremony(&tenant(), &hash("c3"), "passkey_sign_in", "{}", soon).await, b);
        assert_eq!(clean(store.as_ref(), &[Expired::Ceremonies], late, Duration::ZERO, late).await, 1, "{b}");
    }
}
