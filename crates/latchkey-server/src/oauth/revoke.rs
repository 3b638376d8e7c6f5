//! Token revocation (RFC 7009): form POST, client authenticated, `token_type_hint` honoured
//! as a hint only; 200 for unknown tokens; a token issued to another client is left alone;
//! revoking a refresh token revokes its family.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use latchkey_core::UnixTime;
use latchkey_core::records::Actor;

use super::OAuthError;
use super::client_auth::authenticate;
use super::params::Params;
use crate::edge::Tenant;
use crate::state::AppState;
use latchkey_service::tokens::REFRESH_PURPOSE;

pub async fn revoke(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    crate::edge::ClientIp(ip): crate::edge::ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OAuthError> {
    let params = Params::from_form(&headers, &body).map_err(|e| OAuthError::invalid_request(e.to_string()))?;
    let client = authenticate(&state, &tenant, &headers, &params, ip).await?;
    let token = params.get("token").ok_or_else(|| OAuthError::invalid_request("token is missing"))?;
    let actor = Actor::Client(client.client_id.to_string());
    let now = state.clock.now();
    // The hint only orders the lookups (RFC 7009 §2.1); a refresh token lookup is one
    // indexed query, so it always comes first.
    let hash = state.token_hasher.hash(REFRESH_PURPOSE, token);
    match state.services.tokens().refresh_token(&tenant, &hash).await? {
        Some(r) if r.client_id == client.client_id => {
            // RFC 7009 §2.1: revoking a refresh token should also invalidate the access
            // tokens of the same grant.
            let until = now.plus(state.services.tokens().access_token_lifetime(&client));
            state.services.tokens().revoke_grant(&tenant, &r.grant_id, until, now, &actor).await?;
            state.revocations.add_local("grant", &r.grant_id, until);
        }
        Some(_) => {} // another client's token is left alone
        None => {
            if let Ok(claims) = state.services.verify_access_token(token)
                && claims.client_id == client.client_id.as_str()
            {
                let until = UnixTime::from_secs(claims.exp);
                state.services.tokens().revoke_access_token(&tenant, &claims.jti, until, &actor).await?;
                state.revocations.add_local("jti", &claims.jti, until);
            }
        }
    }
    let mut response = StatusCode::OK.into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
