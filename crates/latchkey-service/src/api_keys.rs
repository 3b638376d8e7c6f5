//! API keys for users and service accounts: created with at most the owner's rights, shown
//! once, verified with one lookup by key id (cached) and one keyed-hash comparison in
//! constant time, and worth at most what the owner holds at the moment of use.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use latchkey_core::UnixTime;
use latchkey_core::domain::{ApiKeyId, NewApiKeySecret, PresentedApiKey, RoutePattern, ScopeName, SubjectId, TenantId};
use latchkey_core::records::{Actor, ApiKey, Client, NewApiKey, User};

use crate::{Latchkey, ServiceError, ServiceResult};

/// The purpose API key secrets are hashed under.
pub const API_KEY_PURPOSE: &str = "api_key";
/// Live keys one owner may have: a bound on what a leaked admin session could mint.
pub const MAX_LIVE_KEYS_PER_OWNER: u32 = 100;
/// The longest time a rotated key's old secret keeps working.
pub const MAX_ROTATION_GRACE: Duration = Duration::from_secs(7 * 24 * 3600);
/// A key's `last_used_at` is written at most this often.
pub const USE_RECORDED_EVERY: i64 = 60;
const MAX_NAME_CHARS: usize = 64;
const MAX_LIST: usize = 32;
/// What a person's key may carry beyond the owner's entitlements: reading the owner's own
/// UserInfo.
pub const PERSONAL_SCOPES: [&str; 3] = ["openid", "profile", "email"];

/// What a new key is for.
#[derive(Debug, Clone, Default)]
pub struct ApiKeySpec {
    pub name: String,
    pub scopes: Vec<ScopeName>,
    pub routes: Vec<RoutePattern>,
    pub methods: Vec<String>,
    pub expires_at: Option<UnixTime>,
    pub audience: Option<String>,
}

/// A key with its whole secret, to show once.
#[derive(Debug)]
pub struct IssuedApiKey {
    pub key: ApiKey,
    pub secret: String,
}

/// Why a presented key does not count. Callers answer each the same way (the key is not
/// valid); the kinds are for logs and metrics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyRefusal {
    #[error("not a well-formed API key: {0}")]
    Malformed(String),
    #[error("no such API key")]
    Unknown,
    #[error("the API key was revoked")]
    Revoked,
    #[error("the API key has expired")]
    Expired,
    #[error("the API key's secret does not match")]
    WrongSecret,
    #[error("the API key's owner is locked or gone")]
    OwnerGone,
    #[error("the API key's owner no longer holds any of its scopes")]
    NoRights,
}

/// A key that counts, with what it is worth now.
#[derive(Debug, Clone)]
pub struct VerifiedApiKey {
    pub key: Arc<ApiKey>,
    pub owner: Arc<User>,
    /// The key's scopes that its owner still holds.
    pub scopes: Vec<ScopeName>,
}

impl KeyRefusal {
    /// The label of the refusals metric.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed",
            Self::Unknown => "unknown",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
            Self::WrongSecret => "wrong_secret",
            Self::OwnerGone => "owner_gone",
            Self::NoRights => "no_rights",
        }
    }
}

impl VerifiedApiKey {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s.as_str() == scope)
    }

    /// Whether the key may be used with `method` on `path` (a normalised path).
    pub fn allows(&self, method: &str, path: &str) -> bool {
        (self.key.methods.is_empty() || self.key.methods.iter().any(|m| m == method))
            && (self.key.routes.is_empty() || self.key.routes.iter().any(|r| r.matches(path)))
    }
}

pub struct ApiKeys<'a>(pub(crate) &'a Latchkey);

impl ApiKeys<'_> {
    /// What `owner` may put in a key: the entitlements of the tenant-wide roles they hold,
    /// and for a person, the UserInfo scopes. An application role's entitlements are for
    /// that application's tokens only: a key is not tied to one application, so it never
    /// carries them.
    async fn rights_of(&self, owner: &User) -> ServiceResult<BTreeSet<String>> {
        let held = self.0.caches.access(&owner.sub).await?;
        let mut rights: BTreeSet<String> = held
            .roles
            .iter()
            .filter(|r| r.application.is_none())
            .flat_map(|r| r.entitlements.iter().map(ToString::to_string))
            .collect();
        if !owner.service_account {
            rights.extend(PERSONAL_SCOPES.iter().map(|s| (*s).to_owned()));
        }
        Ok(rights)
    }

    /// Creates a key for `owner` (a user or service account) and returns it with its secret.
    pub async fn create(
        &self,
        tenant: &TenantId,
        owner: &SubjectId,
        spec: ApiKeySpec,
        actor: &Actor,
    ) -> ServiceResult<IssuedApiKey> {
        let name = spec.name.trim().to_owned();
        if name.is_empty() || name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
            return Err(ServiceError::Invalid(format!(
                "an API key's name is 1 to {MAX_NAME_CHARS} characters on one line"
            )));
        }
        if spec.scopes.is_empty() {
            return Err(ServiceError::Invalid("an API key needs at least one scope".into()));
        }
        if spec.scopes.len() > MAX_LIST || spec.routes.len() > MAX_LIST {
            return Err(ServiceError::Invalid(format!(
                "an API key has at most {MAX_LIST} scopes and {MAX_LIST} routes"
            )));
        }
        let user = self.0.store().user_by_sub(tenant, owner).await?;
        let user = user.ok_or_else(|| ServiceError::NotFound(format!("user {owner}")))?;
        if user.locked {
            return Err(ServiceError::Conflict(format!("{} is locked: a locked account gets no keys", user.username)));
        }
        let rights = self.rights_of(&user).await?;
        if let Some(missing) = spec.scopes.iter().find(|s| !rights.contains(s.as_str())) {
            return Err(ServiceError::Forbidden(format!(
                "{} does not hold `{missing}`: a key carries only rights its owner holds (the entitlements of their tenant-wide roles{})",
                user.username,
                if user.service_account { "" } else { ", and openid, profile, email" }
            )));
        }
        // A key with admin rights is for the admin API alone, never a key any API may see.
        let mut spec = spec;
        if spec.scopes.iter().any(|s| latchkey_core::domain::AdminScope::is_admin_name(s.as_str())) {
            let admin = self.0.admin_audience();
            if spec.audience.as_ref().is_some_and(|a| *a != admin) {
                return Err(ServiceError::Invalid(format!(
                    "a key with admin scopes is for the admin API ({admin}) alone"
                )));
            }
            if let Some(other) =
                spec.scopes.iter().find(|s| !latchkey_core::domain::AdminScope::is_admin_name(s.as_str()))
            {
                return Err(ServiceError::Invalid(format!(
                    "a key for the admin API carries admin scopes only, not `{other}`: make another key for it"
                )));
            }
            spec.audience = Some(admin);
        }
        let now = self.0.clock.now();
        if spec.expires_at.is_some_and(|e| e <= now) {
            return Err(ServiceError::Invalid("the expiry must be in the future".into()));
        }
        if let Some(aud) = spec.audience.as_ref().filter(|a| **a != self.0.admin_audience()) {
            let known = self.0.caches.resources(tenant).await?;
            if !known.iter().any(|r| &r.identifier == aud) {
                return Err(ServiceError::NotFound(format!(
                    "resource `{aud}` (register it with `latchkey resource create`)"
                )));
            }
        }
        let mut methods = spec.methods;
        methods.sort();
        methods.dedup();
        let mut scopes = spec.scopes;
        scopes.sort();
        scopes.dedup();
        let secret = NewApiKeySecret::generate();
        let new = NewApiKey {
            id: secret.id.clone(),
            owner: owner.clone(),
            name,
            secret_hash: self.0.token_hasher.hash(API_KEY_PURPOSE, &secret.secret),
            scopes,
            routes: spec.routes,
            methods,
            audience: spec.audience,
            expires_at: spec.expires_at.map(UnixTime::secs),
        };
        let key = self.0.store().create_api_key(tenant, new, MAX_LIVE_KEYS_PER_OWNER, actor).await?;
        self.0.caches.forget_api_key(&key.id);
        Ok(IssuedApiKey { key, secret: secret.full })
    }

    /// The live keys of one owner, or of everyone.
    pub async fn list(&self, tenant: &TenantId, owner: Option<&SubjectId>) -> ServiceResult<Vec<ApiKey>> {
        Ok(self.0.store().list_api_keys(tenant, owner).await?)
    }

    /// Revokes a key: every node refuses it within the change bound, this one at once.
    pub async fn revoke(&self, tenant: &TenantId, id: &ApiKeyId, actor: &Actor) -> ServiceResult<ApiKey> {
        let key = self.0.store().revoke_api_key(tenant, id, actor).await?;
        let until =
            self.0.clock.now().plus(Duration::from_secs(latchkey_store::API_KEY_REVOCATION_SECS.unsigned_abs()));
        self.0.revocations.add_local("api_key", id.as_str(), until);
        self.0.caches.forget_api_key(id);
        Ok(key)
    }

    /// Gives a key a new secret; the old one keeps working for `grace` (at most 7 days).
    pub async fn rotate(
        &self,
        tenant: &TenantId,
        id: &ApiKeyId,
        grace: Duration,
        actor: &Actor,
    ) -> ServiceResult<IssuedApiKey> {
        if grace > MAX_ROTATION_GRACE {
            return Err(ServiceError::Invalid("the grace period is at most 7 days".into()));
        }
        let secret = NewApiKeySecret::with_id(id.clone());
        let hash = self.0.token_hasher.hash(API_KEY_PURPOSE, &secret.secret);
        let until = self.0.clock.now().plus(grace);
        let key = self.0.store().rotate_api_key(tenant, id, &hash, until, actor).await?;
        self.0.caches.forget_api_key(id);
        Ok(IssuedApiKey { key, secret: secret.full })
    }

    /// Checks a presented key: its shape and checksum (no lookup for a typo), then one
    /// cached lookup by id and one keyed-hash comparison in constant time; then its owner,
    /// as they are now. Records the use at most once a minute.
    pub async fn verify(&self, presented: &str) -> ServiceResult<Result<VerifiedApiKey, KeyRefusal>> {
        let presented = match PresentedApiKey::parse(presented) {
            Ok(p) => p,
            Err(e) => return Ok(Err(KeyRefusal::Malformed(e.reason))),
        };
        let verdict = self.check(&presented).await?;
        if let Err(refusal) = &verdict {
            metrics::counter!("latchkey_api_key_refusals_total", "reason" => refusal.kind()).increment(1);
        }
        Ok(verdict)
    }

    async fn check(&self, presented: &PresentedApiKey) -> ServiceResult<Result<VerifiedApiKey, KeyRefusal>> {
        let Some(key) = self.0.caches.api_key(&presented.id).await? else { return Ok(Err(KeyRefusal::Unknown)) };
        let now = self.0.clock.now().secs();
        let hasher = &self.0.token_hasher;
        let current = hasher.verify(API_KEY_PURPOSE, presented.secret(), &key.secret_hash);
        let previous = key.previous_secret_hash.as_ref().is_some_and(|h| {
            key.previous_valid_until.is_some_and(|until| until > now)
                && hasher.verify(API_KEY_PURPOSE, presented.secret(), h)
        });
        if !current && !previous {
            return Ok(Err(KeyRefusal::WrongSecret));
        }
        if key.revoked_at.is_some() || self.0.revocations.is_api_key_revoked(key.id.as_str()) {
            return Ok(Err(KeyRefusal::Revoked));
        }
        if key.expires_at.is_some_and(|e| e <= now) {
            return Ok(Err(KeyRefusal::Expired));
        }
        let owner = match self.0.caches.user(&key.owner).await? {
            Some(u) if !u.locked => u,
            _ => return Ok(Err(KeyRefusal::OwnerGone)),
        };
        let rights = self.rights_of(&owner).await?;
        let scopes: Vec<ScopeName> = key.scopes.iter().filter(|s| rights.contains(s.as_str())).cloned().collect();
        if scopes.is_empty() {
            return Ok(Err(KeyRefusal::NoRights));
        }
        Ok(Ok(VerifiedApiKey { key, owner, scopes }))
    }

    /// Records that a key was used (once the caller accepted it): `last_used_at` is
    /// written when the last write is a minute old (per node); a failure is logged, never
    /// a refusal.
    pub async fn record_use(&self, key: &ApiKey) {
        let now = self.0.clock.now().secs();
        if !self.0.caches.claim_api_key_use(&key.id, now, USE_RECORDED_EVERY) {
            return;
        }
        let tenant = TenantId::default_tenant();
        if let Err(e) = self.0.store().record_api_key_use(&tenant, &key.id, UnixTime::from_secs(now)).await {
            tracing::warn!(error = %e, key = %key.id, "cannot record an API key's use");
        }
    }

    /// Whether `caller` (an authenticated client) may learn about the key at introspection:
    /// a key for a resource only by that resource's introspecting client; a key for no
    /// resource by a first-party client or any resource's introspecting client. A
    /// third-party client never learns whether a key works, nor whose it is.
    pub async fn introspectable_by(&self, tenant: &TenantId, key: &ApiKey, caller: &Client) -> ServiceResult<bool> {
        if key.audience.is_none() && caller.first_party {
            return Ok(true);
        }
        let servers = self.0.caches.resources(tenant).await?;
        let mut introspected = servers.iter().filter(|s| s.client_id.as_ref() == Some(&caller.client_id));
        Ok(match &key.audience {
            Some(aud) => introspected.any(|s| &s.identifier == aud),
            None => caller.first_party || introspected.next().is_some(),
        })
    }
}
