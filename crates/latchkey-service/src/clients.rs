//! OAuth clients (relying parties).

use latchkey_core::UnixTime;
use latchkey_core::crypto::{TokenHash, TokenHasher};
use latchkey_core::domain::{AdminScope, ClientId, ScopeName, TenantId};
use latchkey_core::records::{Actor, Client, ClientPatch, NewClient};

use crate::{Latchkey, ServiceError, ServiceResult, pass_through};

/// The purpose client secrets are hashed under, where they are stored and where they are
/// checked.
pub const CLIENT_SECRET_PURPOSE: &str = "client_secret";

/// The stored form of a client secret.
pub fn secret_hash(hasher: &TokenHasher, secret: &str) -> TokenHash {
    hasher.hash(CLIENT_SECRET_PURPOSE, secret)
}

pub struct Clients<'a>(pub(crate) &'a Latchkey);

/// Admin scopes go to admin clients only, and only the admin scopes Latchkey defines.
fn check_admin_scopes(scopes: &[ScopeName], admin_client: bool) -> ServiceResult<()> {
    for s in scopes.iter().filter(|s| AdminScope::is_admin_name(s.as_str())) {
        if AdminScope::parse(s.as_str()).is_none() {
            return Err(ServiceError::Invalid(format!("`{s}` is not an admin scope")));
        }
        if !admin_client {
            return Err(ServiceError::Invalid(format!(
                "`{s}` is an admin scope: only an admin client (`--admin-client`) may be given admin scopes"
            )));
        }
    }
    Ok(())
}

impl Clients<'_> {
    /// Creates a client; an id already in use, by a client or as a user's `sub`, is
    /// `Conflict`; a required role that does not exist is `NotFound`.
    pub async fn create(&self, tenant: &TenantId, client: NewClient, actor: &Actor) -> ServiceResult<Client> {
        check_admin_scopes(&client.allowed_scopes, client.admin_client)?;
        self.0.access().check_policy(tenant, &client.access_policy).await?;
        Ok(self.0.store().create_client(tenant, client, actor).await?)
    }

    /// Changes a client; a required role that does not exist is `NotFound`.
    pub async fn update(
        &self,
        tenant: &TenantId,
        id: &ClientId,
        patch: ClientPatch,
        actor: &Actor,
    ) -> ServiceResult<Client> {
        if let Some(policy) = &patch.access_policy {
            self.0.access().check_policy(tenant, policy).await?;
        }
        if patch.allowed_scopes.is_some() || patch.admin_client.is_some() {
            let current =
                self.get(tenant, id).await?.ok_or_else(|| ServiceError::NotFound(format!("client `{id}`")))?;
            let scopes = patch.allowed_scopes.as_ref().unwrap_or(&current.allowed_scopes);
            check_admin_scopes(scopes, patch.admin_client.unwrap_or(current.admin_client))?;
        }
        Ok(self.0.store().update_client(tenant, id, patch, actor).await?)
    }

    /// Deletes a client with its grants and its application roles. Refused while another
    /// client requires one of those roles (everyone would lose access to it, unsaid).
    pub async fn delete(&self, tenant: &TenantId, id: &ClientId, actor: &Actor) -> ServiceResult<()> {
        let store = self.0.store();
        let own: Vec<_> =
            store.list_roles(tenant).await?.into_iter().filter(|r| r.application.as_ref() == Some(id)).collect();
        if !own.is_empty() {
            for other in store.list_clients(tenant).await? {
                let Some(required) = other.access_policy.required_roles.as_ref().filter(|_| &other.client_id != id)
                else {
                    continue;
                };
                if let Some(role) = own.iter().find(|r| required.roles().contains(&r.name)) {
                    return Err(crate::ServiceError::Conflict(format!(
                        "client `{}` requires role `{}`, which belongs to `{id}` and would go with it; change `{}` first",
                        other.client_id, role.name, other.client_id
                    )));
                }
            }
        }
        store.delete_client(tenant, id, actor).await?;
        self.0.caches.forget_access();
        Ok(())
    }

    pass_through! {
        fn get(tenant: &TenantId, id: &ClientId) -> Option<Client> => client;
        fn list(tenant: &TenantId) -> Vec<Client> => list_clients;
        /// Client ids that are also a user's `sub` (stored before such collisions were refused).
        fn ids_shared_with_users(tenant: &TenantId) -> Vec<ClientId> => client_ids_shared_with_users;
        /// Records a client assertion id; `false` when it was seen before (a replay).
        fn remember_assertion_jti(tenant: &TenantId, client: &ClientId, jti: &str, expires_at: UnixTime) -> bool
            => remember_assertion_jti;
    }

    /// Replaces the secret with `new_secret`; the old one stays valid until `previous_valid_until`.
    pub async fn rotate_secret(
        &self,
        tenant: &TenantId,
        id: &ClientId,
        new_secret: &str,
        previous_valid_until: UnixTime,
        actor: &Actor,
    ) -> ServiceResult<()> {
        let hash = secret_hash(&self.0.token_hasher, new_secret);
        Ok(self.0.store().rotate_client_secret(tenant, id, &hash, previous_valid_until, actor).await?)
    }
}
