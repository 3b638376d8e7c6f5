//! The claims of an access token (RFC 9068), as Latchkey mints and reads them.

use std::collections::BTreeMap;

use latchkey_core::domain::ClaimRequest;
use serde::{Deserialize, Serialize};

/// RFC 9068 §2.2 claims, plus `gid` (the grant, so one revocation covers every token
/// of a grant) and `sid`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub client_id: String,
    pub scope: String,
    pub jti: String,
    pub iat: i64,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    /// RFC 9068 §2.2.1: how strongly the user signed in (a user's grant only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// Claims UserInfo releases beyond the scope's (OIDC Core §5.5, the `claims`
    /// parameter's `userinfo` member, as the user allowed it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userinfo_claims: Option<BTreeMap<String, ClaimRequest>>,
    /// RFC 9068 §2.2.3.1, as the client's access policy releases them, when minted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entitlements: Option<Vec<String>>,
}

impl AccessClaims {
    /// The user the token was issued for, if any. Only a user's grant (authorization code,
    /// then refresh) carries `gid`; a client-credentials token has none, and its `sub` is
    /// the client id (RFC 9068 §2.2). That `sub` must never be looked up as a person's,
    /// even where an old client id equals a user's `sub` (RFC 9068 §5).
    pub fn user_sub(&self) -> Option<&str> {
        self.gid.as_ref().map(|_| self.sub.as_str())
    }
}
