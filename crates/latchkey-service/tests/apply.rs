//! `apply`, through the service alone, on SQLite and PostgreSQL: a document creates what it
//! lists, a second run changes nothing, one changed setting is the only change, `prune`
//! removes only what `apply` created, and a bad document is refused whole, naming where,
//! with nothing written.

mod support;

use std::collections::BTreeSet;

use latchkey_core::domain::{AdminScope, ClientId, GroupName, RoleName, TenantId, Username};
use latchkey_core::records::{Actor, NewRole};
use latchkey_service::admin::AdminCaller;
use latchkey_service::apply::{Action, Document, Format, ObjectKind, Options, SecretRef, Summary};
use latchkey_service::testing::TestDatabase;
use latchkey_service::{Latchkey, ServiceError, clients};
use support::{ok, services};

const BATCH_SECRET: &str = "a-secret-from-the-environment-0123456789";

fn tenant() -> TenantId {
    TenantId::default_tenant()
}

/// A document as an operator writes it, with `secret = "env:BATCH"` read as the CLI would.
fn document(toml: &str) -> Document {
    let mut doc = ok(Document::parse(toml, Format::Toml), "document");
    let read = |r: &SecretRef| match r {
        SecretRef::Env(name) if name == "BATCH" => Ok(BATCH_SECRET.to_owned()),
        other => Err(format!("unexpected reference {other:?}")),
    };
    ok(doc.resolve_secrets(read), "secrets");
    doc
}

const SHOP: &str = r#"
[[scopes]]
name = "orders:read"
description = "Read your orders"

[[roles]]
name = "editor"
description = "Edits the catalogue"
entitlements = ["catalogue:write"]

# A role of a client the same document creates, required by that client.
[[roles]]
name = "shop-admin"
application = "shop"

[[clients]]
client_id = "shop"
name = "Shop"
redirect_uris = ["https://shop.example/cb"]
scopes = ["openid", "orders:read"]
access = { release_roles = true, required_roles = { roles = ["shop-admin", "editor"] } }

[[clients]]
client_id = "batch"
name = "Batch"
grant_types = ["client_credentials"]
scopes = ["orders:read"]
secret = "env:BATCH"

[[resources]]
identifier = "https://api.example/orders"
name = "Orders API"
scopes = ["orders:read"]
client_id = "batch"

[[groups]]
name = "staff"
description = "Everyone at the shop"
roles = ["shop-admin"]
members = ["ada"]

[[users]]
username = "ada"
email = "ada@example.com"
name = "Ada Lovelace"
roles = ["editor"]
"#;

async fn run(s: &Latchkey, doc: &Document, options: Options) -> Result<Summary, ServiceError> {
    s.apply().run(&tenant(), doc, options, &Actor::Cli).await
}

fn actions(summary: &Summary) -> Vec<(ObjectKind, String, &'static str)> {
    summary
        .steps
        .iter()
        .map(|s| {
            let a = match s.action {
                Action::Create => "create",
                Action::Update { .. } => "update",
                Action::Unchanged => "unchanged",
                Action::Delete => "delete",
            };
            (s.kind, s.name.clone(), a)
        })
        .collect()
}

fn id(raw: &str) -> ClientId {
    ok(ClientId::parse(raw), "client id")
}

#[tokio::test]
async fn a_document_is_applied_once_and_a_second_run_changes_nothing() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let s = services(&db, dir.path(), |_| {}).await;
        let doc = document(SHOP);

        let planned = ok(run(&s, &doc, Options { dry_run: true, prune: false }).await, "dry run");
        assert_eq!(planned.steps.len(), 8, "{b}");
        assert!(planned.steps.iter().all(|s| s.action == Action::Create), "{b}: {planned:?}");
        assert!(planned.secrets.is_empty(), "{b}: a dry run shows no secret");
        assert!(ok(s.clients().get(&tenant(), &id("shop")).await, "get").is_none(), "{b}: a dry run writes nothing");

        let done = ok(run(&s, &doc, Options::default()).await, "apply");
        assert!(done.changes_anything(), "{b}");
        // The shop authenticates with a secret it did not give: one is made and shown once.
        assert_eq!(done.secrets.len(), 1, "{b}: {:?}", done.secrets);
        assert_eq!(done.secrets[0].client_id, id("shop"), "{b}");
        let shop = ok(s.clients().get(&tenant(), &id("shop")).await, "shop").unwrap_or_else(|| panic!("{b}: shop"));
        assert_eq!(
            shop.secret_hash,
            Some(clients::secret_hash(&s.token_hasher, &done.secrets[0].client_secret)),
            "{b}"
        );
        let required: BTreeSet<String> = shop
            .access_policy
            .required_roles
            .as_ref()
            .map(|r| r.roles().iter().map(ToString::to_string).collect())
            .unwrap_or_default();
        assert_eq!(required, BTreeSet::from(["editor".to_owned(), "shop-admin".to_owned()]), "{b}");
        let batch = ok(s.clients().get(&tenant(), &id("batch")).await, "batch").unwrap_or_else(|| panic!("{b}: batch"));
        assert_eq!(batch.secret_hash, Some(clients::secret_hash(&s.token_hasher, BATCH_SECRET)), "{b}");
        let role = ok(s.access().role(&tenant(), &ok(RoleName::parse("shop-admin"), "role")).await, "role");
        assert_eq!(role.and_then(|r| r.application), Some(id("shop")), "{b}");
        let resources = ok(s.resources().list(&tenant()).await, "resources");
        assert!(
            resources.iter().any(|r| r.identifier == "https://api.example/orders" && r.client_id == Some(id("batch"))),
            "{b}"
        );
        let ada = ok(s.users().by_username(&tenant(), &ok(Username::parse("ada"), "name")).await, "ada");
        let ada = ada.unwrap_or_else(|| panic!("{b}: ada"));
        assert_eq!(ada.email.as_ref().map(ToString::to_string).as_deref(), Some("ada@example.com"), "{b}");
        assert!(!ada.has_password, "{b}: a user from a document has no password");
        let held: BTreeSet<String> = ok(s.access().user_access(&tenant(), &ada.sub).await, "access")
            .roles
            .iter()
            .map(|r| r.name.to_string())
            .collect();
        assert_eq!(held, BTreeSet::from(["editor".to_owned(), "shop-admin".to_owned()]), "{b}: direct and via staff");

        let again = ok(run(&s, &doc, Options::default()).await, "second run");
        assert!(!again.changes_anything(), "{b}: {:?}", again.steps);
        assert_eq!(again.steps.len(), 8, "{b}");
        assert!(again.secrets.is_empty(), "{b}: no secret is made twice");
        let after = ok(s.clients().get(&tenant(), &id("shop")).await, "shop").unwrap_or_else(|| panic!("{b}: shop"));
        assert_eq!(after.etag(), shop.etag(), "{b}: the second run wrote nothing");
    }
}

#[tokio::test]
async fn one_changed_setting_is_the_only_change() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let s = services(&db, dir.path(), |_| {}).await;
        ok(run(&s, &document(SHOP), Options::default()).await, "apply");
        let before = ok(s.clients().get(&tenant(), &id("shop")).await, "shop").unwrap_or_else(|| panic!("{b}"));

        let changed = document(&SHOP.replace("https://shop.example/cb", "https://shop.example/callback"));
        let plan = ok(run(&s, &changed, Options { dry_run: true, prune: false }).await, "plan");
        let updates: Vec<_> = plan.steps.iter().filter(|s| s.action != Action::Unchanged).collect();
        assert_eq!(updates.len(), 1, "{b}: {updates:?}");
        let Action::Update { changes } = &updates[0].action else { panic!("{b}: {updates:?}") };
        assert_eq!((updates[0].kind, updates[0].name.as_str()), (ObjectKind::Client, "shop"), "{b}");
        assert_eq!(changes.iter().map(|c| c.field.as_str()).collect::<Vec<_>>(), ["redirect_uris"], "{b}");
        assert_eq!(changes[0].after, serde_json::json!(["https://shop.example/callback"]), "{b}");

        ok(run(&s, &changed, Options::default()).await, "apply the change");
        let after = ok(s.clients().get(&tenant(), &id("shop")).await, "shop").unwrap_or_else(|| panic!("{b}"));
        assert_eq!(
            after.redirect_uris.iter().map(|u| u.as_str()).collect::<Vec<_>>(),
            ["https://shop.example/callback"],
            "{b}"
        );
        assert_eq!(after.secret_hash, before.secret_hash, "{b}: a generated secret is kept");
        assert_eq!(after.access_policy, before.access_policy, "{b}");

        // A new secret behind the reference replaces the stored one; the old one keeps
        // working for a while, as after a rotation.
        let mut rotated = changed.clone();
        if let Some(c) = rotated.clients.iter_mut().find(|c| c.client_id == "batch") {
            c.secret = Some(SecretRef::Resolved("another-secret-from-the-environment-42".into()));
        }
        let plan = ok(run(&s, &rotated, Options::default()).await, "rotate");
        assert_eq!(
            actions(&plan).into_iter().filter(|a| a.2 != "unchanged").collect::<Vec<_>>(),
            [(ObjectKind::Client, "batch".to_owned(), "update")],
            "{b}"
        );
        let batch = ok(s.clients().get(&tenant(), &id("batch")).await, "batch").unwrap_or_else(|| panic!("{b}"));
        let new_hash = clients::secret_hash(&s.token_hasher, "another-secret-from-the-environment-42");
        assert_eq!(batch.secret_hash, Some(new_hash), "{b}");
        assert_eq!(batch.previous_secret_hash, Some(clients::secret_hash(&s.token_hasher, BATCH_SECRET)), "{b}");
        assert!(batch.previous_secret_expires_at.is_some_and(|t| t > s.clock.now().secs()), "{b}");
        assert!(!ok(run(&s, &rotated, Options::default()).await, "again").changes_anything(), "{b}");
    }
}

#[tokio::test]
async fn prune_removes_only_what_apply_created() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let s = services(&db, dir.path(), |_| {}).await;
        // Made by hand, then listed by the document: apply adopts it but never prunes it.
        let by_hand = NewRole {
            name: ok(RoleName::parse("auditor"), "role"),
            application: None,
            description: "Reads".into(),
            entitlements: vec![],
        };
        ok(s.access().create_role(&tenant(), by_hand, &Actor::Cli).await, "role by hand");
        let with_hand_made = format!("{SHOP}\n[[roles]]\nname = \"auditor\"\ndescription = \"Reads\"\n");
        ok(run(&s, &document(&with_hand_made), Options::default()).await, "apply");

        let empty = document("");
        let kept = ok(run(&s, &empty, Options::default()).await, "without prune");
        assert!(!kept.changes_anything(), "{b}: without --prune nothing goes: {:?}", kept.steps);
        assert!(ok(s.clients().get(&tenant(), &id("shop")).await, "shop").is_some(), "{b}");

        let planned = ok(run(&s, &empty, Options { dry_run: true, prune: true }).await, "plan prune");
        let deleted: Vec<_> = actions(&planned).into_iter().map(|(k, n, a)| (k, n, a.to_owned())).collect();
        assert!(deleted.iter().all(|(_, _, a)| a == "delete"), "{b}: {deleted:?}");
        assert_eq!(deleted.len(), 8, "{b}: {deleted:?}");
        assert!(!deleted.iter().any(|(_, n, _)| n == "auditor"), "{b}: a role made by hand is never pruned");
        // Users go before the groups they are in, clients before their roles.
        let position = |kind| deleted.iter().position(|(k, _, _)| *k == kind).unwrap_or(usize::MAX);
        assert!(position(ObjectKind::User) < position(ObjectKind::Group), "{b}");
        assert!(position(ObjectKind::Client) < position(ObjectKind::Role), "{b}");
        assert!(position(ObjectKind::Role) < position(ObjectKind::Scope), "{b}");

        ok(run(&s, &empty, Options { dry_run: false, prune: true }).await, "prune");
        assert!(ok(s.clients().list(&tenant()).await, "clients").is_empty(), "{b}");
        assert!(ok(s.access().group(&tenant(), &ok(GroupName::parse("staff"), "g")).await, "group").is_none(), "{b}");
        let roles: Vec<String> =
            ok(s.access().roles(&tenant()).await, "roles").iter().map(|r| r.name.to_string()).collect();
        assert!(roles.contains(&"auditor".to_owned()) && !roles.contains(&"editor".to_owned()), "{b}: {roles:?}");
        let scopes = ok(s.scopes().list(&tenant()).await, "scopes");
        assert!(!scopes.iter().any(|sc| sc.name.as_str() == "orders:read"), "{b}");
        assert!(scopes.iter().any(|sc| sc.name.as_str() == "openid"), "{b}: built-in scopes stay");
        assert!(ok(s.users().by_username(&tenant(), &ok(Username::parse("ada"), "n")).await, "ada").is_none(), "{b}");
        let again = ok(run(&s, &empty, Options { dry_run: false, prune: true }).await, "prune again");
        assert!(!again.changes_anything(), "{b}: {:?}", again.steps);
    }
}

/// What a bad document is refused with: the path of the mistake in the message.
const BAD: &[(&str, &str)] = &[
    ("[[clients]]\nclient_id = \"x\"\nname = \"X\"\nbogus = 1\n", "clients[0].bogus"),
    ("[[scopes]]\nname = \"a b\"\ndescription = \"A\"\n", "scopes[1].name"),
    (
        "[[clients]]\nclient_id = \"x\"\nname = \"X\"\nredirect_uris = [\"https://x.example/cb\"]\nscopes = [\"nope\"]\n",
        "clients[0] (x)",
    ),
    (
        "[[clients]]\nclient_id = \"x\"\nname = \"X\"\nkind = \"public\"\ngrant_types = [\"client_credentials\"]\n",
        "clients[0] (x)",
    ),
    ("[[groups]]\nname = \"g\"\nroles = [\"missing\"]\n", "groups[0] (g).roles"),
    ("[[groups]]\nname = \"g\"\nmembers = [\"nobody\"]\n", "groups[0] (g).members"),
    ("[[roles]]\nname = \"r\"\napplication = \"ghost\"\n", "roles[0] (r).application"),
    ("[[users]]\nusername = \"bob\"\nroles = [\"latchkey-admin\"]\n", "users[0] (bob).roles"),
    (
        "[[resources]]\nidentifier = \"https://api.example\"\nname = \"A\"\nscopes = [\"nope\"]\n",
        "resources[0] (https://api.example).scopes",
    ),
    (
        "[[clients]]\nclient_id = \"x\"\nname = \"X\"\nredirect_uris = [\"https://x.example/cb\"]\n[[clients]]\nclient_id = \"x\"\nname = \"Y\"\n",
        "clients: `x` is listed twice",
    ),
    ("[[clients]]\nclient_id = \"x\"\nname = \"X\"\nsecret = \"s3cr3t-in-clear\"\n", "clients[0].secret"),
];

#[tokio::test]
async fn a_bad_document_is_refused_whole_naming_where() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let s = services(&db, dir.path(), |_| {}).await;
        let scopes_before = ok(s.scopes().list(&tenant()).await, "scopes").len();
        for (text, path) in BAD {
            // Each bad document also lists a good scope, which must not be saved.
            let text = format!("[[scopes]]\nname = \"good\"\ndescription = \"Good\"\n{text}");
            let refused = match Document::parse(&text, Format::Toml) {
                Err(e) => e,
                Ok(doc) => match run(&s, &doc, Options::default()).await {
                    Err(e) => e,
                    Ok(summary) => panic!("{b}: {text} was applied: {summary:?}"),
                },
            };
            assert!(matches!(refused, ServiceError::Invalid(_)), "{b}: {text}: {refused:?}");
            assert!(refused.to_string().contains(path), "{b}: `{refused}` does not name {path}");
            assert_eq!(ok(s.scopes().list(&tenant()).await, "scopes").len(), scopes_before, "{b}: {text} wrote");
            assert!(ok(s.clients().list(&tenant()).await, "clients").is_empty(), "{b}: {text} wrote");
        }
    }
}

#[tokio::test]
async fn an_admin_api_caller_needs_every_right_and_gives_no_secret_reference() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let s = services(&db, dir.path(), |_| {}).await;
        let caller = |rights: &[AdminScope]| AdminCaller {
            actor: Actor::AdminApi { client_id: "shop".into(), sub: None },
            person: None,
            rights: rights.iter().copied().collect(),
            key: None,
        };
        let plain = ok(Document::parse(&SHOP.replace("secret = \"env:BATCH\"\n", ""), Format::Toml), "doc");
        let partial = caller(&[AdminScope::AccessWrite, AdminScope::ClientsWrite, AdminScope::UsersWrite]);
        let refused = s.apply().run_as_admin(&tenant(), &plain, Options::default(), &partial).await;
        assert!(matches!(refused, Err(ServiceError::Forbidden(_))), "{b}: {refused:?}");

        let full = caller(&AdminScope::ALL);
        let with_reference = ok(Document::parse(SHOP, Format::Toml), "doc");
        let refused = s.apply().run_as_admin(&tenant(), &with_reference, Options::default(), &full).await;
        assert!(
            matches!(&refused, Err(ServiceError::Invalid(m)) if m.contains("clients[1].secret")),
            "{b}: {refused:?}"
        );
        assert!(ok(s.clients().list(&tenant()).await, "clients").is_empty(), "{b}");

        let done = ok(s.apply().run_as_admin(&tenant(), &plain, Options::default(), &full).await, "apply");
        assert_eq!(done.secrets.len(), 2, "{b}: both new clients get a secret, returned once");
        // The caller's own client (`shop`) is never changed or removed through the API.
        let renamed = ok(Document::parse(&plain_text_renamed(), Format::Toml), "doc");
        let refused = s.apply().run_as_admin(&tenant(), &renamed, Options::default(), &full).await;
        assert!(matches!(&refused, Err(ServiceError::Invalid(m)) if m.contains("`shop`")), "{b}: {refused:?}");
        let refused =
            s.apply().run_as_admin(&tenant(), &document(""), Options { dry_run: false, prune: true }, &full).await;
        assert!(refused.is_err(), "{b}: pruning the calling client is refused");
        assert!(ok(s.clients().get(&tenant(), &id("shop")).await, "shop").is_some(), "{b}");
        assert!(ok(s.clients().get(&tenant(), &id("batch")).await, "batch").is_some(), "{b}: nothing was pruned");
    }
}

fn plain_text_renamed() -> String {
    SHOP.replace("secret = \"env:BATCH\"\n", "").replace("name = \"Shop\"", "name = \"The Shop\"")
}

#[tokio::test]
async fn usernames_and_addresses_compare_as_the_store_keeps_them() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let s = services(&db, dir.path(), |_| {}).await;
        let first = "[[users]]\nusername = \"Ada\"\nemail = \"ada@example.com\"\n[[groups]]\nname = \"staff\"\nmembers = [\"ADA\"]\n";
        ok(run(&s, &document(first), Options::default()).await, "apply");
        let again = ok(run(&s, &document(first), Options { dry_run: false, prune: true }).await, "again");
        assert!(!again.changes_anything(), "{b}: `Ada` is the stored `ada`: {:?}", again.steps);
        let ada = ok(s.users().by_username(&tenant(), &ok(Username::parse("ada"), "n")).await, "ada");
        let ada = ada.unwrap_or_else(|| panic!("{b}: ada was pruned or never made"));
        assert!(!ada.email_verified, "{b}: a new address is unverified unless the document says so");

        // A new address the document says is verified is so after one run.
        let moved = "[[users]]\nusername = \"ada\"\nemail = \"ada@example.org\"\nemail_verified = true\n";
        let plan = ok(run(&s, &document(moved), Options::default()).await, "move");
        let Some(Action::Update { changes }) = plan.steps.first().map(|s| &s.action) else { panic!("{b}: {plan:?}") };
        let fields: Vec<&str> = changes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, ["email", "email_verified"], "{b}");
        let ada = ok(s.users().by_username(&tenant(), &ok(Username::parse("ada"), "n")).await, "ada");
        assert!(ada.is_some_and(|a| a.email_verified), "{b}");
        assert!(!ok(run(&s, &document(moved), Options::default()).await, "again").changes_anything(), "{b}");
        // Without `email_verified`, a changed address is unverified, and the plan says so.
        let unverified = "[[users]]\nusername = \"ada\"\nemail = \"ada@example.net\"\n";
        let plan = ok(run(&s, &document(unverified), Options::default()).await, "move again");
        let Some(Action::Update { changes }) = plan.steps.first().map(|s| &s.action) else { panic!("{b}: {plan:?}") };
        assert_eq!(changes.iter().map(|c| c.field.as_str()).collect::<Vec<_>>(), ["email", "email_verified"], "{b}");
        assert!(!ok(run(&s, &document(unverified), Options::default()).await, "again").changes_anything(), "{b}");
    }
}

#[tokio::test]
async fn a_user_apply_did_not_create_is_managed_only_when_adopted() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let s = services(&db, dir.path(), |_| {}).await;
        // Someone signed up as `jdoe` before the document listed the name.
        ok(s.users().create(&tenant(), latchkey_service::testing::sample_user("jdoe"), &Actor::Cli).await, "sign-up");
        let roles = "[[roles]]\nname = \"finance\"\n";
        let listed = format!("{roles}[[users]]\nusername = \"jdoe\"\nroles = [\"finance\"]\n");
        let refused = run(&s, &document(&listed), Options::default()).await;
        assert!(
            matches!(&refused, Err(ServiceError::Invalid(m)) if m.contains("users[0] (jdoe)") && m.contains("adopt")),
            "{b}: {refused:?}"
        );
        let member = format!("{roles}[[groups]]\nname = \"fin\"\nroles = [\"finance\"]\nmembers = [\"jdoe\"]\n");
        let refused = run(&s, &document(&member), Options::default()).await;
        assert!(
            matches!(&refused, Err(ServiceError::Invalid(m)) if m.contains("groups[0] (fin).members") && m.contains("adopt")),
            "{b}: {refused:?}"
        );
        assert!(
            ok(s.access().roles(&tenant()).await, "roles").iter().all(|r| r.name.as_str() != "finance"),
            "{b}: nothing written"
        );

        let adopted = format!("{roles}[[users]]\nusername = \"jdoe\"\nadopt = true\nroles = [\"finance\"]\n");
        ok(run(&s, &document(&adopted), Options::default()).await, "adopted");
        let jdoe = ok(s.users().by_username(&tenant(), &ok(Username::parse("jdoe"), "n")).await, "jdoe");
        let jdoe = jdoe.unwrap_or_else(|| panic!("{b}: jdoe"));
        let held = ok(s.access().user_access(&tenant(), &jdoe.sub).await, "access");
        assert!(held.role_names().any(|r| r.as_str() == "finance"), "{b}");
        // Adopted, never created: pruning leaves the account alone.
        let pruned = ok(run(&s, &document(""), Options { dry_run: false, prune: true }).await, "prune");
        assert!(!pruned.steps.iter().any(|s| s.name == "jdoe"), "{b}: {:?}", pruned.steps);
        assert!(ok(s.users().by_username(&tenant(), &ok(Username::parse("jdoe"), "n")).await, "jdoe").is_some(), "{b}");
    }
}

#[tokio::test]
async fn prune_spares_objects_made_again_by_hand_and_what_the_document_still_uses() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let s = services(&db, dir.path(), |_| {}).await;
        let first = "[[roles]]\nname = \"editor\"\n[[clients]]\nclient_id = \"wiki\"\nname = \"Wiki\"\nredirect_uris = [\"https://wiki.example/cb\"]\n[[roles]]\nname = \"wiki-admin\"\napplication = \"wiki\"\n";
        ok(run(&s, &document(first), Options::default()).await, "apply");
        // `editor` is deleted and made again by hand: it is no longer apply's.
        let editor = ok(RoleName::parse("editor"), "role");
        ok(s.access().delete_role(&tenant(), &editor, &Actor::Cli).await, "delete");
        let again =
            NewRole { name: editor.clone(), application: None, description: "by hand".into(), entitlements: vec![] };
        ok(s.access().create_role(&tenant(), again, &Actor::Cli).await, "by hand");
        // A document that drops the client but keeps its role is refused whole.
        let keeps_role = "[[roles]]\nname = \"wiki-admin\"\napplication = \"wiki\"\n";
        let refused = run(&s, &document(keeps_role), Options { dry_run: false, prune: true }).await;
        assert!(
            matches!(&refused, Err(ServiceError::Invalid(m)) if m.contains("roles[0] (wiki-admin).application")),
            "{b}: {refused:?}"
        );
        assert!(ok(s.clients().get(&tenant(), &id("wiki")).await, "wiki").is_some(), "{b}: nothing was pruned");

        let pruned = ok(run(&s, &document(""), Options { dry_run: false, prune: true }).await, "prune");
        assert!(!pruned.steps.iter().any(|s| s.name == "editor"), "{b}: {:?}", pruned.steps);
        assert!(ok(s.access().role(&tenant(), &editor).await, "editor").is_some(), "{b}: the hand-made role stays");
        assert!(ok(s.clients().get(&tenant(), &id("wiki")).await, "wiki").is_none(), "{b}");
    }
}

#[tokio::test]
async fn a_leaked_secret_replaced_with_no_grace_stops_at_once() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let s = services(&db, dir.path(), |_| {}).await;
        let batch = "[[clients]]\nclient_id = \"batch\"\nname = \"Batch\"\ngrant_types = [\"client_credentials\"]\nscopes = []\nsecret = \"env:BATCH\"\n";
        ok(run(&s, &document(batch), Options::default()).await, "apply");
        let mut replaced = document(&format!("{batch}secret_grace = 0\n"));
        replaced.clients[0].secret = Some(SecretRef::Resolved("the-replacement-secret-0123456789abcdef".into()));
        ok(run(&s, &replaced, Options::default()).await, "replace");
        let client = ok(s.clients().get(&tenant(), &id("batch")).await, "batch").unwrap_or_else(|| panic!("{b}"));
        assert!(client.previous_secret_expires_at.is_none_or(|t| t <= s.clock.now().secs()), "{b}: {client:?}");
        let too_long = document(&format!("{batch}secret_grace = 9999999\n"));
        let refused = run(&s, &too_long, Options::default()).await;
        assert!(
            matches!(&refused, Err(ServiceError::Invalid(m)) if m.contains("clients[0] (batch).secret_grace")),
            "{b}: {refused:?}"
        );
    }
}

#[tokio::test]
async fn one_run_at_a_time_and_on_postgresql_across_nodes() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let s = services(&db, dir.path(), |_| {}).await;
        let doc = document(SHOP);
        let (first, second) = tokio::join!(run(&s, &doc, Options::default()), run(&s, &doc, Options::default()));
        let busy = |r: &Result<Summary, ServiceError>| matches!(r, Err(ServiceError::Conflict(m)) if m.contains("another `apply` run is under way"));
        assert!(first.is_ok() && busy(&second), "{b}: {first:?} / {second:?}");
        // A dry run writes nothing, so it waits for nobody.
        ok(run(&s, &doc, Options { dry_run: true, prune: false }).await, "dry run");
        if b == "postgres" {
            // Another node (or the CLI) holds the run's lock.
            let store = latchkey_service::testing::store_of(&s);
            let held = ok(store.try_job_lock("apply:default").await, "lock").unwrap_or_else(|| panic!("{b}: lock"));
            assert!(busy(&run(&s, &doc, Options::default()).await), "{b}");
            held.release().await;
        }
        assert!(!ok(run(&s, &doc, Options::default()).await, "after").changes_anything(), "{b}");
        s.system().close().await;
    }
}
