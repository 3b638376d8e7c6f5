//! Links to upstream identity provider accounts, on SQLite and (when
//! LATCHKEY_TEST_POSTGRES_URL is set) PostgreSQL.

use std::sync::Arc;

use latchkey_core::domain::*;
use latchkey_core::records::*;
use latchkey_core::{Clock, UnixTime};
use latchkey_store::testing::{TestDatabase, sample_user};
use latchkey_store::*;

fn ok<T, E: std::fmt::Display>(r: Result<T, E>, what: &str) -> T {
    r.unwrap_or_else(|e| panic!("{what}: {e}"))
}

fn tenant() -> TenantId {
    TenantId::default_tenant()
}

async fn open(db: &TestDatabase) -> Arc<dyn Store> {
    let clock = Clock::frozen(UnixTime::from_secs(1_700_000_000));
    let store = ok(db.open_store(4, clock).await, db.backend);
    ok(store.migrate().await, db.backend);
    store
}

fn provider(id: &str) -> ProviderId {
    ok(ProviderId::parse(id), "provider id")
}

fn subject(s: &str) -> UpstreamSubject {
    ok(UpstreamSubject::parse(s), "subject")
}

fn link(p: &str, s: &str, sub: &SubjectId) -> NewFederatedIdentity {
    NewFederatedIdentity {
        provider: provider(p),
        subject: subject(s),
        sub: sub.clone(),
        email: Some("ada@example.com".into()),
    }
}

async fn methods(store: &dyn Store, sub: &SubjectId) -> SignInMethods {
    let mut tx = ok(store.transaction().await, "tx");
    let m = ok(tx.sign_in_methods(&tenant(), sub).await, "methods");
    ok(tx.commit().await, "commit");
    m
}

#[tokio::test]
async fn an_upstream_account_links_to_one_user_once_and_unlinks() {
    for db in TestDatabase::all().await {
        let store = open(&db).await;
        let (t, b) = (tenant(), db.backend);
        let ada = ok(store.create_user(&t, sample_user("ada"), &Actor::Cli).await, b).sub;
        let bob = ok(store.create_user(&t, sample_user("bob"), &Actor::Cli).await, b).sub;
        ok(store.link_identity(&t, &link("github", "583231", &ada), &Actor::Cli).await, b);
        let found = ok(store.federated_identity(&t, &provider("github"), &subject("583231")).await, b);
        let found = found.unwrap_or_else(|| panic!("{b}: the link is found by provider and subject"));
        assert_eq!((found.sub.clone(), found.email.as_deref()), (ada.clone(), Some("ada@example.com")), "{b}");
        assert_eq!(found.linked_at, UnixTime::from_secs(1_700_000_000), "{b}");
        assert_eq!(methods(store.as_ref(), &ada).await.linked_providers, ["github"], "{b}");

        // The same upstream account never links to a second user, and a user has one
        // account per provider.
        let taken = store.link_identity(&t, &link("github", "583231", &bob), &Actor::Cli).await;
        assert!(matches!(taken, Err(StoreError::Conflict(_))), "{b}: {taken:?}");
        let second = store.link_identity(&t, &link("github", "999", &ada), &Actor::Cli).await;
        assert!(matches!(second, Err(StoreError::Conflict(_))), "{b}: {second:?}");
        // Another provider's account with the same subject is another account.
        ok(store.link_identity(&t, &link("corp", "583231", &bob), &Actor::Cli).await, b);
        let nobody = NewFederatedIdentity { sub: SubjectId::generate(), ..link("gitlab", "1", &ada) };
        let missing = store.link_identity(&t, &nobody, &Actor::Cli).await;
        assert!(matches!(missing, Err(StoreError::NotFound(_))), "{b}: {missing:?}");

        ok(store.record_identity_use(&t, &provider("github"), &subject("583231"), Some("new@example.com")).await, b);
        let used = ok(store.federated_identities(&t, &ada).await, b);
        assert_eq!(used.len(), 1, "{b}");
        assert_eq!(used[0].email.as_deref(), Some("new@example.com"), "{b}: the address is noted, not looked up");
        let linked = ok(store.linked_providers(&t).await, b);
        assert_eq!(linked, vec![("corp".to_owned(), 1), ("github".to_owned(), 1)], "{b}");

        let mut tx = ok(store.transaction().await, b);
        ok(tx.unlink_identity(&t, &ada, &provider("github"), &Actor::Cli).await, b);
        let again = tx.unlink_identity(&t, &ada, &provider("github"), &Actor::Cli).await;
        assert!(matches!(again, Err(StoreError::NotFound(_))), "{b}: {again:?}");
        ok(tx.commit().await, b);
        assert!(ok(store.federated_identity(&t, &provider("github"), &subject("583231")).await, b).is_none(), "{b}");
        let events = ok(store.recent_audit_events(&t, 20).await, b);
        let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
        assert!(actions.contains(&"identity.linked") && actions.contains(&"identity.unlinked"), "{b}: {actions:?}");

        // Deleting the user takes the links along.
        ok(store.delete_user(&t, &bob, &Actor::Cli).await, b);
        assert!(ok(store.federated_identity(&t, &provider("corp"), &subject("583231")).await, b).is_none(), "{b}");
    }
}

#[tokio::test]
async fn a_federated_account_is_made_with_its_link_or_not_at_all() {
    for db in TestDatabase::all().await {
        let store = open(&db).await;
        let (t, b) = (tenant(), db.backend);
        let new = sample_user("octocat");
        let sub = new.sub.clone();
        let made = ok(store.create_federated_account(&t, new, &link("github", "1", &sub), &Actor::System).await, b);
        assert_eq!(made.username.as_str(), "octocat", "{b}");
        let m = methods(store.as_ref(), &sub).await;
        assert_eq!((m.password, m.passkeys, m.linked_providers), (false, 0, vec!["github".to_owned()]), "{b}");

        // A taken username: no user, no link.
        let clash = sample_user("octocat");
        let clash_sub = clash.sub.clone();
        let refused = store.create_federated_account(&t, clash, &link("github", "2", &clash_sub), &Actor::System).await;
        assert!(matches!(refused, Err(StoreError::Conflict(_))), "{b}: {refused:?}");
        assert!(ok(store.federated_identity(&t, &provider("github"), &subject("2")).await, b).is_none(), "{b}");
        // An upstream account linked already: no second user.
        let twin = sample_user("octocat2");
        let twin_sub = twin.sub.clone();
        let refused = store.create_federated_account(&t, twin, &link("github", "1", &twin_sub), &Actor::System).await;
        assert!(matches!(refused, Err(StoreError::Conflict(_))), "{b}: {refused:?}");
        assert!(ok(store.user_by_sub(&t, &twin_sub).await, b).is_none(), "{b}: the user was rolled back");
    }
}
