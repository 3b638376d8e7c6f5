//! Client authentication at the token, revocation and introspection endpoints:
//! `client_secret_basic`, `client_secret_post`, `private_key_jwt`, and `none` for public
//! clients. A request that uses two methods is refused (RFC 6749 §2.3).

use std::net::IpAddr;
use std::sync::Arc;

use axum::http::HeaderMap;
use base64::Engine;
use latchkey_core::domain::client_assertion::{AssertionExpectations, ClientAssertionClaims};
use latchkey_core::domain::{ClientId, ClientKind, TenantId, TokenEndpointAuthMethod};
use latchkey_core::records::Client;

use super::params::Params;
use super::{OAuthError, client_auth_limits};
use crate::edge::authorization::{AuthorizationError, BasicCredentials};
use crate::state::AppState;

/// The purpose client secret hashes are bound to.
use latchkey_service::clients::CLIENT_SECRET_PURPOSE;

pub use super::client_auth_limits::ClientAuthThrottle;

/// Authenticates the calling client, or fails with `invalid_client` (401). Failed attempts
/// are limited per client address ([`super::client_auth_limits`]): past
/// `login.max_failures_per_ip` within `login.failure_window` the address gets 429.
pub async fn authenticate(
    state: &AppState,
    tenant: &TenantId,
    headers: &HeaderMap,
    params: &Params,
    ip: IpAddr,
) -> Result<Arc<Client>, OAuthError> {
    let check = if params.contains("client_assertion") || params.contains("client_assertion_type") {
        client_auth_limits::Check::Assertion
    } else {
        client_auth_limits::Check::Secret
    };
    client_auth_limits::limited(state, tenant, ip, check, || authenticate_client(state, tenant, headers, params)).await
}

async fn authenticate_client(
    state: &AppState,
    tenant: &TenantId,
    headers: &HeaderMap,
    params: &Params,
) -> Result<Arc<Client>, OAuthError> {
    let basic = basic_credentials(headers)?;
    let posted_secret = params.get("client_secret");
    let assertion = params.contains("client_assertion") || params.contains("client_assertion_type");
    // RFC 6749 §2.3: "MUST NOT use more than one authentication method in each request";
    // §5.2 names that case `invalid_request` ("utilizes more than one mechanism for
    // authenticating the client"), not `invalid_client`: nothing was authenticated yet.
    if usize::from(basic.is_some()) + usize::from(posted_secret.is_some()) + usize::from(assertion) > 1 {
        return Err(OAuthError::invalid_request("use one client authentication method, not several"));
    }
    let (id_raw, secret, method) = match (basic, posted_secret) {
        (Some(basic), _) => {
            if params.get("client_id").is_some_and(|p| p != basic.id) {
                return Err(OAuthError::invalid_request("client_id differs from the authenticated client"));
            }
            (basic.id, Some(basic.secret), TokenEndpointAuthMethod::ClientSecretBasic)
        }
        (None, Some(secret)) => {
            let id =
                params.get("client_id").ok_or_else(|| OAuthError::invalid_client("client_id is missing", false))?;
            (id.to_owned(), Some(secret.to_owned()), TokenEndpointAuthMethod::ClientSecretPost)
        }
        (None, None) if assertion => {
            return authenticate_assertion(state, tenant, params).await;
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

/// `private_key_jwt` (RFC 7523 §3, OIDC Core §9): a JWT signed with the client's key, with
/// `iss` = `sub` = client id, `aud` the issuer as its only value (the token endpoint URL
/// only for a client allowed the legacy audience), a bounded `exp`, and a `jti` that is
/// accepted once. The claim rules are `ClientAssertionClaims::parse`.
async fn authenticate_assertion(
    state: &AppState,
    tenant: &TenantId,
    params: &Params,
) -> Result<Arc<Client>, OAuthError> {
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
        if let Some(c) = verify_with(assertion, &header, &jwks, iss) {
            claims = Some(c);
            break;
        }
        if client.jwks.is_some() {
            break; // registered keys cannot change by refetching
        }
    }
    let claims = claims.ok_or_else(|| fail("no registered key verifies the signature"))?;
    let skew = i64::try_from(state.config.keys.clock_skew.as_secs()).unwrap_or(60);
    let token_endpoint = format!("{}/token", state.issuer);
    let expect = AssertionExpectations {
        client_id: iss,
        issuer: &state.issuer,
        legacy_audience: client.allow_legacy_assertion_audience.then_some(token_endpoint.as_str()),
        now: state.clock.now().secs(),
        skew,
    };
    let checked = ClientAssertionClaims::parse(&claims, &expect).map_err(|e| fail(&e.to_string()))?;
    let until = latchkey_core::UnixTime::from_secs(checked.exp + skew);
    if !state.services.clients().remember_assertion_jti(tenant, &client.client_id, &checked.jti, until).await? {
        return Err(fail("jti replayed"));
    }
    Ok(client)
}

/// Whether a registered JWK may verify the signature `header` describes.
fn key_fits(key: &serde_json::Value, header: &jsonwebtoken::Header) -> bool {
    if header.kid.as_deref().is_some_and(|kid| key["kid"].as_str() != Some(kid)) {
        return false;
    }
    // RFC 7517 §4.4: a key that names its algorithm is for that algorithm only. Without
    // this an RSA key marked RS256 also verified PS256 signatures (RFC 7518 §3.5 uses the
    // same key type for both).
    if let Some(alg) = key.get("alg")
        && alg.as_str().and_then(|a| a.parse::<jsonwebtoken::Algorithm>().ok()) != Some(header.alg)
    {
        return false;
    }
    // RFC 7517 §4.2, §4.3: a key meant for encryption, or not for verifying, signs nothing.
    if key.get("use").is_some_and(|u| u != "sig") {
        return false;
    }
    if let Some(ops) = key.get("key_ops") {
        return ops.as_array().is_some_and(|ops| ops.iter().any(|op| op == "verify"));
    }
    true
}

/// The claims of `assertion` if one of the keys in `jwks` verifies its signature.
fn verify_with(
    assertion: &str,
    header: &jsonwebtoken::Header,
    jwks: &serde_json::Value,
    iss: &str,
) -> Option<serde_json::Value> {
    let keys = jwks["keys"].as_array()?;
    for key in keys.iter().filter(|k| key_fits(k, header)) {
        let Ok(jwk) = serde_json::from_value::<jsonwebtoken::jwk::Jwk>(key.clone()) else { continue };
        let Ok(decoding) = jsonwebtoken::DecodingKey::from_jwk(&jwk) else { continue };
        let mut v = jsonwebtoken::Validation::new(header.alg);
        // The signature only: every claim is checked by `ClientAssertionClaims::parse`,
        // against Latchkey's clock. (jsonwebtoken checked `aud` only when it was a string
        // and accepted any one matching value of an array.)
        v.validate_exp = false;
        v.validate_nbf = false;
        v.validate_aud = false;
        v.required_spec_claims.clear();
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

/// HTTP Basic client credentials (`edge::authorization`), failing as `invalid_client` with
/// a Basic challenge (RFC 6749 §5.2).
fn basic_credentials(headers: &HeaderMap) -> Result<Option<BasicCredentials>, OAuthError> {
    crate::edge::authorization::basic(headers).map_err(|e| match e {
        AuthorizationError::OtherScheme => OAuthError::invalid_client("use HTTP Basic client authentication", true),
        other => OAuthError::invalid_client(other.to_string(), true),
    })
}
