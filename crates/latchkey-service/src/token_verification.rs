//! Verifying the tokens Latchkey issued when they come back: access tokens at UserInfo,
//! introspection and revocation, ID tokens as `id_token_hint`.

use std::collections::HashMap;
use std::sync::Arc;

use jsonwebtoken::Validation;
use latchkey_core::domain::ClientId;

use crate::Latchkey;
use crate::access_claims::AccessClaims;
use crate::verified_tokens::Presented;

/// Why a presented JWT was not accepted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("malformed token")]
    Malformed,
    #[error("unknown signing key")]
    UnknownKey,
    #[error("bad signature or claims")]
    Invalid,
    #[error("expired")]
    Expired,
    #[error("revoked")]
    Revoked,
}

impl Latchkey {
    /// Verifies a JWT signed by one of Latchkey's published keys: signature, `typ`, issuer;
    /// `exp` against the server clock unless `allow_expired`. Returns the claims.
    pub fn verify_jwt(
        &self,
        token: &str,
        typ: &str,
        allow_expired: bool,
    ) -> Result<HashMap<String, serde_json::Value>, VerifyError> {
        let (_, claims) = self.verify_signature::<HashMap<String, serde_json::Value>>(token, typ)?;
        let exp = claims.get("exp").and_then(serde_json::Value::as_i64).ok_or(VerifyError::Invalid)?;
        if !allow_expired && exp <= self.clock.now().secs() {
            return Err(VerifyError::Expired);
        }
        Ok(claims)
    }

    /// Checks a JWT's signature under one of Latchkey's published keys, its `typ` and
    /// issuer, and decodes its claims; returns the key id with them. Expiry is the caller's.
    fn verify_signature<T: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        typ: &str,
    ) -> Result<(String, T), VerifyError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| VerifyError::Malformed)?;
        if !header.typ.as_deref().is_some_and(|t| t.eq_ignore_ascii_case(typ)) {
            return Err(VerifyError::Invalid);
        }
        let kid = header.kid.ok_or(VerifyError::UnknownKey)?;
        let verifying = self.keys.verification_key(&kid).ok_or(VerifyError::UnknownKey)?;
        let (key, alg) = (&verifying.0, verifying.1);
        if alg != header.alg {
            return Err(VerifyError::Invalid);
        }
        let mut validation = Validation::new(alg);
        // Expiry is checked against Latchkey's own clock, so tests can move it.
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        validation.set_issuer(&[self.issuer.as_ref()]);
        let data = jsonwebtoken::decode::<T>(token, key, &validation).map_err(|_| VerifyError::Invalid)?;
        Ok((kid, data.claims))
    }

    /// [`Latchkey::verify_access_token`], and the client it was issued to still exists:
    /// deleting a client ends its access tokens along with its refresh tokens and consents.
    /// A client registered again under the same id is another client: tokens issued before
    /// it was registered are not its own (allowing `keys.clock_skew` between nodes).
    pub async fn live_access_token(&self, token: &str) -> Result<AccessClaims, VerifyError> {
        let claims = self.verify_access_token(token)?;
        let client = ClientId::parse(&claims.client_id).map_err(|_| VerifyError::Invalid)?;
        match self.caches.client(&client).await {
            Ok(Some(c)) if claims.iat.saturating_add(self.skew_secs()) >= c.created_at => Ok(claims),
            _ => Err(VerifyError::Revoked),
        }
    }

    fn skew_secs(&self) -> i64 {
        i64::try_from(self.config.keys.clock_skew.as_secs()).unwrap_or(i64::MAX)
    }

    /// Verifies an access token: signature, `typ` and issuer, expiry, the revocation set.
    /// The signature of a token presented before is not checked again while its key is
    /// still published ([`VerifiedTokens`](crate::verified_tokens::VerifiedTokens)); expiry
    /// and the revocation set are checked on every presentation.
    pub fn verify_access_token(&self, token: &str) -> Result<AccessClaims, VerifyError> {
        let presented = Presented::of(token);
        let published = |kid: &str| self.keys.verification_key(kid).is_some();
        let claims = match self.verified_tokens.get(&presented, published) {
            Some(claims) => claims,
            None => {
                let (kid, claims) = self.verify_signature::<AccessClaims>(token, "at+jwt")?;
                let claims = Arc::new(claims);
                self.verified_tokens.insert(presented, kid, claims.clone(), self.clock.now().secs());
                claims
            }
        };
        if claims.exp <= self.clock.now().secs() {
            return Err(VerifyError::Expired);
        }
        if self.revocations.is_revoked(&claims.jti, claims.gid.as_deref())
            || claims
                .user_sub()
                .is_some_and(|sub| self.revocations.is_consent_withdrawn(&claims.client_id, sub, claims.iat))
        {
            return Err(VerifyError::Revoked);
        }
        Ok(AccessClaims::clone(&claims))
    }
}
