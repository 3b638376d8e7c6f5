//! The token endpoint (RFC 6749 §3.2): form POSTs only, client authenticated, one module
//! per grant. Responses carry `Cache-Control: no-store` (RFC 6749 §5.1).

pub mod authorization_code;
mod client_credentials;
pub mod refresh_token;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use latchkey_core::domain::GrantType;
use serde::Serialize;

use super::OAuthError;
use super::client_auth::authenticate;
use super::params::Params;
use crate::edge::Tenant;
use crate::state::AppState;

#[derive(Debug, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

impl IntoResponse for TokenResponse {
    fn into_response(self) -> Response {
        let mut response = axum::Json(self).into_response();
        let h = response.headers_mut();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        response
    }
}

pub async fn token(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    crate::edge::ClientIp(ip): crate::edge::ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Result<TokenResponse, OAuthError> {
    let params = Params::from_form(&headers, &body).map_err(|e| OAuthError::invalid_request(e.to_string()))?;
    let grant_raw = params.get("grant_type").ok_or_else(|| OAuthError::invalid_request("grant_type is missing"))?;
    // OAuth 2.1 has no implicit or password grant.
    let grant = GrantType::parse(grant_raw)
        .map_err(|_| OAuthError::new("unsupported_grant_type", format!("grant type `{grant_raw}` is not supported")))?;
    let client = authenticate(&state, &tenant, &headers, &params, ip).await?;
    if !client.grant_types.contains(&grant) {
        return Err(OAuthError::new("unauthorized_client", format!("this client may not use the {grant} grant")));
    }
    let response = match grant {
        GrantType::AuthorizationCode => authorization_code::exchange(&state, &tenant, &client, &params).await,
        GrantType::RefreshToken => refresh_token::exchange(&state, &tenant, &client, &params).await,
        GrantType::ClientCredentials => client_credentials::exchange(&state, &tenant, &client, &params).await,
    }?;
    metrics::counter!("latchkey_tokens_issued_total", "grant_type" => grant.as_str()).increment(1);
    Ok(response)
}

/// Scopes a refresh or client-credentials request asks for: a subset of `allowed`
/// (narrowing is fine, widening is `invalid_scope`). Absent means all of `allowed`.
pub(crate) fn narrowed_scope(requested: Option<&str>, allowed: &[String]) -> Result<Vec<String>, OAuthError> {
    let Some(raw) = requested else { return Ok(allowed.to_vec()) };
    let mut out = Vec::new();
    for s in raw.split(' ').filter(|s| !s.is_empty()) {
        if !allowed.iter().any(|a| a == s) {
            return Err(OAuthError::new("invalid_scope", format!("scope `{s}` was not granted")));
        }
        if !out.iter().any(|o: &String| o == s) {
            out.push(s.to_owned());
        }
    }
    Ok(out)
}
