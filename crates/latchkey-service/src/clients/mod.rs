//! OAuth clients (relying parties).

mod rules;

use std::time::Duration;

use latchkey_core::UnixTime;
use latchkey_core::crypto::{TokenHash, TokenHasher, random};
use latchkey_core::domain::{ClientId, TenantId};
use latchkey_core::records::{Actor, Client, ClientPatch, NewClient};
use latchkey_store::StoreError;

pub(crate) use rules::Pending;
pub use rules::{MAX_ACCESS_TOKEN_LIFETIME, MAX_NAME, MAX_REDIRECT_URIS, MAX_REFRESH_REUSE_GRACE, check_jwks};

use crate::{Latchkey, ServiceError, ServiceResult, pass_through};

/// The purpose client secrets are hashed under, where they are stored and where they are
/// checked.
pub const CLIENT_SECRET_PURPOSE: &str = "client_secret";

/// The stored form of a client secret.
pub fn secret_hash(hasher: &TokenHasher, secret: &str) -> TokenHash {
    hasher.hash(CLIENT_SECRET_PURPOSE, secret)
}

pub struct Clients<'a>(pub(crate) &'a Latchkey);

impl Clients<'_> {
    /// Registers a client: for an authentication method that uses a secret, one is made and
    /// returned (shown once; only its hash is kept).
    pub async fn register(
        &self,
        tenant: &TenantId,
        mut client: NewClient,
        actor: &Actor,
    ) -> ServiceResult<(Client, Option<String>)> {
        let secret = client.token_endpoint_auth_method.uses_secret().then(random::token_string::<32>);
        client.secret_hash = secret.as_ref().map(|s| secret_hash(&self.0.token_hasher, s));
        Ok((self.create(tenant, client, actor).await?, secret))
    }

    /// Creates a client whose settings meet every rule ([`rules`]); an id already in use, by a
    /// client or as a user's `sub`, is `Conflict`; a required role that does not exist is
    /// `NotFound`.
    pub async fn create(&self, tenant: &TenantId, mut client: NewClient, actor: &Actor) -> ServiceResult<Client> {
        client.jwks = client.jwks.map(|j| compact(&j));
        self.check(tenant, &preview(tenant, &client), None).await?;
        let created = self.0.store().create_client(tenant, client, actor).await?;
        self.changed(&created.client_id).await;
        Ok(created)
    }

    /// Changes a client, if the client the change leaves meets every rule. A change based on
    /// a read (`if_match`) is refused as `Stale` once the client changed since; any other is
    /// checked against the client as it is and stored only if it is still so (tried again
    /// if another change came between).
    pub async fn update(
        &self,
        tenant: &TenantId,
        id: &ClientId,
        patch: ClientPatch,
        actor: &Actor,
    ) -> ServiceResult<Client> {
        let mut patch = patch;
        patch.jwks = patch.jwks.map(|set| set.map(|j| compact(&j)));
        for _ in 0..3 {
            let current =
                self.get(tenant, id).await?.ok_or_else(|| ServiceError::NotFound(format!("client `{id}`")))?;
            if patch.if_match.as_ref().is_some_and(|tag| *tag != current.etag()) {
                return Err(ServiceError::Stale(format!("client {id} changed since it was read; read it again")));
            }
            let mut next = current.clone();
            patch.clone().apply_to(&mut next);
            self.check(tenant, &next, Some(&current)).await?;
            let attempt = ClientPatch { if_match: Some(current.etag()), ..patch.clone() };
            match self.0.store().update_client(tenant, id, attempt, actor).await {
                Err(StoreError::Stale(_)) if patch.if_match.is_none() => continue,
                done => {
                    let updated = done?;
                    self.changed(id).await;
                    return Ok(updated);
                }
            }
        }
        Err(ServiceError::Conflict(format!("client `{id}` kept changing while this change was made; try again")))
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
        self.changed(id).await;
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

    /// Gives the client a new secret, returned once; the old one stays valid for `grace`
    /// (at most [`MAX_SECRET_GRACE`]). A client without a secret is `Invalid`.
    pub async fn rotate_secret(
        &self,
        tenant: &TenantId,
        id: &ClientId,
        grace: Duration,
        actor: &Actor,
    ) -> ServiceResult<(String, UnixTime)> {
        if grace > MAX_SECRET_GRACE {
            return Err(ServiceError::Invalid(format!(
                "the old secret stays valid for at most {}; a longer overlap keeps a leaked secret working",
                latchkey_core::duration::format(MAX_SECRET_GRACE)
            )));
        }
        let secret = random::token_string::<32>();
        let until = self.replace_secret(tenant, id, &secret, grace, actor).await?;
        Ok((secret, until))
    }

    /// Makes `secret` the client's; the old one stays valid for `grace`. Returns until when.
    pub(crate) async fn replace_secret(
        &self,
        tenant: &TenantId,
        id: &ClientId,
        secret: &str,
        grace: Duration,
        actor: &Actor,
    ) -> ServiceResult<UnixTime> {
        let hash = secret_hash(&self.0.token_hasher, secret);
        let until = self.0.clock.now().plus(grace);
        self.0.store().rotate_client_secret(tenant, id, &hash, until, actor).await?;
        self.changed(id).await;
        Ok(until)
    }

    /// A change made here is in force on this node at once; other nodes hear of it.
    async fn changed(&self, id: &ClientId) {
        self.0.caches.forget_client(id);
        if let Err(e) = self.0.caches.rebuild_web_origins().await {
            tracing::warn!(error = %e, "the web origins of the clients were not rebuilt; they will be on the next change");
        }
    }
}

/// The ID token algorithm of a client that names none: RS256 (what OpenID Connect
/// assumes), or the first of `keys.algorithms` where the server keeps no RS256 key.
pub fn default_id_token_alg(config: &latchkey_config::Config) -> latchkey_core::domain::SigningAlg {
    use latchkey_core::domain::SigningAlg;
    if config.keys.algorithms.contains(&SigningAlg::Rs256) {
        SigningAlg::Rs256
    } else {
        config.keys.algorithms.first().copied().unwrap_or(SigningAlg::Rs256)
    }
}

/// The longest time a rotated client secret keeps working beside the new one.
pub const MAX_SECRET_GRACE: Duration = Duration::from_secs(30 * 86_400);

/// A JWK set as stored: compact JSON, so its formatting changes neither the stored value
/// nor the client's ETag (text that is not JSON is kept, for the rules to refuse).
fn compact(jwks: &str) -> String {
    serde_json::from_str::<serde_json::Value>(jwks).map_or_else(|_| jwks.to_owned(), |v| v.to_string())
}

/// The client `new` would be once stored, for the rules.
pub(crate) fn preview(tenant: &TenantId, new: &NewClient) -> Client {
    let n = new.clone();
    Client {
        tenant: tenant.clone(),
        client_id: n.client_id,
        name: n.name,
        kind: n.kind,
        secret_hash: n.secret_hash,
        previous_secret_hash: None,
        previous_secret_expires_at: None,
        redirect_uris: n.redirect_uris,
        post_logout_redirect_uris: n.post_logout_redirect_uris,
        grant_types: n.grant_types,
        allowed_scopes: n.allowed_scopes,
        token_endpoint_auth_method: n.token_endpoint_auth_method,
        id_token_signed_response_alg: n.id_token_signed_response_alg,
        first_party: n.first_party,
        jwks: n.jwks,
        jwks_uri: n.jwks_uri,
        allow_insecure_no_pkce: n.allow_insecure_no_pkce,
        allow_legacy_assertion_audience: n.allow_legacy_assertion_audience,
        access_token_lifetime: n.access_token_lifetime,
        session_policy: n.session_policy,
        access_policy: n.access_policy,
        allow_insecure_redirect_uris: n.allow_insecure_redirect_uris,
        refresh_reuse_grace: n.refresh_reuse_grace,
        admin_client: n.admin_client,
        created_at: 0,
        updated_at: 0,
    }
}
