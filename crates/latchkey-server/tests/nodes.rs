//! Several nodes on one database: the same keys, and a change made through one node (or
//! the CLI) reaches every node's caches within the documented bound, without a restart.
//! PostgreSQL: LISTEN/NOTIFY (bound 1 s); SQLite: polling every change_poll_interval.

mod support;

use std::sync::Arc;
use std::time::Duration;

use latchkey_core::domain::*;
use latchkey_core::records::{Actor, ClientPatch, NewClient, NewUser};
use latchkey_core::{Clock, UnixTime};
use latchkey_service::testing::sample_client;
use support::{TestServer, all_backends, eventually, ok};

/// The stated bound (1 s for PostgreSQL notifications; the tests' SQLite poll is 100 ms)
/// plus a margin for a loaded CI machine.
const BOUND: Duration = Duration::from_secs(3);

fn tenant() -> TenantId {
    TenantId::default_tenant()
}

#[tokio::test]
async fn two_nodes_publish_the_same_keys_and_see_each_others_changes() {
    for db in all_backends().await {
        let b = db.backend;
        let clock = Clock::frozen(UnixTime::from_secs(1_800_000_000));
        let a = ok(TestServer::try_start(db.clone(), clock.clone(), |_| {}).await, "node a");
        let node_b = ok(TestServer::try_start(db.clone(), clock.clone(), |_| {}).await, "node b");
        assert_eq!(a.jwks_kids().await, node_b.jwks_kids().await, "{b}: one set of keys");

        // Key rotation on node A reaches node B.
        clock.advance(Duration::from_secs(4_000));
        let promoted = ok(a.server.state.keys.rotate(SigningAlg::Rs256, false, &Actor::Cli).await, "rotate");
        let expected = a.jwks_kids().await;
        eventually(BOUND, &format!("{b}: node b publishes the rotated keys"), || async {
            node_b.jwks_kids().await == expected
        })
        .await;
        assert_eq!(node_b.server.state.keys.active(SigningAlg::Rs256).map(|k| k.kid().to_owned()), Some(promoted));

        // A client change on node A: node B's cached client is dropped and reloaded.
        let id = ok(ClientId::parse("shared-app"), "id");
        let new = NewClient {
            name: "Before".into(),
            grant_types: vec![GrantType::AuthorizationCode],
            ..sample_client("shared-app", ClientKind::Confidential, "https://a.example/cb")
        };
        ok(a.server.state.services.clients().create(&tenant(), new, &Actor::Cli).await, "create");
        let cached = ok(node_b.server.state.caches.client(&id).await, "load").map(|c| c.name.clone());
        assert_eq!(cached.as_deref(), Some("Before"));
        let patch = ClientPatch { name: Some("After".into()), ..Default::default() };
        ok(a.server.state.services.clients().update(&tenant(), &id, patch, &Actor::Cli).await, "update");
        eventually(BOUND, &format!("{b}: node b sees the renamed client"), || async {
            node_b.server.state.caches.client(&id).await.ok().flatten().is_some_and(|c| c.name == "After")
        })
        .await;

        // Locking a user on node A: node B's cached user follows.
        let user = NewUser {
            sub: SubjectId::generate(),
            username: ok(Username::parse("grace"), "username"),
            email: None,
            email_verified: false,
            name: None,
            profile: ProfileClaims::default(),
            password_hash: None,
            service_account: false,
        };
        let user = ok(a.server.state.services.users().create(&tenant(), user, &Actor::Cli).await, "user");
        let before = ok(node_b.server.state.caches.user(&user.sub).await, "load");
        assert_eq!(before.map(|u| u.locked), Some(false));
        let lock = latchkey_service::users::StateChange::Lock;
        ok(a.server.state.services.users().change_state(&tenant(), &user.sub, lock, &Actor::Cli).await, "lock");
        eventually(BOUND, &format!("{b}: node b sees the lock"), || async {
            node_b.server.state.caches.user(&user.sub).await.ok().flatten().is_some_and(|u| u.locked)
        })
        .await;

        a.stop().await;
        node_b.stop().await;
    }
}

#[tokio::test]
async fn the_scheduled_rotation_runs_once_across_nodes() {
    for db in all_backends().await {
        let b = db.backend;
        let clock = Clock::frozen(UnixTime::from_secs(1_800_000_000));
        let tweak = |c: &mut latchkey_config::Config| {
            c.keys.rotation_interval = Duration::from_secs(7_200);
            c.keys.check_interval = Duration::from_millis(100);
        };
        let dir = Arc::new(ok(tempfile::tempdir(), "dir"));
        let a = ok(TestServer::start_in(db.clone(), dir.clone(), clock.clone(), tweak).await, "a");
        let node_b = ok(TestServer::start_in(db.clone(), dir.clone(), clock.clone(), tweak).await, "b");
        clock.advance(Duration::from_secs(7_200));
        let audit = a.server.state.services.audit();
        eventually(BOUND, &format!("{b}: the schedule rotated every algorithm"), || async {
            let events = audit.recent(&tenant(), 100).await.unwrap_or_default();
            events.iter().filter(|e| e.action == "keys.rotated").count() >= 3
        })
        .await;
        // Give a second node every chance to rotate again, then count.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let events = ok(audit.recent(&tenant(), 100).await, "audit");
        let rotations = events.iter().filter(|e| e.action == "keys.rotated").count();
        assert_eq!(rotations, 3, "{b}: one rotation per algorithm, not one per node");
        a.stop().await;
        node_b.stop().await;
    }
}

/// With an account retention rule on, a node runs the accounts' job (on one node at a time,
/// from its start): a sign-up never verified and unused goes once its period is over.
#[tokio::test]
async fn a_node_applies_the_account_retention_rules() {
    use latchkey_core::records::{NewAccount, NewPasskey};
    for db in all_backends().await {
        let b = db.backend;
        let clock = Clock::frozen(UnixTime::from_secs(1_800_000_000));
        let dir = Arc::new(ok(tempfile::tempdir(), "dir"));
        let first = ok(TestServer::start_in(db.clone(), dir.clone(), clock.clone(), |_| {}).await, "first");
        let mut user = latchkey_service::testing::sample_user("ada");
        user.email = Some(ok(Email::parse("ada@example.test"), "email"));
        let account = NewAccount {
            user,
            webauthn_user_id: "handle-ada".into(),
            passkey: NewPasskey {
                credential_id: "key-ada".into(),
                name: "key".into(),
                credential: r#"{"id":"ada"}"#.into(),
                sign_count: 0,
                backup_eligible: false,
                backup_state: false,
            },
            recovery_code_hashes: vec![],
            invitation: None,
        };
        let store = latchkey_service::testing::store_of(&first.server.state.services);
        let ada = ok(store.create_account(&tenant(), account, &Actor::System).await, "sign-up").sub;
        first.stop().await;
        clock.advance(Duration::from_secs(8 * 86_400));

        let week = |c: &mut latchkey_config::Config| {
            c.mail = Some(support::smtp::mail(1));
            c.retention.unverified_sign_ups = Duration::from_secs(7 * 86_400);
        };
        let node = ok(TestServer::start_in(db.clone(), dir.clone(), clock.clone(), week).await, "node");
        let services = node.server.state.services.clone();
        eventually(BOUND, &format!("{b}: the job erased the sign-up never verified"), || async {
            ok(services.users().by_sub(&tenant(), &ada).await, "user").is_none()
        })
        .await;
        node.stop().await;
    }
}
