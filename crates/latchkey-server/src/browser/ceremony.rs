//! Short-lived state between two requests of one browser — a WebAuthn challenge, a sign-in
//! waiting for its second factor, a sign-up waiting for its passkey. Kept in the database
//! (any node can finish what another started), bound to the browser by a random HttpOnly
//! cookie whose keyed hash is the key, and taken out once.

use axum::http::{HeaderMap, HeaderValue};
use latchkey_core::crypto::{TokenHash, random};
use latchkey_core::domain::TenantId;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::cookies;
use crate::state::AppState;

pub const COOKIE: &str = "latchkey-ceremony";
const PURPOSE: &str = "ceremony";

/// What a ceremony is for; a state kept for one purpose is never read for another.
#[derive(Debug, Clone, Copy)]
pub enum Purpose {
    PasskeySignIn,
    PasskeyRegistration,
    SignUp,
    SecondFactor,
    /// Where a browser returns once signed in for an app behind a proxy.
    ForwardAuth,
    /// A recovery session (an emailed recovery link was used in this browser).
    Recovery,
    /// The challenge of the passkey a recovery session adds.
    RecoveryPasskey,
    /// A sign-in link asked for in this browser (the secret the link is bound to).
    EmailLink,
    /// A sign-in (or link) at an upstream identity provider started in this browser: its
    /// `state`, `nonce` and PKCE verifier.
    Federation,
    /// An upstream account waiting to be linked once its owner signs in to the account
    /// here that has its address.
    FederationLink,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Purpose::PasskeySignIn => "passkey_sign_in",
            Purpose::PasskeyRegistration => "passkey_registration",
            Purpose::SignUp => "sign_up",
            Purpose::SecondFactor => "second_factor",
            Purpose::ForwardAuth => "forward_auth",
            Purpose::Recovery => "recovery",
            Purpose::RecoveryPasskey => "recovery_passkey",
            Purpose::EmailLink => "email_link",
            Purpose::Federation => "federation",
            Purpose::FederationLink => "federation_link",
        }
    }
}

fn key(state: &AppState, secret: &str) -> TokenHash {
    state.token_hasher.hash(PURPOSE, secret)
}

/// Keeps `value` for this browser. Returns the cookie to set when the browser had none.
pub async fn put<T: Serialize>(
    state: &AppState,
    tenant: &TenantId,
    headers: &HeaderMap,
    purpose: Purpose,
    value: &T,
) -> Result<Option<HeaderValue>, String> {
    let expires_at = state.clock.now().plus(state.config.passkeys.challenge_lifetime);
    store(state, tenant, headers, purpose, value, expires_at, None).await
}

/// [`put`], kept until `expires_at` (minutes: an email's round trip) without touching the
/// cookie's own lifetime (other ceremonies share it).
pub async fn put_until<T: Serialize>(
    state: &AppState,
    tenant: &TenantId,
    headers: &HeaderMap,
    purpose: Purpose,
    value: &T,
    expires_at: latchkey_core::UnixTime,
) -> Result<Option<HeaderValue>, String> {
    store(state, tenant, headers, purpose, value, expires_at, None).await
}

/// [`put`], kept until `expires_at` (hours or days): the cookie is (re)set to last as long,
/// so closing the browser does not lose it.
pub async fn put_lasting<T: Serialize>(
    state: &AppState,
    tenant: &TenantId,
    headers: &HeaderMap,
    purpose: Purpose,
    value: &T,
    expires_at: latchkey_core::UnixTime,
) -> Result<Option<HeaderValue>, String> {
    let max_age = u64::try_from(expires_at.secs() - state.clock.now().secs()).unwrap_or(0);
    store(state, tenant, headers, purpose, value, expires_at, Some(max_age)).await
}

async fn store<T: Serialize>(
    state: &AppState,
    tenant: &TenantId,
    headers: &HeaderMap,
    purpose: Purpose,
    value: &T,
    expires_at: latchkey_core::UnixTime,
    max_age: Option<u64>,
) -> Result<Option<HeaderValue>, String> {
    let existing = cookies::get(headers, &cookies::name(state.https, COOKIE)).filter(|v| v.len() >= 32);
    let (secret, set) = match existing {
        Some(v) if max_age.is_none() => (v.to_owned(), None),
        Some(v) => (v.to_owned(), Some(cookies::set(state.https, COOKIE, v, max_age))),
        None => {
            let v = random::token_string::<32>();
            (v.clone(), Some(cookies::set(state.https, COOKIE, &v, max_age)))
        }
    };
    let json = serde_json::to_string(value).map_err(|e| e.to_string())?;
    state
        .services
        .factors()
        .put_ceremony(tenant, &key(state, &secret), purpose.as_str(), &json, expires_at)
        .await
        .map_err(|e| e.to_string())?;
    Ok(set)
}

/// This browser's state for `purpose`, left in place: `None` when there is none, it
/// expired, or belongs to another browser.
pub async fn peek<T: DeserializeOwned>(
    state: &AppState,
    tenant: &TenantId,
    headers: &HeaderMap,
    purpose: Purpose,
) -> Option<T> {
    let secret = cookies::get(headers, &cookies::name(state.https, COOKIE))?;
    let id = key(state, secret);
    let factors = state.services.factors();
    match factors.peek_ceremony(tenant, &id, purpose.as_str(), state.clock.now()).await {
        Ok(json) => serde_json::from_str(&json?).ok(),
        Err(e) => {
            tracing::error!(error = %e, "cannot read ceremony state");
            None
        }
    }
}

/// Takes this browser's state for `purpose` out: `None` when there is none, it expired,
/// was taken already, or belongs to another browser.
pub async fn take<T: DeserializeOwned>(
    state: &AppState,
    tenant: &TenantId,
    headers: &HeaderMap,
    purpose: Purpose,
) -> Option<T> {
    let secret = cookies::get(headers, &cookies::name(state.https, COOKIE))?;
    let json = match state
        .services
        .factors()
        .take_ceremony(tenant, &key(state, secret), purpose.as_str(), state.clock.now())
        .await
    {
        Ok(found) => found?,
        Err(e) => {
            tracing::error!(error = %e, "cannot read ceremony state");
            return None;
        }
    };
    serde_json::from_str(&json).ok()
}
