//! Signing keys: per algorithm an active key that signs, a next key published ahead of use,
//! and retired keys published until every token they signed has expired.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::ServiceError;
use arc_swap::ArcSwap;
use bytes::Bytes;
use latchkey_core::crypto::{MasterKey, SigningKeyPair};
use latchkey_core::domain::{SigningAlg, TenantId};
use latchkey_core::records::{Actor, KeyState, NewSigningKey, StoredSigningKey};
use latchkey_core::{Clock, UnixTime};
use latchkey_store::Store;
use latchkey_store::StoreError;
use serde::Serialize;

use latchkey_config::{KeysConfig, TokensConfig};

#[derive(Debug, thiserror::Error)]
pub enum KeyServiceError {
    #[error(transparent)]
    Store(#[from] ServiceError),
    #[error("{0}")]
    Crypto(String),
    #[error(
        "the next {alg} key was published {age}s ago; it may sign only after {needed}s (JWKS cache lifetime + clock skew), so that every party has fetched it. Use --force to rotate anyway (e.g. after a key compromise)."
    )]
    NextKeyTooYoung { alg: SigningAlg, age: u64, needed: u64 },
    #[error("no {0} keys exist; is the algorithm listed in keys.algorithms?")]
    NoKeys(SigningAlg),
    #[error("another rotation of the {0} key happened at the same time; nothing was changed")]
    Raced(SigningAlg),
    #[error("no signing key `{0}`")]
    UnknownKey(String),
    #[error(
        "`{kid}` is the {state} {alg} key: only a retired key is retired; rotate first (with --force after a compromise), then retire it"
    )]
    NotRetired { kid: String, alg: SigningAlg, state: &'static str },
}

/// What the server signs and publishes right now.
pub struct KeyRing {
    active: HashMap<SigningAlg, Arc<SigningKeyPair>>,
    /// Verification keys of every published key, by kid, parsed once per reload.
    verifying: HashMap<String, Arc<(jsonwebtoken::DecodingKey, jsonwebtoken::Algorithm)>>,
    /// The JWKS document, serialized once per change.
    jwks: Bytes,
    kids: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct KeyInfo {
    pub kid: String,
    pub alg: SigningAlg,
    pub state: KeyState,
    pub created_at: String,
    pub activated_at: Option<String>,
    pub retired_at: Option<String>,
    pub publish_until: Option<String>,
    pub published: bool,
}

pub struct KeyService {
    store: Arc<dyn Store>,
    master_key: MasterKey,
    clock: Clock,
    keys: KeysConfig,
    tokens: TokensConfig,
    tenant: TenantId,
    ring: ArcSwap<KeyRing>,
}

impl KeyService {
    pub fn new(
        store: Arc<dyn Store>,
        master_key: MasterKey,
        clock: Clock,
        keys: KeysConfig,
        tokens: TokensConfig,
    ) -> Self {
        let empty = KeyRing {
            active: HashMap::new(),
            verifying: HashMap::new(),
            jwks: Bytes::from_static(br#"{"keys":[]}"#),
            kids: Vec::new(),
        };
        Self {
            store,
            master_key,
            clock,
            keys,
            tokens,
            tenant: TenantId::default_tenant(),
            ring: ArcSwap::from_pointee(empty),
        }
    }

    fn aad(&self, kid: &str, alg: SigningAlg) -> Vec<u8> {
        format!("signing-key:{}:{kid}:{}", self.tenant, alg.as_str()).into_bytes()
    }

    fn new_key(&self, alg: SigningAlg) -> Result<NewSigningKey, KeyServiceError> {
        let (pair, der) =
            SigningKeyPair::generate(alg, self.keys.rsa_bits).map_err(|e| KeyServiceError::Crypto(e.to_string()))?;
        let public_jwk =
            serde_json::to_string(pair.public_jwk()).map_err(|e| KeyServiceError::Crypto(e.to_string()))?;
        Ok(NewSigningKey {
            kid: pair.kid().to_owned(),
            alg,
            sealed_private_key: self.master_key.seal(&der, &self.aad(pair.kid(), alg)),
            public_jwk,
        })
    }

    /// Creates the first active and next key of every configured algorithm that has none.
    /// Safe to run on many nodes at once: one wins, the others keep its keys.
    pub async fn ensure_keys(&self) -> Result<(), KeyServiceError> {
        let existing = self.store.signing_keys(&self.tenant).await?;
        for alg in &self.keys.algorithms {
            if existing.iter().any(|k| k.alg == *alg && k.state == KeyState::Active) {
                continue;
            }
            let (active, next) = (self.new_key(*alg)?, self.new_key(*alg)?);
            if self.store.bootstrap_signing_keys(&self.tenant, active, next, &Actor::System).await? {
                tracing::info!(alg = %alg, "created signing keys");
            }
        }
        Ok(())
    }

    /// Reloads keys from the store. A key that does not decrypt is an error: the master key
    /// is wrong or the data damaged, and signing must not go on with whatever is left.
    pub async fn reload(&self) -> Result<(), KeyServiceError> {
        let stored = self.store.signing_keys(&self.tenant).await?;
        let now = self.clock.now();
        let mut active = HashMap::new();
        let mut published = Vec::new();
        let mut kids = Vec::new();
        let mut verifying = HashMap::new();
        for key in &stored {
            if key.state == KeyState::Active {
                let der = self
                    .master_key
                    .open(&key.sealed_private_key, &self.aad(&key.kid, key.alg))
                    .map_err(|e| KeyServiceError::Crypto(format!("key {}: {e}", key.kid)))?;
                let pair =
                    SigningKeyPair::from_pkcs8(key.alg, &der).map_err(|e| KeyServiceError::Crypto(e.to_string()))?;
                active.insert(key.alg, Arc::new(pair));
            }
            if is_published(key, now) {
                let jwk: serde_json::Value = serde_json::from_str(&key.public_jwk)
                    .map_err(|e| KeyServiceError::Crypto(format!("stored JWK of {}: {e}", key.kid)))?;
                if let Some(v) = verification_key(&jwk, key.alg) {
                    verifying.insert(key.kid.clone(), Arc::new(v));
                }
                published.push(jwk);
                kids.push(key.kid.clone());
            }
        }
        let jwks = serde_json::json!({ "keys": published }).to_string();
        self.ring.store(Arc::new(KeyRing { active, verifying, jwks: Bytes::from(jwks), kids }));
        Ok(())
    }

    /// The key that signs new tokens of `alg`.
    pub fn active(&self, alg: SigningAlg) -> Option<Arc<SigningKeyPair>> {
        self.ring.load().active.get(&alg).cloned()
    }

    /// The verification key for a published `kid`, with its algorithm.
    pub fn verification_key(&self, kid: &str) -> Option<Arc<(jsonwebtoken::DecodingKey, jsonwebtoken::Algorithm)>> {
        self.ring.load().verifying.get(kid).cloned()
    }

    /// The published key set, serialised once per reload (a clone is a reference count).
    pub fn jwks_json(&self) -> Bytes {
        self.ring.load().jwks.clone()
    }

    /// Key ids currently published, for tests and diagnostics.
    pub fn published_kids(&self) -> Vec<String> {
        self.ring.load().kids.clone()
    }

    pub fn algorithms(&self) -> &[SigningAlg] {
        &self.keys.algorithms
    }

    /// How long a next key must be published before it may sign.
    pub fn next_key_lead_time(&self) -> Duration {
        self.keys.jwks_cache_lifetime + self.keys.clock_skew
    }

    /// How long a retired key stays published: every token it signed expires by then.
    fn retired_publication(&self) -> Duration {
        self.tokens.access_token_lifetime.max(self.tokens.id_token_lifetime) + self.keys.clock_skew
    }

    pub async fn list(&self) -> Result<Vec<KeyInfo>, KeyServiceError> {
        let now = self.clock.now();
        Ok(self
            .store
            .signing_keys(&self.tenant)
            .await?
            .into_iter()
            .map(|k| KeyInfo {
                published: is_published(&k, now),
                kid: k.kid,
                alg: k.alg,
                state: k.state,
                created_at: k.created_at.to_rfc3339(),
                activated_at: k.activated_at.map(UnixTime::to_rfc3339),
                retired_at: k.retired_at.map(UnixTime::to_rfc3339),
                publish_until: k.publish_until.map(UnixTime::to_rfc3339),
            })
            .collect())
    }

    /// Promotes the next key of `alg` and publishes a new next key. Refuses when the next key
    /// has not been published for the lead time, unless `force` (key compromise).
    pub async fn rotate(&self, alg: SigningAlg, force: bool, actor: &Actor) -> Result<String, KeyServiceError> {
        let stored = self.store.signing_keys(&self.tenant).await?;
        let next =
            stored.iter().find(|k| k.alg == alg && k.state == KeyState::Next).ok_or(KeyServiceError::NoKeys(alg))?;
        let now = self.clock.now();
        let age = now.since(next.created_at);
        if !force && age < self.next_key_lead_time() {
            return Err(KeyServiceError::NextKeyTooYoung {
                alg,
                age: age.as_secs(),
                needed: self.next_key_lead_time().as_secs(),
            });
        }
        let new_next = self.new_key(alg)?;
        let until = now.plus(self.retired_publication());
        if !self.store.rotate_signing_key(&self.tenant, &next.kid, new_next, until, actor).await? {
            return Err(KeyServiceError::Raced(alg));
        }
        tracing::info!(alg = %alg, active = %next.kid, "rotated signing key");
        metrics::counter!("latchkey_key_rotations_total", "alg" => alg.as_str()).increment(1);
        self.reload().await?;
        Ok(next.kid.clone())
    }

    /// Ends the publication of a retired key at once, rather than when its tokens would
    /// have expired: after a compromise, the tokens it signed stop verifying here (on every
    /// node as the change reaches it) and at relying parties once their JWKS cache
    /// refreshes. Returns whether it was still published (retiring it again changes
    /// nothing). The active key is rotated first (`force` after a compromise).
    pub async fn retire(&self, kid: &str, actor: &Actor) -> Result<bool, KeyServiceError> {
        let now = self.clock.now();
        let (key, unpublished) = self
            .store
            .unpublish_signing_key(&self.tenant, kid, now, actor)
            .await?
            .ok_or_else(|| KeyServiceError::UnknownKey(kid.to_owned()))?;
        if unpublished {
            self.reload().await?;
            return Ok(true);
        }
        let state = match key.state {
            KeyState::Retired => None,
            KeyState::Active => Some("active"),
            KeyState::Next => Some("next"),
        };
        if let Some(state) = state {
            return Err(KeyServiceError::NotRetired { kid: key.kid, alg: key.alg, state });
        }
        Ok(false)
    }

    /// The scheduled job: rotates every algorithm whose active key is older than the
    /// rotation interval, and deletes retired keys no longer published.
    pub async fn run_schedule(&self) -> Result<(), KeyServiceError> {
        let now = self.clock.now();
        let stored = self.store.signing_keys(&self.tenant).await?;
        for alg in &self.keys.algorithms {
            let due = stored.iter().any(|k| {
                k.alg == *alg
                    && k.state == KeyState::Active
                    && now.since(k.activated_at.unwrap_or(k.created_at)) >= self.keys.rotation_interval
            });
            if due {
                match self.rotate(*alg, false, &Actor::System).await {
                    Ok(_) | Err(KeyServiceError::Raced(_)) => {}
                    Err(KeyServiceError::NextKeyTooYoung { .. }) => {
                        tracing::warn!(alg = %alg, "rotation is due but the next key is too new; will retry");
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        // An algorithm no longer configured stops signing; its tokens stay verifiable.
        let dropped: Vec<SigningAlg> = stored
            .iter()
            .filter(|k| k.state == KeyState::Active && !self.keys.algorithms.contains(&k.alg))
            .map(|k| k.alg)
            .collect();
        for alg in dropped {
            let until = now.plus(self.retired_publication());
            if self.store.retire_algorithm(&self.tenant, alg, until, &Actor::System).await? {
                tracing::info!(alg = %alg, "retired the keys of an algorithm no longer in keys.algorithms");
            }
        }
        self.store.delete_expired_signing_keys(&self.tenant, now).await?;
        self.reload().await
    }
}

fn verification_key(
    jwk: &serde_json::Value,
    alg: SigningAlg,
) -> Option<(jsonwebtoken::DecodingKey, jsonwebtoken::Algorithm)> {
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwk.clone()).ok()?;
    let alg = match alg {
        SigningAlg::Rs256 => jsonwebtoken::Algorithm::RS256,
        SigningAlg::Es256 => jsonwebtoken::Algorithm::ES256,
        SigningAlg::EdDsa => jsonwebtoken::Algorithm::EdDSA,
    };
    Some((jsonwebtoken::DecodingKey::from_jwk(&jwk).ok()?, alg))
}

fn is_published(key: &StoredSigningKey, now: UnixTime) -> bool {
    match key.state {
        KeyState::Next | KeyState::Active => true,
        KeyState::Retired => key.publish_until.is_some_and(|until| until >= now),
    }
}

impl From<StoreError> for KeyServiceError {
    fn from(e: StoreError) -> Self {
        KeyServiceError::Store(e.into())
    }
}

/// Why a token could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    #[error("no active {0} signing key")]
    NoKey(SigningAlg),
    #[error("signing failed: {0}")]
    Sign(String),
}
