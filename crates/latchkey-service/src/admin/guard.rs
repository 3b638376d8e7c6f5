//! The rules that keep administration possible: the built-in roles are Latchkey's, admin
//! entitlements are admin scopes on tenant-wide roles, and nobody removes the last person
//! who holds `latchkey-admin`, nor (through the admin API) their own admin rights.

use latchkey_core::domain::{ADMIN_ROLE, AdminScope, BUILT_IN_ROLE_PREFIX, Entitlement, RoleName, SubjectId, TenantId};
use latchkey_core::records::Actor;

use super::Admin;
use crate::{ServiceError, ServiceResult};

/// Whether `name` is one of Latchkey's own roles.
pub fn is_built_in_role(name: &RoleName) -> bool {
    name.as_str().starts_with(BUILT_IN_ROLE_PREFIX)
}

/// A built-in role is never created, changed or deleted by anyone.
pub fn refuse_built_in(name: &RoleName) -> ServiceResult<()> {
    if is_built_in_role(name) {
        return Err(ServiceError::Forbidden(format!(
            "`{name}`: role names beginning with `{BUILT_IN_ROLE_PREFIX}` are Latchkey's own and cannot be created, changed or deleted"
        )));
    }
    Ok(())
}

/// Admin entitlements must be admin scopes, and only on a tenant-wide role (an application
/// role's entitlements go to that application's tokens, never to the admin API).
pub fn check_entitlements<'e>(
    entitlements: impl IntoIterator<Item = &'e Entitlement>,
    application_role: bool,
) -> ServiceResult<()> {
    for e in entitlements.into_iter().filter(|e| AdminScope::is_admin_name(e.as_str())) {
        if AdminScope::parse(e.as_str()).is_none() {
            return Err(ServiceError::Invalid(format!("`{e}` is not an admin scope")));
        }
        if application_role {
            return Err(ServiceError::Forbidden(format!(
                "`{e}` is an admin right: only a tenant-wide role may confer it"
            )));
        }
    }
    Ok(())
}

impl Admin<'_> {
    /// Refuses an admin API caller locking or deleting their own account.
    pub fn may_remove(sub: &SubjectId, actor: &Actor) -> ServiceResult<()> {
        if let Actor::AdminApi { sub: Some(me), .. } = actor
            && me == sub.as_str()
        {
            return Err(ServiceError::Invalid("you cannot lock or delete the account you are signed in with".into()));
        }
        Ok(())
    }

    /// After a change, in its transaction (`before` and `after` from
    /// [`StoreTx::active_admins`](latchkey_store::StoreTx::active_admins)): refuses one that
    /// left nobody holding `latchkey-admin`, or that took an admin API caller's own.
    pub fn check_admins_kept(before: &[SubjectId], after: &[SubjectId], actor: &Actor) -> ServiceResult<()> {
        if !before.is_empty() && after.is_empty() {
            return Err(ServiceError::Conflict(format!(
                "that would leave nobody holding `{ADMIN_ROLE}` (the last active holder): grant it to someone else first"
            )));
        }
        if let Actor::AdminApi { sub: Some(me), .. } = actor
            && before.iter().any(|s| s.as_str() == me)
            && !after.iter().any(|s| s.as_str() == me)
        {
            return Err(ServiceError::Invalid(format!("you cannot take `{ADMIN_ROLE}` from yourself")));
        }
        Ok(())
    }
}

impl super::AdminCaller {
    /// Refuses handing out an admin right the caller does not hold itself: through a role's
    /// entitlements, a membership, an API key's scopes or a client's scopes.
    pub fn may_confer<'a>(&self, rights: impl IntoIterator<Item = &'a str>) -> ServiceResult<()> {
        for right in rights {
            if let Some(scope) = AdminScope::parse(right)
                && !self.may(scope)
            {
                return Err(ServiceError::Forbidden(format!(
                    "you do not hold `{scope}`, so you cannot give it to anyone"
                )));
            }
        }
        Ok(())
    }
}

impl Admin<'_> {
    /// Refuses changing an account that holds admin rights the caller does not: its
    /// password, address, factors, state, sessions or keys would be the caller's way to
    /// those rights.
    pub async fn may_manage(
        &self,
        tenant: &TenantId,
        caller: &super::AdminCaller,
        target: &SubjectId,
    ) -> ServiceResult<()> {
        let held = self.0.access().user_access(tenant, target).await?;
        let rights: Vec<&str> = held
            .roles
            .iter()
            .filter(|r| r.application.is_none())
            .flat_map(|r| r.entitlements.iter().map(Entitlement::as_str))
            .collect();
        caller.may_confer(rights.iter().copied()).map_err(|_| {
            ServiceError::Forbidden(format!(
                "{target} holds admin rights you do not: only an administrator who holds them may change this account"
            ))
        })
    }

    /// The admin rights a membership would confer: the role's entitlements, or for a
    /// group member, those of every role of the group.
    pub async fn rights_conferred_by(
        &self,
        tenant: &TenantId,
        link: &latchkey_core::records::Membership,
    ) -> ServiceResult<Vec<String>> {
        use latchkey_core::records::Membership;
        let access = self.0.access();
        let roles: Vec<RoleName> = match link {
            Membership::UserRole { role, .. } | Membership::GroupRole { role, .. } => vec![role.clone()],
            Membership::GroupMember { group, .. } => {
                access.group(tenant, group).await?.map(|g| g.roles).unwrap_or_default()
            }
        };
        let mut rights = Vec::new();
        for name in roles {
            if let Some(role) = access.role(tenant, &name).await? {
                rights.extend(role.entitlements.iter().map(|e| e.as_str().to_owned()));
            }
        }
        Ok(rights)
    }
}

impl super::AdminCaller {
    /// Refuses changing, rotating or deleting a client that holds admin scopes the caller
    /// does not: its secret or redirect URIs would be the caller's way to those rights.
    pub fn may_manage_client(&self, client: &latchkey_core::records::Client) -> ServiceResult<()> {
        self.may_confer(client.allowed_scopes.iter().map(|s| s.as_str())).map_err(|_| {
            ServiceError::Forbidden(format!(
                "client `{}` holds admin scopes you do not: only an administrator who holds them may change it",
                client.client_id
            ))
        })
    }

    /// Through the API a client's admin rights are set when it is registered and only ever
    /// narrowed after: anyone who managed it before (who may know its secret, or have set
    /// its keys or redirect URIs) would otherwise gain what it is given later. Register a
    /// new admin client instead (the CLI, at the host, may still widen one).
    pub fn may_widen_client(
        &self,
        before: &latchkey_core::records::Client,
        scopes: &[latchkey_core::domain::ScopeName],
        admin_client: bool,
    ) -> ServiceResult<()> {
        let added = scopes.iter().find(|s| AdminScope::is_admin_name(s.as_str()) && !before.allowed_scopes.contains(s));
        if let Some(scope) = added {
            return Err(ServiceError::Forbidden(format!(
                "`{scope}`: an existing client is not given admin scopes through the API (whoever managed it could hold them then); register a new admin client"
            )));
        }
        if admin_client && !before.admin_client {
            return Err(ServiceError::Forbidden(
                "an existing client does not become an admin client through the API (whoever managed it could hold its rights then); register a new admin client".into(),
            ));
        }
        Ok(())
    }

    /// Whether `client` is the one whose token makes this call.
    pub fn is_calling_client(&self, client: &latchkey_core::domain::ClientId) -> bool {
        matches!(&self.actor, Actor::AdminApi { client_id, .. } if client_id == client.as_str())
    }

    /// Refuses a change that would take admin rights from the client whose token makes the
    /// call (it would lock the caller out), or delete it (`after` is `None`).
    pub fn may_change_own_client(
        &self,
        before: &latchkey_core::records::Client,
        after: Option<(&[latchkey_core::domain::ScopeName], bool)>,
    ) -> ServiceResult<()> {
        if !self.is_calling_client(&before.client_id) {
            return Ok(());
        }
        let kept = after.is_some_and(|(scopes, admin_client)| {
            admin_client
                && before
                    .allowed_scopes
                    .iter()
                    .filter(|s| AdminScope::is_admin_name(s.as_str()))
                    .all(|s| scopes.contains(s))
        });
        if kept {
            return Ok(());
        }
        Err(ServiceError::Invalid(format!(
            "`{}` is the client you are calling with: you cannot delete it or take its admin scopes",
            before.client_id
        )))
    }
}
