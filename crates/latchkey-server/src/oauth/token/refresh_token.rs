//! The refresh token grant (RFC 6749 §6): opaque tokens, stored hashed, bound to the
//! client, rotated on every use; scope may narrow, never widen. Concurrent use of one token:
//! the first wins; any reuse of a rotated token revokes the whole family (RFC 9700
//! §4.14.2), unless it comes within the reuse grace (`tokens.refresh_reuse_grace`, 0 by
//! default, or the client's own), which gets `invalid_grant` without harm.

use latchkey_core::UnixTime;
use latchkey_core::crypto::random;
use latchkey_core::domain::{SubjectId, TenantId};
use latchkey_core::records::{Client, NewRefreshToken, RefreshRotation};

use super::{TokenResponse, narrowed_scope};
use crate::oauth::OAuthError;
use crate::oauth::grant::GrantData;
use crate::oauth::params::Params;
use crate::state::AppState;

pub const REFRESH_PURPOSE: &str = "refresh_token";

/// How a grant's refresh tokens relate to the session it came from.
pub(crate) struct SessionBinding {
    /// Revoked when the session ends.
    pub ends_with_session: bool,
    /// A session-bound token (no `offline_access`) lives no longer than its session.
    pub not_after: Option<UnixTime>,
}

impl SessionBinding {
    /// `offline_access` tokens outlive the session unless the client asks otherwise
    /// (Back-Channel Logout 1.0 §2.7); the others are the session's.
    pub async fn of(
        state: &AppState,
        tenant: &TenantId,
        client: &Client,
        data: &GrantData,
    ) -> Result<Option<Self>, OAuthError> {
        if data.has_scope("offline_access") {
            let ends_with_session = client.session_policy.logout_revokes_offline_tokens;
            return Ok(Some(Self { ends_with_session, not_after: None }));
        }
        let (now, idle) = (state.clock.now(), state.config.sessions.idle_timeout);
        let Some(session) = state.services.sessions().by_sid(tenant, &data.sid, now, idle).await? else {
            return Ok(None);
        };
        // The application using the session's tokens is activity in the session.
        if now.since(session.last_active_at) >= crate::sessions::TOUCH_EVERY {
            state.services.sessions().touch(tenant, &session.sid, now).await?;
        }
        Ok(Some(Self { ends_with_session: true, not_after: Some(session.expires_at) }))
    }
}

fn new_token(
    state: &AppState,
    client: &Client,
    grant_id: &str,
    family: Option<&str>,
    data: &GrantData,
    binding: &SessionBinding,
) -> Result<(String, NewRefreshToken), OAuthError> {
    let token = random::token_string::<32>();
    let mut expires_at = state.clock.now().plus(state.config.tokens.refresh_token_lifetime);
    if let Some(end) = binding.not_after {
        expires_at = expires_at.min(end);
    }
    let grant_data = serde_json::to_string(data).map_err(|e| OAuthError::server_error("cannot encode grant", e))?;
    let record = NewRefreshToken {
        token_hash: state.token_hasher.hash(REFRESH_PURPOSE, &token),
        family_id: family.map_or_else(random::token_string::<16>, str::to_owned),
        grant_id: grant_id.to_owned(),
        client_id: client.client_id.clone(),
        sub: data.sub.clone(),
        grant_data,
        expires_at,
        sid: Some(data.sid.clone()),
        ends_with_session: binding.ends_with_session,
    };
    Ok((token, record))
}

/// Stores the first refresh token of a grant and returns it.
pub(crate) async fn store_new(
    state: &AppState,
    tenant: &TenantId,
    client: &Client,
    grant_id: &str,
    family: Option<&str>,
    data: &GrantData,
    binding: &SessionBinding,
) -> Result<String, OAuthError> {
    let (token, record) = new_token(state, client, grant_id, family, data, binding)?;
    state.services.tokens().insert_refresh_token(tenant, &record).await?;
    Ok(token)
}

pub async fn exchange(
    state: &AppState,
    tenant: &TenantId,
    client: &Client,
    params: &Params,
) -> Result<TokenResponse, OAuthError> {
    let presented =
        params.get("refresh_token").ok_or_else(|| OAuthError::invalid_request("refresh_token is missing"))?;
    let hash = state.token_hasher.hash(REFRESH_PURPOSE, presented);
    let current = state
        .services
        .tokens()
        .refresh_token(tenant, &hash)
        .await?
        .ok_or_else(|| OAuthError::invalid_grant("the refresh token is invalid"))?;
    if current.client_id != client.client_id {
        return Err(OAuthError::invalid_grant("the refresh token was issued to another client"));
    }
    let data = GrantData::from_stored(&current.grant_data)
        .map_err(|e| OAuthError::server_error("stored grant is damaged", e))?;
    let scope = narrowed_scope(params.get("scope"), &data.scope)?;
    // The user must still exist and be allowed in.
    let sub = SubjectId::parse(&data.sub).map_err(|e| OAuthError::server_error("stored sub is damaged", e))?;
    let user = state.caches.user(&sub).await?;
    if user.is_none_or(|u| u.locked) {
        return Err(OAuthError::invalid_grant("the user can no longer sign in"));
    }
    // A session-bound token dies with its session (logout, idle or absolute expiry).
    let Some(binding) = SessionBinding::of(state, tenant, client, &data).await? else {
        return Err(OAuthError::invalid_grant("the session this refresh token belongs to has ended"));
    };
    let (token, record) = new_token(state, client, &current.grant_id, Some(&current.family_id), &data, &binding)?;
    let now = state.clock.now();
    match state.services.tokens().rotate_refresh_token(tenant, &hash, record, now, reuse_grace(state, client)).await? {
        RefreshRotation::Rotated(_) => {}
        RefreshRotation::Reused { grant_id, .. } => {
            let until = now.plus(crate::oauth::tokens::access_token_lifetime(state, client));
            state
                .services
                .tokens()
                .revoke_grant(tenant, &grant_id, until, now, &latchkey_core::records::Actor::System)
                .await?;
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
        super::authorization_code::issue_for_grant(state, tenant, client, &current.grant_id, &data, &scope, false)
            .await?;
    response.refresh_token = Some(token);
    Ok(response)
}

/// How long a rotated token of this client may come back without revoking its family: the
/// client's own grace (for a browser app refreshing from several tabs), else the server's.
fn reuse_grace(state: &AppState, client: &Client) -> std::time::Duration {
    client
        .refresh_reuse_grace
        .and_then(|s| u64::try_from(s).ok())
        .map_or(state.config.tokens.refresh_reuse_grace, std::time::Duration::from_secs)
}
