//! Which user claims a client gets: by scope (OIDC Core §5.4) from UserInfo, and
//! individually through the `claims` request parameter (§5.5).

use latchkey_core::domain::SubjectId;
use latchkey_store::User;
use serde_json::{Map, Value};

use crate::app::AppState;
use crate::oauth::OAuthError;
use crate::oauth::grant::GrantData;

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

const PROFILE: [&str; 14] = [
    "name",
    "family_name",
    "given_name",
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
];
const EMAIL: [&str; 2] = ["email", "email_verified"];
const PHONE: [&str; 2] = ["phone_number", "phone_number_verified"];
const ADDRESS: [&str; 1] = ["address"];

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
    let mut names = Vec::new();
    for s in scopes {
        match s.as_str() {
            "profile" => names.extend(PROFILE),
            "email" => names.extend(EMAIL),
            "phone" => names.extend(PHONE),
            "address" => names.extend(ADDRESS),
            _ => {}
        }
    }
    names
}

/// Names requested for `target` ("userinfo" or "id_token") in the `claims` parameter.
pub fn requested(claims: Option<&Value>, target: &str) -> Vec<String> {
    claims
        .and_then(|c| c.get(target))
        .and_then(Value::as_object)
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

async fn load_user(state: &AppState, sub: &str) -> Result<Option<std::sync::Arc<User>>, OAuthError> {
    let Ok(sub) = SubjectId::parse(sub) else { return Ok(None) };
    Ok(state.caches.user(&sub).await?)
}

/// Claims for the ID token beyond the standard ones: only those named in
/// `claims.id_token` (scope claims are served by UserInfo, as an access token is issued).
pub async fn id_token_claims(state: &AppState, grant: &GrantData) -> Result<Map<String, Value>, OAuthError> {
    // Only claims the user consented to through the granted scopes may be released.
    let allowed = names_for_scopes(&grant.scope);
    let names: Vec<String> =
        requested(grant.claims.as_ref(), "id_token").into_iter().filter(|n| allowed.contains(&n.as_str())).collect();
    if names.is_empty() {
        return Ok(Map::new());
    }
    let Some(user) = load_user(state, &grant.sub).await? else { return Ok(Map::new()) };
    let all = all_claims(&user);
    Ok(names.iter().filter_map(|n| all.get(n).map(|v| (n.clone(), v.clone()))).collect())
}
