//! Parked authorization requests: limited per network, atomically, on SQLite and (when
//! LATCHKEY_TEST_POSTGRES_URL is set) PostgreSQL.

use std::sync::Arc;
use std::time::Duration;

use latchkey_core::crypto::TokenHasher;
use latchkey_core::domain::TenantId;
use latchkey_core::records::PendingAuthorization;
use latchkey_core::{Clock, UnixTime};
use latchkey_store::Store;
use latchkey_store::testing::TestDatabase;

const NOW: i64 = 1_700_000_000;
const LIFETIME: Duration = Duration::from_secs(600);

async fn open(db: &TestDatabase, clock: &Clock) -> Arc<dyn Store> {
    let store = db.open_store(8, clock.clone()).await.unwrap_or_else(|e| panic!("{}: {e}", db.backend));
    store.migrate().await.unwrap_or_else(|e| panic!("{}: {e}", db.backend));
    store
}

fn pending(clock: &Clock, ip_key: &str) -> PendingAuthorization {
    let hasher = TokenHasher::new(&[7; 32]);
    PendingAuthorization {
        binding_hash: hasher.hash("binding", "browser"),
        request: "{}".into(),
        expires_at: clock.now().plus(LIFETIME),
        ip_key: ip_key.into(),
    }
}

async fn park(store: &Arc<dyn Store>, clock: &Clock, ip_key: &str, max: u32) -> bool {
    let id = TokenHasher::new(&[7; 32]).hash("request", &latchkey_core::crypto::random::token_string::<16>());
    store
        .put_authorization_request(&TenantId::default_tenant(), &id, &pending(clock, ip_key), max)
        .await
        .unwrap_or_else(|e| panic!("park: {e}"))
}

#[tokio::test]
async fn parallel_requests_from_one_network_never_park_more_than_the_limit() {
    for db in TestDatabase::all().await {
        let clock = Clock::frozen(UnixTime::from_secs(NOW));
        // Two pools on one database: two nodes (or, on SQLite, the server and the CLI).
        let nodes = [open(&db, &clock).await, open(&db, &clock).await];
        let attempts: Vec<_> = (0..40)
            .map(|i| {
                let store = nodes[i % 2].clone();
                let clock = clock.clone();
                tokio::spawn(async move { park(&store, &clock, "192.0.2.7/32", 10).await })
            })
            .collect();
        let mut stored = 0;
        for attempt in attempts {
            if attempt.await.unwrap_or_else(|e| panic!("task: {e}")) {
                stored += 1;
            }
        }
        assert_eq!(stored, 10, "{}: parked requests from one network", db.backend);
        assert!(
            park(&nodes[0], &clock, "2001:db8:1:2::/64", 10).await,
            "{}: another network has its own room",
            db.backend
        );
    }
}

#[tokio::test]
async fn a_network_gets_room_again_as_its_requests_end_or_expire() {
    for db in TestDatabase::all().await {
        let clock = Clock::frozen(UnixTime::from_secs(NOW));
        let store = open(&db, &clock).await;
        let b = db.backend;
        let tenant = TenantId::default_tenant();
        let hasher = TokenHasher::new(&[7; 32]);
        let first = hasher.hash("request", "first");
        assert!(ok(store.put_authorization_request(&tenant, &first, &pending(&clock, "192.0.2.7/32"), 2).await, b));
        assert!(park(&store, &clock, "192.0.2.7/32", 2).await, "{b}");
        assert!(!park(&store, &clock, "192.0.2.7/32", 2).await, "{b}: the limit is reached");
        let kept = ok(store.authorization_request(&tenant, &first, clock.now()).await, b);
        assert_eq!(
            kept.map(|p| p.ip_key),
            Some("192.0.2.7/32".to_owned()),
            "{b}: the network is kept with the request"
        );

        ok(store.delete_authorization_request(&tenant, &first).await, b);
        assert!(park(&store, &clock, "192.0.2.7/32", 2).await, "{b}: a finished request frees its place");
        assert!(!park(&store, &clock, "192.0.2.7/32", 2).await, "{b}");

        clock.advance(LIFETIME);
        assert!(park(&store, &clock, "192.0.2.7/32", 2).await, "{b}: expired requests count for nobody");
    }
}

fn ok<T, E: std::fmt::Display>(r: Result<T, E>, what: &str) -> T {
    r.unwrap_or_else(|e| panic!("{what}: {e}"))
}
