//! The admin API's callers: who presents what, and which admin rights that is worth now.
//!
//! Three kinds of caller, never confused:
//! - a **person**, with an access token from their own grant (authorization code, then
//!   refresh) to an admin client: worth the token's admin scopes intersected with the
//!   entitlements of the roles the person holds *now* (read from the database at each
//!   request, so a removed role stops the next call), and only from a sign-in with MFA or
//!   a passkey;
//! - an **admin client** with a client-credentials token: worth the token's admin scopes
//!   that the client may still have;
//! - a **service account's API key**: worth the key's admin scopes its owner still holds.
//!
//! A client-credentials token or an API key never counts as a person, whatever its `sub`.

mod guard;

use std::collections::BTreeSet;

use latchkey_core::domain::{AdminScope, AuthLevel, ClientId, PresentedApiKey, SubjectId, TenantId};
use latchkey_core::records::{Actor, IdempotentClaim};

use crate::token_verification::VerifyError;
use crate::{Latchkey, ServiceResult};

pub use guard::{check_entitlements, is_built_in_role, refuse_built_in};

pub struct Admin<'a>(pub(crate) &'a Latchkey);

/// A caller of the admin API that was authenticated, with the rights it holds now.
#[derive(Debug, Clone)]
pub struct AdminCaller {
    /// Who the audit log names.
    pub actor: Actor,
    /// The person, for a person's token (never for a client or an API key).
    pub person: Option<SubjectId>,
    pub rights: BTreeSet<AdminScope>,
    /// The API key it presented, if it is one (a key makes no keys).
    pub key: Option<latchkey_core::domain::ApiKeyId>,
}

impl AdminCaller {
    pub fn may(&self, scope: AdminScope) -> bool {
        self.rights.contains(&scope)
    }

    /// The caller as one stable string (idempotency keys are kept per caller).
    pub fn key(&self) -> String {
        self.actor.as_string()
    }
}

/// Why a credential is not let in. `Unauthenticated` and `WeakSignIn` are 401 (the caller
/// must get another token), `NoRights` 403.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminRefusal {
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// RFC 9470: a person's token must come from a sign-in with MFA or a passkey.
    #[error("an administrator must sign in with a passkey or a second factor")]
    WeakSignIn,
    #[error("{0}")]
    NoRights(&'static str),
}

impl Admin<'_> {
    /// Records that an administrator read personal data (accountability, GDPR Art. 5(2)):
    /// who, about whom (`subject`: a subject id, or `#users` for a list), and what part, never
    /// the data itself.
    pub async fn record_read(
        &self,
        tenant: &TenantId,
        caller: &AdminCaller,
        subject: &str,
        what: &str,
        details: serde_json::Value,
    ) -> ServiceResult<()> {
        let mut details = details;
        if let Some(map) = details.as_object_mut() {
            map.insert("what".into(), serde_json::Value::String(what.to_owned()));
        }
        self.0.audit().record(tenant, &caller.actor, "admin.read", subject, details).await
    }

    crate::pass_through! {
        /// Claims an `Idempotency-Key` of `caller` for one create, or says what it left.
        fn claim_idempotency_key(tenant: &TenantId, caller: &str, key: &str, request_hash: &str) -> IdempotentClaim
            => claim_idempotency_key;
        /// Keeps the response of the create that claimed the key (24 hours).
        fn keep_idempotent_response(tenant: &TenantId, caller: &str, key: &str, status: u16, location: Option<&str>, body: &str) -> ()
            => keep_idempotent_response;
        /// Frees a key whose create failed.
        fn release_idempotency_key(tenant: &TenantId, caller: &str, key: &str) -> () => release_idempotency_key;
    }

    /// Authenticates `credential` (an access token or an API key) for a request of
    /// `method` to `path` (the normalised path, for an API key limited to routes).
    pub async fn caller(
        &self,
        tenant: &TenantId,
        credential: &str,
        method: &str,
        path: &str,
    ) -> ServiceResult<Result<AdminCaller, AdminRefusal>> {
        let caller = if PresentedApiKey::looks_like(credential) {
            self.key_caller(credential, method, path).await?
        } else {
            self.token_caller(tenant, credential).await?
        };
        Ok(caller.and_then(|c| {
            if c.rights.is_empty() {
                Err(AdminRefusal::NoRights("the credential carries no admin rights"))
            } else {
                Ok(c)
            }
        }))
    }

    async fn key_caller(
        &self,
        credential: &str,
        method: &str,
        path: &str,
    ) -> ServiceResult<Result<AdminCaller, AdminRefusal>> {
        let keys = self.0.api_keys();
        let verified = match keys.verify(credential).await? {
            Ok(v) => v,
            Err(refusal) => {
                tracing::debug!(%refusal, "admin API: API key refused");
                return Ok(Err(AdminRefusal::Unauthenticated("the API key is not valid")));
            }
        };
        // A person's key is for their own UserInfo; only a service account acts on the admin API.
        if !verified.owner.service_account {
            return Ok(Err(AdminRefusal::NoRights("only a service account's API key may call the admin API")));
        }
        let key = &verified.key;
        // Only a key made for the admin API: a key any resource server may see is not one.
        if key.audience.as_deref() != Some(self.0.admin_audience().as_str()) {
            return Ok(Err(AdminRefusal::Unauthenticated("the API key is not for the admin API")));
        }
        if !verified.allows(method, path) {
            return Ok(Err(AdminRefusal::NoRights("the API key is limited to other paths or methods")));
        }
        keys.record_use(key).await;
        // The owner's rights now, from the database (not a node's cache): a role taken or a
        // lock stops the next call on every node.
        let tenant = TenantId::default_tenant();
        match self.0.store().user_by_sub(&tenant, &key.owner).await? {
            Some(u) if !u.locked => {}
            _ => return Ok(Err(AdminRefusal::Unauthenticated("the API key's owner is locked or gone"))),
        }
        let entitled = self.entitled(&tenant, &key.owner).await?;
        let rights =
            key.scopes.iter().filter_map(|s| AdminScope::parse(s.as_str())).filter(|s| entitled.contains(s)).collect();
        let actor = Actor::AdminApi { client_id: format!("api-key:{}", key.id), sub: Some(key.owner.to_string()) };
        Ok(Ok(AdminCaller { actor, person: None, rights, key: Some(key.id.clone()) }))
    }

    async fn token_caller(&self, tenant: &TenantId, token: &str) -> ServiceResult<Result<AdminCaller, AdminRefusal>> {
        let claims = match self.0.live_access_token(token).await {
            Ok(c) => c,
            Err(VerifyError::Expired) => return Ok(Err(AdminRefusal::Unauthenticated("the access token has expired"))),
            Err(_) => return Ok(Err(AdminRefusal::Unauthenticated("the access token is not valid"))),
        };
        if claims.aud != self.0.admin_audience() {
            return Ok(Err(AdminRefusal::Unauthenticated("the access token is for another audience")));
        }
        let Ok(client_id) = ClientId::parse(&claims.client_id) else {
            return Ok(Err(AdminRefusal::Unauthenticated("the access token is not valid")));
        };
        // From the database, not the cache: a client's admin rights change at once everywhere.
        let Some(client) = self.0.clients().get(tenant, &client_id).await? else {
            return Ok(Err(AdminRefusal::Unauthenticated("the access token's client is gone")));
        };
        if !client.admin_client {
            return Ok(Err(AdminRefusal::NoRights("the access token was not issued to an admin client")));
        }
        // The client's admin scopes now: one taken away stops working at once.
        let allowed: BTreeSet<AdminScope> =
            client.allowed_scopes.iter().filter_map(|s| AdminScope::parse(s.as_str())).collect();
        let mut rights: BTreeSet<AdminScope> =
            claims.scope.split(' ').filter_map(AdminScope::parse).filter(|s| allowed.contains(s)).collect();
        let Some(sub) = claims.user_sub() else {
            let actor = Actor::AdminApi { client_id: claims.client_id.clone(), sub: None };
            return Ok(Ok(AdminCaller { actor, person: None, rights, key: None }));
        };
        let Ok(sub) = SubjectId::parse(sub) else {
            return Ok(Err(AdminRefusal::Unauthenticated("the access token is not valid")));
        };
        let strong =
            claims.acr.as_deref().and_then(AuthLevel::from_acr).is_some_and(|l| l.satisfies(AuthLevel::MultiFactor));
        if !strong {
            return Ok(Err(AdminRefusal::WeakSignIn));
        }
        match self.0.store().user_by_sub(tenant, &sub).await? {
            Some(u) if !u.locked && !u.service_account => {}
            _ => return Ok(Err(AdminRefusal::Unauthenticated("the access token's user is locked or gone"))),
        }
        let entitled = self.entitled(tenant, &sub).await?;
        rights.retain(|s| entitled.contains(s));
        let actor = Actor::AdminApi { client_id: claims.client_id.clone(), sub: Some(sub.to_string()) };
        Ok(Ok(AdminCaller { actor, person: Some(sub), rights, key: None }))
    }

    /// The admin rights `sub`'s tenant-wide roles confer now (read from the database).
    async fn entitled(&self, tenant: &TenantId, sub: &SubjectId) -> ServiceResult<BTreeSet<AdminScope>> {
        let held = self.0.access().user_access(tenant, sub).await?;
        Ok(held
            .roles
            .iter()
            .filter(|r| r.application.is_none())
            .flat_map(|r| r.entitlements.iter().filter_map(|e| AdminScope::parse(e.as_str())))
            .collect())
    }
}
