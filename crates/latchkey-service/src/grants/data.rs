//! What a user granted a client, carried by an authorization code and then by the refresh
//! tokens of that grant (stored as JSON; never sent to the client).

use latchkey_core::domain::{ClaimsRequest, scope_of_claim};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GrantData {
    pub sub: String,
    pub scope: Vec<String>,
    pub redirect_uri: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_challenge: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    pub auth_time: i64,
    pub amr: Vec<String>,
    pub acr: String,
    pub sid: String,
    /// The claims the client asked for one by one (OIDC Core §5.5) and the user allowed
    /// (by consent, or as a first-party client's user): released beside the scopes' claims,
    /// for as long as the grant lives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_claims: Option<ClaimsRequest>,
    /// The raw `claims` parameter, as grants stored before `requested_claims` carry it.
    /// Never written (always `None` in a new grant); read by [`GrantData::from_stored`].
    #[serde(default, rename = "claims", skip_serializing)]
    pub legacy_claims: Option<serde_json::Value>,
    pub audience: String,
}

impl GrantData {
    /// Reads a stored grant. A grant stored before claims requests were honoured kept the
    /// raw parameter, and released from it only claims its scopes cover: it keeps exactly
    /// that, so nothing the user never allowed is released after an upgrade.
    pub fn from_stored(json: &str) -> Result<Self, serde_json::Error> {
        let mut data: Self = serde_json::from_str(json)?;
        if let Some(raw) = data.legacy_claims.take()
            && data.requested_claims.is_none()
        {
            let legacy = ClaimsRequest::parse(&raw.to_string()).ok().map(|mut c| {
                c.retain_user_claims(|n| scope_of_claim(n).is_some_and(|s| data.has_scope(s)));
                c
            });
            data.requested_claims = legacy.filter(|c| !c.is_empty());
        }
        Ok(data)
    }

    pub fn has_scope(&self, scope: &str) -> bool {
        self.scope.iter().any(|s| s == scope)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grant_stored_before_claims_requests_keeps_only_what_its_scopes_cover() {
        let stored = r#"{"sub":"u","scope":["openid","email"],"redirect_uri":"https://a/cb","auth_time":1,
            "amr":["pwd"],"acr":"a","sid":"s","audience":"x",
            "claims":{"id_token":{"email":null,"name":null,"acr":{"essential":true}},"userinfo":{"phone_number":null}}}"#;
        let data = GrantData::from_stored(stored).unwrap_or_else(|e| panic!("{e}"));
        let claims = data.requested_claims.clone().unwrap_or_default();
        assert_eq!(claims.user_claims(), ["email"], "name and phone_number were never released");
        assert!(claims.acr().is_some());
        let rewritten = serde_json::to_string(&data).unwrap_or_default();
        assert!(!rewritten.contains("\"claims\""), "the raw parameter is not written back: {rewritten}");
        assert_eq!(GrantData::from_stored(&rewritten).ok(), Some(data));
    }

    #[test]
    fn a_damaged_legacy_claims_parameter_is_dropped() {
        let stored = r#"{"sub":"u","scope":["openid"],"redirect_uri":"https://a/cb","auth_time":1,
            "amr":[],"acr":"a","sid":"s","audience":"x","claims":{"userinfo":5}}"#;
        let data = GrantData::from_stored(stored).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(data.requested_claims, None);
    }
}
