//! The token endpoint (RFC 6749 §3.2): form POSTs only, client authenticated; what each
//! grant issues is the services' (`latchkey_service::grants`). Responses carry
//! `Cache-Control: no-store` (RFC 6749 §5.1).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use latchkey_core::domain::{GrantType, ScopeName};
use latchkey_service::grants::{CodePresentation, GrantError, IssuedTokens};
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
    let grants = state.services.grants();
    let issued = match grant {
        GrantType::AuthorizationCode => {
            let code = params.get("code").ok_or_else(|| OAuthError::invalid_request("code is missing"))?;
            let presented = CodePresentation {
                code,
                redirect_uri: params.get("redirect_uri"),
                verifier: params.get("code_verifier"),
            };
            grants.exchange_code(&tenant, &client, presented).await
        }
        GrantType::RefreshToken => {
            let presented =
                params.get("refresh_token").ok_or_else(|| OAuthError::invalid_request("refresh_token is missing"))?;
            let scope = requested_scope(params.get("scope"))?;
            grants.refresh(&tenant, &client, presented, scope.as_deref()).await
        }
        GrantType::ClientCredentials => {
            let scope = requested_scope(params.get("scope"))?;
            grants.client_credentials(&tenant, &client, scope.as_deref(), params.get("resource")).await
        }
    }
    .map_err(grant_error)?;
    metrics::counter!("latchkey_tokens_issued_total", "grant_type" => grant.as_str()).increment(1);
    Ok(TokenResponse::from(issued))
}

impl From<IssuedTokens> for TokenResponse {
    fn from(issued: IssuedTokens) -> Self {
        Self {
            access_token: issued.access_token,
            token_type: "Bearer",
            expires_in: issued.expires_in,
            scope: issued.scope,
            refresh_token: issued.refresh_token,
            id_token: issued.id_token,
        }
    }
}

/// The RFC 6749 §5.2 answer to a grant that issued nothing.
fn grant_error(e: GrantError) -> OAuthError {
    match e {
        GrantError::InvalidGrant(description) => OAuthError::invalid_grant(description),
        GrantError::NotAdmitted => OAuthError::invalid_grant("the user no longer holds a role this client requires"),
        GrantError::InvalidScope(description) => OAuthError::new("invalid_scope", description),
        GrantError::InvalidTarget(description) => OAuthError::new("invalid_target", description),
        GrantError::Internal { context, detail } => OAuthError::server_error(context, detail),
        GrantError::Service(e) => e.into(),
    }
}

/// The `scope` parameter of a refresh or client-credentials request (RFC 6749 §3.3): scope
/// tokens separated by spaces; absent means all the grant or client allows.
fn requested_scope(raw: Option<&str>) -> Result<Option<Vec<ScopeName>>, OAuthError> {
    let Some(raw) = raw else { return Ok(None) };
    let scopes = raw.split(' ').filter(|s| !s.is_empty()).map(ScopeName::parse).collect::<Result<Vec<_>, _>>();
    scopes.map(Some).map_err(|e| OAuthError::new("invalid_scope", e.to_string()))
}
