//! The outbox, on SQLite and (when LATCHKEY_TEST_POSTGRES_URL is set) PostgreSQL: messages
//! exist only once their change commits, each is claimed by one sender at a time, and sent,
//! given-up and expired ones are deleted, each step audited.

use std::sync::Arc;
use std::time::Duration;

use latchkey_core::domain::TenantId;
use latchkey_core::records::*;
use latchkey_core::{Clock, UnixTime};
use latchkey_store::testing::TestDatabase;
use latchkey_store::*;

const NOW: i64 = 1_700_000_000;

fn ok<T, E: std::fmt::Display>(r: Result<T, E>, what: &str) -> T {
    r.unwrap_or_else(|e| panic!("{what}: {e}"))
}

fn tenant() -> TenantId {
    TenantId::default_tenant()
}

fn at(secs: i64) -> UnixTime {
    UnixTime::from_secs(secs)
}

async fn open(db: &TestDatabase) -> Arc<dyn Store> {
    let store = ok(db.open_store(4, Clock::frozen(at(NOW))).await, db.backend);
    ok(store.migrate().await, db.backend);
    store
}

fn message(id: &str, channel: Channel, expires_in: i64) -> NewMessage {
    NewMessage {
        id: id.into(),
        channel,
        kind: "email_verification".into(),
        sealed: vec![1, 2, 3, id.len() as u8],
        recipient_hash: None,
        not_before: at(NOW),
        expires_at: at(NOW + expires_in),
    }
}

async fn queue(store: &dyn Store, messages: &[NewMessage], commit: bool) {
    let mut tx = ok(store.transaction().await, "tx");
    for m in messages {
        ok(tx.enqueue_message(&tenant(), m, &Actor::User("sub-1".into())).await, "enqueue");
    }
    if commit {
        ok(tx.commit().await, "commit");
    }
}

const LEASE: Duration = Duration::from_secs(60);

#[tokio::test]
async fn a_message_exists_only_once_its_change_commits_and_is_claimed_by_one_sender_at_a_time() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let store = open(&db).await;
        queue(store.as_ref(), &[message("rolled-back", Channel::Email, 900)], false).await;
        queue(store.as_ref(), &[message("m1", Channel::Email, 900), message("s1", Channel::Sms, 900)], true).await;
        assert_eq!(ok(store.waiting_messages().await, b), vec![(Channel::Email, 1), (Channel::Sms, 1)], "{b}");

        let claimed = ok(store.claim_messages(Channel::Email, at(NOW), LEASE, 10).await, b);
        assert_eq!(claimed.len(), 1, "{b}: only the committed email");
        let m = &claimed[0];
        assert_eq!(
            (m.id.as_str(), m.channel, m.attempts, &m.sealed[..]),
            ("m1", Channel::Email, 0, &[1u8, 2, 3, 2][..])
        );
        assert!(ok(store.claim_messages(Channel::Email, at(NOW + 10), LEASE, 10).await, b).is_empty(), "{b}: leased");
        let again = ok(store.claim_messages(Channel::Email, at(NOW + 61), LEASE, 10).await, b);
        assert_eq!(
            again.first().map(|m| m.attempts),
            Some(1),
            "{b}: claimable again after the lease, one attempt made"
        );

        let retry = SendOutcome::Retry { at: at(NOW + 300), error: "421 try later".into() };
        let lost = store.finish_message(&claimed[0], &SendOutcome::Sent).await;
        assert!(matches!(lost, Err(StoreError::NotFound(_))), "{b}: a claim whose lease ran out finishes nothing");
        ok(store.finish_message(&again[0], &retry).await, b);
        assert!(ok(store.claim_messages(Channel::Email, at(NOW + 299), LEASE, 10).await, b).is_empty(), "{b}");
        let third = ok(store.claim_messages(Channel::Email, at(NOW + 300), LEASE, 10).await, b);
        assert_eq!(third.len(), 1, "{b}");
        // Held back (an open circuit): due at its time, and not counted as an attempt.
        ok(store.finish_message(&third[0], &SendOutcome::Held { at: at(NOW + 400) }).await, b);
        let fourth = ok(store.claim_messages(Channel::Email, at(NOW + 400), LEASE, 10).await, b);
        assert_eq!(fourth.first().map(|m| m.attempts), Some(2), "{b}: the held claim did not count");
        ok(store.finish_message(&fourth[0], &SendOutcome::Sent).await, b);
        let failed = SendOutcome::Failed { error: "21211 invalid number".into() };
        let sms = ok(store.claim_messages(Channel::Sms, at(NOW), LEASE, 10).await, b);
        ok(store.finish_message(&sms[0], &failed).await, b);
        assert!(ok(store.waiting_messages().await, b).is_empty(), "{b}: sent and failed messages are deleted");
        let again = store.finish_message(&sms[0], &SendOutcome::Sent).await;
        assert!(matches!(again, Err(StoreError::NotFound(_))), "{b}: {again:?}");

        let events = ok(store.recent_audit_events(&tenant(), 10).await, b);
        let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
        for action in ["message.queued", "message.sent", "message.failed"] {
            assert!(actions.contains(&action), "{b}: {actions:?}");
        }
        let queued = events.iter().find(|e| e.action == "message.queued" && e.target == "m1");
        assert_eq!(
            queued.map(|e| e.details.clone()),
            Some(serde_json::json!({"channel": "email", "kind": "email_verification"})),
            "{b}: the audit log names what was queued, never to whom or what it says"
        );
    }
}

#[tokio::test]
async fn expired_messages_are_never_claimed_and_are_dropped() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let store = open(&db).await;
        queue(store.as_ref(), &[message("short", Channel::Email, 60), message("long", Channel::Email, 3_600)], true)
            .await;
        let claimed = ok(store.claim_messages(Channel::Email, at(NOW + 60), LEASE, 10).await, b);
        assert_eq!(claimed.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), ["long"], "{b}");
        let dropped = ok(store.drop_expired_messages(at(NOW + 60), 100).await, b);
        assert_eq!(dropped, vec![(tenant(), Channel::Email, "email_verification".to_owned())], "{b}");
        assert_eq!(ok(store.waiting_messages().await, b), vec![(Channel::Email, 1)], "{b}");
    }
}

#[tokio::test]
async fn parallel_senders_never_claim_the_same_message() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let store = open(&db).await;
        let messages: Vec<NewMessage> = (0..40).map(|i| message(&format!("m{i:02}"), Channel::Email, 900)).collect();
        queue(store.as_ref(), &messages, true).await;
        let claims = (0..4).map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.claim_messages(Channel::Email, at(NOW), LEASE, 15).await })
        });
        let mut all: Vec<String> = Vec::new();
        for claim in claims {
            let got = ok(ok(claim.await, "join"), b);
            assert!(got.len() <= 15, "{b}: a claim takes at most its limit");
            all.extend(got.into_iter().map(|m| m.id));
        }
        // A claimer that met rows another was taking skips them (PostgreSQL re-checks the
        // row after the lock): what is left goes to later claims.
        loop {
            let rest = ok(store.claim_messages(Channel::Email, at(NOW), LEASE, 15).await, b);
            if rest.is_empty() {
                break;
            }
            all.extend(rest.into_iter().map(|m| m.id));
        }
        let total = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), total, "{b}: a message was claimed twice");
        assert_eq!(total, 40, "{b}: every message was claimed, once");
    }
}

async fn user(store: &dyn Store, name: &str) -> latchkey_core::domain::SubjectId {
    use latchkey_core::domain::{ProfileClaims, SubjectId, Username};
    let new = NewUser {
        sub: SubjectId::generate(),
        username: ok(Username::parse(name), "username"),
        email: None,
        email_verified: false,
        name: None,
        profile: ProfileClaims::default(),
        password_hash: None,
        service_account: false,
    };
    ok(store.create_user(&tenant(), new, &Actor::Cli).await, "user").sub
}

fn token(hash: &str, purpose: &str, sub: &latchkey_core::domain::SubjectId, expires_in: i64) -> NewOneTimeToken {
    NewOneTimeToken {
        hash: latchkey_core::crypto::TokenHash::from_stored(hash.into()),
        purpose: purpose.into(),
        sub: sub.clone(),
        detail: "ada@example.test".into(),
        expires_at: at(NOW + expires_in),
    }
}

#[tokio::test]
async fn a_one_time_token_is_used_once_for_its_purpose_before_it_expires() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let store = open(&db).await;
        let ada = user(store.as_ref(), "ada").await;
        let mut tx = ok(store.transaction().await, "tx");
        ok(tx.create_one_time_token(&tenant(), &token("h1", "email_verification", &ada, 900)).await, b);
        ok(tx.create_one_time_token(&tenant(), &token("h2", "email_verification", &ada, 60)).await, b);
        ok(tx.commit().await, b);
        let unknown = latchkey_core::domain::SubjectId::generate();
        let mut tx = ok(store.transaction().await, "tx");
        let refused = tx.create_one_time_token(&tenant(), &token("h3", "email_verification", &unknown, 60)).await;
        assert!(matches!(refused, Err(StoreError::NotFound(_))), "{b}: {refused:?}");
        drop(tx);

        let h1 = latchkey_core::crypto::TokenHash::from_stored("h1".into());
        let h2 = latchkey_core::crypto::TokenHash::from_stored("h2".into());
        let now = at(NOW + 10);
        assert!(ok(store.peek_one_time_token(&tenant(), &h1, "recovery_link", now).await, b).is_none(), "{b}: purpose");
        let seen = ok(store.peek_one_time_token(&tenant(), &h1, "email_verification", now).await, b);
        assert_eq!(seen.map(|t| (t.sub, t.detail)), Some((ada.clone(), "ada@example.test".to_owned())), "{b}");
        assert!(
            ok(store.peek_one_time_token(&tenant(), &h1, "email_verification", now).await, b).is_some(),
            "{b}: a look does not use it"
        );
        assert!(ok(store.consume_one_time_token(&tenant(), &h1, "recovery_link", now).await, b).is_none(), "{b}");

        // Parallel consumptions: exactly one gets it.
        let tries = (0..6).map(|_| {
            let store = store.clone();
            let h1 = h1.clone();
            tokio::spawn(async move { store.consume_one_time_token(&tenant(), &h1, "email_verification", now).await })
        });
        let mut won = 0;
        for t in tries {
            won += usize::from(ok(ok(t.await, "join"), b).is_some());
        }
        assert_eq!(won, 1, "{b}: used once");
        assert!(
            ok(store.peek_one_time_token(&tenant(), &h1, "email_verification", now).await, b).is_none(),
            "{b}: used"
        );
        let late = at(NOW + 60);
        assert!(
            ok(store.consume_one_time_token(&tenant(), &h2, "email_verification", late).await, b).is_none(),
            "{b}: expired"
        );
        assert_eq!(ok(store.count_one_time_tokens(&tenant(), &ada, "email_verification", at(NOW)).await, b), 2, "{b}");
        assert_eq!(ok(store.count_one_time_tokens(&tenant(), &ada, "recovery_link", at(NOW)).await, b), 0, "{b}");
    }
}

#[tokio::test]
async fn a_token_used_in_a_transaction_stays_unused_if_it_rolls_back_and_newer_tokens_retire_older_ones() {
    use latchkey_core::crypto::TokenHash;
    for db in TestDatabase::all().await {
        let b = db.backend;
        let store = open(&db).await;
        let ada = user(store.as_ref(), "ada").await;
        let mut tx = ok(store.transaction().await, "tx");
        ok(tx.create_one_time_token(&tenant(), &token("old", "email_verification", &ada, 900)).await, b);
        ok(tx.create_one_time_token(&tenant(), &token("other", "recovery_link", &ada, 900)).await, b);
        ok(tx.commit().await, b);
        let now = at(NOW + 1);
        let pending = ok(store.pending_one_time_token(&tenant(), &ada, "email_verification", now).await, b);
        assert_eq!(pending.map(|t| t.detail), Some("ada@example.test".to_owned()), "{b}");

        // Used inside a transaction that rolls back: still usable.
        let old = TokenHash::from_stored("old".into());
        let mut tx = ok(store.transaction().await, "tx");
        assert!(ok(tx.consume_one_time_token(&tenant(), &old, "email_verification", now).await, b).is_some(), "{b}");
        drop(tx);
        assert!(ok(store.peek_one_time_token(&tenant(), &old, "email_verification", now).await, b).is_some(), "{b}");

        // A newer token retires the older ones of its purpose, and only those.
        let mut tx = ok(store.transaction().await, "tx");
        assert_eq!(ok(tx.retire_one_time_tokens(&tenant(), &ada, "email_verification", now).await, b), 1, "{b}");
        ok(tx.commit().await, b);
        assert!(ok(store.peek_one_time_token(&tenant(), &old, "email_verification", now).await, b).is_none(), "{b}");
        let other = TokenHash::from_stored("other".into());
        assert!(ok(store.peek_one_time_token(&tenant(), &other, "recovery_link", now).await, b).is_some(), "{b}");
        assert!(ok(store.pending_one_time_token(&tenant(), &ada, "email_verification", now).await, b).is_none());
    }
}

#[tokio::test]
async fn an_address_is_verified_by_one_account_only_and_unverified_holders_keep_theirs() {
    use latchkey_core::domain::Email;
    for db in TestDatabase::all().await {
        let b = db.backend;
        let store = open(&db).await;
        let (ada, bob, eve) =
            (user(store.as_ref(), "ada").await, user(store.as_ref(), "bob").await, user(store.as_ref(), "eve").await);
        let shared = ok(Email::parse("shared@example.test"), "email");
        // Eve typed the address, unverified: it reserves nothing.
        let patch = UserPatch { email: Some(Some(shared.clone())), ..UserPatch::default() };
        ok(store.update_user(&tenant(), &eve, patch, &Actor::Cli).await, b);

        let mut tx = ok(store.transaction().await, "tx");
        ok(tx.verify_email(&tenant(), &ada, &shared, &Actor::User(ada.to_string())).await, b);
        let seen = ok(tx.user(&tenant(), &ada).await, b);
        assert_eq!((seen.email.as_ref(), seen.email_verified), (Some(&shared), true), "{b}: inside the transaction");
        ok(tx.commit().await, b);

        let mut tx = ok(store.transaction().await, "tx");
        let taken = tx.verify_email(&tenant(), &bob, &shared, &Actor::User(bob.to_string())).await;
        assert!(matches!(taken, Err(StoreError::Conflict(_))), "{b}: {taken:?}");
        drop(tx);
        let bob_now = ok(store.user_by_sub(&tenant(), &bob).await, b).map(|u| (u.email, u.email_verified));
        assert_eq!(bob_now, Some((None, false)), "{b}: nothing changed");
        let eve_now = ok(store.user_by_sub(&tenant(), &eve).await, b).map(|u| (u.email, u.email_verified));
        assert_eq!(eve_now, Some((Some(shared.clone()), false)), "{b}");
        let found = ok(store.user_by_email(&tenant(), &shared).await, b).map(|u| u.sub);
        assert_eq!(found, Some(ada.clone()), "{b}: the verified holder is the one found by the address");

        let mut tx = ok(store.transaction().await, "tx");
        let missing = latchkey_core::domain::SubjectId::generate();
        let gone = tx.verify_email(&tenant(), &missing, &shared, &Actor::Cli).await;
        assert!(matches!(gone, Err(StoreError::NotFound(_))), "{b}: {gone:?}");
        let audited = ok(store.recent_audit_events(&tenant(), 50).await, b);
        assert!(audited.iter().any(|e| e.action == "user.email_verified" && e.target == ada.as_str()), "{b}");
    }
}
