//! Which user claims a grant releases: by scope (OIDC Core §5.4) from UserInfo, and one by
//! one through the `claims` request parameter (§5.5), as the user allowed them.

use std::collections::BTreeMap;

use latchkey_core::domain::{ClaimRequest, SubjectId, claims_of_scope, scope_of_claim};
use latchkey_core::records::User;
use serde_json::{Map, Value};

use super::GrantData;
use crate::{Latchkey, ServiceResult};

/// Every claim Latchkey can release about a user, by name.
pub fn all_claims(user: &User) -> Map<String, Value> {
    let mut m = Map::new();
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            m.insert(k.to_owned(), v);
        }
    };
    let p = &user.profile;
    put("name", user.name.as_ref().map(|n| n.as_str().into()));
    put("preferred_username", Some(user.username.as_str().into()));
    put("given_name", p.given_name.clone().map(Into::into));
    put("family_name", p.family_name.clone().map(Into::into));
    put("middle_name", p.middle_name.clone().map(Into::into));
    put("nickname", p.nickname.clone().map(Into::into));
    put("profile", p.profile.clone().map(Into::into));
    put("picture", p.picture.clone().map(Into::into));
    put("website", p.website.clone().map(Into::into));
    put("gender", p.gender.clone().map(Into::into));
    put("birthdate", p.birthdate.clone().map(Into::into));
    put("zoneinfo", p.zoneinfo.clone().map(Into::into));
    put("locale", p.locale.clone().map(Into::into));
    put("updated_at", Some(user.updated_at.into()));
    put("email", user.email.as_ref().map(|e| e.as_str().into()));
    put("email_verified", user.email.as_ref().map(|_| user.email_verified.into()));
    put("phone_number", p.phone_number.clone().map(Into::into));
    put("phone_number_verified", p.phone_number.as_ref().map(|_| p.phone_number_verified.into()));
    put("address", p.address.as_ref().and_then(|a| serde_json::to_value(a).ok()));
    m
}

/// Claim names a scope releases.
pub fn names_for_scopes(scopes: &[String]) -> Vec<&'static str> {
    scopes.iter().flat_map(|s| claims_of_scope(s)).collect()
}

/// The claims of `all` that `requests` ask for, each only with a value the request accepts
/// (OIDC Core §5.5.1: `value`/`values`; a claim the user lacks, or whose value is not
/// accepted, is left out, never an error).
pub fn release(all: &Map<String, Value>, requests: &BTreeMap<String, ClaimRequest>) -> Map<String, Value> {
    requests
        .iter()
        .filter(|(name, _)| scope_of_claim(name).is_some())
        .filter_map(|(name, request)| all.get(name).filter(|v| request.admits(v)).map(|v| (name.clone(), v.clone())))
        .collect()
}

/// What an access token minted with `scope` carries for UserInfo: the grant's UserInfo
/// requests that `scope` does not already release. Kept in the token, so they hold for
/// every access token of the grant, after a refresh too, with no lookup at UserInfo.
pub fn userinfo_requests(grant: &GrantData, scope: &[String]) -> Option<BTreeMap<String, ClaimRequest>> {
    let requests = &grant.requested_claims.as_ref()?.userinfo;
    let beyond: BTreeMap<String, ClaimRequest> = requests
        .iter()
        .filter(|(n, _)| scope_of_claim(n).is_some_and(|s| !scope.iter().any(|g| g == s)))
        .map(|(n, r)| (n.clone(), r.clone()))
        .collect();
    (!beyond.is_empty()).then_some(beyond)
}

impl Latchkey {
    /// Claims for the ID token beyond the standard ones: only those named in
    /// `claims.id_token` (scope claims are served by UserInfo, as an access token is
    /// issued). The grant holds only claims the user allowed (consent, or a first-party
    /// client).
    pub(crate) async fn id_token_claims(&self, grant: &GrantData) -> ServiceResult<Map<String, Value>> {
        let Some(requests) = grant.requested_claims.as_ref().map(|c| &c.id_token).filter(|r| !r.is_empty()) else {
            return Ok(Map::new());
        };
        let Ok(sub) = SubjectId::parse(&grant.sub) else { return Ok(Map::new()) };
        let Some(user) = self.caches.user(&sub).await? else { return Ok(Map::new()) };
        Ok(release(&all_claims(&user), requests))
    }
}
