//! Redeeming an authorization code (RFC 6749 §4.1.3, OAuth 2.1): single-use, bound to the
//! client, the redirect URI and the PKCE verifier. A replayed code revokes every token
//! issued from it (RFC 9700 §4.5.1). Also what every user grant issues.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use latchkey_core::domain::{GrantType, SubjectId, TenantId};
use latchkey_core::records::{Actor, Client, CodeRedemption};
use subtle::ConstantTimeEq as _;

use super::claims::userinfo_requests;
use super::{AccessTokenRequest, GrantData, GrantError, Grants, IdTokenRequest, IssuedTokens};
use crate::tokens::CODE_PURPOSE;

/// RFC 7636 §4.1: 43–128 characters from the unreserved set.
fn valid_verifier(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// What the client presents with a code: the redirect URI of the authorization request
/// and the PKCE verifier, as sent.
pub struct CodePresentation<'a> {
    pub code: &'a str,
    pub redirect_uri: Option<&'a str>,
    pub verifier: Option<&'a str>,
}

impl Grants<'_> {
    /// Spends `code` for `client` and issues the grant's tokens.
    pub async fn exchange_code(
        &self,
        tenant: &TenantId,
        client: &Client,
        presented: CodePresentation<'_>,
    ) -> Result<IssuedTokens, GrantError> {
        let services = self.0;
        let now = services.clock.now();
        let hash = services.token_hasher.hash(CODE_PURPOSE, presented.code);
        let redemption = services.tokens().redeem_code(tenant, &hash, &client.client_id, now).await?;
        let (grant_id, data) = match redemption {
            CodeRedemption::Unknown => return Err(GrantError::InvalidGrant("the code is invalid")),
            // RFC 6749 §4.1.3: the code must have been issued to the authenticated client.
            // The store checked that before spending it, so a client that saw another's code
            // (a leaked redirect, a log line) cannot burn it before the real exchange.
            CodeRedemption::IssuedToAnotherClient => {
                return Err(GrantError::InvalidGrant("the code was issued to another client"));
            }
            CodeRedemption::Replayed { grant_id, client_id } => {
                if client_id == client.client_id.as_str() {
                    let until = now.plus(services.tokens().access_token_lifetime(client));
                    services.tokens().revoke_grant(tenant, &grant_id, until, now, &Actor::System).await?;
                    services.revocations.add_local("grant", &grant_id, until);
                    tracing::warn!(client_id = %client.client_id, "authorization code replayed; its tokens are revoked");
                }
                return Err(GrantError::InvalidGrant("the code was already used"));
            }
            CodeRedemption::Redeemed { grant_id, grant_data, issued_at, expires_at, .. } => {
                if expires_at <= now {
                    return Err(GrantError::InvalidGrant("the code has expired"));
                }
                let data = GrantData::from_stored(&grant_data)
                    .map_err(|e| GrantError::internal("stored grant is damaged", e))?;
                // A code issued before the user withdrew their consent grants nothing.
                if services.revocations.is_consent_withdrawn(client.client_id.as_str(), &data.sub, issued_at.secs()) {
                    return Err(GrantError::InvalidGrant("the user withdrew their consent to this client"));
                }
                (grant_id, data)
            }
        };
        if presented.redirect_uri != Some(data.redirect_uri.as_str()) {
            return Err(GrantError::InvalidGrant("redirect_uri does not match the authorization request"));
        }
        match (&data.code_challenge, presented.verifier) {
            (Some(challenge), Some(verifier)) => {
                let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
                let computed = URL_SAFE_NO_PAD.encode(digest);
                if !valid_verifier(verifier) || !bool::from(computed.as_bytes().ct_eq(challenge.as_bytes())) {
                    return Err(GrantError::InvalidGrant("the PKCE code_verifier does not match"));
                }
            }
            (Some(_), None) => return Err(GrantError::InvalidGrant("code_verifier is missing")),
            // A verifier for a code issued without a challenge is a downgrade attempt.
            (None, Some(_)) => return Err(GrantError::InvalidGrant("this code was issued without PKCE")),
            (None, None) => {}
        }
        self.issue_for_grant(tenant, client, &grant_id, &data, &data.scope, true).await
    }

    /// Issues the tokens of a user grant: access token, ID token (with `openid`), and a
    /// refresh token when `offline_access` was granted and the client may refresh.
    /// `first` is false for a refresh, whose caller rotates the refresh token itself.
    pub(super) async fn issue_for_grant(
        &self,
        tenant: &TenantId,
        client: &Client,
        grant_id: &str,
        data: &GrantData,
        scope: &[String],
        first: bool,
    ) -> Result<IssuedTokens, GrantError> {
        let services = self.0;
        let sub = SubjectId::parse(&data.sub).map_err(|e| GrantError::internal("stored grant is damaged", e))?;
        // A role the client requires is checked at every issue: at the code's exchange and
        // at each refresh, so a user who lost it gets no more tokens.
        if !services.access().admits(client, &sub).await? {
            return Err(GrantError::NotAdmitted);
        }
        let access = services.access().claims_for(client, &sub).await?;
        let lifetime = services.tokens().access_token_lifetime(client);
        let issued = services
            .mint_access_token(AccessTokenRequest {
                sub: &data.sub,
                client_id: client.client_id.as_str(),
                scope,
                audience: &data.audience,
                auth_time: Some(data.auth_time),
                acr: Some(&data.acr),
                grant_id: Some(grant_id),
                sid: Some(&data.sid),
                // Only a token UserInfo accepts carries them (not one for another API).
                userinfo_claims: (data.audience == services.default_audience())
                    .then(|| userinfo_requests(data, scope))
                    .flatten(),
                lifetime,
                access: access.clone(),
            })
            .map_err(|e| GrantError::internal("cannot mint an access token", e))?;
        let id_token = if scope.iter().any(|s| s == "openid") {
            let mut extra = services.id_token_claims(data).await?;
            extra.extend(access.into_map());
            let token = services
                .mint_id_token(IdTokenRequest {
                    sub: &data.sub,
                    client_id: client.client_id.as_str(),
                    alg: client.id_token_signed_response_alg,
                    // OIDC Core §12.2: a refreshed ID token carries no nonce.
                    nonce: if first { data.nonce.as_deref() } else { None },
                    auth_time: data.auth_time,
                    acr: &data.acr,
                    amr: &data.amr,
                    sid: &data.sid,
                    access_token: Some(&issued.token),
                    extra,
                })
                .map_err(|e| GrantError::internal("cannot mint an ID token", e))?;
            Some(token)
        } else {
            None
        };
        // A refresh token for offline_access, or bound to the session for a client that asks
        // for session refresh tokens (and only while the session lives).
        let wants_refresh = scope.iter().any(|s| s == "offline_access") || client.session_policy.session_refresh_tokens;
        let refresh_token = if first && wants_refresh && client.grant_types.contains(&GrantType::RefreshToken) {
            match self.session_binding(tenant, client, data).await? {
                Some(binding) => Some(self.store_first_refresh_token(tenant, client, grant_id, data, &binding).await?),
                None => None,
            }
        } else {
            None
        };
        Ok(IssuedTokens {
            access_token: issued.token,
            expires_in: lifetime.as_secs(),
            // offline_access is granted only in the form of a refresh token.
            scope: if first && refresh_token.is_none() {
                scope.iter().filter(|s| *s != "offline_access").cloned().collect::<Vec<_>>().join(" ")
            } else {
                scope.join(" ")
            },
            refresh_token,
            id_token,
        })
    }
}

/// What an authorization request asked for and the user allowed: what the code carries
/// (the rest of the grant comes from the session that signed in).
pub struct CodeRequest<'a> {
    pub scope: &'a [String],
    pub redirect_uri: &'a str,
    pub code_challenge: Option<&'a str>,
    pub nonce: Option<&'a str>,
    pub requested_claims: Option<&'a latchkey_core::domain::ClaimsRequest>,
    pub audience: &'a str,
}

impl Grants<'_> {
    /// Issues a code for `client` from `session` (RFC 6749 §4.1.2): the grant it carries is
    /// stored hashed, with the session signed into the client (for logout). Returns the code.
    pub async fn issue_code(
        &self,
        tenant: &TenantId,
        session: &latchkey_core::records::BrowserSession,
        client: &Client,
        request: CodeRequest<'_>,
    ) -> Result<String, GrantError> {
        let services = self.0;
        // Checked here too, not only by `next_step`: the consent page issues for the session
        // of the moment, which may have changed since.
        if !services.access().admits(client, &session.sub).await? {
            return Err(GrantError::NotAdmitted);
        }
        let code = latchkey_core::crypto::random::token_string::<32>();
        let data = GrantData {
            sub: session.sub.to_string(),
            scope: request.scope.to_vec(),
            redirect_uri: request.redirect_uri.to_owned(),
            code_challenge: request.code_challenge.map(str::to_owned),
            nonce: request.nonce.map(str::to_owned),
            auth_time: session.auth_time.secs(),
            amr: session.amr.clone(),
            acr: session.acr.clone(),
            sid: session.sid.clone(),
            requested_claims: request.requested_claims.cloned(),
            legacy_claims: None,
            audience: request.audience.to_owned(),
        };
        let grant_data = serde_json::to_string(&data).map_err(|e| GrantError::internal("cannot encode grant", e))?;
        let new = latchkey_core::records::NewCode {
            code_hash: services.token_hasher.hash(CODE_PURPOSE, &code),
            grant_id: latchkey_core::crypto::random::token_string::<16>(),
            client_id: client.client_id.clone(),
            grant_data,
            expires_at: services.clock.now().plus(services.config.tokens.authorization_code_lifetime),
            session: Some(latchkey_core::records::CodeSession {
                sid: session.sid.clone(),
                backchannel: client.session_policy.backchannel_logout_uri.is_some(),
            }),
        };
        services.tokens().insert_code(tenant, &new).await?;
        Ok(code)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn verifiers_follow_rfc7636() {
        assert!(super::valid_verifier(&"a".repeat(43)));
        assert!(!super::valid_verifier(&"a".repeat(42)));
        assert!(!super::valid_verifier(&"a".repeat(129)));
        assert!(!super::valid_verifier(&format!("{}+", "a".repeat(43))));
    }
}
