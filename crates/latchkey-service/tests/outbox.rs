//! What the outbox keeps in the database: the recipient and content sealed under the master
//! key, bound to the message (a payload moved to another row does not open); nothing is
//! queued without `[mail]`.

mod support;

use std::time::Duration;

use latchkey_config::{MailConfig, MailTls};
use latchkey_core::domain::TenantId;
use latchkey_core::records::{Actor, Channel};
use latchkey_service::testing::{TestDatabase, store_of};
use support::{ok, services};

fn mail() -> MailConfig {
    MailConfig {
        from: "id@example.test".into(),
        host: "127.0.0.1".into(),
        port: Some(2525),
        tls: MailTls::None,
        username: None,
        password: None,
        timeout: Duration::from_secs(5),
        retry_base: Duration::from_secs(30),
        circuit_cool_down: Duration::from_secs(30),
        templates: None,
    }
}

#[tokio::test]
async fn payloads_are_sealed_and_bound_to_their_message() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let tenant = TenantId::default_tenant();
        let off = services(&db, dir.path(), |_| {}).await;
        let refused = off.outbox().queue_test_email(&tenant, "ada@example.test", &Actor::Cli).await;
        assert!(refused.is_err_and(|e| e.to_string().contains("[mail]")), "{b}: no mail, nothing queued");

        let s = services(&db, dir.path(), |c| c.mail = Some(mail())).await;
        let malformed = s.outbox().queue_test_email(&tenant, "not an address", &Actor::Cli).await;
        assert!(malformed.is_err_and(|e| e.to_string().contains("not an email address")), "{b}");
        ok(s.outbox().queue_test_email(&tenant, "ada@example.test", &Actor::Cli).await, "queue");
        ok(s.outbox().queue_test_email(&tenant, "bob@example.test", &Actor::Cli).await, "queue");
        let store = store_of(&s);
        let claimed = ok(store.claim_messages(Channel::Email, s.clock.now(), Duration::from_secs(1), 10).await, b);
        assert_eq!(claimed.len(), 2, "{b}");
        for m in &claimed {
            let raw = String::from_utf8_lossy(&m.sealed);
            assert!(!raw.contains("example.test") && !raw.contains("Mail works"), "{b}: readable in the database");
            let aad = format!("outbox|default|{}", m.id);
            assert!(s.master_key.open(&m.sealed, aad.as_bytes()).is_ok(), "{b}: opens as itself");
        }
        let other = format!("outbox|default|{}", claimed[1].id);
        assert!(s.master_key.open(&claimed[0].sealed, other.as_bytes()).is_err(), "{b}: not as another message");
    }
}
