//! The client credentials grant (RFC 6749 §4.4): a confidential client gets an access
//! token for itself. No database write: the client comes from the cache and the secret is
//! checked with a keyed hash.

use latchkey_core::domain::{ScopeName, TenantId};
use latchkey_core::records::Client;

use super::{AccessTokenRequest, GrantError, Grants, IssuedTokens, narrowed_scope};

impl Grants<'_> {
    /// An access token for `client` itself, with `scope` (all it may have when `None`) for
    /// `resource` (RFC 8707; the default audience when `None`).
    pub async fn client_credentials(
        &self,
        tenant: &TenantId,
        client: &Client,
        scope: Option<&[ScopeName]>,
        resource: Option<&str>,
    ) -> Result<IssuedTokens, GrantError> {
        let services = self.0;
        // The OpenID scopes only make sense with a user.
        let allowed: Vec<String> = client
            .allowed_scopes
            .iter()
            .map(|s| s.as_str().to_owned())
            .filter(|s| !ScopeName::BUILT_IN.contains(&s.as_str()))
            .collect();
        let scope = narrowed_scope(scope, &allowed)?;
        let audience =
            services.resources().target(tenant, resource, &scope).await.map_err(GrantError::InvalidTarget)?;
        let lifetime = services.tokens().access_token_lifetime(client);
        let issued = services
            .mint_access_token(AccessTokenRequest {
                sub: client.client_id.as_str(),
                client_id: client.client_id.as_str(),
                scope: &scope,
                audience: &audience,
                auth_time: None,
                acr: None,
                grant_id: None,
                sid: None,
                userinfo_claims: None,
                lifetime,
                access: Default::default(),
            })
            .map_err(|e| GrantError::internal("cannot mint an access token", e))?;
        Ok(IssuedTokens {
            access_token: issued.token,
            expires_in: lifetime.as_secs(),
            scope: scope.join(" "),
            refresh_token: None,
            id_token: None,
        })
    }
}
