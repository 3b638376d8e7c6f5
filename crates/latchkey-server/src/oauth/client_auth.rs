//! Client authentication at the token, revocation and introspection endpoints:
//! `client_secret_basic`, `client_secret_post`, and `none` for public clients. A request
//! that uses two methods is refused (RFC 6749 §2.3).

use std::sync::Arc;

use axum::http::{HeaderMap, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use latchkey_core::domain::{ClientId, ClientKind, TokenEndpointAuthMethod};
use latchkey_store::Client;

use super::OAuthError;
use super::params::Params;
use crate::app::AppState;

/// The purpose client secret hashes are bound to.
pub const CLIENT_SECRET_PURPOSE: &str = "client_secret";

/// Authenticates the calling client, or fails with `invalid_client` (401).
pub async fn authenticate(state: &AppState, headers: &HeaderMap, params: &Params) -> Result<Arc<Client>, OAuthError> {
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
        (None, None) => {
            if params.contains("client_assertion") {
                return Err(OAuthError::invalid_client("private_key_jwt is not supported", false));
            }
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
