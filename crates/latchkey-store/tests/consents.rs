//! Consents, on SQLite and (when LATCHKEY_TEST_POSTGRES_URL is set) PostgreSQL: the scopes
//! and the individual claims a user allowed a client.

use latchkey_core::domain::*;
use latchkey_core::records::*;
use latchkey_core::{Clock, UnixTime};
use latchkey_store::testing::{TestDatabase, sample_client};

fn ok<T, E: std::fmt::Display>(r: Result<T, E>, what: &str) -> T {
    r.unwrap_or_else(|e| panic!("{what}: {e}"))
}

#[tokio::test]
async fn a_consent_keeps_its_claims_beside_its_scopes_and_is_replaced_whole() {
    let tenant = TenantId::default_tenant();
    for db in TestDatabase::all().await {
        let b = db.backend;
        let store = ok(db.open_store(4, Clock::frozen(UnixTime::from_secs(1_800_000_000))).await, b);
        ok(store.migrate().await, b);
        let user = latchkey_store::testing::sample_user("ada");
        let ada = ok(store.create_user(&tenant, user, &Actor::Cli).await, "user").sub;
        let notes = ok(ClientId::parse("notes"), "id");
        let client = sample_client("notes", ClientKind::Confidential, "https://n.example/cb");
        ok(store.create_client(&tenant, client, &Actor::Cli).await, "client");
        assert_eq!(ok(store.consent(&tenant, &ada, &notes).await, "none yet"), None, "{b}");

        let first = Consent {
            scopes: vec!["openid".into()],
            claims: vec!["name".into(), "email".into()],
            ..Consent::default()
        };
        ok(store.save_consent(&tenant, &ada, &notes, &first, &Actor::Cli).await, "save");
        assert_eq!(ok(store.consent(&tenant, &ada, &notes).await, "read"), Some(first), "{b}");

        let second = Consent { scopes: vec!["openid".into(), "profile".into()], claims: vec![], ..Consent::default() };
        ok(store.save_consent(&tenant, &ada, &notes, &second, &Actor::Cli).await, "replace");
        assert_eq!(ok(store.consent(&tenant, &ada, &notes).await, "read again"), Some(second), "{b}");

        let events = ok(store.recent_audit_events(&tenant, 10).await, "audit");
        let given: Vec<&AuditEvent> = events.iter().filter(|e| e.action == "consent.given").collect();
        assert_eq!(given.len(), 2, "{b}: {events:?}");
        assert!(given.iter().any(|e| e.details["claims"] == serde_json::json!(["name", "email"])), "{b}: {given:?}");
    }
}
