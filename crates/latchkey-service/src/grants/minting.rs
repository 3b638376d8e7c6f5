//! Minting access tokens (JWT, RFC 9068) and ID tokens (OIDC Core §2) under the active
//! signing keys.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use latchkey_core::crypto::random;
use latchkey_core::domain::{ClaimRequest, SigningAlg};

use crate::Latchkey;
use crate::access::ReleasedAccess;
use crate::access_claims::AccessClaims;
use crate::keys::MintError;

pub struct IssuedAccessToken {
    pub token: String,
    pub claims: AccessClaims,
}

pub struct AccessTokenRequest<'a> {
    pub sub: &'a str,
    pub client_id: &'a str,
    pub scope: &'a [String],
    pub audience: &'a str,
    pub auth_time: Option<i64>,
    pub acr: Option<&'a str>,
    pub grant_id: Option<&'a str>,
    pub sid: Option<&'a str>,
    pub userinfo_claims: Option<BTreeMap<String, ClaimRequest>>,
    /// The client's own access token lifetime, if it has one.
    pub lifetime: std::time::Duration,
    /// Roles, groups and entitlements the client's policy releases.
    pub access: ReleasedAccess,
}

pub struct IdTokenRequest<'a> {
    pub sub: &'a str,
    pub client_id: &'a str,
    pub alg: SigningAlg,
    pub nonce: Option<&'a str>,
    pub auth_time: i64,
    pub acr: &'a str,
    pub amr: &'a [String],
    pub sid: &'a str,
    pub access_token: Option<&'a str>,
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Latchkey {
    pub fn mint_access_token(&self, req: AccessTokenRequest<'_>) -> Result<IssuedAccessToken, MintError> {
        let alg = self.config.tokens.access_token_alg;
        let key = self.keys.active(alg).ok_or(MintError::NoKey(alg))?;
        let now = self.clock.now().secs();
        let claims = AccessClaims {
            iss: self.issuer.to_string(),
            sub: req.sub.to_owned(),
            aud: req.audience.to_owned(),
            client_id: req.client_id.to_owned(),
            scope: req.scope.join(" "),
            jti: random::token_string::<16>(),
            iat: now,
            exp: now + i64::try_from(req.lifetime.as_secs()).unwrap_or(300),
            auth_time: req.auth_time,
            acr: req.acr.map(str::to_owned),
            gid: req.grant_id.map(str::to_owned),
            sid: req.sid.map(str::to_owned),
            userinfo_claims: req.userinfo_claims,
            roles: req.access.roles,
            groups: req.access.groups,
            entitlements: req.access.entitlements,
        };
        let token = key.sign_jwt("at+jwt", &claims).map_err(|e| MintError::Sign(e.to_string()))?;
        Ok(IssuedAccessToken { token, claims })
    }

    pub fn mint_id_token(&self, req: IdTokenRequest<'_>) -> Result<String, MintError> {
        let key = self.keys.active(req.alg).ok_or(MintError::NoKey(req.alg))?;
        let now = self.clock.now().secs();
        let mut claims = req.extra;
        let mut set = |k: &str, v: serde_json::Value| {
            claims.insert(k.to_owned(), v);
        };
        let lifetime = i64::try_from(self.config.tokens.id_token_lifetime.as_secs()).unwrap_or(3600);
        set("iss", self.issuer.to_string().into());
        set("sub", req.sub.into());
        set("aud", req.client_id.into());
        set("azp", req.client_id.into());
        set("iat", now.into());
        set("exp", (now + lifetime).into());
        set("auth_time", req.auth_time.into());
        set("acr", req.acr.into());
        set("amr", req.amr.to_vec().into());
        set("sid", req.sid.into());
        if let Some(nonce) = req.nonce {
            set("nonce", nonce.into());
        }
        if let Some(at) = req.access_token {
            set("at_hash", at_hash(at, req.alg).into());
        }
        key.sign_jwt("JWT", &claims).map_err(|e| MintError::Sign(e.to_string()))
    }
}

/// `at_hash` (OIDC Core §3.1.3.6): base64url of the left half of the hash of the ASCII
/// access token, with the hash of the ID token's algorithm (SHA-256 for RS256/ES256;
/// SHA-512 for EdDSA with Ed25519, per the OpenID Foundation's errata).
pub fn at_hash(access_token: &str, alg: SigningAlg) -> String {
    use aws_lc_rs::digest;
    let algorithm = match alg {
        SigningAlg::Rs256 | SigningAlg::Es256 => &digest::SHA256,
        SigningAlg::EdDsa => &digest::SHA512,
    };
    let d = digest::digest(algorithm, access_token.as_bytes());
    let bytes = d.as_ref();
    URL_SAFE_NO_PAD.encode(&bytes[..bytes.len() / 2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_hash_matches_the_oidc_example() {
        // OIDC Core Appendix A.3 / A.4 example access token and its at_hash (RS256).
        assert_eq!(at_hash("jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y", SigningAlg::Rs256), "77QmUPtjPfzWtF2AnpK9RQ");
    }
}
