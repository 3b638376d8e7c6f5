//! The outbox with a real SMTP dialogue (a stand-in relay on 127.0.0.1): a queued email is
//! delivered by the server's sender; while the relay fails, the circuit opens and messages
//! wait; after the outage, and after a restart, they are delivered; an address the relay
//! refuses for good is given up. (That the database holds it sealed: the service's tests.)

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use latchkey_core::domain::TenantId;
use latchkey_core::records::Actor;
use support::smtp::{Relay, mail};
use support::{TestServer, all_backends, eventually, ok};

fn tenant() -> TenantId {
    TenantId::default_tenant()
}

#[tokio::test]
async fn queued_mail_is_delivered_waits_out_an_outage_behind_the_breaker_and_survives_a_restart() {
    for db in all_backends().await {
        let b = db.backend;
        let relay = Relay::start().await;
        let port = relay.port;
        let server = TestServer::start(db.clone(), move |c| c.mail = Some(mail(port))).await;
        let outbox = server.state().services.outbox();

        ok(outbox.queue_test_email(&tenant(), "ada@example.test", &Actor::Cli).await, "queue");
        eventually(Duration::from_secs(5), &format!("{b}: the relay got the message"), || async {
            relay.messages().len() == 1
        })
        .await;
        let first = relay.messages().remove(0);
        assert!(
            first.contains("To: ada@example.test") && first.contains("Subject: Latchkey can send mail"),
            "{b}: {first}"
        );

        // An outage: five failures in a row open the circuit; the messages wait.
        relay.failing.store(true, Ordering::SeqCst);
        for i in 0..6 {
            ok(outbox.queue_test_email(&tenant(), &format!("user{i}@example.test"), &Actor::Cli).await, "queue");
        }
        eventually(Duration::from_secs(10), &format!("{b}: the circuit opens"), || async { outbox.mail_delayed() })
            .await;
        // The sign-in and recovery pages say so, the same for everyone.
        for path in ["/login", "/recover"] {
            let page = ok(server.get(path).await.text().await, path);
            assert!(page.contains("-delayed\""), "{b}: {path} says messages are delayed: {page}");
        }
        let ready = server.get("/readyz").await;
        assert_eq!(ready.status(), reqwest::StatusCode::OK, "{b}: an open circuit never makes the node unready");
        let ready: serde_json::Value = ok(ready.json().await, "readyz");
        assert_eq!(ready["mail"], "delayed", "{b}");
        assert_eq!(relay.messages().len(), 1, "{b}: nothing was delivered during the outage");
        // While the circuit is open the sender does not try (cool-down 4 s): no new attempt.
        let tried = relay.attempts.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(relay.attempts.load(Ordering::SeqCst), tried, "{b}: attempts while the circuit was open");
        relay.failing.store(false, Ordering::SeqCst);
        eventually(Duration::from_secs(30), &format!("{b}: all six arrive after the outage"), || async {
            relay.messages().len() == 7
        })
        .await;
        assert!(!outbox.mail_delayed(), "{b}: the circuit closed again");
        assert_eq!(server.get_json("/readyz").await["mail"], "ok", "{b}");

        // A restart: queued on a node whose relay is unreachable, delivered by the next one.
        server.stop().await;
        let dead = ok(std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()), "free port").port();
        let cut_off = TestServer::start(db.clone(), move |c| c.mail = Some(mail(dead))).await;
        let services = &cut_off.state().services;
        ok(services.outbox().queue_test_email(&tenant(), "later@example.test", &Actor::Cli).await, "queue");
        ok(services.outbox().queue_test_email(&tenant(), "refused@example.test", &Actor::Cli).await, "queue");
        cut_off.stop().await;
        let again = TestServer::start(db.clone(), move |c| c.mail = Some(mail(port))).await;
        // A claim the stopped node held waits out its lease (5 × the 1 s timeout + 5 s).
        eventually(Duration::from_secs(20), &format!("{b}: the restarted server delivers it"), || async {
            relay.messages().iter().any(|m| m.contains("To: later@example.test"))
        })
        .await;
        eventually(Duration::from_secs(5), &format!("{b}: the refused one is given up"), || async {
            let events = again.state().services.audit().recent(&tenant(), 50).await;
            events.is_ok_and(|events| events.iter().any(|e| e.action == "message.failed"))
        })
        .await;
        assert!(!relay.messages().iter().any(|m| m.contains("refused@")), "{b}");
        let events = ok(again.state().services.audit().recent(&tenant(), 50).await, "audit");
        let failed =
            events.iter().find(|e| e.action == "message.failed").map(|e| e.details.to_string()).unwrap_or_default();
        assert!(
            failed.contains("550 5.1.1") && !failed.contains("example.test"),
            "{b}: the reply code, never the address: {failed}"
        );
        again.stop().await;
    }
}
