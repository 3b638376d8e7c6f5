//! The access rules in the services: a code is never issued to a user a client does not
//! admit, and a client's application roles are not deleted from under another client.

mod support;

use latchkey_core::domain::{ClientAccessPolicy, ClientId, ClientKind, RoleName, RoleRequirement, TenantId};
use latchkey_core::records::{Actor, Membership, NewClient, NewRole};
use latchkey_service::grants::{CodeRequest, GrantError};
use latchkey_service::testing::{TestDatabase, sample_client, sample_user};
use support::{browser_session, ok, services};

fn tenant() -> TenantId {
    TenantId::default_tenant()
}

fn role(s: &str) -> RoleName {
    ok(RoleName::parse(s), "role")
}

fn new_role(name: &str, application: Option<&str>) -> NewRole {
    NewRole {
        name: role(name),
        application: application.map(|a| ok(ClientId::parse(a), "id")),
        description: String::new(),
        entitlements: vec![],
    }
}

#[tokio::test]
async fn no_code_is_issued_to_a_user_the_client_does_not_admit() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let s = services(&db, dir.path(), |_| {}).await;
        ok(s.access().create_role(&tenant(), new_role("editor", None), &Actor::Cli).await, "role");
        let policy =
            ClientAccessPolicy { required_roles: RoleRequirement::any_of(vec![role("editor")]), ..Default::default() };
        let new = NewClient {
            access_policy: policy,
            ..sample_client("wiki", ClientKind::Confidential, "https://w.example/cb")
        };
        let client = ok(s.clients().create(&tenant(), new, &Actor::Cli).await, "client");
        let ada = ok(s.users().create(&tenant(), sample_user("ada"), &Actor::Cli).await, "user");
        let session = browser_session(&s, &ada.sub, ("cookie-a", "sid-a"), "1", 10);
        let request = || CodeRequest {
            scope: &[],
            redirect_uri: "https://w.example/cb",
            code_challenge: None,
            nonce: None,
            requested_claims: None,
            audience: "https://issuer.example",
        };
        let refused = s.grants().issue_code(&tenant(), &session, &client, request()).await;
        assert!(matches!(refused, Err(GrantError::NotAdmitted)), "{b}: {:?}", refused.err());
        let link = Membership::UserRole { sub: ada.sub.clone(), role: role("editor") };
        ok(s.access().link(&tenant(), &link, &Actor::Cli).await, "grant");
        assert!(s.grants().issue_code(&tenant(), &session, &client, request()).await.is_ok(), "{b}");
        s.system().close().await;
    }
}

#[tokio::test]
async fn a_client_whose_role_another_client_requires_is_not_deleted() {
    for db in TestDatabase::all().await {
        let b = db.backend;
        let dir = ok(tempfile::tempdir(), "dir");
        let s = services(&db, dir.path(), |_| {}).await;
        let wiki = sample_client("wiki", ClientKind::Confidential, "https://w.example/cb");
        ok(s.clients().create(&tenant(), wiki, &Actor::Cli).await, "wiki");
        ok(s.access().create_role(&tenant(), new_role("wiki-admin", Some("wiki")), &Actor::Cli).await, "role");
        let ada = ok(s.users().create(&tenant(), sample_user("ada"), &Actor::Cli).await, "user");
        let link = Membership::UserRole { sub: ada.sub.clone(), role: role("wiki-admin") };
        ok(s.access().link(&tenant(), &link, &Actor::Cli).await, "grant");
        assert_eq!(ok(s.access().held(&ada.sub).await, "held").roles.len(), 1, "{b}");
        let policy = ClientAccessPolicy {
            required_roles: RoleRequirement::any_of(vec![role("wiki-admin")]),
            ..Default::default()
        };
        let console = NewClient {
            access_policy: policy,
            ..sample_client("console", ClientKind::Confidential, "https://c.example/cb")
        };
        ok(s.clients().create(&tenant(), console, &Actor::Cli).await, "console");
        let wiki_id = ok(ClientId::parse("wiki"), "id");
        let refused = s.clients().delete(&tenant(), &wiki_id, &Actor::Cli).await;
        assert!(refused.as_ref().err().is_some_and(|e| e.to_string().contains("console")), "{b}: {refused:?}");
        let console_id = ok(ClientId::parse("console"), "id");
        ok(s.clients().delete(&tenant(), &console_id, &Actor::Cli).await, "console goes");
        ok(s.clients().delete(&tenant(), &wiki_id, &Actor::Cli).await, "then wiki");
        // Its role went with it, and this node forgot it at once.
        assert!(ok(s.access().held(&ada.sub).await, "held").roles.is_empty(), "{b}");
        let events = ok(s.audit().recent(&tenant(), 20).await, "audit");
        assert!(events.iter().any(|e| e.action == "role.deleted" && e.target == "wiki-admin"), "{b}");
        s.system().close().await;
    }
}
