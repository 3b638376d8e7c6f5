//! Minting access tokens (JWT, RFC 9068) and ID tokens, and verifying access tokens for
//! UserInfo, introspection and revocation.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Validation;
use latchkey_core::crypto::random;
use latchkey_core::domain::{ClaimRequest, SigningAlg};

use crate::state::AppState;
use latchkey_service::verified_tokens::Presented;

pub use latchkey_service::access_claims::AccessClaims;

pub use latchkey_service::keys::MintError;

pub struct IssuedAccessToken {
    pub token: String,
    pub claims: AccessClaims,
}

pub struct AccessTokenRequest<'a> {
    pub sub: &'a str,
    pub client_id: &'a str,
    pub scope: &'a [String],
    pub audience: &'a str,
    pub auth_time: Option<i64>,
    pub grant_id: Option<&'a str>,
    pub sid: Option<&'a str>,
    pub userinfo_claims: Option<BTreeMap<String, ClaimRequest>>,
    /// The client's own access token lifetime, if it has one.
    pub lifetime: std::time::Duration,
}

pub fn mint_access_token(state: &AppState, req: AccessTokenRequest<'_>) -> Result<IssuedAccessToken, MintError> {
    let alg = state.config.tokens.access_token_alg;
    let key = state.keys.active(alg).ok_or(MintError::NoKey(alg))?;
    let now = state.clock.now().secs();
    let claims = AccessClaims {
        iss: state.issuer.to_string(),
        sub: req.sub.to_owned(),
        aud: req.audience.to_owned(),
        client_id: req.client_id.to_owned(),
        scope: req.scope.join(" "),
        jti: random::token_string::<16>(),
        iat: now,
        exp: now + i64::try_from(req.lifetime.as_secs()).unwrap_or(300),
        auth_time: req.auth_time,
        gid: req.grant_id.map(str::to_owned),
        sid: req.sid.map(str::to_owned),
        userinfo_claims: req.userinfo_claims,
    };
    let token = key.sign_jwt("at+jwt", &claims).map_err(|e| MintError::Sign(e.to_string()))?;
    Ok(IssuedAccessToken { token, claims })
}

/// The access token lifetime for `client`: its own, or the configured default.
pub fn access_token_lifetime(state: &AppState, client: &latchkey_core::records::Client) -> std::time::Duration {
    latchkey_service::tokens::access_token_lifetime(&state.config, client)
}

/// `at_hash` (OIDC Core §3.1.3.6): base64url of the left half of the hash of the ASCII
/// access token, with the hash of the ID token's algorithm (SHA-256 for RS256/ES256;
/// SHA-512 for EdDSA with Ed25519, per the OpenID Foundation's errata).
pub fn at_hash(access_token: &str, alg: SigningAlg) -> String {
    use aws_lc_rs::digest;
    let algorithm = match alg {
        SigningAlg::Rs256 | SigningAlg::Es256 => &digest::SHA256,
        SigningAlg::EdDsa => &digest::SHA512,
    };
    let d = digest::digest(algorithm, access_token.as_bytes());
    let bytes = d.as_ref();
    URL_SAFE_NO_PAD.encode(&bytes[..bytes.len() / 2])
}

pub struct IdTokenRequest<'a> {
    pub sub: &'a str,
    pub client_id: &'a str,
    pub alg: SigningAlg,
    pub nonce: Option<&'a str>,
    pub auth_time: i64,
    pub acr: &'a str,
    pub amr: &'a [String],
    pub sid: &'a str,
    pub access_token: Option<&'a str>,
    pub extra: serde_json::Map<String, serde_json::Value>,
}

pub fn mint_id_token(state: &AppState, req: IdTokenRequest<'_>) -> Result<String, MintError> {
    let key = state.keys.active(req.alg).ok_or(MintError::NoKey(req.alg))?;
    let now = state.clock.now().secs();
    let mut claims = req.extra;
    let mut set = |k: &str, v: serde_json::Value| {
        claims.insert(k.to_owned(), v);
    };
    set("iss", state.issuer.to_string().into());
    set("sub", req.sub.into());
    set("aud", req.client_id.into());
    set("azp", req.client_id.into());
    set("iat", now.into());
    set("exp", (now + i64::try_from(state.config.tokens.id_token_lifetime.as_secs()).unwrap_or(3600)).into());
    set("auth_time", req.auth_time.into());
    set("acr", req.acr.into());
    set("amr", req.amr.to_vec().into());
    set("sid", req.sid.into());
    if let Some(nonce) = req.nonce {
        set("nonce", nonce.into());
    }
    if let Some(at) = req.access_token {
        set("at_hash", at_hash(at, req.alg).into());
    }
    key.sign_jwt("JWT", &claims).map_err(|e| MintError::Sign(e.to_string()))
}

/// Why a presented JWT was not accepted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("malformed token")]
    Malformed,
    #[error("unknown signing key")]
    UnknownKey,
    #[error("bad signature or claims")]
    Invalid,
    #[error("expired")]
    Expired,
    #[error("revoked")]
    Revoked,
}

/// Verifies a JWT signed by one of Latchkey's published keys: signature, `typ`, issuer;
/// `exp` against the server clock unless `allow_expired`. Returns the claims.
pub fn verify_jwt(
    state: &AppState,
    token: &str,
    typ: &str,
    allow_expired: bool,
) -> Result<HashMap<String, serde_json::Value>, VerifyError> {
    let (_, claims) = verify_signature::<HashMap<String, serde_json::Value>>(state, token, typ)?;
    let exp = claims.get("exp").and_then(serde_json::Value::as_i64).ok_or(VerifyError::Invalid)?;
    if !allow_expired && exp <= state.clock.now().secs() {
        return Err(VerifyError::Expired);
    }
    Ok(claims)
}

/// Checks a JWT's signature under one of Latchkey's published keys, its `typ` and issuer,
/// and decodes its claims; returns the key id with them. Expiry is the caller's.
fn verify_signature<T: serde::de::DeserializeOwned>(
    state: &AppState,
    token: &str,
    typ: &str,
) -> Result<(String, T), VerifyError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| VerifyError::Malformed)?;
    if !header.typ.as_deref().is_some_and(|t| t.eq_ignore_ascii_case(typ)) {
        return Err(VerifyError::Invalid);
    }
    let kid = header.kid.ok_or(VerifyError::UnknownKey)?;
    let verifying = state.keys.verification_key(&kid).ok_or(VerifyError::UnknownKey)?;
    let (key, alg) = (&verifying.0, verifying.1);
    if alg != header.alg {
        return Err(VerifyError::Invalid);
    }
    let mut validation = Validation::new(alg);
    // Expiry is checked against Latchkey's own clock, so tests can move it.
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    validation.set_issuer(&[state.issuer.as_ref()]);
    let data = jsonwebtoken::decode::<T>(token, key, &validation).map_err(|_| VerifyError::Invalid)?;
    Ok((kid, data.claims))
}

/// Verifies an access token, including the revocation set.
/// [`verify_access_token`], and the client it was issued to still exists: deleting a
/// client ends its access tokens along with its refresh tokens and consents.
pub async fn live_access_token(state: &AppState, token: &str) -> Result<AccessClaims, VerifyError> {
    let claims = verify_access_token(state, token)?;
    let client = latchkey_core::domain::ClientId::parse(&claims.client_id).map_err(|_| VerifyError::Invalid)?;
    match state.caches.client(&client).await {
        Ok(Some(_)) => Ok(claims),
        _ => Err(VerifyError::Revoked),
    }
}

/// Verifies an access token: signature, `typ` and issuer, expiry, the revocation set. The
/// signature of a token presented before is not checked again while its key is still
/// published ([`VerifiedTokens`](latchkey_service::verified_tokens::VerifiedTokens)); expiry and the
/// revocation set are checked on every presentation.
pub fn verify_access_token(state: &AppState, token: &str) -> Result<AccessClaims, VerifyError> {
    let presented = Presented::of(token);
    let published = |kid: &str| state.keys.verification_key(kid).is_some();
    let claims = match state.verified_tokens.get(&presented, published) {
        Some(claims) => claims,
        None => {
            let (kid, claims) = verify_signature::<AccessClaims>(state, token, "at+jwt")?;
            let claims = Arc::new(claims);
            state.verified_tokens.insert(presented, kid, claims.clone(), state.clock.now().secs());
            claims
        }
    };
    if claims.exp <= state.clock.now().secs() {
        return Err(VerifyError::Expired);
    }
    if state.revocations.is_revoked(&claims.jti, claims.gid.as_deref()) {
        return Err(VerifyError::Revoked);
    }
    Ok(AccessClaims::clone(&claims))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_hash_matches_the_oidc_example() {
        // OIDC Core Appendix A.3 / A.4 example access token and its at_hash (RS256).
        assert_eq!(at_hash("jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y", SigningAlg::Rs256), "77QmUPtjPfzWtF2AnpK9RQ");
    }
}
