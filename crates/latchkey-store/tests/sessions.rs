//! Session store behaviour, on SQLite and (when LATCHKEY_TEST_POSTGRES_URL is set)
//! PostgreSQL: expiry, ending sessions with everything that goes with them, and the
//! back-channel logout queue.

use std::sync::Arc;
use std::time::Duration;

use latchkey_core::crypto::TokenHash;
use latchkey_core::domain::*;
use latchkey_core::records::*;
use latchkey_core::{Clock, UnixTime};
use latchkey_store::cleanup::Expired;
use latchkey_store::testing::{TestDatabase, clean, sample_client};
use latchkey_store::*;

const HOUR: Duration = Duration::from_secs(3_600);

fn ok<T, E: std::fmt::Display>(r: Result<T, E>, what: &str) -> T {
    r.unwrap_or_else(|e| panic!("{what}: {e}"))
}

fn tenant() -> TenantId {
    TenantId::default_tenant()
}

struct Fixture {
    store: Arc<dyn Store>,
    clock: Clock,
    ada: SubjectId,
    backend: &'static str,
}

async fn fixture(db: &TestDatabase) -> Fixture {
    let clock = Clock::frozen(UnixTime::from_secs(1_800_000_000));
    let store = ok(db.open_store(4, clock.clone()).await, db.backend);
    ok(store.migrate().await, db.backend);
    let user = latchkey_store::testing::sample_user("ada");
    let ada = ok(store.create_user(&tenant(), user, &Actor::Cli).await, "user").sub;
    Fixture { store, clock, ada, backend: db.backend }
}

impl Fixture {
    /// A password session of ada's, signed in now; its cookie hash is `hash-<sid>`.
    fn browser_session(&self, sid: &str) -> BrowserSession {
        let now = self.clock.now();
        BrowserSession {
            id_hash: TokenHash::from_stored(format!("hash-{sid}")),
            sid: sid.to_owned(),
            sub: self.ada.clone(),
            auth_time: now,
            amr: vec!["pwd".into()],
            acr: "urn:latchkey:acr:password".into(),
            created_at: now,
            expires_at: now.plus(2 * HOUR),
            last_active_at: now,
            remember: false,
            user_agent: None,
            ip: Some("192.0.2.1".into()),
        }
    }

    async fn session(&self, sid: &str, clients: &[(&str, bool)]) {
        let now = self.clock.now();
        let s = self.browser_session(sid);
        ok(self.store.create_browser_session(&tenant(), &s, &Actor::Cli).await, "session");
        for (client, backchannel) in clients {
            let id = ok(ClientId::parse(client), "client");
            ok(self.store.record_session_client(&tenant(), sid, &id, *backchannel, now).await, "client");
        }
    }

    async fn refresh(&self, token: &str, sid: &str, ends_with_session: bool) {
        let t = NewRefreshToken {
            token_hash: TokenHash::from_stored(token.to_owned()),
            family_id: format!("family-{token}"),
            grant_id: format!("grant-{token}"),
            client_id: ok(ClientId::parse("notes"), "client"),
            sub: self.ada.to_string(),
            grant_data: "{}".into(),
            expires_at: self.clock.now().plus(24 * HOUR),
            sid: Some(sid.to_owned()),
            ends_with_session,
        };
        ok(self.store.insert_refresh_token(&tenant(), &t).await, "refresh");
    }

    async fn revoked(&self, token: &str) -> bool {
        let found = ok(self.store.refresh_token(&tenant(), &TokenHash::from_stored(token.to_owned())).await, "read");
        found.is_some_and(|t| t.revoked_at.is_some())
    }

    fn end(&self, revoke_all: bool) -> SessionEnd {
        let now = self.clock.now();
        SessionEnd { now, revoke_until: now.plus(HOUR), revoke_all_refresh_tokens: revoke_all, reason: "test" }
    }

    async fn live(&self, sid: &str) -> bool {
        let found = self.store.browser_session_by_sid(&tenant(), sid, self.clock.now(), HOUR).await;
        ok(found, "read").is_some()
    }
}

/// What the session cleanup deletes.
const SESSIONS: [Expired; 3] = [Expired::EndedSessions, Expired::IdleSessions, Expired::FinishedDeliveries];

#[tokio::test]
async fn sessions_expire_when_idle_or_past_their_end_and_touching_keeps_them() {
    for db in TestDatabase::all().await {
        let f = fixture(&db).await;
        let b = f.backend;
        f.session("s1", &[]).await;
        f.clock.advance(HOUR - Duration::from_secs(1));
        assert!(f.live("s1").await, "{b}");
        ok(f.store.touch_browser_session(&tenant(), "s1", f.clock.now()).await, "touch");
        f.clock.advance(HOUR - Duration::from_secs(1));
        assert!(f.live("s1").await, "{b}: touched, so not idle");
        let hash = TokenHash::from_stored("hash-s1".into());
        let by_cookie = f.store.browser_session(&tenant(), &hash, f.clock.now(), HOUR).await;
        assert_eq!(ok(by_cookie, "read").map(|s| s.ip), Some(Some("192.0.2.1".into())), "{b}");
        f.clock.advance(Duration::from_secs(2));
        assert!(!f.live("s1").await, "{b}: two hours after sign-in it is over, however active");
        let removed = clean(f.store.as_ref(), &SESSIONS, f.clock.now(), HOUR, f.clock.now()).await;
        assert_eq!(removed, 1, "{b}");
    }
}

#[tokio::test]
async fn ending_sessions_queues_backchannel_logouts_and_revokes_session_tokens_in_one_go() {
    for db in TestDatabase::all().await {
        let f = fixture(&db).await;
        let b = f.backend;
        f.session("keep", &[("notes", true)]).await;
        f.session("gone-1", &[("notes", true), ("webapp", false)]).await;
        f.session("gone-2", &[("webapp", false)]).await;
        f.refresh("session-token", "gone-1", true).await;
        f.refresh("offline-token", "gone-1", false).await;

        let which = SessionSelector::User { sub: f.ada.clone(), except_sid: Some("keep".into()) };
        let ended = ok(f.store.end_browser_sessions(&tenant(), &which, &f.end(false), &Actor::Cli).await, "end");
        let mut sids: Vec<&str> = ended.sessions.iter().map(|s| s.sid.as_str()).collect();
        sids.sort();
        assert_eq!(sids, ["gone-1", "gone-2"], "{b}");
        let gone_1 = ended.sessions.iter().find(|s| s.sid == "gone-1").map(|s| {
            let mut c: Vec<String> = s.clients.iter().map(ToString::to_string).collect();
            c.sort();
            c
        });
        assert_eq!(gone_1, Some(vec!["notes".to_owned(), "webapp".to_owned()]), "{b}");
        assert_eq!(ended.revoked_grants, ["grant-session-token"], "{b}");
        assert!(f.live("keep").await && !f.live("gone-1").await, "{b}");
        assert!(f.revoked("session-token").await && !f.revoked("offline-token").await, "{b}");
        let queued = ok(f.store.logout_deliveries(&tenant(), &f.ada).await, "queue");
        assert_eq!(queued.len(), 1, "{b}: only notes wants back-channel logout: {queued:?}");
        assert_eq!((queued[0].client_id.as_str(), queued[0].sid.as_str()), ("notes", "gone-1"), "{b}");
        let revocations = ok(f.store.revocations_after(0, f.clock.now()).await, "revocations");
        assert!(revocations.iter().any(|r| r.kind == "grant" && r.value == "grant-session-token"), "{b}");

        // A user locked: every session and every refresh token, offline ones too.
        let which = SessionSelector::User { sub: f.ada.clone(), except_sid: None };
        let ended = ok(f.store.end_browser_sessions(&tenant(), &which, &f.end(true), &Actor::Cli).await, "end all");
        assert_eq!(ended.sessions.len(), 1, "{b}");
        assert!(f.revoked("offline-token").await, "{b}");
        // Ending what is already over ends nothing and queues nothing.
        let again = ok(f.store.end_browser_sessions(&tenant(), &which, &f.end(true), &Actor::Cli).await, "again");
        assert_eq!(again, SessionsEnded::default(), "{b}");
        assert_eq!(ok(f.store.logout_deliveries(&tenant(), &f.ada).await, "queue").len(), 2, "{b}");
    }
}

#[tokio::test]
async fn queued_deliveries_are_claimed_for_a_lease_and_finished_once() {
    for db in TestDatabase::all().await {
        let f = fixture(&db).await;
        let b = f.backend;
        f.session("s1", &[("notes", true), ("webapp", true)]).await;
        let which = SessionSelector::Sid("s1".into());
        ok(f.store.end_browser_sessions(&tenant(), &which, &f.end(false), &Actor::Cli).await, "end");
        let lease = Duration::from_secs(30);
        let claimed = ok(f.store.claim_logout_deliveries(f.clock.now(), lease, 10).await, "claim");
        assert_eq!(claimed.len(), 2, "{b}");
        assert!(claimed.iter().all(|d| d.sid == "s1" && d.sub.as_str() == f.ada.as_str() && d.attempts == 0), "{b}");
        // Claimed: nobody else gets them until the lease runs out.
        assert!(ok(f.store.claim_logout_deliveries(f.clock.now(), lease, 10).await, "again").is_empty(), "{b}");

        let (first, second) = (&claimed[0], &claimed[1]);
        ok(
            f.store.finish_logout_delivery(&first.tenant, &first.jti, &DeliveryOutcome::Delivered, f.clock.now()).await,
            "done",
        );
        let retry = DeliveryOutcome::Retry { at: f.clock.now().plus(Duration::from_secs(2)), error: "503".into() };
        ok(f.store.finish_logout_delivery(&second.tenant, &second.jti, &retry, f.clock.now()).await, "retry");
        assert!(ok(f.store.claim_logout_deliveries(f.clock.now(), lease, 10).await, "early").is_empty(), "{b}");
        f.clock.advance(Duration::from_secs(2));
        let due = ok(f.store.claim_logout_deliveries(f.clock.now(), lease, 10).await, "due");
        assert_eq!(
            due.iter().map(|d| (d.jti.as_str(), d.attempts)).collect::<Vec<_>>(),
            [(second.jti.as_str(), 1)],
            "{b}"
        );
        // A finished delivery is not finished again (a late duplicate changes nothing).
        ok(f.store.finish_logout_delivery(&first.tenant, &first.jti, &retry, f.clock.now()).await, "late");
        let records = ok(f.store.logout_deliveries(&tenant(), &f.ada).await, "records");
        let done = records.iter().find(|r| r.jti == first.jti).map(|r| (r.status.clone(), r.attempts));
        assert_eq!(done, Some(("delivered".to_owned(), 1)), "{b}");
        let failed = DeliveryOutcome::Failed { error: "gone".into() };
        ok(f.store.finish_logout_delivery(&second.tenant, &second.jti, &failed, f.clock.now()).await, "fail");
        // Finished deliveries are kept until `keep_finished_until`, then cleaned up.
        let kept = clean(f.store.as_ref(), &SESSIONS, f.clock.now(), HOUR, f.clock.now().minus(HOUR)).await;
        assert_eq!(kept, 0, "{b}");
        f.clock.advance(Duration::from_secs(1));
        let removed = clean(f.store.as_ref(), &SESSIONS, f.clock.now(), HOUR, f.clock.now()).await;
        assert_eq!(removed, 2, "{b}");
    }
}

#[tokio::test]
async fn a_deleted_clients_tokens_consents_and_session_memberships_go_with_it() {
    for db in TestDatabase::all().await {
        let f = fixture(&db).await;
        let b = f.backend;
        let notes = ok(ClientId::parse("notes"), "id");
        let client = sample_client("notes", ClientKind::Confidential, "https://n.example/cb");
        ok(f.store.create_client(&tenant(), client, &Actor::Cli).await, "client");
        let consent = Consent { scopes: vec!["openid".into()], claims: vec!["name".into()], ..Consent::default() };
        ok(f.store.save_consent(&tenant(), &f.ada, &notes, &consent, &Actor::Cli).await, "consent");
        f.session("s1", &[("notes", true)]).await;
        f.refresh("notes-token", "s1", false).await;
        ok(f.store.delete_client(&tenant(), &notes, &Actor::Cli).await, "delete");
        let token = ok(f.store.refresh_token(&tenant(), &TokenHash::from_stored("notes-token".into())).await, "read");
        assert_eq!(token, None, "{b}");
        assert_eq!(ok(f.store.consent(&tenant(), &f.ada, &notes).await, "consent"), None, "{b}");
        let sessions = ok(f.store.user_sessions(&tenant(), &f.ada, f.clock.now(), HOUR).await, "sessions");
        assert_eq!(sessions.iter().map(|s| s.clients.len()).sum::<usize>(), 0, "{b}: {sessions:?}");
    }
}

#[tokio::test]
async fn a_client_that_gains_a_backchannel_uri_hears_of_sessions_it_signed_into_before() {
    for db in TestDatabase::all().await {
        let f = fixture(&db).await;
        let b = f.backend;
        let notes = ok(ClientId::parse("notes"), "id");
        let client = sample_client("notes", ClientKind::Public, "http://127.0.0.1/cb");
        ok(f.store.create_client(&tenant(), client, &Actor::Cli).await, "client");
        f.session("s1", &[("notes", false)]).await;
        let policy = ClientSessionPolicy {
            backchannel_logout_uri: Some(ok(LogoutUri::parse("http://127.0.0.1:9/bc"), "uri")),
            ..ClientSessionPolicy::default()
        };
        let patch = ClientPatch { session_policy: Some(policy), ..ClientPatch::default() };
        ok(f.store.update_client(&tenant(), &notes, patch, &Actor::Cli).await, "update");
        let which = SessionSelector::Sid("s1".into());
        ok(f.store.end_browser_sessions(&tenant(), &which, &f.end(false), &Actor::Cli).await, "end");
        let queued = ok(f.store.logout_deliveries(&tenant(), &f.ada).await, "queue");
        assert_eq!(queued.iter().map(|d| d.client_id.as_str()).collect::<Vec<_>>(), ["notes"], "{b}");
    }
}

#[tokio::test]
async fn a_code_issued_in_a_session_is_stored_with_the_clients_membership_and_redeems_once() {
    for db in TestDatabase::all().await {
        let f = fixture(&db).await;
        let b = f.backend;
        f.session("s1", &[]).await;
        let code = |hash: &str, session: Option<CodeSession>| NewCode {
            code_hash: TokenHash::from_stored(hash.to_owned()),
            grant_id: format!("grant-{hash}"),
            client_id: ok(ClientId::parse("notes"), "client"),
            grant_data: "{}".into(),
            expires_at: f.clock.now().plus(Duration::from_secs(60)),
            session,
        };
        let in_session = code("in-session", Some(CodeSession { sid: "s1".into(), backchannel: true }));
        ok(f.store.insert_code(&tenant(), &in_session).await, "code");
        // Issued again in the same session: the membership is updated, not duplicated.
        ok(
            f.store
                .insert_code(&tenant(), &code("again", Some(CodeSession { sid: "s1".into(), backchannel: true })))
                .await,
            "code",
        );
        ok(f.store.insert_code(&tenant(), &code("no-session", None)).await, "code");

        let now = f.clock.now();
        let notes = ok(ClientId::parse("notes"), "client");
        let hash = TokenHash::from_stored("in-session".into());
        let first = ok(f.store.redeem_code(&tenant(), &hash, &notes, now).await, "redeem");
        assert!(
            matches!(&first, CodeRedemption::Redeemed { grant_id, client_id, .. } if grant_id == "grant-in-session" && client_id == "notes"),
            "{b}: {first:?}"
        );
        let second = ok(f.store.redeem_code(&tenant(), &hash, &notes, now).await, "redeem again");
        assert!(matches!(&second, CodeRedemption::Replayed { grant_id, .. } if grant_id == "grant-in-session"), "{b}");
        let plain = ok(
            f.store.redeem_code(&tenant(), &TokenHash::from_stored("no-session".into()), &notes, now).await,
            "plain",
        );
        assert!(matches!(plain, CodeRedemption::Redeemed { .. }), "{b}: a code without a session redeems too");

        let ended = ok(
            f.store
                .end_browser_sessions(&tenant(), &SessionSelector::Sid("s1".into()), &f.end(false), &Actor::Cli)
                .await,
            "end",
        );
        let clients: Vec<Vec<&str>> =
            ended.sessions.iter().map(|s| s.clients.iter().map(|c| c.as_str()).collect()).collect();
        assert_eq!(clients, [vec!["notes"]], "{b}: the session signed into notes, once");
        assert_eq!(ok(f.store.logout_deliveries(&tenant(), &f.ada).await, "queue").len(), 1, "{b}");
    }
}

/// What presenting refresh token `old` finds, offering a successor stored under `new` (with
/// a family, grant and session of its own, which a rotation must not take).
#[tokio::test]
async fn a_code_presented_by_another_client_is_not_burned() {
    for db in TestDatabase::all().await {
        let f = fixture(&db).await;
        let b = f.backend;
        let (notes, intruder) = (ok(ClientId::parse("notes"), "id"), ok(ClientId::parse("intruder"), "id"));
        let code = NewCode {
            code_hash: TokenHash::from_stored("stolen".into()),
            grant_id: "grant-stolen".into(),
            client_id: notes.clone(),
            grant_data: "{}".into(),
            expires_at: f.clock.now().plus(Duration::from_secs(60)),
            session: None,
        };
        ok(f.store.insert_code(&tenant(), &code).await, "code");
        let now = f.clock.now();
        // RFC 6749 §4.1.3: the code is checked against the client before it is spent.
        for _ in 0..2 {
            let other = ok(f.store.redeem_code(&tenant(), &code.code_hash, &intruder, now).await, "other client");
            assert_eq!(other, CodeRedemption::IssuedToAnotherClient, "{b}");
        }
        let real = ok(f.store.redeem_code(&tenant(), &code.code_hash, &notes, now).await, "real client");
        assert!(
            matches!(&real, CodeRedemption::Redeemed { grant_id, .. } if grant_id == "grant-stolen"),
            "{b}: {real:?}"
        );
        // Once spent, another client still learns only that it is not its code.
        let after = ok(f.store.redeem_code(&tenant(), &code.code_hash, &intruder, now).await, "after");
        assert_eq!(after, CodeRedemption::IssuedToAnotherClient, "{b}");
        let replay = ok(f.store.redeem_code(&tenant(), &code.code_hash, &notes, now).await, "replay");
        assert!(matches!(replay, CodeRedemption::Replayed { .. }), "{b}: {replay:?}");
    }
}

async fn rotate(f: &Fixture, old: &str, new: &str) -> RefreshRotation {
    rotate_with_grace(f, old, new, REUSE_GRACE).await
}

async fn rotate_with_grace(f: &Fixture, old: &str, new: &str, grace: Duration) -> RefreshRotation {
    let successor = NewRefreshToken {
        token_hash: TokenHash::from_stored(new.to_owned()),
        family_id: "not-this-family".into(),
        // Its predecessor's grant, as the service reads it: what it holds is sealed for it.
        grant_id: format!("grant-{old}"),
        client_id: ok(ClientId::parse("notes"), "client"),
        sub: f.ada.to_string(),
        grant_data: r#"{"scope":"openid"}"#.into(),
        expires_at: f.clock.now().plus(24 * HOUR),
        sid: None,
        ends_with_session: true,
    };
    let old = TokenHash::from_stored(old.to_owned());
    ok(f.store.rotate_refresh_token(&tenant(), &old, successor, f.clock.now(), grace).await, "rotate")
}

const REUSE_GRACE: Duration = Duration::from_secs(10);

#[tokio::test]
async fn rotating_a_refresh_token_keeps_its_family_and_a_reused_one_revokes_the_family() {
    for db in TestDatabase::all().await {
        let f = fixture(&db).await;
        let b = f.backend;
        f.refresh("first", "s1", false).await;
        let rotated = rotate(&f, "first", "second").await;
        let RefreshRotation::Rotated(old) = rotated else { panic!("{b}: {rotated:?}") };
        assert_eq!((old.family_id.as_str(), old.grant_id.as_str()), ("family-first", "grant-first"), "{b}");
        let second = ok(f.store.refresh_token(&tenant(), &TokenHash::from_stored("second".into())).await, "read");
        let second = second.unwrap_or_else(|| panic!("{b}: the successor is stored"));
        assert_eq!(
            (second.family_id.as_str(), second.grant_id.as_str(), second.sid.as_deref(), second.grant_data.as_str()),
            ("family-first", "grant-first", Some("s1"), r#"{"scope":"openid"}"#),
            "{b}: family, grant and session carried over; the rest is the new token's"
        );
        assert!(second.ends_with_session && second.rotated_at.is_none(), "{b}");

        assert_eq!(rotate(&f, "first", "third").await, RefreshRotation::ConcurrentUse, "{b}: within the grace");
        f.clock.advance(REUSE_GRACE + Duration::from_secs(1));
        let reused = rotate(&f, "first", "fourth").await;
        let family = RefreshRotation::Reused { family_id: "family-first".into(), grant_id: "grant-first".into() };
        assert_eq!(reused, family, "{b}");
        assert!(f.revoked("second").await, "{b}: the whole family is revoked");
        for hash in ["third", "fourth"] {
            let stored = ok(f.store.refresh_token(&tenant(), &TokenHash::from_stored(hash.into())).await, "read");
            assert!(stored.is_none(), "{b}: no successor was stored for a refused use ({hash})");
        }
        assert_eq!(rotate(&f, "second", "fifth").await, RefreshRotation::Revoked, "{b}");
        // A successor of another grant is refused, and the live token stays as it was.
        f.refresh("other", "s2", false).await;
        let mut foreign = NewRefreshToken {
            token_hash: TokenHash::from_stored("foreign".into()),
            family_id: "family-other".into(),
            grant_id: "grant-first".into(),
            client_id: ok(ClientId::parse("notes"), "client"),
            sub: f.ada.to_string(),
            grant_data: "{}".into(),
            expires_at: f.clock.now().plus(24 * HOUR),
            sid: None,
            ends_with_session: false,
        };
        let other = TokenHash::from_stored("other".into());
        let refused =
            f.store.rotate_refresh_token(&tenant(), &other, foreign.clone(), f.clock.now(), REUSE_GRACE).await;
        assert!(matches!(refused, Err(StoreError::Invalid(_))), "{b}: {refused:?}");
        let kept = ok(f.store.refresh_token(&tenant(), &other).await, "read").unwrap_or_else(|| panic!("{b}: gone"));
        assert!(kept.rotated_at.is_none(), "{b}: not rotated");
        foreign.grant_id = "grant-other".into();
        let rotated = f.store.rotate_refresh_token(&tenant(), &other, foreign, f.clock.now(), REUSE_GRACE).await;
        assert!(matches!(rotated, Ok(RefreshRotation::Rotated(_))), "{b}: {rotated:?}");
        assert_eq!(rotate(&f, "nobody", "sixth").await, RefreshRotation::Unknown, "{b}");

        f.refresh("short", "s1", false).await;
        f.clock.advance(25 * HOUR);
        assert_eq!(rotate(&f, "short", "seventh").await, RefreshRotation::Expired, "{b}");
    }
}

/// The default grace is none (RFC 9700 §4.14.2): a replay in the very second of the
/// rotation is reuse, and the family goes, on both backends.
#[tokio::test]
async fn without_a_reuse_grace_a_replay_in_the_same_second_revokes_the_family() {
    for db in TestDatabase::all().await {
        let f = fixture(&db).await;
        let b = f.backend;
        f.refresh("first", "s1", false).await;
        assert!(matches!(rotate_with_grace(&f, "first", "second", Duration::ZERO).await, RefreshRotation::Rotated(_)));
        let replay = rotate_with_grace(&f, "first", "third", Duration::ZERO).await;
        let family = RefreshRotation::Reused { family_id: "family-first".into(), grant_id: "grant-first".into() };
        assert_eq!(replay, family, "{b}");
        assert!(f.revoked("second").await, "{b}: the live successor is revoked");
    }
}

/// Many presentations of one live refresh token at once (a client retrying, or a stolen
/// copy racing the real one): exactly one rotates it and stores a successor, every other
/// finds it just rotated, on both backends.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_rotations_of_one_token_rotate_it_once() {
    const RACERS: usize = 12;
    for db in TestDatabase::all().await {
        let f = Arc::new(fixture(&db).await);
        let b = f.backend;
        f.refresh("contended", "s1", false).await;
        let racers: Vec<_> = (0..RACERS)
            .map(|i| {
                let f = Arc::clone(&f);
                tokio::spawn(async move { rotate(&f, "contended", &format!("successor-{i}")).await })
            })
            .collect();
        let mut rotated = 0;
        for racer in racers {
            match ok(racer.await, "racer") {
                RefreshRotation::Rotated(old) => {
                    assert_eq!(old.family_id, "family-contended", "{b}");
                    rotated += 1;
                }
                RefreshRotation::ConcurrentUse => {}
                other => panic!("{b}: a racer found {other:?}"),
            }
        }
        assert_eq!(rotated, 1, "{b}: exactly one presentation rotates the token");
        let mut successors = Vec::new();
        for i in 0..RACERS {
            let hash = TokenHash::from_stored(format!("successor-{i}"));
            if let Some(t) = ok(f.store.refresh_token(&tenant(), &hash).await, "read") {
                successors.push(t);
            }
        }
        assert_eq!(successors.len(), 1, "{b}: exactly one successor is stored");
        assert_eq!(successors[0].family_id, "family-contended", "{b}: in the token's family");
        assert!(successors[0].rotated_at.is_none() && successors[0].revoked_at.is_none(), "{b}: and live");
    }
}

#[tokio::test]
async fn a_session_starts_with_its_audit_event_or_not_at_all() {
    for db in TestDatabase::all().await {
        let f = fixture(&db).await;
        let b = f.backend;
        let started = |events: Vec<AuditEvent>| -> Vec<AuditEvent> {
            events.into_iter().filter(|e| e.action == "session.started").collect()
        };
        f.session("s1", &[]).await;
        let events = started(ok(f.store.recent_audit_events(&tenant(), 100).await, b));
        assert_eq!(events.len(), 1, "{b}: one session.started event");
        assert_eq!(events[0].target, f.ada.as_str(), "{b}");
        assert_eq!(events[0].actor, Actor::Cli.as_string(), "{b}");
        assert_eq!(events[0].details["sid"], "s1", "{b}");
        assert_eq!(events[0].details["amr"], serde_json::json!(["pwd"]), "{b}");
        assert_eq!(events[0].at, f.clock.now(), "{b}");
        assert!(f.live("s1").await, "{b}");

        // The same session again conflicts on its key: neither row nor event is written.
        let again = f.browser_session("s1");
        assert!(f.store.create_browser_session(&tenant(), &again, &Actor::Cli).await.is_err(), "{b}");
        let events = started(ok(f.store.recent_audit_events(&tenant(), 100).await, b));
        assert_eq!(events.len(), 1, "{b}: no event for a session that was not stored");
    }
}
