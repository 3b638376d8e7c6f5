//! Erasing a person (GDPR Art. 17): everything tied to the account goes in one
//! transaction, the audit chain keeps its entries (unreadable) and still verifies, and the
//! receipt holds none of the erased data. On SQLite and PostgreSQL.

mod support;

use latchkey_core::domain::{ClientKind, Email, TenantId};
use latchkey_core::records::{Actor, AuditQuery};
use latchkey_service::ServiceError;
use latchkey_service::consents::Asked;
use latchkey_service::sessions::SignedIn;
use latchkey_service::sign_in::{Account, Admission, Guess};
use latchkey_service::testing::{TestDatabase, sample_client, sample_user};
use support::{ok, services};

#[tokio::test]
async fn a_person_erases_their_account_and_nothing_of_them_is_left_but_the_receipt() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let s = services(&db, dir.path(), |_| {}).await;
        let tenant = TenantId::default_tenant();
        let mut new = sample_user("adelheid_lovelace");
        new.email = Some(ok(Email::parse("adelheid.lovelace@example.org"), "email"));
        let ada = ok(s.users().create(&tenant, new, &Actor::Cli).await, "ada");
        let bob = ok(s.users().create(&tenant, sample_user("bartholomew_b"), &Actor::Cli).await, "bob");
        let app = sample_client("app", ClientKind::Confidential, "https://app.example/cb");
        let app = ok(s.clients().create(&tenant, app, &Actor::Cli).await, "client");
        let me = Actor::User(ada.sub.to_string());
        let scopes = vec!["openid".to_owned()];
        let asked = Asked { scopes: &scopes, claims: None, prompt_consent: false };
        ok(s.consents().grant(&tenant, &ada.sub, &app.client_id, &asked, &me).await, "consent");
        ok(
            s.consents().grant(&tenant, &bob.sub, &app.client_id, &asked, &Actor::User(bob.sub.to_string())).await,
            "bob",
        );
        let signed_in = SignedIn {
            sub: ada.sub.clone(),
            amr: vec!["pwd".into()],
            acr: "1".into(),
            remember: false,
            user_agent: None,
            ip: None,
            authenticated_at: None,
        };
        ok(s.sessions().start(&tenant, None, signed_in).await, "session");
        let from = "192.0.2.5".parse().unwrap_or_else(|_| panic!("ip"));
        if let Admission::Allowed(a) =
            s.sign_in().reserve(&tenant, Guess::Password, Account::Known(&ada.sub), from).await
        {
            a.failed();
        }

        // Message-limit counters about her, and one about another account whose id starts
        // like hers.
        let hash = "a".repeat(64);
        let keys = [
            format!("message:sign_in_link:key:{}:{hash}", ada.sub),
            format!("message:recovery_code:key:sent:{}:{hash}", ada.sub),
            format!("message:sign_in_link:key:{}", ada.sub),
            format!("message:sign_in_link:key:{}x:{hash}", ada.sub),
        ];
        raw(&db, &keys.iter().map(|k| format!(
            "INSERT INTO login_failures (tenant_id, throttle_key, failures, window_start) VALUES ('default', '{k}', 1, 1800000000)"
        )).collect::<Vec<_>>()).await;

        let receipt = ok(s.erasure().erase(&tenant, &ada.sub, &me).await, "erase");
        let left = raw_keys(&db).await;
        assert!(left.contains(&keys[3]), "{b}: another account's counter stays: {left:?}");
        assert!(
            !left.iter().any(|k| keys[..3].contains(k) || k.contains(&format!(":sub:{}", ada.sub))),
            "{b}: {left:?}"
        );
        for (kind, n) in
            [("account", 1), ("consents", 1), ("consent_history", 1), ("sessions", 1), ("audit_entry_keys", 1)]
        {
            assert_eq!(receipt.removed.get(kind).copied(), Some(n), "{b}: {kind} in {receipt:?}");
        }
        assert!(receipt.removed.get("throttle_entries").copied().unwrap_or(0) >= 1, "{b}: {receipt:?}");
        assert_eq!(receipt.by, "self", "{b}: erased by themselves, not by id");
        let shown = serde_json::to_string(&receipt).unwrap_or_default();
        assert!(!shown.contains("adelheid") && !shown.contains(ada.sub.as_str()), "{b}: {shown}");

        // Gone, and a second erasure finds nobody.
        assert!(ok(s.users().by_sub(&tenant, &ada.sub).await, "by sub").is_none(), "{b}");
        assert!(ok(s.consents().history(&tenant, &ada.sub).await, "history").is_empty(), "{b}");
        let again = s.erasure().erase(&tenant, &ada.sub, &Actor::Cli).await;
        assert!(matches!(again, Err(ServiceError::NotFound(_))), "{b}: {again:?}");
        // Bob keeps his consent.
        assert!(ok(s.consents().get(&tenant, &bob.sub, &app.client_id).await, "bob").is_some(), "{b}");

        // The chain still verifies; her entries are there and unreadable; the receipt's
        // entry reads, naming her only by pseudonym.
        ok(s.audit().seal(false).await, "seal");
        let v = ok(s.audit().verify(&tenant, None).await, "verify");
        assert!(v.intact(), "{b}: {:?}", v.problems);
        let about_her = AuditQuery { target: Some(ada.sub.to_string()), limit: 50, ..AuditQuery::default() };
        let hers = ok(s.audit().query(&tenant, &about_her).await, "audit");
        assert!(hers.len() >= 3 && hers.iter().all(|(_, e)| e.erased), "{b}: {hers:?}");
        let erased = AuditQuery { action: Some("user.erased".into()), limit: 5, ..AuditQuery::default() };
        let entry = ok(s.audit().query(&tenant, &erased).await, "audit");
        assert_eq!(entry.len(), 1, "{b}");
        assert_eq!(entry[0].1.details["subject_ref"], receipt.subject_ref.as_str(), "{b}");
        assert!(!entry[0].1.erased, "{b}: the receipt stays readable");
        assert!(!format!("{:?}", entry[0].1).contains(ada.sub.as_str()), "{b}: {:?}", entry[0].1);

        // Something written about her afterwards (an operator looking her up) is kept
        // without content, not under a new key, and reading the log still works.
        ok(
            s.audit()
                .record(&tenant, &Actor::Cli, "admin.read", ada.sub.as_str(), serde_json::json!({"what": "x"}))
                .await,
            "read",
        );
        let hers = ok(s.audit().query(&tenant, &about_her).await, "audit after");
        assert!(hers.iter().all(|(_, e)| e.erased), "{b}: {hers:?}");
        ok(s.audit().seal(false).await, "seal");
        assert!(ok(s.audit().verify(&tenant, None).await, "verify").intact(), "{b}");
    }
}

#[tokio::test]
async fn an_operator_erases_a_user_but_never_the_last_administrator() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let s = services(&db, dir.path(), |_| {}).await;
        let tenant = TenantId::default_tenant();
        let ada = ok(s.users().create(&tenant, sample_user("ada"), &Actor::Cli).await, "ada");
        let role = ok(latchkey_core::domain::RoleName::parse("latchkey-admin"), "role");
        let admin = latchkey_core::records::Membership::UserRole { sub: ada.sub.clone(), role };
        ok(s.access().link(&tenant, &admin, &Actor::Cli).await, "grant");
        let refused = s.erasure().erase(&tenant, &ada.sub, &Actor::Cli).await;
        assert!(refused.is_err(), "{b}: the last administrator: {refused:?}");
        assert!(ok(s.users().by_sub(&tenant, &ada.sub).await, "ada").is_some(), "{b}: nothing changed");
        let bob = ok(s.users().create(&tenant, sample_user("bob"), &Actor::Cli).await, "bob");
        let receipt = ok(s.erasure().erase(&tenant, &bob.sub, &Actor::Cli).await, "erase bob");
        assert_eq!(receipt.by, "cli", "{b}");
    }
}

#[tokio::test]
async fn a_persons_export_holds_everything_about_them_and_no_secret_or_other_person() {
    use latchkey_core::records::NewPasskey;
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let s = services(&db, dir.path(), |_| {}).await;
        let tenant = TenantId::default_tenant();
        let mut new = sample_user("adelheid");
        new.email = Some(ok(Email::parse("adelheid@example.org"), "email"));
        let ada = ok(s.users().create(&tenant, new, &Actor::Cli).await, "ada");
        let me = Actor::User(ada.sub.to_string());
        let passkey = NewPasskey {
            credential_id: "cred-ada-1".into(),
            name: "Work laptop".into(),
            credential: r#"{"secret_key_material":"never-exported"}"#.into(),
            sign_count: 0,
            backup_eligible: true,
            backup_state: true,
        };
        ok(s.factors().add_passkey(&tenant, &ada.sub, passkey, &me).await, "passkey");
        let app = sample_client("notes", ClientKind::Confidential, "https://notes.example/cb");
        let app = ok(s.clients().create(&tenant, app, &Actor::Cli).await, "client");
        let scopes = vec!["openid".to_owned(), "email".to_owned()];
        let asked = Asked { scopes: &scopes, claims: None, prompt_consent: false };
        ok(s.consents().grant(&tenant, &ada.sub, &app.client_id, &asked, &me).await, "consent");
        // An operator acted on her: named in the export only as an administrator.
        let admin = Actor::AdminApi { client_id: "ops".into(), sub: Some("admin-person-77".into()) };
        ok(s.users().change_state(&tenant, &ada.sub, latchkey_service::users::StateChange::Lock, &admin).await, "lock");

        let doc = ok(s.data_export().of(&tenant, &ada.sub, &me).await, "export");
        let text = doc.to_string();
        assert_eq!(doc["profile"]["email"]["address"], "adelheid@example.org", "{b}");
        assert_eq!(doc["sign_in"]["passkeys"][0]["name"], "Work laptop", "{b}: {doc:#}");
        assert_eq!(doc["sign_in"]["passkeys"][0]["synced"], true, "{b}");
        assert_eq!(doc["consents"][0]["app"], "notes", "{b}");
        assert!(doc["last_sign_in_at"].as_str().is_some_and(|t| t.len() >= 20), "{b}: {doc:#}");
        assert_eq!(doc["told_unused_at"], serde_json::Value::Null, "{b}");
        assert_eq!(doc["retention"]["unused_account"], "kept however long it goes unused", "{b}");
        assert_eq!(doc["consent_history"].as_array().map(Vec::len), Some(1), "{b}");
        let claims = doc["recipients"][0]["claims"].as_array().cloned().unwrap_or_default();
        assert!(
            claims.contains(&serde_json::json!("email")) && claims.contains(&serde_json::json!("sub")),
            "{b}: {claims:?}"
        );
        let entries = doc["audit_entries"]["entries"].as_array().cloned().unwrap_or_default();
        assert!(
            entries.iter().any(|e| e["action"] == "user.locked" && e["by"] == "an administrator"),
            "{b}: {entries:?}"
        );
        assert!(entries.iter().any(|e| e["action"] == "passkey.added" && e["by"] == "you"), "{b}");
        for never in ["never-exported", "secret_key_material", "admin-person-77", "password_hash"] {
            assert!(!text.contains(never), "{b}: `{never}` in the export");
        }
        // The export itself is on record; an unknown person has no export.
        let q = AuditQuery { action: Some("user.exported".into()), limit: 5, ..AuditQuery::default() };
        assert_eq!(ok(s.audit().query(&tenant, &q).await, "audit").len(), 1, "{b}");
        let nobody = latchkey_core::domain::SubjectId::generate();
        assert!(
            matches!(s.data_export().of(&tenant, &nobody, &Actor::Cli).await, Err(ServiceError::NotFound(_))),
            "{b}"
        );
    }
}

async fn raw(db: &TestDatabase, statements: &[String]) {
    use sqlx::Connection as _;
    if db.backend == "postgres" {
        let mut conn = ok(sqlx::PgConnection::connect(&db.url).await, "connect");
        for sql in statements {
            ok(sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).execute(&mut conn).await, sql);
        }
    } else {
        let mut conn = ok(sqlx::SqliteConnection::connect(&db.url).await, "connect");
        for sql in statements {
            ok(sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).execute(&mut conn).await, sql);
        }
    }
}

async fn raw_keys(db: &TestDatabase) -> Vec<String> {
    use sqlx::Connection as _;
    let sql = "SELECT throttle_key FROM login_failures";
    if db.backend == "postgres" {
        let mut conn = ok(sqlx::PgConnection::connect(&db.url).await, "connect");
        ok(sqlx::query_scalar(sql).fetch_all(&mut conn).await, "keys")
    } else {
        let mut conn = ok(sqlx::SqliteConnection::connect(&db.url).await, "connect");
        ok(sqlx::query_scalar(sql).fetch_all(&mut conn).await, "keys")
    }
}
