//! The refresh token grant (RFC 6749 §6): opaque tokens, stored hashed, bound to the
//! client, rotated on every use; scope may narrow, never widen. Concurrent use of one token:
//! the first wins; any reuse of a rotated token revokes the whole family (RFC 9700
//! §4.14.2), unless it comes within the reuse grace (`tokens.refresh_reuse_grace`, 0 by
//! default, or the client's own), which gets `invalid_grant` without harm.

use std::time::Duration;

use latchkey_core::UnixTime;
use latchkey_core::crypto::random;
use latchkey_core::domain::{ScopeName, SubjectId, TenantId};
use latchkey_core::records::{Actor, Client, NewRefreshToken, RefreshRotation};

use super::{GrantData, GrantError, Grants, IssuedTokens, narrowed_scope};
use crate::tokens::REFRESH_PURPOSE;

/// How a grant's refresh tokens relate to the session it came from.
pub(super) struct SessionBinding {
    /// Revoked when the session ends.
    ends_with_session: bool,
    /// A session-bound token (no `offline_access`) lives no longer than its session.
    not_after: Option<UnixTime>,
}

impl Grants<'_> {
    /// Rotates the presented refresh token of `client` and issues the grant's tokens with
    /// `scope` (all the grant's when `None`).
    pub async fn refresh(
        &self,
        tenant: &TenantId,
        client: &Client,
        presented: &str,
        scope: Option<&[ScopeName]>,
    ) -> Result<IssuedTokens, GrantError> {
        let services = self.0;
        let hash = services.token_hasher.hash(REFRESH_PURPOSE, presented);
        let current = services
            .tokens()
            .refresh_token(tenant, &hash)
            .await?
            .ok_or(GrantError::InvalidGrant("the refresh token is invalid"))?;
        if current.client_id != client.client_id {
            return Err(GrantError::InvalidGrant("the refresh token was issued to another client"));
        }
        let data = GrantData::from_stored(&current.grant_data)
            .map_err(|e| GrantError::internal("stored grant is damaged", e))?;
        let scope = narrowed_scope(scope, &data.scope)?;
        // The user must still exist and be allowed in.
        let sub = SubjectId::parse(&data.sub).map_err(|e| GrantError::internal("stored sub is damaged", e))?;
        let user = services.caches.user(&sub).await?;
        if user.is_none_or(|u| u.locked) {
            return Err(GrantError::InvalidGrant("the user can no longer sign in"));
        }
        // A session-bound token dies with its session (logout, idle or absolute expiry).
        let Some(binding) = self.session_binding(tenant, client, &data).await? else {
            return Err(GrantError::InvalidGrant("the session this refresh token belongs to has ended"));
        };
        let (token, record) = self.new_token(client, &current.grant_id, Some(&current.family_id), &data, &binding)?;
        let now = services.clock.now();
        let grace = reuse_grace(&services.config, client);
        match services.tokens().rotate_refresh_token(tenant, &hash, record, now, grace).await? {
            RefreshRotation::Rotated(_) => {}
            RefreshRotation::Reused { grant_id, .. } => {
                let until = now.plus(services.tokens().access_token_lifetime(client));
                services.tokens().revoke_grant(tenant, &grant_id, until, now, &Actor::System).await?;
                services.revocations.add_local("grant", &grant_id, until);
                return Err(GrantError::InvalidGrant("the refresh token was already used; its tokens are revoked"));
            }
            RefreshRotation::ConcurrentUse => {
                return Err(GrantError::InvalidGrant("the refresh token was just used by a concurrent request"));
            }
            RefreshRotation::Revoked => return Err(GrantError::InvalidGrant("the refresh token is revoked")),
            RefreshRotation::Expired => return Err(GrantError::InvalidGrant("the refresh token has expired")),
            RefreshRotation::Unknown => return Err(GrantError::InvalidGrant("the refresh token is invalid")),
        }
        let mut issued = self.issue_for_grant(tenant, client, &current.grant_id, &data, &scope, false).await?;
        issued.refresh_token = Some(token);
        Ok(issued)
    }

    /// `offline_access` tokens outlive the session unless the client asks otherwise
    /// (Back-Channel Logout 1.0 §2.7); the others are the session's. `None` once the
    /// session has ended.
    pub(super) async fn session_binding(
        &self,
        tenant: &TenantId,
        client: &Client,
        data: &GrantData,
    ) -> Result<Option<SessionBinding>, GrantError> {
        if data.has_scope("offline_access") {
            let ends_with_session = client.session_policy.logout_revokes_offline_tokens;
            return Ok(Some(SessionBinding { ends_with_session, not_after: None }));
        }
        let services = self.0;
        let (now, idle) = (services.clock.now(), services.config.sessions.idle_timeout);
        let Some(session) = services.sessions().by_sid(tenant, &data.sid, now, idle).await? else {
            return Ok(None);
        };
        // The application using the session's tokens is activity in the session.
        services.sessions().record_activity(tenant, &session, now).await?;
        Ok(Some(SessionBinding { ends_with_session: true, not_after: Some(session.expires_at) }))
    }

    fn new_token(
        &self,
        client: &Client,
        grant_id: &str,
        family: Option<&str>,
        data: &GrantData,
        binding: &SessionBinding,
    ) -> Result<(String, NewRefreshToken), GrantError> {
        let services = self.0;
        let token = random::token_string::<32>();
        let mut expires_at = services.clock.now().plus(services.config.tokens.refresh_token_lifetime);
        if let Some(end) = binding.not_after {
            expires_at = expires_at.min(end);
        }
        let grant_data = serde_json::to_string(data).map_err(|e| GrantError::internal("cannot encode grant", e))?;
        let record = NewRefreshToken {
            token_hash: services.token_hasher.hash(REFRESH_PURPOSE, &token),
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
    pub(super) async fn store_first_refresh_token(
        &self,
        tenant: &TenantId,
        client: &Client,
        grant_id: &str,
        data: &GrantData,
        binding: &SessionBinding,
    ) -> Result<String, GrantError> {
        let (token, record) = self.new_token(client, grant_id, None, data, binding)?;
        self.0.tokens().insert_refresh_token(tenant, &record).await?;
        Ok(token)
    }
}

/// How long a rotated token of this client may come back without revoking its family: the
/// client's own grace (for a browser app refreshing from several tabs), else the server's.
fn reuse_grace(config: &latchkey_config::Config, client: &Client) -> Duration {
    client
        .refresh_reuse_grace
        .and_then(|s| u64::try_from(s).ok())
        .map_or(config.tokens.refresh_reuse_grace, Duration::from_secs)
}
