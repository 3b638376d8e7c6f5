//! The upstream identity providers of this node, and the authorization-code flow with each
//! (RFC 6749 §4.1 with PKCE, RFC 7636; OpenID Connect Core §3.1 for the OIDC kinds). Every
//! request goes through the outbound guard for `federation`; nothing is fetched at start-up,
//! so an unreachable upstream never keeps Latchkey from starting.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use latchkey_config::{Config, ProviderConfig, ProviderKind};
use latchkey_core::crypto::{PublicJwk, SigningKeyPair, random};
use latchkey_core::domain::SigningAlg;
use latchkey_core::domain::{ProviderId, UpstreamSubject};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use subtle::ConstantTimeEq as _;

use super::{github, oauth2, oidc};
use crate::outbound::{Outbound, OutboundError, Purpose, Request};

/// The most of an upstream answer that is read.
pub(super) const MAX_BYTES: usize = 256 * 1024;

/// Why a sign-in through an upstream did not work. Each names the problem for the page,
/// never a secret or a token.
#[derive(Debug, thiserror::Error)]
pub enum FederationError {
    #[error("no such sign-in provider")]
    UnknownProvider,
    #[error(
        "this answer does not belong to a sign-in started in this browser (it was used already, expired, or started elsewhere)"
    )]
    StateMismatch,
    #[error("the answer came back to the wrong provider's address")]
    WrongProvider,
    #[error("the provider refused: {0}")]
    Denied(String),
    #[error("the provider cannot be reached: {0}")]
    Unreachable(String),
    #[error("the provider's answer is not valid: {0}")]
    InvalidResponse(String),
    #[error("the provider's ID token is not valid: {0}")]
    InvalidIdToken(String),
    #[error("{0}")]
    NotAllowed(String),
}

impl From<OutboundError> for FederationError {
    fn from(e: OutboundError) -> Self {
        FederationError::Unreachable(e.to_string())
    }
}

/// A flow started in one browser: what its callback must match. Kept in that browser's
/// ceremony state, never sent anywhere but `state` (as the state) and the challenge.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingFlow {
    pub provider: ProviderId,
    pub state: String,
    pub nonce: String,
    pub verifier: String,
    /// A sign-in again (the browser is signed in here already: a confirmation, a step up,
    /// an app's `prompt=login` or `max_age`): an OpenID Connect provider is asked to sign
    /// the person in again too, and its `auth_time` must say it did.
    #[serde(default)]
    pub fresh: Option<i64>,
}

impl PendingFlow {
    fn new(provider: ProviderId, fresh: Option<i64>) -> Self {
        Self {
            provider,
            state: random::token_string::<32>(),
            nonce: random::token_string::<32>(),
            verifier: random::token_string::<32>(),
            fresh,
        }
    }

    pub(super) fn challenge(&self) -> String {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, self.verifier.as_bytes());
        URL_SAFE_NO_PAD.encode(digest.as_ref())
    }
}

/// The query of a callback, as it came.
#[derive(Debug, Default, Deserialize)]
pub struct Callback {
    pub code: Option<String>,
    pub state: Option<String>,
    pub iss: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// Who signed in upstream, as the provider vouches for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpstreamAccount {
    pub provider: ProviderId,
    pub subject: UpstreamSubject,
    pub email: Option<String>,
    /// The provider says the address is verified (an OIDC `email_verified`, GitHub's
    /// verified primary address).
    pub email_verified: bool,
    /// A Google Workspace domain (`hd`) the ID token names, checked against `hosted_domains`.
    pub hosted_domain: Option<String>,
    /// Every claim or field the provider gave, for the claim mapping.
    pub claims: Map<String, Value>,
    /// A name to suggest for a new account (`preferred_username`, GitHub's `login`).
    pub username_hint: Option<String>,
    /// When the person signed in at the provider (an OIDC `auth_time`), if it says.
    #[serde(default)]
    pub authenticated_at: Option<i64>,
}

/// How Latchkey proves itself to a provider's token endpoint.
pub(super) enum Credential {
    Secret(String),
    /// `private_key_jwt`: a client assertion signed with this key.
    Key(Box<SigningKeyPair>),
}

/// One configured provider.
pub struct Upstream {
    pub id: ProviderId,
    pub config: ProviderConfig,
    pub(super) credential: Credential,
    pub(super) oidc: Option<oidc::OidcState>,
}

/// The providers of this node.
pub struct Upstreams {
    pub(super) outbound: Arc<Outbound>,
    issuer: String,
    providers: BTreeMap<ProviderId, Arc<Upstream>>,
}

impl Upstreams {
    /// The configured providers; an error names a client secret that does not resolve.
    pub fn new(config: &Config, outbound: Arc<Outbound>) -> Result<Self, String> {
        let mut providers = BTreeMap::new();
        for (id, p) in &config.federation.providers {
            let pid = ProviderId::parse(id).map_err(|e| format!("federation.providers.{id}: {e}"))?;
            let credential = credential(config, id, p)?;
            let oidc = p.oidc_issuer().map(|_| oidc::OidcState::default());
            providers.insert(pid.clone(), Arc::new(Upstream { id: pid, config: p.clone(), credential, oidc }));
        }
        Ok(Self { outbound, issuer: config.issuer().as_str().trim_end_matches('/').to_owned(), providers })
    }

    /// Whether every provider's credential resolves (`check-config`); the error starts
    /// with the key it names.
    pub fn check_credentials(config: &Config) -> Result<(), String> {
        for (id, p) in &config.federation.providers {
            credential(config, id, p)?;
        }
        Ok(())
    }

    /// The providers, in id order, for the sign-in page and the security page.
    pub fn list(&self) -> impl Iterator<Item = &Upstream> {
        self.providers.values().map(|p| p.as_ref())
    }

    pub fn get(&self, id: &ProviderId) -> Option<&Upstream> {
        self.providers.get(id).map(|p| p.as_ref())
    }

    pub fn is_empty(&self) -> bool {
        self.providers.is_empty()
    }

    /// The public keys of the providers that use `private_key_jwt`, for
    /// `/federation/jwks.json`.
    pub fn public_jwks(&self) -> serde_json::Value {
        let keys: Vec<&PublicJwk> = self
            .providers
            .values()
            .filter_map(|p| match &p.credential {
                Credential::Key(k) => Some(k.public_jwk()),
                Credential::Secret(_) => None,
            })
            .collect();
        serde_json::json!({ "keys": keys })
    }

    /// The origins the sign-in and security pages' forms lead to (a browser checks a form's
    /// redirects against the page's `form-action`): each provider's authorization endpoint,
    /// as discovered (once known) and as its issuer or configured URL says.
    pub fn form_origins(&self) -> Vec<String> {
        let mut origins = Vec::new();
        let mut add = |raw: &str| {
            if let Ok(url) = url::Url::parse(&raw.replace("{tenantid}", "common"))
                && matches!(url.scheme(), "https" | "http")
            {
                let origin = url.origin().ascii_serialization();
                if !origins.contains(&origin) {
                    origins.push(origin);
                }
            }
        };
        for p in self.providers.values() {
            match p.config.kind {
                ProviderKind::Oidc | ProviderKind::Google => {
                    add(p.config.oidc_issuer().unwrap_or_default());
                    if let Some(m) = oidc::cached_metadata(p) {
                        add(&m.authorization_endpoint);
                    }
                }
                ProviderKind::Github => add(&github::authorize_url(&p.config)),
                ProviderKind::Oauth2 => add(p.config.authorization_url.as_ref().map_or("", |u| u.as_str())),
            }
        }
        origins
    }

    /// Fetches each OIDC provider's discovery document in the background, so that the
    /// sign-in page knows where its buttons lead; a provider that does not answer is
    /// retried when someone signs in through it.
    pub fn warm_up(self: &Arc<Self>) {
        let this = self.clone();
        tokio::spawn(async move {
            for p in this.providers.values().filter(|p| p.oidc.is_some()) {
                if let Err(e) = oidc::metadata(&this, p).await {
                    tracing::warn!(provider = %p.id, error = %e, "cannot read the provider's discovery document yet");
                }
            }
        });
    }

    /// The redirect URI registered upstream: `{public_url}/federation/{id}/callback`.
    pub fn callback_url(&self, id: &ProviderId) -> String {
        format!("{}/federation/{id}/callback", self.issuer)
    }

    /// Starts a flow: the URL to send the browser to, and what its callback must match.
    /// `fresh_since` (now, for a sign-in again) asks an OpenID Connect provider for a new
    /// sign-in (`max_age=0`, and `prompt=login` where the provider takes it: not Google),
    /// checked against the ID token's `auth_time`. GitHub and plain OAuth 2 cannot be asked.
    pub async fn begin(
        &self,
        id: &ProviderId,
        fresh_since: Option<i64>,
    ) -> Result<(String, PendingFlow), FederationError> {
        let upstream = self.get(id).ok_or(FederationError::UnknownProvider)?;
        let (authorization_endpoint, fresh) = match upstream.config.kind {
            ProviderKind::Oidc | ProviderKind::Google => {
                let m = oidc::metadata(self, upstream).await?;
                // `auth_time` is required only of a provider that says it issues it (Google
                // and Entra ID by default do not): the rest are asked, not checked.
                let checked = m.claims_supported.as_ref().is_none_or(|c| c.iter().any(|x| x == "auth_time"));
                (m.authorization_endpoint, fresh_since.map(|since| (since, checked)))
            }
            ProviderKind::Github => (github::authorize_url(&upstream.config), None),
            ProviderKind::Oauth2 => {
                (upstream.config.authorization_url.as_ref().map(|u| u.to_string()).unwrap_or_default(), None)
            }
        };
        let flow = PendingFlow::new(id.clone(), fresh.and_then(|(since, checked)| checked.then_some(since)));
        let redirect_uri = self.callback_url(id);
        let mut url = url::Url::parse(&authorization_endpoint)
            .map_err(|_| FederationError::InvalidResponse("the authorization endpoint is not a URL".into()))?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("response_type", "code")
                .append_pair("client_id", &upstream.config.client_id)
                .append_pair("redirect_uri", &redirect_uri)
                .append_pair("state", &flow.state)
                .append_pair("code_challenge", &flow.challenge())
                .append_pair("code_challenge_method", "S256");
            let scopes = upstream.config.scopes();
            if !scopes.is_empty() {
                q.append_pair("scope", &scopes.join(" "));
            }
            if upstream.oidc.is_some() {
                q.append_pair("nonce", &flow.nonce);
            }
            if fresh.is_some() {
                q.append_pair("max_age", "0");
                // Google takes no `prompt=login`; choosing the account at least shows it.
                q.append_pair("prompt", if oidc::is_google(upstream) { "select_account" } else { "login" });
            }
            // Google's `hd` parameter only preselects an account; the ID token's `hd` is checked.
            if let [domain] = upstream.config.hosted_domains.as_slice()
                && upstream.config.kind == ProviderKind::Google
            {
                q.append_pair("hd", domain);
            }
        }
        Ok((url.into(), flow))
    }

    /// Finishes the flow `flow` with the callback `callback` that arrived at `arrived_at`'s
    /// callback address: checks it belongs to the flow, redeems the code, and returns who
    /// signed in.
    pub async fn finish(
        &self,
        arrived_at: &ProviderId,
        flow: &PendingFlow,
        callback: &Callback,
        now: i64,
    ) -> Result<UpstreamAccount, FederationError> {
        let state = callback.state.as_deref().unwrap_or_default();
        if !bool::from(state.as_bytes().ct_eq(flow.state.as_bytes())) {
            return Err(FederationError::StateMismatch);
        }
        // A response for provider A delivered to provider B's callback (a mix-up attack).
        if *arrived_at != flow.provider {
            return Err(FederationError::WrongProvider);
        }
        let upstream = self.get(&flow.provider).ok_or(FederationError::UnknownProvider)?;
        if let Some(error) = &callback.error {
            let text: String = format!("{error} {}", callback.error_description.as_deref().unwrap_or_default())
                .chars()
                .filter(|c| !c.is_control())
                .take(200)
                .collect();
            return Err(FederationError::Denied(text.trim().to_owned()));
        }
        let code = callback
            .code
            .as_deref()
            .filter(|c| !c.is_empty() && c.len() <= 2048)
            .ok_or_else(|| FederationError::InvalidResponse("the answer has no code".into()))?;
        let redirect_uri = self.callback_url(&flow.provider);
        match upstream.config.kind {
            ProviderKind::Oidc | ProviderKind::Google => {
                oidc::finish(self, upstream, flow, callback, code, &redirect_uri, now).await
            }
            ProviderKind::Github => github::finish(self, upstream, flow, code, &redirect_uri).await,
            ProviderKind::Oauth2 => oauth2::finish(self, upstream, flow, code, &redirect_uri).await,
        }
    }

    /// GETs JSON for `federation`.
    pub(super) async fn get_json(&self, request: Request) -> Result<Value, FederationError> {
        let response = self.outbound.send(Purpose::Federation, request).await?;
        let status = response.status();
        let body = response.body(MAX_BYTES).await?;
        if status != 200 {
            return Err(FederationError::InvalidResponse(format!("HTTP {status}")));
        }
        serde_json::from_slice(&body).map_err(|_| FederationError::InvalidResponse("not JSON".into()))
    }

    /// Redeems `code` at `token_url` and returns the token answer. An `error` in the
    /// answer, with any status (GitHub answers 200), is a refusal.
    pub(super) async fn redeem(
        &self,
        upstream: &Upstream,
        token_url: &str,
        (flow, code, redirect_uri): (&PendingFlow, &str, &str),
        auth: ClientAuth,
    ) -> Result<Map<String, Value>, FederationError> {
        let mut fields = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", flow.verifier.as_str()),
        ];
        let (secret, assertion) = match &upstream.credential {
            Credential::Secret(s) => (s.as_str(), None),
            Credential::Key(key) => ("", Some(client_assertion(upstream, key, token_url)?)),
        };
        let auth = if assertion.is_some() { ClientAuth::Assertion } else { auth };
        if let Some(assertion) = &assertion {
            fields.push(("client_id", &upstream.config.client_id));
            fields.push(("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"));
            fields.push(("client_assertion", assertion));
        }
        if auth == ClientAuth::Post {
            fields.push(("client_id", &upstream.config.client_id));
            fields.push(("client_secret", secret));
        }
        let mut request = Request::post_form(token_url, &fields).header("accept", "application/json");
        if auth == ClientAuth::Basic {
            // RFC 6749 §2.3.1: both form-urlencoded before they are joined.
            let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            let credentials = base64::engine::general_purpose::STANDARD.encode(format!(
                "{}:{}",
                enc(&upstream.config.client_id),
                enc(secret)
            ));
            request = request.header("authorization", format!("Basic {credentials}"));
        }
        let response = self.outbound.send(Purpose::Federation, request).await?;
        let status = response.status();
        let body = response.body(MAX_BYTES).await?;
        let answer: Map<String, Value> = serde_json::from_slice(&body)
            .map_err(|_| FederationError::InvalidResponse(format!("the token answer (HTTP {status}) is not JSON")))?;
        if let Some(error) = answer.get("error").and_then(Value::as_str) {
            let error: String = error.chars().filter(|c| c.is_ascii_graphic()).take(64).collect();
            return Err(FederationError::InvalidResponse(format!("the token request was refused: {error}")));
        }
        if status != 200 {
            return Err(FederationError::InvalidResponse(format!("the token request got HTTP {status}")));
        }
        if answer.get("access_token").and_then(Value::as_str).is_none_or(str::is_empty) {
            return Err(FederationError::InvalidResponse("the token answer has no access_token".into()));
        }
        Ok(answer)
    }
}

/// How Latchkey proves itself at a token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ClientAuth {
    /// `client_secret_basic` (RFC 6749 §2.3.1), the default.
    Basic,
    /// `client_secret_post`: the id and secret in the form (GitHub's way).
    Post,
    /// `private_key_jwt` (RFC 7523 §2.2), for a provider configured with `private_key`.
    Assertion,
}

/// The provider's credential: its secret resolved, or its private key read.
fn credential(config: &Config, id: &str, p: &ProviderConfig) -> Result<Credential, String> {
    if let Some(secret) = &p.client_secret {
        let secret =
            secret.resolve(config.base_dir()).map_err(|e| format!("federation.providers.{id}.client_secret: {e}"))?;
        return Ok(Credential::Secret(secret.expose().to_owned()));
    }
    let key = p.private_key.as_ref().ok_or_else(|| format!("federation.providers.{id}: no client credential"))?;
    let pem = key.resolve(config.base_dir()).map_err(|e| format!("federation.providers.{id}.private_key: {e}"))?;
    let der =
        pem::parse(pem.expose()).map_err(|e| format!("federation.providers.{id}.private_key: not a PEM file: {e}"))?;
    if der.tag() != "PRIVATE KEY" {
        return Err(format!(
            "federation.providers.{id}.private_key: expected a PKCS#8 \"PRIVATE KEY\" PEM, found \"{}\"",
            der.tag()
        ));
    }
    let alg = SigningAlg::parse_jose(&p.private_key_alg)
        .map_err(|e| format!("federation.providers.{id}.private_key_alg: {e}"))?;
    let key = SigningKeyPair::from_pkcs8(alg, der.contents())
        .map_err(|e| format!("federation.providers.{id}.private_key: {e}"))?;
    Ok(Credential::Key(Box::new(key)))
}

/// A client assertion for the provider's token endpoint: `iss` and `sub` the client id,
/// `aud` the provider's issuer (the audience-injection attacks of 2025 came from audiences
/// that were endpoint URLs; a plain OAuth 2 provider has no issuer, so its token URL), a
/// fresh `jti`, a minute to live.
fn client_assertion(upstream: &Upstream, key: &SigningKeyPair, token_url: &str) -> Result<String, FederationError> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let aud = upstream.config.oidc_issuer().filter(|i| !i.contains("{tenantid}")).unwrap_or(token_url);
    let claims = serde_json::json!({
        "iss": upstream.config.client_id, "sub": upstream.config.client_id, "aud": aud,
        "jti": random::token_string::<16>(), "iat": now, "exp": now + 60,
    });
    key.sign_jwt("JWT", &claims)
        .map_err(|e| FederationError::Unreachable(format!("cannot sign the client assertion: {e}")))
}

/// A JSON value that names an account: a string, or a number written out (GitHub's `id`).
pub(super) fn subject_of(value: Option<&Value>) -> Result<UpstreamSubject, FederationError> {
    let raw = match value {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) if n.is_u64() || n.is_i64() => n.to_string(),
        _ => return Err(FederationError::InvalidResponse("the account has no stable id".into())),
    };
    UpstreamSubject::parse(&raw).map_err(|e| FederationError::InvalidResponse(e.to_string()))
}

/// `true`, or `"true"` (some providers send the string).
pub(super) fn truthy(value: Option<&Value>) -> bool {
    matches!(value, Some(Value::Bool(true))) || matches!(value, Some(Value::String(s)) if s == "true")
}
