//! The client credentials grant (RFC 6749 §4.4): a confidential client gets an access
//! token for itself. No database write: the client comes from the cache and the secret is
//! checked with a keyed hash.

use latchkey_core::records::Client;

use super::{TokenResponse, narrowed_scope};
use crate::oauth::OAuthError;
use crate::oauth::params::Params;
use crate::oauth::tokens::{AccessTokenRequest, access_token_lifetime, mint_access_token};
use crate::state::AppState;
use latchkey_core::domain::TenantId;

/// Scopes that only make sense with a user.
const USER_SCOPES: [&str; 6] = latchkey_core::domain::ScopeName::BUILT_IN;

pub async fn exchange(
    state: &AppState,
    tenant: &TenantId,
    client: &Client,
    params: &Params,
) -> Result<TokenResponse, OAuthError> {
    let allowed: Vec<String> = client
        .allowed_scopes
        .iter()
        .map(|s| s.as_str().to_owned())
        .filter(|s| !USER_SCOPES.contains(&s.as_str()))
        .collect();
    let scope = narrowed_scope(params.get("scope"), &allowed)?;
    let audience = match params.get("resource") {
        None => state.default_audience(),
        Some(resource) => crate::oauth::authorize::resource_audience(state, tenant, resource, &scope)
            .await
            .map_err(|d| OAuthError::new("invalid_target", d))?,
    };
    let lifetime = access_token_lifetime(state, client);
    let issued = mint_access_token(
        state,
        AccessTokenRequest {
            sub: client.client_id.as_str(),
            client_id: client.client_id.as_str(),
            scope: &scope,
            audience: &audience,
            auth_time: None,
            grant_id: None,
            sid: None,
            userinfo_claims: None,
            lifetime,
        },
    )
    .map_err(|e| OAuthError::server_error("cannot mint an access token", e))?;
    Ok(TokenResponse {
        access_token: issued.token,
        token_type: "Bearer",
        expires_in: lifetime.as_secs(),
        scope: scope.join(" "),
        refresh_token: None,
        id_token: None,
    })
}
