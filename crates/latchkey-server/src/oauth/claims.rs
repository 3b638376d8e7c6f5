//! Which user claims a client gets: by scope (OIDC Core §5.4) from UserInfo, and
//! individually through the `claims` request parameter (§5.5).

use std::collections::BTreeMap;

use latchkey_core::domain::{ClaimRequest, SubjectId, claims_of_scope, scope_of_claim};
use latchkey_core::records::User;
use serde_json::{Map, Value};

use crate::oauth::OAuthError;
use crate::oauth::grant::GrantData;
use crate::state::AppState;

/// Every claim Latchkey can put in an ID token or UserInfo response (discovery lists them).
pub const SUPPORTED: [&str; 31] = [
    "sub",
    "iss",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "acr",
    "amr",
    "azp",
    "sid",
    "at_hash",
    "name",
    "given_name",
    "family_name",
    "middle_name",
    "nickname",
    "preferred_username",
    "profile",
    "picture",
    "website",
    "gender",
    "birthdate",
    "zoneinfo",
    "locale",
    "updated_at",
    "email",
    "email_verified",
    "phone_number",
    "phone_number_verified",
    "address",
];

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

/// What the consent page says a user claim is.
pub fn describe(name: &str) -> &'static str {
    match name {
        "name" => "Your full name",
        "family_name" => "Your family name",
        "given_name" => "Your given name",
        "middle_name" => "Your middle name",
        "nickname" => "Your nickname",
        "preferred_username" => "Your username",
        "profile" => "The address of your profile page",
        "picture" => "Your picture",
        "website" => "Your website",
        "gender" => "Your gender",
        "birthdate" => "Your date of birth",
        "zoneinfo" => "Your time zone",
        "locale" => "Your language and region",
        "updated_at" => "When your profile last changed",
        "email" => "Your email address",
        "email_verified" => "Whether your email address is verified",
        "phone_number" => "Your phone number",
        "phone_number_verified" => "Whether your phone number is verified",
        "address" => "Your postal address",
        _ => "Information about you",
    }
}

pub use latchkey_core::domain::beyond_scopes;

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

async fn load_user(state: &AppState, sub: &str) -> Result<Option<std::sync::Arc<User>>, OAuthError> {
    let Ok(sub) = SubjectId::parse(sub) else { return Ok(None) };
    Ok(state.caches.user(&sub).await?)
}

/// Claims for the ID token beyond the standard ones: only those named in
/// `claims.id_token` (scope claims are served by UserInfo, as an access token is issued).
/// The grant holds only claims the user allowed (consent, or a first-party client).
pub async fn id_token_claims(state: &AppState, grant: &GrantData) -> Result<Map<String, Value>, OAuthError> {
    let Some(requests) = grant.requested_claims.as_ref().map(|c| &c.id_token).filter(|r| !r.is_empty()) else {
        return Ok(Map::new());
    };
    let Some(user) = load_user(state, &grant.sub).await? else { return Ok(Map::new()) };
    Ok(release(&all_claims(&user), requests))
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
