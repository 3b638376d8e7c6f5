//! What every handler shares: the services and the edge's own parts (pages, templates,
//! metrics, the WebAuthn relying party, the outbound guard). Apart from the router, so a
//! handler's module never depends on the module that lists every handler.

use std::sync::Arc;

use latchkey_config::Config;
use latchkey_core::Clock;
use latchkey_core::crypto::TokenHasher;
use latchkey_service::Latchkey;
use latchkey_service::cache::Caches;
use latchkey_service::keys::KeyService;
use latchkey_service::passwords::PasswordHasher;
use latchkey_service::revocations::Revocations;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::pages::ErrorPages;
use crate::templates::Templates;

/// What every request handler shares. Cloned for every request and every middleware that
/// takes state, so it is one reference count, not one per field.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

pub struct Shared {
    /// Every use case and rule; the only way to the store.
    pub services: Arc<Latchkey>,
    /// The services' own configuration, clock, keys, caches and hashers, at hand for the
    /// edge (the same objects, not copies).
    pub config: Arc<Config>,
    /// `server.public_url` without trailing slash: the issuer, byte for byte.
    pub issuer: Arc<str>,
    pub https: bool,
    pub clock: Clock,
    pub keys: Arc<KeyService>,
    pub caches: Arc<Caches>,
    pub pages: Arc<ErrorPages>,
    pub passwords: PasswordHasher,
    pub metrics: Option<PrometheusHandle>,
    pub metrics_token: Option<Arc<String>>,
    pub token_hasher: TokenHasher,
    pub revocations: Arc<Revocations>,
    pub templates: Arc<Templates>,
    pub client_keys: Arc<latchkey_service::client_keys::ClientKeyCache>,
    /// The upstream identity providers people may sign in through (`[federation]`).
    pub upstreams: Arc<latchkey_service::federation::Upstreams>,
    /// Every request Latchkey sends goes through this guard.
    pub outbound: Arc<latchkey_service::outbound::Outbound>,
    pub client_auth_throttle: Arc<latchkey_service::sign_in::ClientAuthThrottle>,
    /// Wakes the back-channel logout sender when a session ends on this node.
    pub backchannel: Arc<tokio::sync::Notify>,
    /// The WebAuthn relying party.
    pub passkeys: Arc<latchkey_service::passkeys::Passkeys>,
    /// Seals secrets kept at rest (TOTP secrets).
    pub master_key: latchkey_core::crypto::MasterKey,
}

impl Shared {
    /// The path every route is served under (`server.public_url`'s path), for links.
    pub fn base(&self) -> String {
        base_path(&self.issuer)
    }

    /// `aud` of access tokens when no resource is named: `tokens.default_audience`, else
    /// the issuer (whose UserInfo endpoint accepts them).
    pub fn default_audience(&self) -> String {
        self.services.default_audience()
    }
}

/// The path under which everything is served: the path of `server.public_url`.
pub fn base_path(issuer: &str) -> String {
    url::Url::parse(issuer).map(|u| u.path().trim_end_matches('/').to_owned()).unwrap_or_default()
}
