//! The authorization code grant (RFC 6749 §4.1.3, OAuth 2.1): single-use codes bound to the
//! client, the redirect URI and the PKCE verifier. A replayed code revokes every token
//! issued from it (RFC 9700 §4.5.1).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use latchkey_core::domain::{GrantType, TenantId};
use latchkey_core::records::{Actor, Client, CodeRedemption};
use subtle::ConstantTimeEq as _;

use super::TokenResponse;
use crate::oauth::OAuthError;
use crate::oauth::grant::GrantData;
use crate::oauth::params::Params;
use crate::oauth::tokens::{
    AccessTokenRequest, IdTokenRequest, access_token_lifetime, mint_access_token, mint_id_token,
};
use crate::state::AppState;

pub const CODE_PURPOSE: &str = "authorization_code";

/// RFC 7636 §4.1: 43–128 characters from the unreserved set.
fn valid_verifier(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

pub async fn exchange(
    state: &AppState,
    tenant: &TenantId,
    client: &Client,
    params: &Params,
) -> Result<TokenResponse, OAuthError> {
    let code = params.get("code").ok_or_else(|| OAuthError::invalid_request("code is missing"))?;
    let now = state.clock.now();
    let hash = state.token_hasher.hash(CODE_PURPOSE, code);
    let (grant_id, data) = match state.services.tokens().redeem_code(tenant, &hash, &client.client_id, now).await? {
        CodeRedemption::Unknown => return Err(OAuthError::invalid_grant("the code is invalid")),
        // RFC 6749 §4.1.3: the code must have been issued to the authenticated client. The
        // store checked that before spending it, so a client that saw another's code (a
        // leaked redirect, a log line) cannot burn it before the real exchange.
        CodeRedemption::IssuedToAnotherClient => {
            return Err(OAuthError::invalid_grant("the code was issued to another client"));
        }
        CodeRedemption::Replayed { grant_id, client_id } => {
            if client_id == client.client_id.as_str() {
                let until = now.plus(access_token_lifetime(state, client));
                state.services.tokens().revoke_grant(tenant, &grant_id, until, now, &Actor::System).await?;
                state.revocations.add_local("grant", &grant_id, until);
                tracing::warn!(client_id = %client.client_id, "authorization code replayed; its tokens are revoked");
            }
            return Err(OAuthError::invalid_grant("the code was already used"));
        }
        CodeRedemption::Redeemed { grant_id, grant_data, expires_at, .. } => {
            if expires_at <= now {
                return Err(OAuthError::invalid_grant("the code has expired"));
            }
            let data = GrantData::from_stored(&grant_data)
                .map_err(|e| OAuthError::server_error("stored grant is damaged", e))?;
            (grant_id, data)
        }
    };
    if params.get("redirect_uri") != Some(data.redirect_uri.as_str()) {
        return Err(OAuthError::invalid_grant("redirect_uri does not match the authorization request"));
    }
    match (&data.code_challenge, params.get("code_verifier")) {
        (Some(challenge), Some(verifier)) => {
            let computed =
                URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes()));
            if !valid_verifier(verifier) || !bool::from(computed.as_bytes().ct_eq(challenge.as_bytes())) {
                return Err(OAuthError::invalid_grant("the PKCE code_verifier does not match"));
            }
        }
        (Some(_), None) => return Err(OAuthError::invalid_grant("code_verifier is missing")),
        // A verifier for a code issued without a challenge is a downgrade attempt.
        (None, Some(_)) => return Err(OAuthError::invalid_grant("this code was issued without PKCE")),
        (None, None) => {}
    }
    issue_for_grant(state, tenant, client, &grant_id, &data, &data.scope, true).await
}

/// Issues the tokens of a user grant: access token, ID token (with `openid`), and a refresh
/// token when `offline_access` was granted and the client may refresh.
pub(crate) async fn issue_for_grant(
    state: &AppState,
    tenant: &TenantId,
    client: &Client,
    grant_id: &str,
    data: &GrantData,
    scope: &[String],
    with_nonce: bool,
) -> Result<TokenResponse, OAuthError> {
    let issued = mint_access_token(
        state,
        AccessTokenRequest {
            sub: &data.sub,
            client_id: client.client_id.as_str(),
            scope,
            audience: &data.audience,
            auth_time: Some(data.auth_time),
            grant_id: Some(grant_id),
            sid: Some(&data.sid),
            // Only a token UserInfo accepts carries them (not one for another API).
            userinfo_claims: (data.audience == state.default_audience())
                .then(|| crate::oauth::claims::userinfo_requests(data, scope))
                .flatten(),
            lifetime: access_token_lifetime(state, client),
        },
    )
    .map_err(|e| OAuthError::server_error("cannot mint an access token", e))?;
    let id_token = if scope.iter().any(|s| s == "openid") {
        let extra = crate::oauth::claims::id_token_claims(state, data).await?;
        Some(
            mint_id_token(
                state,
                IdTokenRequest {
                    sub: &data.sub,
                    client_id: client.client_id.as_str(),
                    alg: client.id_token_signed_response_alg,
                    // OIDC Core §12.2: a refreshed ID token carries no nonce.
                    nonce: if with_nonce { data.nonce.as_deref() } else { None },
                    auth_time: data.auth_time,
                    acr: &data.acr,
                    amr: &data.amr,
                    sid: &data.sid,
                    access_token: Some(&issued.token),
                    extra,
                },
            )
            .map_err(|e| OAuthError::server_error("cannot mint an ID token", e))?,
        )
    } else {
        None
    };
    // A refresh token for offline_access, or bound to the session for a client that asks
    // for session refresh tokens (and only while the session lives).
    let wants_refresh = scope.iter().any(|s| s == "offline_access") || client.session_policy.session_refresh_tokens;
    let refresh_token = if with_nonce && wants_refresh && client.grant_types.contains(&GrantType::RefreshToken) {
        match super::refresh_token::SessionBinding::of(state, tenant, client, data).await? {
            Some(binding) => {
                Some(super::refresh_token::store_new(state, tenant, client, grant_id, None, data, &binding).await?)
            }
            None => None,
        }
    } else {
        None
    };
    Ok(TokenResponse {
        access_token: issued.token,
        token_type: "Bearer",
        expires_in: access_token_lifetime(state, client).as_secs(),
        // offline_access is granted only in the form of a refresh token.
        scope: if with_nonce && refresh_token.is_none() {
            scope.iter().filter(|s| *s != "offline_access").cloned().collect::<Vec<_>>().join(" ")
        } else {
            scope.join(" ")
        },
        refresh_token,
        id_token,
    })
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
