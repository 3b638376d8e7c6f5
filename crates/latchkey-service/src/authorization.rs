//! The authorization request (RFC 6749 §4.1.1, OAuth 2.1, OIDC Core §3.1.2): what a client
//! may ask for, and what must happen before it gets a code (sign-in, account choice,
//! consent). The edge parses the parameters, parks the request between pages and answers in
//! the protocol's format; the decisions are here.

use latchkey_core::domain::{AuthLevel, ClaimsRequest, ClientKind, TenantId, scope_of_claim};
use latchkey_core::records::{BrowserSession, Client};
use serde::{Deserialize, Serialize};

use crate::consents::Asked;
use crate::{Latchkey, ServiceError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseMode {
    Query,
    FormPost,
}

/// A validated authorization request, as it waits for sign-in and consent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthorizationRequest {
    pub client_id: String,
    pub redirect_uri: String,
    pub scope: Vec<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub response_mode: ResponseMode,
    pub prompt: Vec<String>,
    pub max_age: Option<i64>,
    pub login_hint: Option<String>,
    /// The `claims` parameter (OIDC Core §5.5), kept to the claims this client may have.
    pub claims: Option<ClaimsRequest>,
    pub hint_sub: Option<String>,
    pub audience: String,
    pub created_at: i64,
    /// Set when the request waits for a sign-in: the sign-in it must replace (none, an
    /// old one, or another user's), as the hash of that sign-in's cookie, which every
    /// sign-in rotates (the `sid` stays when the same user signs in again). Seconds are
    /// too coarse to tell a fresh sign-in from an old one; the cookie is not.
    #[serde(default)]
    pub login_pending: bool,
    #[serde(default)]
    pub replaced_login: Option<String>,
    /// `prompt=select_account` was answered: the user chose to continue (or switched).
    #[serde(default)]
    pub account_chosen: bool,
    /// The sign-in to ask for: the strongest of the client's and the server's policy,
    /// `acr_values` and an `acr` claim request.
    #[serde(default)]
    pub required_level: Option<AuthLevel>,
    /// What must be met, or the request fails: policy and an essential `acr` claim
    /// (`acr_values` are voluntary, OIDC Core §3.1.2.1).
    #[serde(default)]
    pub minimum_level: Option<AuthLevel>,
}

impl AuthorizationRequest {
    fn prompts(&self, value: &str) -> bool {
        self.prompt.iter().any(|p| p == value)
    }

    /// Whether the request names a user (`id_token_hint`, or a `sub` claim with a value,
    /// OIDC Core §3.1.2.2) other than `sub`.
    fn names_another_user(&self, sub: &str) -> bool {
        self.hint_sub.as_ref().is_some_and(|h| h != sub)
            || self.claims.as_ref().and_then(ClaimsRequest::subjects).is_some_and(|named| !named.contains(&sub))
    }

    /// Marks the request as waiting for a sign-in that replaces `session` (if any).
    pub fn wait_for_sign_in(&mut self, session: Option<&BrowserSession>) {
        if !self.login_pending {
            self.login_pending = true;
            self.replaced_login = session.map(|s| s.id_hash.as_str().to_owned());
        }
    }
}

/// The level a session reached (its `acr`).
pub fn session_level(session: &BrowserSession) -> AuthLevel {
    AuthLevel::from_acr(&session.acr).unwrap_or(AuthLevel::SingleFactor)
}

/// Why a request was refused once its client and redirect URI are trusted: the edge sends
/// it back to the client as the `error` of RFC 6749 §4.1.2.1.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    InvalidRequest(String),
    InvalidScope(String),
    AccessDenied(&'static str),
}

/// What happens next with a request.
#[derive(Debug, PartialEq, Eq)]
pub enum NextStep {
    /// The user must sign in (again, or more strongly): the request waits for it.
    SignIn,
    /// `prompt=none` and a sign-in is needed, or the signed-in user is not the one the
    /// request names: `login_required` goes back to the client.
    LoginRequired(&'static str),
    /// Signed in, but less strongly than the client or the server requires: the user is
    /// told what is needed, and nothing goes back to the client.
    Insufficient(AuthLevel),
    /// `prompt=select_account`: the user chooses to continue or switch.
    SelectAccount,
    /// The client requires a role the user does not hold: the user is told there is no
    /// access to this application, and nothing goes back to the client.
    NoAccess,
    /// `prompt=none` and the user lacks a role the client requires: `access_denied` goes
    /// back to the client.
    AccessDenied,
    /// The user must consent: the request waits for it.
    Consent,
    /// `prompt=none` and consent is needed: `consent_required` goes back to the client.
    ConsentRequired,
    /// A code is issued to the session's user.
    Issue,
}

pub struct Authorization<'a>(pub(crate) &'a Latchkey);

impl Authorization<'_> {
    /// The scopes of a request: those the server does not know are ignored (OIDC Core
    /// §3.1.2.1); each known one must be allowed for the client; repeats count once.
    pub async fn scope(&self, client: &Client, requested: &str) -> Result<Result<Vec<String>, Refusal>, ServiceError> {
        let known = self.0.caches.scopes().await?;
        let mut scope: Vec<String> = Vec::new();
        for s in requested.split(' ').filter(|s| !s.is_empty()) {
            if !known.iter().any(|k| k.name.as_str() == s) {
                continue;
            }
            // Admin scopes go to admin clients only, whatever a client's list says.
            let admin_refused = !client.admin_client && latchkey_core::domain::AdminScope::is_admin_name(s);
            if admin_refused || !client.allowed_scopes.iter().any(|a| a.as_str() == s) {
                return Ok(Err(Refusal::InvalidScope(format!("this client may not request the `{s}` scope"))));
            }
            if !scope.iter().any(|x| x == s) {
                scope.push(s.to_owned());
            }
        }
        Ok(Ok(scope))
    }

    /// PKCE with S256 is required of every client (OAuth 2.1 §4.1.1; RFC 9700 §2.1.1), but
    /// a confidential client registered with `allow_insecure_no_pkce`. Returns the challenge.
    pub fn code_challenge(
        client: &Client,
        challenge: Option<&str>,
        method: Option<&str>,
    ) -> Result<Option<String>, Refusal> {
        let refuse = |m: &str| Err(Refusal::InvalidRequest(m.to_owned()));
        match (challenge, method) {
            (Some(c), Some("S256")) => {
                if c.len() != 43 || !c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                    return refuse("code_challenge must be a base64url SHA-256 (43 characters)");
                }
                Ok(Some(c.to_owned()))
            }
            (Some(_), Some(_)) => refuse("code_challenge_method must be S256"),
            (Some(_), None) => refuse("code_challenge_method is missing (use S256)"),
            (None, _) if client.kind == ClientKind::Confidential && client.allow_insecure_no_pkce => Ok(None),
            (None, _) => refuse("PKCE is required: send code_challenge with method S256"),
        }
    }

    /// User claims are OpenID Connect's (§5.5), and a client gets only those of the scopes
    /// it may have: the `claims` parameter is a finer way to ask, not a way around them.
    pub fn claims(client: &Client, scope: &[String], mut claims: ClaimsRequest) -> Option<ClaimsRequest> {
        let openid = scope.iter().any(|s| s == "openid");
        let allowed = |s: &str| client.allowed_scopes.iter().any(|a| a.as_str() == s);
        claims.retain_user_claims(|n| openid && scope_of_claim(n).is_some_and(allowed));
        Some(claims).filter(|c| !c.is_empty())
    }

    /// The levels a request asks for and insists on (see [`AuthorizationRequest`]): the
    /// server's and the client's policy, `acr_values`, and an `acr` claim request.
    pub fn levels(
        &self,
        client: &Client,
        acr_values: Option<&str>,
        claims: Option<&ClaimsRequest>,
    ) -> Result<(Option<AuthLevel>, Option<AuthLevel>), Refusal> {
        let login = &self.0.config.login;
        let global = if login.require_passkey {
            Some(AuthLevel::PhishingResistant)
        } else if login.require_mfa {
            Some(AuthLevel::MultiFactor)
        } else {
            None
        };
        let policy = global.max(client.session_policy.required_level());
        let mut voluntary = acr_values.and_then(|v| AuthLevel::weakest_of(v.split(' ').filter(|s| !s.is_empty())));
        let mut essential = None;
        if let Some(acr) = claims.and_then(ClaimsRequest::acr) {
            let values: Vec<&str> = acr.string_values().collect();
            let level = AuthLevel::weakest_of(values.iter().copied());
            // OIDC Core §5.5.1.1: an essential acr that cannot be met fails the request.
            if acr.essential {
                if !values.is_empty() && level.is_none() {
                    return Err(Refusal::AccessDenied("the requested authentication level cannot be met"));
                }
                essential = level;
            } else {
                voluntary = voluntary.max(level);
            }
        }
        let minimum = policy.max(essential);
        Ok((minimum.max(voluntary), minimum))
    }

    /// What must happen before `request` gets a code, with the browser's live `session`.
    pub async fn next_step(
        &self,
        tenant: &TenantId,
        request: &AuthorizationRequest,
        client: &Client,
        session: Option<&BrowserSession>,
    ) -> Result<NextStep, ServiceError> {
        let now = self.0.clock.now().secs();
        let needs_login = if request.login_pending {
            // Waiting for a sign-in: only a new session satisfies it.
            session.is_none_or(|s| request.replaced_login.as_deref() == Some(s.id_hash.as_str()))
        } else {
            match session {
                None => true,
                Some(s) => {
                    request.prompts("login")
                        || max_age(request.max_age, client).is_some_and(|m| now - s.auth_time.secs() > m)
                        || request.names_another_user(s.sub.as_str())
                        // Step-up: the session is weaker than the request asks for.
                        || request.required_level.is_some_and(|l| !session_level(s).satisfies(l))
                }
            }
        };
        let session = match session {
            Some(s) if !needs_login => s,
            _ if request.prompts("none") => return Ok(NextStep::LoginRequired("the user is not signed in")),
            _ => return Ok(NextStep::SignIn),
        };
        // OIDC Core §3.1.2.2: no code for another user than the request names, even one who
        // just signed in.
        if request.names_another_user(session.sub.as_str()) {
            return Ok(NextStep::LoginRequired("the user who signed in is not the one the request names"));
        }
        if let Some(minimum) = request.minimum_level.filter(|l| !session_level(session).satisfies(*l)) {
            return Ok(NextStep::Insufficient(minimum));
        }
        // One session per browser: show who is signed in, and let the user continue or switch.
        if request.prompts("select_account") && !request.account_chosen && !request.login_pending {
            return Ok(NextStep::SelectAccount);
        }
        if !self.0.access().admits(client, &session.sub).await? {
            return Ok(if request.prompts("none") { NextStep::AccessDenied } else { NextStep::NoAccess });
        }
        let asked = Asked {
            scopes: &request.scope,
            claims: request.claims.as_ref(),
            prompt_consent: request.prompts("consent"),
        };
        if self.0.consents().needed(tenant, &session.sub, client, &asked).await? {
            return Ok(if request.prompts("none") { NextStep::ConsentRequired } else { NextStep::Consent });
        }
        if client.first_party {
            self.0.consents().note_first_party(tenant, &session.sub, client, &asked).await?;
        }
        Ok(NextStep::Issue)
    }
}

/// The effective `max_age` of a request: its own, else the client's default.
fn max_age(requested: Option<i64>, client: &Client) -> Option<i64> {
    requested.or_else(|| client.session_policy.default_max_age.and_then(|s| i64::try_from(s).ok()))
}
