//! `apply` links users to their accounts at upstream identity providers, on SQLite and
//! PostgreSQL: made, kept, moved to another subject or provider, and every link a document
//! must not make refused, naming where, with nothing written.

mod support;

use latchkey_config::ProviderConfig;
use latchkey_core::domain::{RoleName, SubjectId, TenantId, Username};
use latchkey_core::records::{Actor, Membership};
use latchkey_service::apply::{Action, Document, Format, Options, Summary};
use latchkey_service::testing::TestDatabase;
use latchkey_service::{Latchkey, ServiceError};
use support::{ok, services};

fn tenant() -> TenantId {
    TenantId::default_tenant()
}

fn provider(toml: &str) -> ProviderConfig {
    ok(toml::from_str(toml), "provider")
}

async fn with_providers(db: &TestDatabase, dir: &std::path::Path) -> Latchkey {
    services(db, dir, |c| {
        let corp = "kind = \"oidc\"\nname = \"Corp SSO\"\nissuer = \"https://sso.corp.example\"\nclient_id = \"latchkey\"\nclient_secret = \"s3cret-value\"\n";
        let github = "kind = \"github\"\nname = \"GitHub\"\nclient_id = \"Ov23liAbCdEfGhIjKlMn\"\nclient_secret = \"s3cret-value\"\n";
        c.federation.providers.insert("corp".into(), provider(corp));
        c.federation.providers.insert("github".into(), provider(github));
    })
    .await
}

async fn run(s: &Latchkey, toml: &str) -> Result<Summary, ServiceError> {
    let doc = Document::parse(toml, Format::Toml)?;
    s.apply().run(&tenant(), &doc, Options::default(), &Actor::Cli).await
}

async fn sub(s: &Latchkey, name: &str) -> SubjectId {
    let user = ok(s.users().by_username(&tenant(), &ok(Username::parse(name), "name")).await, "user");
    user.unwrap_or_else(|| panic!("no user {name}")).sub
}

/// The user's links as `provider:subject`.
async fn links(s: &Latchkey, name: &str) -> Vec<String> {
    let list = ok(s.federation().identities(&tenant(), &sub(s, name).await).await, "identities");
    list.iter().map(|i| format!("{}:{}", i.provider, i.subject)).collect()
}

/// A role with admin rights, as a document defines one.
const OPS: &str = "[[roles]]\nname = \"ops\"\nentitlements = [\"admin:users:write\"]\n";

fn ada(identities: &str) -> String {
    format!("[[users]]\nusername = \"ada\"\nidentities = {identities}\n")
}

#[tokio::test]
async fn a_document_links_moves_and_keeps_upstream_accounts() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let s = with_providers(&db, dir.path()).await;

        let doc = ada(r#"[{ provider = "corp", subject = "c-ada" }]"#);
        ok(run(&s, &doc).await, "apply");
        assert_eq!(links(&s, "ada").await, ["corp:c-ada"], "{b}");
        let again = ok(run(&s, &doc).await, "again");
        assert!(!again.changes_anything(), "{b}: {again:?}");

        // Another subject at the same provider replaces the link.
        let moved = ok(run(&s, &ada(r#"[{ provider = "corp", subject = "c-ada-2" }]"#)).await, "subject");
        let Action::Update { changes } = &moved.steps[0].action else { panic!("{b}: {moved:?}") };
        assert_eq!(changes[0].field, "identities", "{b}");
        assert_eq!(changes[0].before, serde_json::json!(["corp:c-ada"]), "{b}");
        assert_eq!(links(&s, "ada").await, ["corp:c-ada-2"], "{b}");

        // Another provider: linked before the old one goes, so ada (no password, no
        // passkey) has a way in throughout.
        ok(run(&s, &ada(r#"[{ provider = "github", subject = "42" }]"#)).await, "provider");
        assert_eq!(links(&s, "ada").await, ["github:42"], "{b}");

        // No link left would leave ada no way in.
        let refused = run(&s, &ada("[]")).await;
        let message = refused.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            message.contains("users[0] (ada).identities") && message.contains("no way to sign in"),
            "{b}: {message}"
        );
        assert_eq!(links(&s, "ada").await, ["github:42"], "{b}");
        // Absent: left as they are.
        assert!(!ok(run(&s, "[[users]]\nusername = \"ada\"\n").await, "absent").changes_anything(), "{b}");
        let events = ok(latchkey_service::testing::store_of(&s).recent_audit_events(&tenant(), 50).await, "audit");
        assert!(events.iter().any(|e| e.action == "identity.linked"), "{b}");
        assert!(events.iter().any(|e| e.action == "identity.unlinked"), "{b}");
        s.system().close().await;
    }
}

#[tokio::test]
async fn links_a_document_must_not_make_are_refused_with_nothing_written() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let s = with_providers(&db, dir.path()).await;
        ok(run(&s, &ada(r#"[{ provider = "corp", subject = "c-ada" }]"#)).await, "ada");
        // An administrator (made by the document, then granted the built-in role by hand).
        ok(run(&s, "[[users]]\nusername = \"root\"\n").await, "root");
        let admin =
            Membership::UserRole { sub: sub(&s, "root").await, role: ok(RoleName::parse("latchkey-admin"), "role") };
        ok(s.access().link(&tenant(), &admin, &Actor::Cli).await, "grant");

        let cases = [
            (ada(r#"[{ provider = "nowhere", subject = "1" }]"#), "users[0] (ada).identities[0].provider"),
            (
                ada(r#"[{ provider = "corp", subject = "1" }, { provider = "corp", subject = "2" }]"#),
                "listed twice",
            ),
            (ada(r#"[{ provider = "corp", subject = "has space" }]"#), "users[0].identities[0].subject"),
            (ada(r#"[{ provider = "corp", subject = "1", email = "x@example.com" }]"#), "email"),
            (
                format!("{}[[users]]\nusername = \"bob\"\nidentities = [{{ provider = \"github\", subject = \"7\" }}]\n",
                    ada(r#"[{ provider = "github", subject = "7" }]"#)),
                "listed for another user too",
            ),
            (
                "[[users]]\nusername = \"bob\"\nidentities = [{ provider = \"corp\", subject = \"c-ada\" }]\n".into(),
                "linked to user `ada`",
            ),
            (
                "[[users]]\nusername = \"robot\"\nservice_account = true\nidentities = [{ provider = \"corp\", subject = \"9\" }]\n".into(),
                "service account",
            ),
            (
                "[[users]]\nusername = \"root\"\nidentities = [{ provider = \"corp\", subject = \"c-root\" }]\n".into(),
                "latchkey-admin",
            ),
            // A role of the document's own with admin rights, to a new user directly...
            (
                format!("{OPS}[[users]]\nusername = \"mallory\"\nroles = [\"ops\"]\nidentities = [{{ provider = \"github\", subject = \"666\" }}]\n"),
                "`ops`, which confers admin rights",
            ),
            // ...or through a group the document puts the user in.
            (
                format!("{OPS}[[groups]]\nname = \"oncall\"\nroles = [\"ops\"]\nmembers = [\"ada\"]\n{}", ada(r#"[{ provider = "github", subject = "666" }]"#)),
                "`ops`, which confers admin rights",
            ),
        ];
        for (doc, named) in cases {
            let refused = run(&s, &doc).await;
            let message = refused.err().map(|e| e.to_string()).unwrap_or_else(|| format!("{b}: applied {doc}"));
            assert!(message.contains(named), "{b}: `{named}` not in: {message}");
        }
        assert_eq!(links(&s, "ada").await, ["corp:c-ada"], "{b}: unchanged");
        assert!(links(&s, "root").await.is_empty(), "{b}");
        for name in ["bob", "mallory"] {
            let user = ok(s.users().by_username(&tenant(), &ok(Username::parse(name), "name")).await, "user");
            assert!(user.is_none(), "{b}: nothing was created");
        }
        s.system().close().await;
    }
}
