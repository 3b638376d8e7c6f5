//! Roles, groups and entitlements: managing them, what a user holds, what a client is told
//! (RFC 9068 §2.2.3.1) and whom it admits.

use std::sync::Arc;

use latchkey_core::domain::{ClientAccessPolicy, ClientId, Entitlement, GroupName, RoleName, SubjectId, TenantId};
use latchkey_core::records::{Actor, Client, Group, Membership, NewRole, Role, RolePatch, UserAccess};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{Latchkey, ServiceError, ServiceResult, admin, pass_through};

/// The longest description a role or group keeps.
pub const MAX_DESCRIPTION: usize = 500;

pub struct Access<'a>(pub(crate) &'a Latchkey);

impl Access<'_> {
    pass_through! {
        fn role(tenant: &TenantId, name: &RoleName) -> Option<Role> => role;
        fn roles(tenant: &TenantId) -> Vec<Role> => list_roles;
        fn group(tenant: &TenantId, name: &GroupName) -> Option<Group> => group;
        fn groups(tenant: &TenantId) -> Vec<Group> => list_groups;
        /// The users who hold a role, directly or through a group.
        fn role_holders(tenant: &TenantId, role: &RoleName) -> Vec<SubjectId> => role_holders;
        /// What a user holds, read from the database (not the cache).
        fn user_access(tenant: &TenantId, sub: &SubjectId) -> UserAccess => user_access;
    }

    /// Creates a role, tenant-wide or belonging to `application` (a registered client).
    pub async fn create_role(&self, tenant: &TenantId, role: NewRole, actor: &Actor) -> ServiceResult<Role> {
        check_description(&role.description)?;
        admin::refuse_built_in(&role.name)?;
        admin::check_entitlements(&role.entitlements, role.application.is_some())?;
        let created = self.0.store().create_role(tenant, role, actor).await?;
        self.0.caches.forget_access();
        Ok(created)
    }

    pub async fn update_role(
        &self,
        tenant: &TenantId,
        name: &RoleName,
        patch: RolePatch,
        actor: &Actor,
    ) -> ServiceResult<Role> {
        if let Some(d) = &patch.description {
            check_description(d)?;
        }
        admin::refuse_built_in(name)?;
        if !patch.add_entitlements.is_empty() {
            let current =
                self.role(tenant, name).await?.ok_or_else(|| ServiceError::NotFound(format!("role `{name}`")))?;
            admin::check_entitlements(&patch.add_entitlements, current.application.is_some())?;
        }
        if let Some(both) = patch.add_entitlements.iter().find(|e| patch.remove_entitlements.contains(e)) {
            return Err(ServiceError::Invalid(format!("`{both}` is both added and removed")));
        }
        let updated = self.0.store().update_role(tenant, name, patch, actor).await?;
        self.0.caches.forget_access();
        Ok(updated)
    }

    /// Deletes a role and every link to it. A role a client requires is refused: deleting
    /// it would lock everyone out of that client without saying why.
    pub async fn delete_role(&self, tenant: &TenantId, name: &RoleName, actor: &Actor) -> ServiceResult<()> {
        admin::refuse_built_in(name)?;
        let requiring: Vec<String> = self
            .0
            .store()
            .list_clients(tenant)
            .await?
            .into_iter()
            .filter(|c| c.access_policy.required_roles.as_ref().is_some_and(|r| r.roles().contains(name)))
            .map(|c| format!("`{}`", c.client_id))
            .collect();
        if !requiring.is_empty() {
            return Err(ServiceError::Conflict(format!(
                "role `{name}` is required by client {}; change the client's required roles first",
                requiring.join(", ")
            )));
        }
        if let Some(line) = self.0.rule_naming(Some(name), None).await {
            return Err(ServiceError::Conflict(format!(
                "role `{name}` is required by the forward-auth rules (line {line}); change the rules first"
            )));
        }
        self.0.store().delete_role(tenant, name, actor).await?;
        self.0.caches.forget_access();
        Ok(())
    }

    pub async fn create_group(
        &self,
        tenant: &TenantId,
        name: &GroupName,
        description: &str,
        actor: &Actor,
    ) -> ServiceResult<Group> {
        check_description(description)?;
        let created = self.0.store().create_group(tenant, name, description, actor).await?;
        self.0.caches.forget_access();
        Ok(created)
    }

    pub async fn set_group_description(
        &self,
        tenant: &TenantId,
        name: &GroupName,
        description: &str,
        actor: &Actor,
    ) -> ServiceResult<()> {
        check_description(description)?;
        self.0.store().set_group_description(tenant, name, description, actor).await?;
        self.0.caches.forget_access();
        Ok(())
    }

    pub async fn delete_group(&self, tenant: &TenantId, name: &GroupName, actor: &Actor) -> ServiceResult<()> {
        let grants_admin = self.group(tenant, name).await?.is_some_and(|g| g.roles.iter().any(admin::is_built_in_role));
        if grants_admin {
            return Err(ServiceError::Conflict(format!(
                "group `{name}` confers a built-in admin role: take the role from the group first"
            )));
        }
        if let Some(line) = self.0.rule_naming(None, Some(name)).await {
            return Err(ServiceError::Conflict(format!(
                "group `{name}` is required by the forward-auth rules (line {line}); change the rules first"
            )));
        }
        self.0.store().delete_group(tenant, name, actor).await?;
        self.0.caches.forget_access();
        Ok(())
    }

    /// Adds a link (`user grant`, a group member, a group's role); `false` when it existed.
    pub async fn link(&self, tenant: &TenantId, link: &Membership, actor: &Actor) -> ServiceResult<bool> {
        let added = self.0.store().set_membership(tenant, link, true, actor).await?;
        self.0.caches.forget_access();
        Ok(added)
    }

    /// Removes a link; one that does not exist is `NotFound`, so a mistyped revocation is
    /// never taken for a done one.
    pub async fn unlink(&self, tenant: &TenantId, link: &Membership, actor: &Actor) -> ServiceResult<()> {
        let mut tx = self.0.store().transaction().await?;
        let before = tx.active_admins(tenant).await?;
        if !tx.set_membership(tenant, link, false, actor).await? {
            return Err(ServiceError::NotFound(match link {
                Membership::UserRole { sub, role } => format!("a direct grant of role `{role}` to user {sub}"),
                Membership::GroupMember { group, sub } => format!("user {sub} in group `{group}`"),
                Membership::GroupRole { group, role } => format!("role `{role}` in group `{group}`"),
            }));
        }
        // Refused, the transaction is dropped and nothing changes: nobody may be left unable
        // to administer, nor demote themselves.
        admin::Admin::check_admins_kept(&before, &tx.active_admins(tenant).await?, actor)?;
        tx.commit().await?;
        self.0.caches.forget_access();
        Ok(())
    }

    /// What a user holds now, as every node sees it (cached; changes reach every node
    /// within the change feed's bound).
    pub async fn held(&self, sub: &SubjectId) -> ServiceResult<Arc<UserAccess>> {
        self.0.caches.access(sub).await
    }

    /// Whether `client` admits the user: it requires no roles, or the user holds them.
    pub async fn admits(&self, client: &Client, sub: &SubjectId) -> ServiceResult<bool> {
        let Some(required) = &client.access_policy.required_roles else { return Ok(true) };
        Ok(required.is_met_by(self.held(sub).await?.role_names()))
    }

    /// The access claims `client` gets about the user, by its policy (none by default).
    pub async fn claims_for(&self, client: &Client, sub: &SubjectId) -> ServiceResult<ReleasedAccess> {
        if !client.access_policy.releases_any() {
            return Ok(ReleasedAccess::default());
        }
        Ok(released_claims(&client.access_policy, &client.client_id, &*self.held(sub).await?))
    }
}

impl Access<'_> {
    /// Whether a token's client still admits the token's user (an unknown client or a
    /// malformed id: no).
    pub async fn still_admitted(&self, client_id: &str, sub: &str) -> ServiceResult<bool> {
        let (Ok(client_id), Ok(sub)) = (ClientId::parse(client_id), SubjectId::parse(sub)) else { return Ok(false) };
        match self.0.caches.client(&client_id).await? {
            Some(client) => self.admits(&client, &sub).await,
            None => Ok(false),
        }
    }

    /// What a token's client gets about the token's user now (UserInfo, introspection):
    /// roles granted or revoked since the token was minted show at once. Nothing for an
    /// unknown client or a malformed id.
    pub async fn current_claims(&self, client_id: &str, sub: &str) -> ServiceResult<ReleasedAccess> {
        let (Ok(client_id), Ok(sub)) = (ClientId::parse(client_id), SubjectId::parse(sub)) else {
            return Ok(ReleasedAccess::default());
        };
        match self.0.caches.client(&client_id).await? {
            Some(client) => self.claims_for(&client, &sub).await,
            None => Ok(ReleasedAccess::default()),
        }
    }
}

pub(crate) fn check_description(d: &str) -> ServiceResult<()> {
    if d.chars().count() > MAX_DESCRIPTION || d.chars().any(char::is_control) {
        return Err(ServiceError::Invalid(format!(
            "a description is at most {MAX_DESCRIPTION} characters, on one line without control characters"
        )));
    }
    Ok(())
}

/// The access claims released to a client (RFC 9068 §2.2.3.1); `None` is not released.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleasedAccess {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entitlements: Option<Vec<String>>,
}

impl ReleasedAccess {
    /// As JSON members, to add to an ID token, UserInfo or an introspection answer.
    pub fn into_map(self) -> Map<String, Value> {
        let mut out = Map::new();
        for (name, values) in [("roles", self.roles), ("groups", self.groups), ("entitlements", self.entitlements)] {
            if let Some(values) = values {
                out.insert(name.into(), values.into());
            }
        }
        out
    }
}

/// The claims a policy releases of what a user holds. Roles: the tenant-wide ones (unless
/// only application roles are asked for) and the client's own, never another
/// application's. Entitlements: those of the released roles. Groups: all the user's. A
/// released claim is always present, empty when the user holds nothing, so an app can tell
/// "no roles" from "not told".
pub fn released_claims(policy: &ClientAccessPolicy, client: &ClientId, access: &UserAccess) -> ReleasedAccess {
    let roles: Vec<_> = access
        .roles
        .iter()
        .filter(|r| match &r.application {
            Some(app) => app == client,
            None => !policy.application_roles_only,
        })
        .collect();
    ReleasedAccess {
        roles: policy.release_roles.then(|| roles.iter().map(|r| r.name.to_string()).collect()),
        groups: policy.release_groups.then(|| access.groups.iter().map(ToString::to_string).collect()),
        entitlements: policy.release_entitlements.then(|| {
            let mut all: Vec<&Entitlement> = roles.iter().flat_map(|r| &r.entitlements).collect();
            all.sort();
            all.dedup();
            all.into_iter().map(ToString::to_string).collect()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use latchkey_core::records::HeldRole;

    fn held(name: &str, app: Option<&str>, ents: &[&str]) -> HeldRole {
        HeldRole {
            name: RoleName::parse(name).unwrap_or_else(|e| panic!("{e}")),
            application: app.map(|a| ClientId::parse(a).unwrap_or_else(|e| panic!("{e}"))),
            entitlements: ents.iter().map(|e| Entitlement::parse(e).unwrap_or_else(|e| panic!("{e}"))).collect(),
            direct: true,
            via_groups: vec![],
        }
    }

    fn access() -> UserAccess {
        UserAccess {
            roles: vec![
                held("editor", None, &["docs:write", "docs:read"]),
                held("wiki-admin", Some("wiki"), &["wiki:admin", "docs:read"]),
                held("crm-admin", Some("crm"), &["crm:admin"]),
            ],
            groups: vec![GroupName::parse("staff").unwrap_or_else(|e| panic!("{e}"))],
        }
    }

    fn wiki() -> ClientId {
        ClientId::parse("wiki").unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn nothing_is_released_by_default() {
        assert!(released_claims(&ClientAccessPolicy::default(), &wiki(), &access()).into_map().is_empty());
    }

    #[test]
    fn a_client_gets_tenant_roles_and_its_own_never_another_applications() {
        let all = ClientAccessPolicy {
            release_roles: true,
            release_groups: true,
            release_entitlements: true,
            ..Default::default()
        };
        let out = Value::Object(released_claims(&all, &wiki(), &access()).into_map());
        assert_eq!(out["roles"], serde_json::json!(["editor", "wiki-admin"]));
        assert_eq!(out["groups"], serde_json::json!(["staff"]));
        assert_eq!(out["entitlements"], serde_json::json!(["docs:read", "docs:write", "wiki:admin"]));
        let own = ClientAccessPolicy { application_roles_only: true, ..all };
        let out = Value::Object(released_claims(&own, &wiki(), &access()).into_map());
        assert_eq!(out["roles"], serde_json::json!(["wiki-admin"]));
        assert_eq!(out["entitlements"], serde_json::json!(["docs:read", "wiki:admin"]));
    }

    #[test]
    fn a_released_claim_is_present_and_empty_for_a_user_without_roles() {
        let roles = ClientAccessPolicy { release_roles: true, ..Default::default() };
        let out = released_claims(&roles, &wiki(), &UserAccess::default()).into_map();
        assert_eq!(out.get("roles"), Some(&serde_json::json!([])));
        assert!(!out.contains_key("groups"));
    }
}
