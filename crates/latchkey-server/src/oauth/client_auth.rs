//! Client authentication at the token, revocation and introspection endpoints:
//! `client_secret_basic`, `client_secret_post`, and `none` for public clients. A request
//! that uses two methods is refused (RFC 6749 §2.3).

use std::net::IpAddr;
use std::sync::Arc;

use axum::http::{HeaderMap, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use latchkey_core::domain::{ClientId, ClientKind, TenantId, TokenEndpointAuthMethod};
use latchkey_store::Client;

use super::params::Params;
use super::{OAuthError, client_auth_limits};
use crate::app::AppState;

/// The purpose client secret hashes are bound to.
pub const CLIENT_SECRET_PURPOSE: &str = "client_secret";

pub use super::client_auth_limits::ClientAuthThrottle;

/// Authenticates the calling client, or fails with `invalid_client` (401). Failed attempts
/// are limited per client address ([`super::client_auth_limits`]): past
/// `login.max_failures_per_ip` within `login.failure_window` the address gets 429.
pub async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    params: &Params,
    ip: IpAddr,
) -> Result<Arc<Client>, OAuthError> {
    let check = if params.contains("client_assertion") || params.contains("client_assertion_type") {
        client_auth_limits::Check::Assertion
    } else {
        client_auth_limits::Check::Secret
    };
    client_auth_limits::limited(state, ip, check, || authenticate_client(state, headers, params)).await
}

async fn authenticate_client(
    state: &AppState,
    headers: &HeaderMap,
    params: &Params,
) -> Result<Arc<Client>, OAuthError> {
    let basic = basic_credentials(headers)?;
    let posted_secret = params.get("client_secret");
    let (id_raw, secret, method) = match (&basic, posted_secret) {
        (Some(_), Some(_)) => {
            return Err(OAuthError::invalid_request("use one client authentication method, not two"));
        }
        (Some((id, secret)), None) => {
            if params.get("client_id").is_some_and(|p| p != id) {
                return Err(OAuthError::invalid_request("client_id differs from the authenticated client"));
            }
            (id.clone(), Some(secret.clone()), TokenEndpointAuthMethod::ClientSecretBasic)
        }
        (None, Some(secret)) => {
            let id =
                params.get("client_id").ok_or_else(|| OAuthError::invalid_client("client_id is missing", false))?;
            (id.to_owned(), Some(secret.to_owned()), TokenEndpointAuthMethod::ClientSecretPost)
        }
        (None, None) if params.contains("client_assertion") || params.contains("client_assertion_type") => {
            return authenticate_assertion(state, params).await;
        }
        (None, None) => {
            let id = params
                .get("client_id")
                .ok_or_else(|| OAuthError::invalid_client("client authentication is required", false))?;
            (id.to_owned(), None, TokenEndpointAuthMethod::None)
        }
    };
    let uses_basic = method == TokenEndpointAuthMethod::ClientSecretBasic;
    let fail = || OAuthError::invalid_client("client authentication failed", uses_basic);
    let id = ClientId::parse(&id_raw).map_err(|_| fail())?;
    let client = state.caches.client(&id).await?.ok_or_else(fail)?;
    if client.token_endpoint_auth_method != method {
        return Err(fail());
    }
    match (client.kind, secret) {
        (ClientKind::Public, None) => Ok(client),
        (ClientKind::Confidential, Some(secret)) if secret_matches(state, &client, &secret) => Ok(client),
        _ => Err(fail()),
    }
}

pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Algorithms a client may sign its assertion with: asymmetric only (no shared-secret HMAC,
/// never `none`).
const ASSERTION_ALGS: [jsonwebtoken::Algorithm; 9] = [
    jsonwebtoken::Algorithm::RS256,
    jsonwebtoken::Algorithm::RS384,
    jsonwebtoken::Algorithm::RS512,
    jsonwebtoken::Algorithm::PS256,
    jsonwebtoken::Algorithm::PS384,
    jsonwebtoken::Algorithm::PS512,
    jsonwebtoken::Algorithm::ES256,
    jsonwebtoken::Algorithm::ES384,
    jsonwebtoken::Algorithm::EdDSA,
];

/// The longest an assertion may live (`exp` − now), plus clock skew.
const ASSERTION_MAX_LIFETIME: i64 = 600;

/// `private_key_jwt` (RFC 7523 §3, OIDC Core §9): a JWT signed with the client's key, with
/// `iss` = `sub` = client id, `aud` the issuer (or the token endpoint URL), a bounded `exp`,
/// and a `jti` that is accepted once.
async fn authenticate_assertion(state: &AppState, params: &Params) -> Result<Arc<Client>, OAuthError> {
    let fail = |why: &str| {
        tracing::info!(reason = why, "client assertion refused");
        OAuthError::invalid_client("client authentication failed", false)
    };
    if params.get("client_assertion_type") != Some(JWT_BEARER) {
        return Err(OAuthError::invalid_client(
            "client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            false,
        ));
    }
    let assertion = params.get("client_assertion").ok_or_else(|| fail("no assertion"))?;
    let header = jsonwebtoken::decode_header(assertion).map_err(|_| fail("malformed"))?;
    if !ASSERTION_ALGS.contains(&header.alg) {
        return Err(fail("algorithm not allowed"));
    }
    // The issuer names the client whose key must verify the signature.
    let payload = assertion.split('.').nth(1).ok_or_else(|| fail("malformed"))?;
    let unverified: serde_json::Value = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| fail("malformed payload"))?;
    let iss = unverified["iss"].as_str().ok_or_else(|| fail("no iss"))?;
    if params.get("client_id").is_some_and(|c| c != iss) {
        return Err(fail("client_id differs from iss"));
    }
    let id = ClientId::parse(iss).map_err(|_| fail("bad iss"))?;
    let client = state.caches.client(&id).await?.ok_or_else(|| fail("unknown client"))?;
    if client.token_endpoint_auth_method != TokenEndpointAuthMethod::PrivateKeyJwt {
        return Err(fail("client does not use private_key_jwt"));
    }
    let mut claims = None;
    for refresh in [false, true] {
        let jwks = state.client_keys.keys(&client, refresh).await.map_err(|e| fail(&e.to_string()))?;
        if let Some(c) = verify_with(state, assertion, &header, &jwks, iss) {
            claims = Some(c);
            break;
        }
        if client.jwks.is_some() {
            break; // registered keys cannot change by refetching
        }
    }
    let claims = claims.ok_or_else(|| fail("signature or claims invalid"))?;
    let now = state.clock.now().secs();
    let skew = i64::try_from(state.config.keys.clock_skew.as_secs()).unwrap_or(60);
    let exp = claims["exp"].as_i64().ok_or_else(|| fail("no exp"))?;
    if exp <= now - skew || exp > now + ASSERTION_MAX_LIFETIME + skew {
        return Err(fail("exp out of bounds"));
    }
    if claims["nbf"].as_i64().is_some_and(|nbf| nbf > now + skew) {
        return Err(fail("not yet valid"));
    }
    if claims["sub"].as_str() != Some(iss) {
        return Err(fail("sub differs from iss"));
    }
    let jti = claims["jti"].as_str().filter(|j| !j.is_empty()).ok_or_else(|| fail("no jti"))?;
    let until = latchkey_core::UnixTime::from_secs(exp + skew);
    if !state.store.remember_assertion_jti(&TenantId::default_tenant(), &client.client_id, jti, until).await? {
        return Err(fail("jti replayed"));
    }
    Ok(client)
}

fn verify_with(
    state: &AppState,
    assertion: &str,
    header: &jsonwebtoken::Header,
    jwks: &serde_json::Value,
    iss: &str,
) -> Option<serde_json::Value> {
    let keys = jwks["keys"].as_array()?;
    let token_endpoint = format!("{}/token", state.issuer);
    for key in keys {
        if header.kid.as_deref().is_some_and(|kid| key["kid"].as_str() != Some(kid)) {
            continue;
        }
        let Ok(jwk) = serde_json::from_value::<jsonwebtoken::jwk::Jwk>(key.clone()) else { continue };
        let Ok(decoding) = jsonwebtoken::DecodingKey::from_jwk(&jwk) else { continue };
        let mut v = jsonwebtoken::Validation::new(header.alg);
        v.validate_exp = false; // checked against Latchkey's clock by the caller
        v.required_spec_claims.clear();
        v.set_audience(&[state.issuer.as_ref(), token_endpoint.as_str()]);
        v.set_issuer(&[iss]);
        if let Ok(data) = jsonwebtoken::decode::<serde_json::Value>(assertion, &decoding, &v) {
            return Some(data.claims);
        }
    }
    None
}

fn secret_matches(state: &AppState, client: &Client, secret: &str) -> bool {
    let hasher = &state.token_hasher;
    let current = client.secret_hash.as_ref().is_some_and(|h| hasher.verify(CLIENT_SECRET_PURPOSE, secret, h));
    // After rotate-secret, the previous secret works until its grace period ends.
    let previous = client.previous_secret_hash.as_ref().is_some_and(|h| {
        client.previous_secret_expires_at.is_some_and(|until| until > state.clock.now().secs())
            && hasher.verify(CLIENT_SECRET_PURPOSE, secret, h)
    });
    current | previous
}

/// RFC 6749 §2.3.1: id and secret are form-urlencoded before base64.
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, OAuthError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else { return Ok(None) };
    let value = value.to_str().map_err(|_| OAuthError::invalid_client("malformed Authorization header", true))?;
    let Some(encoded) = value.strip_prefix("Basic ").or_else(|| value.strip_prefix("basic ")) else {
        return Err(OAuthError::invalid_client("use HTTP Basic client authentication", true));
    };
    let decoded = STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| OAuthError::invalid_client("malformed Basic credentials", true))?;
    let (id, secret) =
        decoded.split_once(':').ok_or_else(|| OAuthError::invalid_client("malformed Basic credentials", true))?;
    let unescape = |s: &str| {
        url::form_urlencoded::parse(format!("v={s}").as_bytes()).next().map(|(_, v)| v.into_owned()).unwrap_or_default()
    };
    Ok(Some((unescape(id), unescape(secret))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_decoded() {
        let mut h = HeaderMap::new();
        let encoded = STANDARD.encode("my%20app:p%3Ass+word");
        h.insert(header::AUTHORIZATION, format!("Basic {encoded}").parse().unwrap_or_else(|_| panic!()));
        let creds = basic_credentials(&h).ok().flatten();
        assert_eq!(creds, Some(("my app".into(), "p:ss word".into())));
        h.insert(header::AUTHORIZATION, "Bearer x".parse().unwrap_or_else(|_| panic!()));
        assert!(basic_credentials(&h).is_err());
    }
}
