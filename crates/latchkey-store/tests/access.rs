//! Roles, groups and who holds them, on SQLite and (when LATCHKEY_TEST_POSTGRES_URL is
//! set) PostgreSQL.

use std::sync::Arc;

use latchkey_core::domain::*;
use latchkey_core::records::*;
use latchkey_core::{Clock, UnixTime};
use latchkey_store::testing::{TestDatabase, sample_client};
use latchkey_store::*;

fn ok<T, E: std::fmt::Display>(r: Result<T, E>, what: &str) -> T {
    r.unwrap_or_else(|e| panic!("{what}: {e}"))
}

fn tenant() -> TenantId {
    TenantId::default_tenant()
}

fn role(s: &str) -> RoleName {
    ok(RoleName::parse(s), "role")
}

fn group(s: &str) -> GroupName {
    ok(GroupName::parse(s), "group")
}

fn ent(s: &str) -> Entitlement {
    ok(Entitlement::parse(s), "entitlement")
}

async fn open(db: &TestDatabase) -> Arc<dyn Store> {
    let clock = Clock::frozen(UnixTime::from_secs(1_700_000_000));
    let store = ok(db.open_store(4, clock).await, db.backend);
    ok(store.migrate().await, db.backend);
    store
}

async fn user(store: &dyn Store, name: &str) -> SubjectId {
    let new = NewUser {
        sub: SubjectId::generate(),
        username: ok(Username::parse(name), "username"),
        email: None,
        email_verified: false,
        name: None,
        profile: ProfileClaims::default(),
        password_hash: None,
        service_account: false,
    };
    ok(store.create_user(&tenant(), new, &Actor::Cli).await, "user").sub
}

fn new_role(name: &str, application: Option<&str>, entitlements: &[&str]) -> NewRole {
    NewRole {
        name: role(name),
        application: application.map(|a| ok(ClientId::parse(a), "client id")),
        description: String::new(),
        entitlements: entitlements.iter().map(|e| ent(e)).collect(),
    }
}

#[tokio::test]
async fn a_user_holds_roles_directly_and_through_groups_each_once() {
    for db in TestDatabase::all().await {
        let store = open(&db).await;
        let (t, b) = (tenant(), db.backend);
        let ada = user(store.as_ref(), "ada").await;
        ok(
            store
                .create_client(&t, sample_client("wiki", ClientKind::Confidential, "https://w.example/cb"), &Actor::Cli)
                .await,
            b,
        );
        ok(store.create_role(&t, new_role("editor", None, &["docs:write", "docs:read"]), &Actor::Cli).await, b);
        ok(store.create_role(&t, new_role("wiki-admin", Some("wiki"), &["wiki:admin"]), &Actor::Cli).await, b);
        ok(store.create_group(&t, &group("staff"), "Everyone", &Actor::Cli).await, b);
        ok(store.create_group(&t, &group("writers"), "", &Actor::Cli).await, b);
        let links = [
            Membership::UserRole { sub: ada.clone(), role: role("editor") },
            Membership::GroupMember { group: group("staff"), sub: ada.clone() },
            Membership::GroupMember { group: group("writers"), sub: ada.clone() },
            Membership::GroupRole { group: group("staff"), role: role("wiki-admin") },
            Membership::GroupRole { group: group("writers"), role: role("editor") },
            Membership::GroupRole { group: group("staff"), role: role("editor") },
        ];
        for link in &links {
            assert!(ok(store.set_membership(&t, link, true, &Actor::Cli).await, b), "{b}: {link:?}");
            // Adding it again changes nothing and says so.
            assert!(!ok(store.set_membership(&t, link, true, &Actor::Cli).await, b), "{b}: {link:?} twice");
        }
        let access = ok(store.user_access(&t, &ada).await, b);
        assert_eq!(access.groups, vec![group("staff"), group("writers")], "{b}");
        let names: Vec<&str> = access.roles.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["editor", "wiki-admin"], "{b}");
        let editor = &access.roles[0];
        assert!(editor.direct, "{b}");
        assert_eq!(editor.via_groups, vec![group("staff"), group("writers")], "{b}");
        assert_eq!(editor.entitlements, vec![ent("docs:read"), ent("docs:write")], "{b}: each once, sorted");
        assert_eq!(access.roles[1].application.as_ref().map(ClientId::as_str), Some("wiki"), "{b}");
        assert!(!access.roles[1].direct, "{b}");
        assert_eq!(ok(store.role_holders(&t, &role("wiki-admin")).await, b), vec![ada.clone()], "{b}");

        // Removing the direct grant leaves the role held through groups.
        let direct = &links[0];
        assert!(ok(store.set_membership(&t, direct, false, &Actor::Cli).await, b), "{b}");
        assert!(!ok(store.set_membership(&t, direct, false, &Actor::Cli).await, b), "{b}: already gone");
        let access = ok(store.user_access(&t, &ada).await, b);
        assert!(!access.roles[0].direct && access.roles[0].name == role("editor"), "{b}");

        let g = ok(store.group(&t, &group("staff")).await, b).unwrap_or_else(|| panic!("{b}: group"));
        assert_eq!(g.roles, vec![role("editor"), role("wiki-admin")], "{b}");
        assert_eq!(g.members, vec![ada.clone()], "{b}");
        assert_eq!(g.description, "Everyone", "{b}");
        let events = ok(store.recent_audit_events(&t, 50).await, b);
        assert!(events.iter().any(|e| e.action == "user.role_added"), "{b}");
        assert!(events.iter().any(|e| e.action == "group.member_added"), "{b}");
        assert!(events.iter().any(|e| e.action == "user.role_removed"), "{b}");
    }
}

#[tokio::test]
async fn unknown_ends_and_taken_names_are_refused_and_nothing_is_stored() {
    for db in TestDatabase::all().await {
        let store = open(&db).await;
        let (t, b) = (tenant(), db.backend);
        let ada = user(store.as_ref(), "ada").await;
        ok(store.create_role(&t, new_role("editor", None, &[]), &Actor::Cli).await, b);
        let taken = store.create_role(&t, new_role("editor", None, &["x:y"]), &Actor::Cli).await;
        assert!(matches!(taken, Err(StoreError::Conflict(_))), "{b}: {taken:?}");
        assert!(ok(store.role(&t, &role("editor")).await, b).is_some_and(|r| r.entitlements.is_empty()), "{b}");
        let orphan = store.create_role(&t, new_role("crm-admin", Some("crm"), &["crm:admin"]), &Actor::Cli).await;
        assert!(matches!(orphan, Err(StoreError::NotFound(ref m)) if m.contains("crm")), "{b}: {orphan:?}");
        assert!(ok(store.role(&t, &role("crm-admin")).await, b).is_none(), "{b}: nothing half-written");
        ok(store.create_group(&t, &group("staff"), "", &Actor::Cli).await, b);
        let again = store.create_group(&t, &group("staff"), "", &Actor::Cli).await;
        assert!(matches!(again, Err(StoreError::Conflict(_))), "{b}: {again:?}");
        for (link, missing) in [
            (Membership::UserRole { sub: ada.clone(), role: role("nosuch") }, "nosuch"),
            (Membership::UserRole { sub: SubjectId::generate(), role: role("editor") }, "user"),
            (Membership::GroupMember { group: group("nosuch"), sub: ada.clone() }, "nosuch"),
            (Membership::GroupRole { group: group("staff"), role: role("nosuch") }, "nosuch"),
        ] {
            let r = store.set_membership(&t, &link, true, &Actor::Cli).await;
            assert!(matches!(r, Err(StoreError::NotFound(ref m)) if m.contains(missing)), "{b}: {link:?}: {r:?}");
        }
        assert_eq!(ok(store.user_access(&t, &ada).await, b), UserAccess::default(), "{b}");
        let gone = store.delete_role(&t, &role("nosuch"), &Actor::Cli).await;
        assert!(matches!(gone, Err(StoreError::NotFound(_))), "{b}: {gone:?}");
    }
}

#[tokio::test]
async fn deleting_a_role_group_user_or_client_takes_its_links_along() {
    for db in TestDatabase::all().await {
        let store = open(&db).await;
        let (t, b) = (tenant(), db.backend);
        let ada = user(store.as_ref(), "ada").await;
        let bob = user(store.as_ref(), "bob").await;
        ok(
            store
                .create_client(&t, sample_client("wiki", ClientKind::Confidential, "https://w.example/cb"), &Actor::Cli)
                .await,
            b,
        );
        ok(store.create_role(&t, new_role("editor", None, &["docs:write"]), &Actor::Cli).await, b);
        ok(store.create_role(&t, new_role("wiki-admin", Some("wiki"), &[]), &Actor::Cli).await, b);
        ok(store.create_group(&t, &group("staff"), "", &Actor::Cli).await, b);
        for link in [
            Membership::UserRole { sub: ada.clone(), role: role("editor") },
            Membership::UserRole { sub: bob.clone(), role: role("wiki-admin") },
            Membership::GroupMember { group: group("staff"), sub: bob.clone() },
            Membership::GroupRole { group: group("staff"), role: role("editor") },
        ] {
            ok(store.set_membership(&t, &link, true, &Actor::Cli).await, b);
        }
        ok(store.delete_client(&t, &ok(ClientId::parse("wiki"), "id"), &Actor::Cli).await, b);
        assert!(ok(store.role(&t, &role("wiki-admin")).await, b).is_none(), "{b}: the application's role went with it");
        ok(store.delete_group(&t, &group("staff"), &Actor::Cli).await, b);
        assert_eq!(ok(store.user_access(&t, &bob).await, b), UserAccess::default(), "{b}");
        ok(store.delete_role(&t, &role("editor"), &Actor::Cli).await, b);
        assert!(ok(store.user_access(&t, &ada).await, b).roles.is_empty(), "{b}");
        // A deleted user's links go with the user.
        ok(store.create_role(&t, new_role("editor", None, &[]), &Actor::Cli).await, b);
        ok(
            store
                .set_membership(&t, &Membership::UserRole { sub: ada.clone(), role: role("editor") }, true, &Actor::Cli)
                .await,
            b,
        );
        ok(store.delete_user(&t, &ada, &Actor::Cli).await, b);
        assert!(ok(store.role_holders(&t, &role("editor")).await, b).is_empty(), "{b}");
    }
}

#[tokio::test]
async fn a_roles_entitlements_change_and_a_clients_access_policy_is_kept() {
    for db in TestDatabase::all().await {
        let store = open(&db).await;
        let (t, b) = (tenant(), db.backend);
        ok(store.create_role(&t, new_role("editor", None, &["a:b", "c:d"]), &Actor::Cli).await, b);
        let patch = RolePatch {
            description: Some("Edits".into()),
            add_entitlements: vec![ent("e:f"), ent("a:b")],
            remove_entitlements: vec![ent("c:d")],
            if_match: None,
        };
        let r = ok(store.update_role(&t, &role("editor"), patch, &Actor::Cli).await, b);
        assert_eq!(r.entitlements, vec![ent("a:b"), ent("e:f")], "{b}");
        assert_eq!(r.description, "Edits", "{b}");
        // A change based on a read is made only while the role is as read.
        let stale =
            RolePatch { description: Some("Old".into()), if_match: Some("\"0\"".into()), ..RolePatch::default() };
        let refused = store.update_role(&t, &role("editor"), stale, &Actor::Cli).await;
        assert!(matches!(refused, Err(StoreError::Stale(_))), "{b}: {refused:?}");
        let fresh = RolePatch { description: Some("New".into()), if_match: Some(r.etag()), ..RolePatch::default() };
        let changed = ok(store.update_role(&t, &role("editor"), fresh, &Actor::Cli).await, b);
        assert_eq!(changed.description, "New", "{b}");
        let again = RolePatch { description: Some("Newer".into()), if_match: Some(r.etag()), ..RolePatch::default() };
        let refused = store.update_role(&t, &role("editor"), again, &Actor::Cli).await;
        assert!(matches!(refused, Err(StoreError::Stale(_))), "{b}: the tag it was based on is gone");
        let missing = store.update_role(&t, &role("nosuch"), RolePatch::default(), &Actor::Cli).await;
        assert!(matches!(missing, Err(StoreError::NotFound(_))), "{b}: {missing:?}");

        let mut new = sample_client("wiki", ClientKind::Confidential, "https://w.example/cb");
        new.access_policy = ClientAccessPolicy {
            release_roles: true,
            application_roles_only: true,
            required_roles: RoleRequirement::all_of(vec![role("editor")]),
            ..Default::default()
        };
        let created = ok(store.create_client(&t, new.clone(), &Actor::Cli).await, b);
        assert_eq!(created.access_policy, new.access_policy, "{b}");
        let patch = ClientPatch { access_policy: Some(ClientAccessPolicy::default()), ..Default::default() };
        let updated = ok(store.update_client(&t, &created.client_id, patch, &Actor::Cli).await, b);
        assert_eq!(updated.access_policy, ClientAccessPolicy::default(), "{b}");
    }
}
