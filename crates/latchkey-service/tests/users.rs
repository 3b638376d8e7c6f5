//! The rules about users, through the services alone (no HTTP server), on SQLite and
//! PostgreSQL: locking, deleting and a password change end sessions, revoke refresh tokens
//! and queue back-channel logouts in the same transaction as the change.

mod support;

use std::time::Duration;

use latchkey_core::crypto::TokenHash;
use latchkey_core::domain::{ClientId, ClientKind, NewPassword, SubjectId, TenantId};
use latchkey_core::records::{Actor, NewRefreshToken, SessionEnd, SessionSelector};
use latchkey_service::testing::{TestDatabase, sample_client, sample_user, store_of};
use latchkey_service::users::{PasswordChange, StateChange};
use latchkey_service::{Latchkey, ServiceError};
use support::{browser_session, ok, services};

fn tenant() -> TenantId {
    TenantId::default_tenant()
}

/// Ada, signed in twice (sessions `s1` and `s2`) into a client that wants back-channel
/// logout, with a refresh token for each session and one `offline_access` token that
/// outlives sessions.
struct Ada {
    sub: SubjectId,
    refresh: Vec<TokenHash>,
}

async fn ada(s: &Latchkey) -> Ada {
    let client = ok(ClientId::parse("webapp"), "client id");
    let new = sample_client("webapp", ClientKind::Confidential, "https://app.example/cb");
    ok(s.clients().create(&tenant(), new, &Actor::Cli).await, "client");
    let sub = ok(s.users().create(&tenant(), sample_user("ada"), &Actor::Cli).await, "user").sub;
    let now = s.clock.now();
    let mut refresh = Vec::new();
    for (i, (sid, ends)) in [(Some("s1"), true), (Some("s2"), true), (Some("s1"), false)].into_iter().enumerate() {
        if ends {
            let session = browser_session(s, &sub, (&format!("cookie-{i}"), sid.unwrap_or_default()), "1", 0);
            ok(s.sessions().create(&tenant(), &session, &Actor::User(sub.to_string())).await, "session");
            let sid = sid.unwrap_or_default();
            ok(s.sessions().record_client(&tenant(), sid, &client, true, now).await, "session client");
        }
        let hash = s.token_hasher.hash("refresh_token", &format!("refresh-{i}"));
        let token = NewRefreshToken {
            token_hash: hash.clone(),
            family_id: format!("family-{i}"),
            grant_id: format!("grant-{i}"),
            client_id: client.clone(),
            sub: sub.to_string(),
            grant_data: "{}".into(),
            expires_at: now.plus(Duration::from_secs(86_400)),
            sid: sid.map(str::to_owned),
            ends_with_session: ends,
        };
        ok(s.tokens().insert_refresh_token(&tenant(), &token).await, "refresh token");
        refresh.push(hash);
    }
    Ada { sub, refresh }
}

async fn live_sessions(s: &Latchkey, sub: &SubjectId) -> Vec<String> {
    let list = ok(s.sessions().of_user(&tenant(), sub, s.clock.now(), Duration::from_secs(3_600)).await, "sessions");
    list.into_iter().map(|i| i.session.sid).collect()
}

async fn revoked(s: &Latchkey, hashes: &[TokenHash]) -> Vec<bool> {
    let mut out = Vec::new();
    for h in hashes {
        let token = ok(s.tokens().refresh_token(&tenant(), h).await, "refresh token");
        out.push(token.unwrap_or_else(|| panic!("the refresh token is gone")).revoked_at.is_some());
    }
    out
}

async fn queued_deliveries(s: &Latchkey, sub: &SubjectId) -> usize {
    ok(s.sessions().logout_deliveries(&tenant(), sub).await, "deliveries").len()
}

#[tokio::test]
async fn locking_a_user_ends_every_session_revokes_every_refresh_token_and_queues_logouts() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let s = services(&db, dir.path(), |_| {}).await;
        let ada = ada(&s).await;

        let ended = ok(s.users().change_state(&tenant(), &ada.sub, StateChange::Lock, &Actor::Cli).await, "lock");
        assert_eq!(ended, 2, "{b}: both sessions ended");
        let user = ok(s.users().by_sub(&tenant(), &ada.sub).await, "user").unwrap_or_else(|| panic!("{b}: ada"));
        assert!(user.locked, "{b}: ada is locked");
        assert!(live_sessions(&s, &ada.sub).await.is_empty(), "{b}: no session is left");
        assert_eq!(revoked(&s, &ada.refresh).await, [true, true, true], "{b}: offline_access goes too");
        assert_eq!(queued_deliveries(&s, &ada.sub).await, 2, "{b}: a logout token per session is queued");
        let events = ok(s.audit().recent(&tenant(), 20).await, "audit");
        for action in ["user.locked", "session.ended"] {
            assert!(events.iter().any(|e| e.action == action && e.actor == "cli"), "{b}: audit has {action}");
        }

        // Unlocking ends nothing and lets ada in again.
        let ended = ok(s.users().change_state(&tenant(), &ada.sub, StateChange::Unlock, &Actor::Cli).await, "unlock");
        assert_eq!(ended, 0, "{b}");
        let user = ok(s.users().by_sub(&tenant(), &ada.sub).await, "user").unwrap_or_else(|| panic!("{b}: ada"));
        assert!(!user.locked, "{b}: ada is unlocked");
        s.system().close().await;
    }
}

#[tokio::test]
async fn deleting_a_user_ends_their_sessions_in_the_same_step() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let s = services(&db, dir.path(), |_| {}).await;
        let ada = ada(&s).await;

        let ended = ok(s.users().change_state(&tenant(), &ada.sub, StateChange::Delete, &Actor::Cli).await, "delete");
        assert_eq!(ended, 2, "{b}");
        assert!(ok(s.users().by_sub(&tenant(), &ada.sub).await, "user").is_none(), "{b}: ada is gone");
        assert!(live_sessions(&s, &ada.sub).await.is_empty(), "{b}");
        for h in &ada.refresh {
            // Erased, not only revoked.
            assert!(ok(s.tokens().refresh_token(&tenant(), h).await, "refresh token").is_none(), "{b}");
        }
        assert_eq!(queued_deliveries(&s, &ada.sub).await, 2, "{b}: the clients are still told");

        // Deleting someone who does not exist changes nothing and says so.
        let nobody = SubjectId::generate();
        match s.users().change_state(&tenant(), &nobody, StateChange::Lock, &Actor::Cli).await {
            Err(ServiceError::NotFound(_)) => {}
            other => panic!("{b}: locking nobody: {other:?}"),
        }
        s.system().close().await;
    }
}

#[tokio::test]
async fn a_password_change_by_the_user_keeps_their_session_and_by_an_operator_ends_all() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let s = services(&db, dir.path(), |_| {}).await;
        let ada = ada(&s).await;
        let password = || ok(NewPassword::parse("correct horse battery".into()), "password");

        let change = PasswordChange::BySelf { current_sid: "s1".into() };
        let actor = Actor::User(ada.sub.to_string());
        let ended = ok(s.users().set_password(&tenant(), &ada.sub, password(), change, &actor).await, "by self");
        assert_eq!(ended, 1, "{b}: the other session ended");
        assert_eq!(live_sessions(&s, &ada.sub).await, ["s1"], "{b}: the current session stays");
        // s2's token ends with s2; s1's and the offline one stay.
        assert_eq!(revoked(&s, &ada.refresh).await, [false, true, false], "{b}");
        let user = ok(s.users().by_sub(&tenant(), &ada.sub).await, "user").unwrap_or_else(|| panic!("{b}: ada"));
        assert!(user.has_password, "{b}: the password is set");

        let ended = ok(
            s.users().set_password(&tenant(), &ada.sub, password(), PasswordChange::ByOperator, &Actor::Cli).await,
            "by operator",
        );
        assert_eq!(ended, 1, "{b}: the last session ended");
        assert!(live_sessions(&s, &ada.sub).await.is_empty(), "{b}");
        assert_eq!(revoked(&s, &ada.refresh).await, [true, true, true], "{b}: every refresh token");
        s.system().close().await;
    }
}

/// The transaction the services compose: dropped before `commit`, none of its changes
/// stays, so a crash between locking and ending sessions leaves neither done.
#[tokio::test]
async fn a_transaction_that_is_not_committed_leaves_nothing_behind() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let s = services(&db, dir.path(), |_| {}).await;
        let ada = ada(&s).await;
        let store = store_of(&s);
        let now = s.clock.now();
        let how = SessionEnd { now, revoke_until: now, revoke_all_refresh_tokens: true, reason: "user_locked" };
        let which = SessionSelector::User { sub: ada.sub.clone(), except_sid: None };
        {
            let mut tx = ok(store.transaction().await, "begin");
            ok(tx.set_user_locked(&tenant(), &ada.sub, true, &Actor::Cli).await, "lock");
            let ended = ok(tx.end_browser_sessions(&tenant(), &which, &how, &Actor::Cli).await, "end");
            assert_eq!(ended.sessions.len(), 2, "{b}: inside the transaction both end");
            // Dropped here, as a crash would.
        }
        let user = ok(s.users().by_sub(&tenant(), &ada.sub).await, "user").unwrap_or_else(|| panic!("{b}: ada"));
        assert!(!user.locked, "{b}: not locked");
        assert_eq!(live_sessions(&s, &ada.sub).await.len(), 2, "{b}: both sessions live");
        assert_eq!(revoked(&s, &ada.refresh).await, [false, false, false], "{b}: no token revoked");
        assert_eq!(queued_deliveries(&s, &ada.sub).await, 0, "{b}: nothing queued");
        let events = ok(s.audit().recent(&tenant(), 50).await, "audit");
        assert!(!events.iter().any(|e| e.action == "user.locked"), "{b}: no audit event for a change not made");
        drop(store);
        s.system().close().await;
    }
}

#[tokio::test]
async fn a_user_is_found_by_username_or_subject_id_and_nobody_is_not_found() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let s = services(&db, dir.path(), |_| {}).await;
        let sub = ok(s.users().create(&tenant(), sample_user("ada"), &Actor::Cli).await, "user").sub;
        assert_eq!(ok(s.users().find(&tenant(), "ada").await, "by name").sub, sub, "{b}");
        assert_eq!(ok(s.users().find(&tenant(), sub.as_str()).await, "by sub").username.as_str(), "ada", "{b}");
        assert!(matches!(s.users().find(&tenant(), "grace").await, Err(ServiceError::NotFound(_))), "{b}");
        s.system().close().await;
    }
}

/// `privacy.ip`: a session keeps no address, its network, or the whole address.
#[tokio::test]
async fn a_sessions_ip_and_user_agent_are_kept_as_privacy_says() {
    use latchkey_config::{IpRecording, UserAgentRecording};
    use latchkey_service::sessions::SignedIn;
    const UA: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0";
    for db in TestDatabase::all().await {
        let b = db.backend;
        for (recording, kept, ua, ua_kept) in [
            (IpRecording::Off, None, UserAgentRecording::Off, None),
            (IpRecording::Truncated, Some("192.0.2.0/24"), UserAgentRecording::Truncated, Some("Firefox on Linux")),
            (IpRecording::Full, Some("192.0.2.77"), UserAgentRecording::Full, Some(UA)),
        ] {
            let dir = ok(tempfile::tempdir(), "dir");
            let s = services(&db, dir.path(), |c| {
                c.privacy.ip = recording;
                c.privacy.user_agent = ua;
            })
            .await;
            let name = format!("ip{}", format!("{recording:?}").to_lowercase());
            let sub = ok(s.users().create(&tenant(), sample_user(&name), &Actor::Cli).await, "user").sub;
            let signed_in = SignedIn {
                sub: sub.clone(),
                amr: vec!["pwd".into()],
                acr: "1".into(),
                remember: false,
                user_agent: Some(UA.into()),
                ip: Some("192.0.2.77".into()),
                authenticated_at: None,
            };
            let started = ok(s.sessions().start(&tenant(), None, signed_in).await, "session");
            assert_eq!(started.session.ip.as_deref(), kept, "{b}: {recording:?}");
            let stored = ok(s.sessions().live(&tenant(), &started.secret).await.ok_or("no session"), "live");
            assert_eq!(stored.ip.as_deref(), kept, "{b}: {recording:?} as stored");
            assert_eq!(stored.user_agent.as_deref(), ua_kept, "{b}: {ua:?} as stored");
            s.system().close().await;
        }
    }
}
