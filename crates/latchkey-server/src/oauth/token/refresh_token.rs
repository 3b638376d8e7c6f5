//! The refresh token grant (RFC 6749 §6): opaque tokens, stored hashed, bound to the
//! client, rotated on every use; scope may narrow, never widen. Concurrent use of one token:
//! the first wins, a duplicate within `tokens.refresh_reuse_grace` gets `invalid_grant`
//! without harm, and a later reuse revokes the whole family (RFC 9700 §4.14.2).

use latchkey_core::crypto::random;
use latchkey_core::domain::{SubjectId, TenantId};
use latchkey_store::{Client, NewRefreshToken, RefreshRotation};

use super::{TokenResponse, narrowed_scope};
use crate::app::AppState;
use crate::oauth::OAuthError;
use crate::oauth::grant::GrantData;
use crate::oauth::params::Params;

pub const REFRESH_PURPOSE: &str = "refresh_token";

fn new_token(
    state: &AppState,
    client: &Client,
    grant_id: &str,
    family: Option<&str>,
    data: &GrantData,
) -> Result<(String, NewRefreshToken), OAuthError> {
    let token = random::token_string::<32>();
    let grant_data = serde_json::to_string(data).map_err(|e| OAuthError::server_error("cannot encode grant", e))?;
    let record = NewRefreshToken {
        token_hash: state.token_hasher.hash(REFRESH_PURPOSE, &token),
        family_id: family.map_or_else(random::token_string::<16>, str::to_owned),
        grant_id: grant_id.to_owned(),
        client_id: client.client_id.clone(),
        sub: data.sub.clone(),
        grant_data,
        expires_at: state.clock.now().plus(state.config.tokens.refresh_token_lifetime),
    };
    Ok((token, record))
}

/// Stores the first refresh token of a grant and returns it.
pub(crate) async fn store_new(
    state: &AppState,
    client: &Client,
    grant_id: &str,
    family: Option<&str>,
    data: &GrantData,
) -> Result<String, OAuthError> {
    let (token, record) = new_token(state, client, grant_id, family, data)?;
    state.store.insert_refresh_token(&TenantId::default_tenant(), &record).await?;
    Ok(token)
}

pub async fn exchange(state: &AppState, client: &Client, params: &Params) -> Result<TokenResponse, OAuthError> {
    let presented =
        params.get("refresh_token").ok_or_else(|| OAuthError::invalid_request("refresh_token is missing"))?;
    let tenant = TenantId::default_tenant();
    let hash = state.token_hasher.hash(REFRESH_PURPOSE, presented);
    let current = state
        .store
        .refresh_token(&tenant, &hash)
        .await?
        .ok_or_else(|| OAuthError::invalid_grant("the refresh token is invalid"))?;
    if current.client_id != client.client_id.as_str() {
        return Err(OAuthError::invalid_grant("the refresh token was issued to another client"));
    }
    let data: GrantData = serde_json::from_str(&current.grant_data)
        .map_err(|e| OAuthError::server_error("stored grant is damaged", e))?;
    let scope = narrowed_scope(params.get("scope"), &data.scope)?;
    // The user must still exist and be allowed in.
    let sub = SubjectId::parse(&data.sub).map_err(|e| OAuthError::server_error("stored sub is damaged", e))?;
    let user = state.caches.user(&sub).await?;
    if user.is_none_or(|u| u.locked) {
        return Err(OAuthError::invalid_grant("the user can no longer sign in"));
    }
    let (token, record) = new_token(state, client, &current.grant_id, Some(&current.family_id), &data)?;
    let now = state.clock.now();
    match state.store.rotate_refresh_token(&tenant, &hash, record, now, state.config.tokens.refresh_reuse_grace).await?
    {
        RefreshRotation::Rotated(_) => {}
        RefreshRotation::Reused { grant_id, .. } => {
            let until = now.plus(crate::oauth::tokens::access_token_lifetime(state, client));
            state.store.revoke_grant(&tenant, &grant_id, until, now, &latchkey_store::Actor::System).await?;
            state.revocations.add_local("grant", &grant_id, until);
            return Err(OAuthError::invalid_grant("the refresh token was already used; its tokens are revoked"));
        }
        RefreshRotation::ConcurrentUse => {
            return Err(OAuthError::invalid_grant("the refresh token was just used by a concurrent request"));
        }
        RefreshRotation::Revoked => return Err(OAuthError::invalid_grant("the refresh token is revoked")),
        RefreshRotation::Expired => return Err(OAuthError::invalid_grant("the refresh token has expired")),
        RefreshRotation::Unknown => return Err(OAuthError::invalid_grant("the refresh token is invalid")),
    }
    let mut response =
        super::authorization_code::issue_for_grant(state, client, &current.grant_id, &data, &scope, false).await?;
    response.refresh_token = Some(token);
    Ok(response)
}
