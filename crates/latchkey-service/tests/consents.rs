//! When a user must be asked, and what allowing records: through the service alone, on
//! SQLite and PostgreSQL.

mod support;

use latchkey_core::domain::{ClaimsRequest, ClientKind, TenantId};
use latchkey_core::records::{Actor, Client};
use latchkey_service::Latchkey;
use latchkey_service::consents::Asked;
use latchkey_service::testing::{TestDatabase, sample_client, sample_user};
use support::{ok, services};

fn ask<'a>(scopes: &'a [String], claims: Option<&'a ClaimsRequest>, prompt_consent: bool) -> Asked<'a> {
    Asked { scopes, claims, prompt_consent }
}

fn scopes(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

async fn client(s: &Latchkey, id: &str, first_party: bool) -> Client {
    let new = sample_client(id, ClientKind::Confidential, &format!("https://{id}.example/cb"));
    ok(
        s.clients()
            .create(&TenantId::default_tenant(), latchkey_core::records::NewClient { first_party, ..new }, &Actor::Cli)
            .await,
        "client",
    )
}

#[tokio::test]
async fn consent_is_asked_once_per_scope_and_claim_and_accumulates() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let s = services(&db, dir.path(), |_| {}).await;
        let tenant = TenantId::default_tenant();
        let sub = ok(s.users().create(&tenant, sample_user("ada"), &Actor::Cli).await, "user").sub;
        let app = client(&s, "app", false).await;
        let actor = Actor::User(sub.to_string());
        let (openid, profile) = (&scopes(&["openid"]), &scopes(&["openid", "profile"]));

        assert!(
            ok(s.consents().needed(&tenant, &sub, &app, &ask(openid, None, false)).await, "needed"),
            "{b}: first time"
        );
        ok(s.consents().grant(&tenant, &sub, &app.client_id, &ask(openid, None, false), &actor).await, "grant");
        assert!(!ok(s.consents().needed(&tenant, &sub, &app, &ask(openid, None, false)).await, "needed"), "{b}: given");
        assert!(
            ok(s.consents().needed(&tenant, &sub, &app, &ask(openid, None, true)).await, "needed"),
            "{b}: prompt=consent"
        );
        assert!(
            ok(s.consents().needed(&tenant, &sub, &app, &ask(profile, None, false)).await, "needed"),
            "{b}: a new scope"
        );

        // A claim asked for one by one needs consent unless an allowed scope releases it.
        let email = &ok(ClaimsRequest::parse(r#"{"userinfo":{"email":null}}"#), "claims");
        assert!(ok(s.consents().needed(&tenant, &sub, &app, &ask(openid, Some(email), false)).await, "needed"), "{b}");
        ok(s.consents().grant(&tenant, &sub, &app.client_id, &ask(openid, Some(email), false), &actor).await, "grant");
        assert!(!ok(s.consents().needed(&tenant, &sub, &app, &ask(openid, Some(email), false)).await, "needed"), "{b}");

        // Allowing less now withdraws nothing.
        let given =
            ok(s.consents().grant(&tenant, &sub, &app.client_id, &ask(openid, None, false), &actor).await, "grant");
        assert_eq!(given.scopes, ["openid"], "{b}");
        assert_eq!(given.claims, ["email"], "{b}: the earlier claim stays");
        s.system().close().await;
    }
}

#[tokio::test]
async fn a_first_party_client_needs_no_consent_except_for_offline_access_or_when_it_asks() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let s = services(&db, dir.path(), |_| {}).await;
        let tenant = TenantId::default_tenant();
        let sub = ok(s.users().create(&tenant, sample_user("ada"), &Actor::Cli).await, "user").sub;
        let own = client(&s, "own", true).await;
        let (plain, offline) = (scopes(&["openid", "profile"]), scopes(&["openid", "offline_access"]));
        for (list, prompt, expected) in [(&plain, false, false), (&offline, false, true), (&plain, true, true)] {
            let needed = ok(s.consents().needed(&tenant, &sub, &own, &ask(list, None, prompt)).await, "needed");
            assert_eq!(needed, expected, "{b}: {list:?}, prompt=consent {prompt}");
        }
        s.system().close().await;
    }
}

#[tokio::test]
async fn a_withdrawal_reaches_other_nodes_through_the_revocation_poll_and_only_for_earlier_tokens() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let s = services(&db, dir.path(), |_| {}).await;
        let tenant = TenantId::default_tenant();
        let sub = ok(s.users().create(&tenant, sample_user("ada"), &Actor::Cli).await, "user").sub;
        let app = client(&s, "app", false).await;
        let other = client(&s, "other", false).await;
        let actor = Actor::User(sub.to_string());
        for c in [&app, &other] {
            ok(
                s.consents().grant(&tenant, &sub, &c.client_id, &ask(&scopes(&["openid"]), None, false), &actor).await,
                "grant",
            );
        }
        let listed: Vec<String> =
            ok(s.consents().list(&tenant, &sub).await, "list").iter().map(|c| c.client_id.to_string()).collect();
        assert_eq!(listed, ["app", "other"], "{b}");

        // Another node: a revocation set that learns only through the poll.
        let elsewhere = latchkey_service::revocations::Revocations::default();
        let store = latchkey_service::testing::store_of(&s);
        ok(elsewhere.refresh(store.as_ref(), s.clock.now()).await, "poll");
        let now = s.clock.now().secs();
        assert!(!elsewhere.is_consent_withdrawn("app", sub.as_str(), now), "{b}: nothing withdrawn yet");

        ok(s.consents().withdraw(&tenant, &sub, &app.client_id, &Actor::Cli).await, "withdraw");
        ok(elsewhere.refresh(store.as_ref(), s.clock.now()).await, "poll");
        assert!(elsewhere.is_consent_withdrawn("app", sub.as_str(), now), "{b}: a token from before");
        assert!(!elsewhere.is_consent_withdrawn("app", sub.as_str(), now + 2), "{b}: a token from after");
        assert!(!elsewhere.is_consent_withdrawn("other", sub.as_str(), now), "{b}: another client");
        assert!(!elsewhere.is_consent_withdrawn("app", "someone-else", now), "{b}: another user");
        let listed: Vec<String> =
            ok(s.consents().list(&tenant, &sub).await, "list").iter().map(|c| c.client_id.to_string()).collect();
        assert_eq!(listed, ["other"], "{b}");
        let again = s.consents().withdraw(&tenant, &sub, &app.client_id, &Actor::Cli).await;
        assert!(matches!(again, Err(latchkey_service::ServiceError::NotFound(_))), "{b}: {:?}", again.err());
        let events = ok(store.recent_audit_events(&tenant, 50).await, "audit");
        assert!(events.iter().any(|e| e.action == "consent.withdrawn"), "{b}");
        s.system().close().await;
    }
}

/// On PostgreSQL a revocation's `seq` is drawn at insert, not at commit: one whose
/// transaction commits after a later one was polled must still be read.
#[tokio::test]
#[cfg_attr(not(postgres_tests), ignore = "needs LATCHKEY_TEST_POSTGRES_URL at build time")]
async fn a_revocation_that_commits_after_a_later_one_is_still_read() {
    use sqlx::Connection as _;
    let db = TestDatabase::postgres_only().await;
    let dir = ok(tempfile::tempdir(), "dir");
    let s = services(&db, dir.path(), |_| {}).await;
    let store = latchkey_service::testing::store_of(&s);
    let tenant = TenantId::default_tenant();
    let until = s.clock.now().plus(std::time::Duration::from_secs(3_600));
    let poll = latchkey_service::revocations::Revocations::default();

    let mut slow = ok(sqlx::PgConnection::connect(&db.url).await, "connect");
    ok(sqlx::query("BEGIN").execute(&mut slow).await, "begin");
    let insert = "INSERT INTO revocations (tenant_id, kind, value, expires_at) VALUES ('default', 'jti', 'slow', $1)";
    ok(sqlx::query(insert).bind(until.secs()).execute(&mut slow).await, "slow insert");
    ok(s.tokens().revoke_access_token(&tenant, "fast", until, &Actor::Cli).await, "fast");
    ok(poll.refresh(store.as_ref(), s.clock.now()).await, "poll");
    assert!(poll.is_revoked("fast", None) && !poll.is_revoked("slow", None), "only the committed one so far");

    ok(sqlx::query("COMMIT").execute(&mut slow).await, "commit");
    ok(poll.refresh(store.as_ref(), s.clock.now()).await, "poll");
    assert!(poll.is_revoked("slow", None), "the lower seq that committed later is read too");
    s.system().close().await;
}

#[tokio::test]
async fn a_consent_keeps_what_was_shown_and_how_and_its_withdrawal_stays_on_record() {
    use latchkey_core::domain::ScopeName;
    use latchkey_core::records::{Change, ConsentHow};
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let s = services(&db, dir.path(), |_| {}).await;
        s.consents().use_page_text("page text v1".into());
        let tenant = TenantId::default_tenant();
        let sub = ok(s.users().create(&tenant, sample_user("ada"), &Actor::Cli).await, "user").sub;
        let actor = Actor::User(sub.to_string());
        let notes = ok(ScopeName::parse("notes:read"), "scope");
        ok(s.scopes().put(&tenant, &notes, "Read your notes", &Actor::Cli).await, "scope");
        let app = client(&s, "app", false).await;
        let asked = &scopes(&["openid", "notes:read"]);

        let given =
            ok(s.consents().grant(&tenant, &sub, &app.client_id, &ask(asked, None, false), &actor).await, "grant");
        assert_eq!(given.how, ConsentHow::Page, "{b}");
        assert!(!given.version.is_empty(), "{b}");
        assert!(!ok(s.consents().needed(&tenant, &sub, &app, &ask(asked, None, false)).await, "needed"), "{b}");

        // The scope now says something else: what the user agreed to is not what they
        // would be shown, so they are asked again.
        ok(s.scopes().put(&tenant, &notes, "Read and share your notes", &Actor::Cli).await, "scope");
        ok(s.caches.apply(&Change::Scopes { tenant: tenant.to_string() }, &s.keys).await, "cache");
        assert!(
            ok(s.consents().needed(&tenant, &sub, &app, &ask(asked, None, false)).await, "needed"),
            "{b}: new text"
        );
        let again =
            ok(s.consents().grant(&tenant, &sub, &app.client_id, &ask(asked, None, false), &actor).await, "grant");
        assert_ne!(again.version, given.version, "{b}");
        assert!(!ok(s.consents().needed(&tenant, &sub, &app, &ask(asked, None, false)).await, "needed"), "{b}");

        // So does a change to the page's own text.
        s.consents().use_page_text("page text v2".into());
        let other = services(&db, dir.path(), |_| {}).await;
        other.consents().use_page_text("page text v2".into());
        assert!(
            ok(other.consents().needed(&tenant, &sub, &app, &ask(asked, None, false)).await, "needed"),
            "{b}: page"
        );

        // A first-party app is never asked; what it got is recorded once, as first-party.
        let own = client(&s, "own", true).await;
        for _ in 0..2 {
            assert!(!ok(s.consents().needed(&tenant, &sub, &own, &ask(asked, None, false)).await, "needed"), "{b}");
            ok(s.consents().note_first_party(&tenant, &sub, &own, &ask(asked, None, false)).await, "note");
        }
        let own_consent = ok(s.consents().get(&tenant, &sub, &own.client_id).await, "get");
        assert_eq!(own_consent.map(|c| c.how), Some(ConsentHow::FirstParty), "{b}");

        ok(s.consents().withdraw(&tenant, &sub, &app.client_id, &actor).await, "withdraw");
        let history = ok(s.consents().history(&tenant, &sub).await, "history");
        let of = |id: &str| history.iter().filter(|h| h.client_id.as_str() == id).collect::<Vec<_>>();
        assert_eq!(of("app").len(), 2, "{b}: both times: {history:?}");
        assert!(of("app").iter().all(|h| h.withdrawn_at.is_some()), "{b}: withdrawn, still on record");
        assert_eq!(of("app")[0].consent.version, given.version, "{b}");
        assert_eq!(of("own").len(), 1, "{b}: recorded once: {history:?}");
        assert!(of("own")[0].withdrawn_at.is_none(), "{b}");
        assert!(ok(s.consents().get(&tenant, &sub, &app.client_id).await, "get").is_none(), "{b}: no longer in force");
    }
}
