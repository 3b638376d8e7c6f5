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
