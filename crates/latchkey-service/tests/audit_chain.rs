//! The tamper-evident audit log: an untouched chain verifies, and a changed, deleted or
//! inserted row, or a cut-off tail, written straight into the database (as a person who can
//! write it but holds no master key would), is found and named. On SQLite and PostgreSQL.

mod support;

use latchkey_core::domain::TenantId;
use latchkey_core::records::Actor;
use latchkey_service::Latchkey;
use latchkey_service::audit::{ChainProblem, Verification};
use latchkey_service::testing::{TestDatabase, sample_user, store_of};
use sqlx::Connection as _;
use support::{ok, services};

/// Runs statements on the test database directly, outside Latchkey.
async fn tamper(db: &TestDatabase, statements: &[&str]) {
    if db.backend == "postgres" {
        let mut conn = ok(sqlx::PgConnection::connect(&db.url).await, "connect");
        for sql in statements {
            ok(sqlx::query(sqlx::AssertSqlSafe(*sql)).execute(&mut conn).await, sql);
        }
    } else {
        let mut conn = ok(sqlx::SqliteConnection::connect(&db.url).await, "connect");
        for sql in statements {
            ok(sqlx::query(sqlx::AssertSqlSafe(*sql)).execute(&mut conn).await, sql);
        }
    }
}

async fn verify(s: &Latchkey, expect: Option<i64>) -> Verification {
    ok(s.audit().verify(&TenantId::default_tenant(), expect).await, "verify")
}

/// Six users created and chained, then a checkpoint: seven entries.
async fn chain_of_seven(s: &Latchkey) {
    for name in ["ada", "bob", "cyd", "dee", "eve", "fay"] {
        ok(s.users().create(&TenantId::default_tenant(), sample_user(name), &Actor::Cli).await, name);
    }
    ok(s.audit().seal(true).await, "seal");
}

#[tokio::test]
async fn an_untouched_chain_verifies_and_every_kind_of_tampering_is_named() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let s = services(&db, dir.path(), |_| {}).await;
        chain_of_seven(&s).await;
        let v = verify(&s, None).await;
        assert!(v.intact(), "{b}: untouched: {:?}", v.problems);
        assert_eq!((v.entries, v.first_seq, v.last_seq), (7, 1, 7), "{b}");
        assert_eq!(v.newest_checkpoint.map(|c| c.0), Some(7), "{b}: the checkpoint is the newest entry");

        // A changed field.
        tamper(&db, &["UPDATE audit_log SET at = at + 1 WHERE seq = 3"]).await;
        assert_eq!(verify(&s, None).await.problems, vec![ChainProblem::Changed { seq: 3 }], "{b}: changed time");
        tamper(&db, &["UPDATE audit_log SET at = at - 1 WHERE seq = 3"]).await;
        assert!(verify(&s, None).await.intact(), "{b}: restored");

        // Another entry's ciphertext put in its place.
        tamper(&db, &["UPDATE audit_log SET sealed = (SELECT sealed FROM audit_log WHERE seq = 2) WHERE seq = 4"])
            .await;
        assert_eq!(verify(&s, None).await.problems, vec![ChainProblem::Changed { seq: 4 }], "{b}: swapped content");
    }
}

#[tokio::test]
async fn deleted_inserted_and_cut_off_entries_are_named() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let s = services(&db, dir.path(), |_| {}).await;
        chain_of_seven(&s).await;

        // One entry deleted from the middle.
        tamper(
            &db,
            &["CREATE TABLE kept AS SELECT * FROM audit_log WHERE seq = 4", "DELETE FROM audit_log WHERE seq = 4"],
        )
        .await;
        assert_eq!(verify(&s, None).await.problems, vec![ChainProblem::Missing { from: 4, to: 4 }], "{b}: deleted");
        tamper(&db, &["INSERT INTO audit_log SELECT * FROM kept", "DROP TABLE kept"]).await;
        assert!(verify(&s, None).await.intact(), "{b}: put back");

        // A row added past the head, then the head moved to it as well.
        let copy =
            "INSERT INTO audit_log (tenant_id, seq, at, action, actor_ref, target_ref, sealed, nonce, entry_mac, mac)
                    SELECT tenant_id, 8, at, action, actor_ref, target_ref, sealed, nonce, entry_mac || 'x', mac
                    FROM audit_log WHERE seq = 2";
        tamper(&db, &[copy]).await;
        assert_eq!(
            verify(&s, None).await.problems,
            vec![ChainProblem::BeyondHead { head: 7, last: 8 }],
            "{b}: inserted"
        );
        tamper(&db, &["UPDATE audit_chains SET seq = 8, mac = (SELECT mac FROM audit_log WHERE seq = 8)"]).await;
        assert_eq!(
            verify(&s, None).await.problems,
            vec![ChainProblem::Changed { seq: 8 }],
            "{b}: inserted, head moved"
        );
        tamper(
            &db,
            &[
                "DELETE FROM audit_log WHERE seq = 8",
                "UPDATE audit_chains SET seq = 7, mac = (SELECT mac FROM audit_log WHERE seq = 7)",
            ],
        )
        .await;
        assert!(verify(&s, None).await.intact(), "{b}: removed again");

        // The newest two entries cut off: the chain row still names the head.
        tamper(&db, &["DELETE FROM audit_log WHERE seq >= 6"]).await;
        assert_eq!(verify(&s, None).await.problems, vec![ChainProblem::TailCut { last: 5, head: 7 }], "{b}: cut");
        // With the chain row rewritten too, what is left is consistent; the head seen
        // before (the metric) still shows the cut.
        tamper(&db, &["UPDATE audit_chains SET seq = 5, mac = (SELECT mac FROM audit_log WHERE seq = 5)"]).await;
        assert!(verify(&s, None).await.intact(), "{b}: a consistent prefix");
        assert_eq!(
            verify(&s, Some(7)).await.problems,
            vec![ChainProblem::ShorterThanSeen { expected: 7, found: 5 }],
            "{b}: seen at 7 before"
        );

        // A second row at a taken position (the unique index dropped first).
        tamper(&db, &["DROP INDEX audit_log_position", "DROP INDEX audit_log_entry_mac",
            "INSERT INTO audit_log (tenant_id, seq, at, action, actor_ref, target_ref, sealed, nonce, entry_mac, mac)
             SELECT tenant_id, 3, at, action, actor_ref, target_ref, sealed, nonce, entry_mac, mac FROM audit_log WHERE seq = 2"]).await;
        let problems = verify(&s, None).await.problems;
        assert!(problems.contains(&ChainProblem::Duplicate { seq: 3 }), "{b}: {problems:?}");

        // A forged row slipped in while waiting is refused by the writer and named.
        tamper(
            &db,
            &["INSERT INTO audit_log (tenant_id, at, action, actor_ref, target_ref, sealed, nonce, entry_mac)
             VALUES ('default', 1800000000, 'user.created', 'p_x', 'p_y', '', 'n', 'deadbeef')"],
        )
        .await;
        ok(s.audit().seal(false).await, "seal");
        let problems = verify(&s, None).await.problems;
        assert!(
            problems.iter().any(|p| matches!(p, ChainProblem::Refused { ids } if ids.len() == 1)),
            "{b}: {problems:?}"
        );

        // The head row deleted: named, and the writer does not start a new chain over it.
        tamper(&db, &["DELETE FROM audit_chains"]).await;
        assert!(verify(&s, None).await.problems.contains(&ChainProblem::HeadMissing), "{b}");
        assert!(s.audit().seal(false).await.is_err(), "{b}: no new genesis over old entries");
    }
}

#[tokio::test]
async fn entries_wait_for_the_writer_and_an_erased_subject_leaves_a_chain_that_verifies() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let s = services(&db, dir.path(), |_| {}).await;
        let tenant = TenantId::default_tenant();
        // Long names: a short one could turn up in base64 by chance.
        let ada = ok(s.users().create(&tenant, sample_user("adelheid_lovelace"), &Actor::Cli).await, "ada");
        ok(s.users().create(&tenant, sample_user("bartholomew_b"), &Actor::Cli).await, "bob");
        let store = store_of(&s);
        assert_eq!(ok(store.unsealed_audit_entries(&tenant).await, "waiting").0, 2, "{b}: written, not yet chained");
        let events = ok(s.audit().recent(&tenant, 10).await, "recent");
        assert!(events.iter().all(|e| e.seq.is_none() && !e.erased), "{b}: readable before chaining");
        ok(s.audit().seal(false).await, "seal");
        assert_eq!(ok(store.unsealed_audit_entries(&tenant).await, "waiting").0, 0, "{b}: chained");

        // Nothing personal is stored in clear.
        let raw = raw_rows(&db).await;
        assert!(!raw.is_empty(), "{b}");
        for needle in ["adelheid_lovelace", "bartholomew_b", ada.sub.as_str()] {
            assert!(!raw.iter().any(|r| r.contains(needle)), "{b}: `{needle}` in clear in {raw:?}");
        }

        // Deleting ada's key (as erasure does) leaves her entries in the chain, unreadable.
        let ada_ref = s.audit_keys.pseudonym(tenant.as_str(), ada.sub.as_str());
        let delete = format!("DELETE FROM audit_subject_keys WHERE subject_ref = '{ada_ref}'");
        tamper(&db, &[delete.as_str()]).await;
        let v = verify(&s, None).await;
        assert!(v.intact(), "{b}: {:?}", v.problems);
        let events = ok(s.audit().recent(&tenant, 10).await, "recent");
        let about_ada: Vec<_> = events.iter().filter(|e| e.target == ada_ref).collect();
        assert_eq!(about_ada.len(), 1, "{b}: {events:?}");
        assert!(about_ada[0].erased && about_ada[0].details == serde_json::json!({}), "{b}");
        assert!(
            events.iter().any(|e| e.action == "user.created" && !e.erased && e.actor == "cli"),
            "{b}: bob's entry still opens"
        );
    }
}

async fn raw_rows(db: &TestDatabase) -> Vec<String> {
    let sql = "SELECT actor_ref || ' ' || target_ref || ' ' || sealed FROM audit_log";
    if db.backend == "postgres" {
        let mut conn = ok(sqlx::PgConnection::connect(&db.url).await, "connect");
        ok(sqlx::query_scalar(sql).fetch_all(&mut conn).await, "rows")
    } else {
        let mut conn = ok(sqlx::SqliteConnection::connect(&db.url).await, "connect");
        ok(sqlx::query_scalar(sql).fetch_all(&mut conn).await, "rows")
    }
}

#[tokio::test]
async fn concurrent_writers_and_sealers_give_one_dense_chain() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let s = std::sync::Arc::new(services(&db, dir.path(), |c| c.database.max_connections = 8).await);
        let mut tasks = Vec::new();
        for i in 0..24 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                let tenant = TenantId::default_tenant();
                ok(s.users().create(&tenant, sample_user(&format!("user{i}")), &Actor::Cli).await, "create");
                ok(s.audit().seal(false).await, "seal");
            }));
        }
        for t in tasks {
            ok(t.await, "task");
        }
        ok(s.audit().seal(false).await, "seal");
        let v = verify(&s, None).await;
        assert!(v.intact(), "{b}: {:?}", v.problems);
        // 24 entries, and the checkpoints the sealers wrote (one per sealing run at most).
        assert!(v.entries >= 24 && v.last_seq == i64::try_from(v.entries).unwrap_or(0), "{b}: {v:?}");
        assert_eq!(v.waiting, 0, "{b}");
    }
}

#[tokio::test]
async fn the_log_kept_before_the_chain_is_moved_into_it() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let s = services(&db, dir.path(), |_| {}).await;
        tamper(
            &db,
            &["INSERT INTO audit_events (tenant_id, at, actor, action, target, details) VALUES
               ('default', 1700000000, 'cli', 'user.created', 'sub-old', '{\"username\":\"old\"}'),
               ('default', 1700000001, 'user:sub-old', 'passkey.added', 'sub-old', '{}')"],
        )
        .await;
        let store = store_of(&s);
        assert_eq!(ok(store.adopt_legacy_audit_events(1).await, "adopt"), 1, "{b}: a batch of one");
        assert_eq!(ok(store.adopt_legacy_audit_events(10).await, "adopt"), 1, "{b}: the rest");
        assert_eq!(ok(store.adopt_legacy_audit_events(10).await, "adopt"), 0, "{b}: none left");
        ok(s.audit().seal(false).await, "seal");
        assert!(verify(&s, None).await.intact(), "{b}");
        let events = ok(s.audit().recent(&TenantId::default_tenant(), 10).await, "recent");
        let old: Vec<_> =
            events.iter().filter(|e| e.target == "sub-old").map(|e| (e.action.as_str(), e.at.secs())).collect();
        assert_eq!(old, vec![("passkey.added", 1_700_000_001), ("user.created", 1_700_000_000)], "{b}: {events:?}");
        assert!(raw_rows(&db).await.iter().all(|r| !r.contains("sub-old")), "{b}: sealed like new entries");
    }
}

#[tokio::test]
async fn retention_trims_old_entries_and_what_is_kept_still_verifies() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let s = services(&db, dir.path(), |_| {}).await;
        let tenant = TenantId::default_tenant();
        // Three entries from 2023 (the log kept before the chain), chained first.
        tamper(
            &db,
            &[
                "INSERT INTO audit_events (tenant_id, at, actor, action, target, details) VALUES
               ('default', 1690000000, 'cli', 'user.created', 'sub-old', '{}'),
               ('default', 1690000001, 'cli', 'user.locked', 'sub-old', '{}'),
               ('default', 1690000002, 'cli', 'user.unlocked', 'sub-old', '{}')",
                "INSERT INTO invitations (tenant_id, token_hash, id, created_at, expires_at, used_at, used_by) VALUES
               ('default', 'h-used', 'inv-used', 1690000000, 1690086400, 1690000100, 'someone'),
               ('default', 'h-expired', 'inv-expired', 1690000000, 1690086400, NULL, NULL),
               ('default', 'h-live', 'inv-live', 1690000000, 4102444800, NULL, NULL)",
            ],
        )
        .await;
        ok(store_of(&s).adopt_legacy_audit_events(10).await, "adopt");
        ok(s.audit().seal(false).await, "seal");
        ok(s.users().create(&tenant, sample_user("ada"), &Actor::Cli).await, "ada");
        ok(s.audit().seal(false).await, "seal");
        let before = verify(&s, None).await;
        assert!(before.intact(), "{b}: {:?}", before.problems);

        let dry = ok(s.retention().run(true).await, "dry run");
        assert_eq!(dry.removed.get("audit_entries"), Some(&3), "{b}: {dry:?}");
        assert_eq!(dry.removed.get("used_invitations"), Some(&2), "{b}: {dry:?}");
        assert_eq!(verify(&s, None).await.entries, before.entries, "{b}: a dry run deletes nothing");

        let done = ok(s.retention().run(false).await, "retention");
        assert_eq!(done.removed.get("audit_entries"), Some(&3), "{b}: {done:?}");
        assert_eq!(done.removed.get("used_invitations"), Some(&2), "{b}");
        let again = ok(s.retention().run(true).await, "dry run");
        assert_eq!(again.removed.get("audit_entries"), Some(&0), "{b}: nothing left to trim");
        ok(s.audit().seal(false).await, "seal");
        let after = verify(&s, None).await;
        assert!(after.intact(), "{b}: what is kept verifies from the signed base: {:?}", after.problems);
        assert_eq!(after.first_seq, 4, "{b}");
        let left = ok(s.invitations().list(&tenant).await, "invitations");
        assert_eq!(left.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), ["inv-live"], "{b}");

        // The base cannot be moved without the signing key.
        tamper(&db, &["UPDATE audit_chains SET base_seq = 2"]).await;
        assert!(verify(&s, None).await.problems.contains(&ChainProblem::BadBase { seq: 2 }), "{b}");
    }
}

#[tokio::test]
async fn an_export_holds_every_entry_not_one_page() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let s = services(&db, dir.path(), |_| {}).await;
        let tenant = TenantId::default_tenant();
        for i in 0..450 {
            ok(
                s.audit().record(&tenant, &Actor::Cli, "test.event", "#target", serde_json::json!({"i": i})).await,
                "record",
            );
        }
        let mut seen = Vec::new();
        let q = latchkey_core::records::AuditQuery { action: Some("test.event".into()), ..Default::default() };
        let written = s
            .audit()
            .export(&tenant, &q, &Actor::Cli, |(_, e)| {
                seen.push(e.details["i"].as_i64().unwrap_or(-1));
                Ok::<_, latchkey_service::ServiceError>(())
            })
            .await;
        assert_eq!(ok(written, "export"), 450, "{b}");
        assert_eq!(seen, (0..450).collect::<Vec<i64>>(), "{b}: all of them, oldest first");
    }
}
