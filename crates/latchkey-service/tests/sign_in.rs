//! Sign-in limits through the service alone, on SQLite and PostgreSQL: attempts are
//! reserved before an answer is checked, so parallel guesses cannot pass the limit; a
//! right answer gives its reservation back.

mod support;

use std::net::IpAddr;
use std::sync::Arc;

use latchkey_core::domain::{SubjectId, TenantId};
use latchkey_service::sign_in::{Account, Admission, Guess};
use latchkey_service::testing::TestDatabase;
use support::{ok, services};

fn limits(per_account: u32, per_ip: u32) -> impl FnOnce(&mut latchkey_config::Config) {
    move |c| {
        c.login.max_failures_per_account = per_account;
        c.login.max_failures_per_ip = per_ip;
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or_else(|_| panic!("{s}"))
}

#[tokio::test]
async fn parallel_guesses_at_one_account_never_pass_the_limit() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let s = Arc::new(services(&db, dir.path(), limits(5, 1_000)).await);
        let sub = SubjectId::generate();
        let tasks: Vec<_> = (0..25)
            .map(|i| {
                let (s, sub) = (s.clone(), sub.clone());
                tokio::spawn(async move {
                    let from = ip(&format!("192.0.2.{}", i + 1));
                    let tenant = TenantId::default_tenant();
                    match s.sign_in().reserve(&tenant, Guess::Password, Account::Known(&sub), from).await {
                        Admission::Allowed(attempt) => {
                            attempt.failed();
                            1
                        }
                        Admission::Refused => 0,
                        Admission::Unavailable => panic!("the counters are reachable"),
                    }
                })
            })
            .collect();
        let mut allowed = 0;
        for t in tasks {
            allowed += ok(t.await, "task");
        }
        assert_eq!(allowed, 5, "{b}: exactly the limit reached the check");
        s.system().close().await;
    }
}

#[tokio::test]
async fn a_right_answer_gives_its_reservation_back_and_an_unknown_name_is_limited_alike() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let s = services(&db, dir.path(), limits(2, 1_000)).await;
        let tenant = TenantId::default_tenant();
        let sub = SubjectId::generate();
        let from = ip("2001:db8:1:2::1");
        for round in 0..5 {
            match s.sign_in().reserve(&tenant, Guess::Password, Account::Known(&sub), from).await {
                Admission::Allowed(attempt) => s.sign_in().succeeded(&tenant, attempt).await,
                _ => panic!("{b}: round {round}: right answers never use up the budget"),
            }
        }
        // Two wrong answers for a name nobody has, typed in two spellings: one budget.
        for typed in ["Nobody", " nobody "] {
            match s.sign_in().reserve(&tenant, Guess::Password, Account::Unknown(typed), from).await {
                Admission::Allowed(attempt) => attempt.failed(),
                _ => panic!("{b}: within the limit"),
            }
        }
        let third = s.sign_in().reserve(&tenant, Guess::Password, Account::Unknown("NOBODY"), from).await;
        assert!(matches!(third, Admission::Refused), "{b}: the third wrong guess at an unknown name is refused");
        // Another guess kind has its own budget.
        let code = s.sign_in().reserve(&tenant, Guess::RecoveryCode, Account::Unknown("nobody"), from).await;
        assert!(matches!(code, Admission::Allowed(_)), "{b}: recovery codes count apart");
        if let Admission::Allowed(a) = code {
            a.failed();
        }
        s.system().close().await;
    }
}

#[tokio::test]
async fn counters_are_keyed_by_hashes_never_by_a_typed_name_or_an_address() {
    use sqlx::Connection as _;
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let s = services(&db, dir.path(), limits(5, 1_000)).await;
        let tenant = TenantId::default_tenant();
        for (typed, from) in [("adelheid@example.org", "198.51.100.77"), ("Adelheid@Example.org", "2001:db8:77:1::5")] {
            match s.sign_in().reserve(&tenant, Guess::Password, Account::Unknown(typed), ip(from)).await {
                Admission::Allowed(attempt) => attempt.failed(),
                _ => panic!("{b}: within the limit"),
            }
        }
        // Same address, same /64: the same counter; hashed, not in clear.
        assert_eq!(s.throttle_ip(ip("2001:db8:77:1::5")), s.throttle_ip(ip("2001:db8:77:1:ffff::1")), "{b}");
        assert_ne!(s.throttle_ip(ip("198.51.100.77")), s.throttle_ip(ip("198.51.100.78")), "{b}");
        s.system().close().await;
        let sql = "SELECT throttle_key FROM login_failures";
        let keys: Vec<String> = if b == "postgres" {
            let mut conn = ok(sqlx::PgConnection::connect(&db.url).await, "connect");
            ok(sqlx::query_scalar(sql).fetch_all(&mut conn).await, "keys")
        } else {
            let mut conn = ok(sqlx::SqliteConnection::connect(&db.url).await, "connect");
            ok(sqlx::query_scalar(sql).fetch_all(&mut conn).await, "keys")
        };
        assert_eq!(keys.len(), 3, "{b}: one name (both spellings), two addresses: {keys:?}");
        for clear in ["adelheid", "198.51.100", "2001:db8", "example.org"] {
            assert!(keys.iter().all(|k| !k.to_lowercase().contains(clear)), "{b}: `{clear}` in {keys:?}");
        }
    }
}

#[tokio::test]
async fn failed_and_refused_attempts_reach_the_audit_log_one_entry_per_account_per_period() {
    use latchkey_core::records::{Actor, AuditQuery};
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let s = services(&db, dir.path(), limits(3, 1_000)).await;
        let tenant = TenantId::default_tenant();
        let ada =
            ok(s.users().create(&tenant, latchkey_service::testing::sample_user("ada"), &Actor::Cli).await, "ada");
        let from = ip("192.0.2.9");
        // Five wrong passwords at ada: three are checked, two refused. Two at a name that is
        // no account, and one wrong recovery code at ada.
        for _ in 0..5 {
            if let Admission::Allowed(a) =
                s.sign_in().reserve(&tenant, Guess::Password, Account::Known(&ada.sub), from).await
            {
                a.failed();
            }
        }
        for name in ["ghost", "spectre"] {
            if let Admission::Allowed(a) =
                s.sign_in().reserve(&tenant, Guess::Password, Account::Unknown(name), from).await
            {
                a.failed();
            }
        }
        if let Admission::Allowed(a) =
            s.sign_in().reserve(&tenant, Guess::RecoveryCode, Account::Known(&ada.sub), from).await
        {
            a.failed();
        }
        assert_eq!(ok(s.failed_sign_ins().report().await, "report"), 2, "{b}: ada, and the unknown names");
        assert_eq!(ok(s.failed_sign_ins().report().await, "report"), 0, "{b}: nothing new");
        let q = AuditQuery { action: Some("sign_in.failed".into()), limit: 10, ..AuditQuery::default() };
        let events = ok(s.audit().query(&tenant, &q).await, "audit");
        let about = |target: &str| events.iter().find(|(_, e)| e.target == target).map(|(_, e)| e.details.clone());
        let ada_entry = about(ada.sub.as_str()).unwrap_or_else(|| panic!("{b}: {events:?}"));
        assert_eq!(ada_entry["attempts"]["password"], serde_json::json!({"failed": 3, "refused": 2}), "{b}");
        assert_eq!(ada_entry["attempts"]["recovery_code"], serde_json::json!({"failed": 1, "refused": 0}), "{b}");
        let unknown = about(latchkey_service::failed_sign_ins::UNKNOWN_ACCOUNTS).unwrap_or_else(|| panic!("{b}"));
        assert_eq!(unknown["attempts"]["password"]["failed"], 2, "{b}: {unknown}");
        assert!(!unknown.to_string().contains("ghost"), "{b}: no typed name is kept");
        s.system().close().await;
    }
}
