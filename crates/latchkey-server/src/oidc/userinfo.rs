//! UserInfo (OIDC Core §5.3): GET or POST, bearer token in the header or (POST) the form
//! body (RFC 6750 §2); errors as `WWW-Authenticate: Bearer error=…` (RFC 6750 §3).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use latchkey_core::domain::{PresentedApiKey, SubjectId};

use crate::edge::authorization::AuthorizationError;
use crate::oauth::params::Params;
use crate::state::AppState;
use latchkey_service::grants::claims::{all_claims, names_for_scopes, release};

fn bearer_error(status: StatusCode, error: &str, description: &str) -> Response {
    let challenge = format!("Bearer realm=\"latchkey\", error=\"{error}\", error_description=\"{description}\"");
    let mut response =
        (status, axum::Json(serde_json::json!({"error": error, "error_description": description}))).into_response();
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    response
}

fn no_token() -> Response {
    let mut response = StatusCode::UNAUTHORIZED.into_response();
    response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"latchkey\""));
    response
}

/// A person's API key with the `openid` scope reads its owner's claims, by its scopes.
async fn api_key_userinfo(state: &AppState, method: &Method, token: &str) -> Response {
    let verified = match state.services.api_keys().verify(token).await {
        Ok(Ok(v)) => v,
        Ok(Err(refusal)) => {
            tracing::debug!(%refusal, "userinfo: API key refused");
            return bearer_error(StatusCode::UNAUTHORIZED, "invalid_token", "the API key is not valid");
        }
        Err(e) => {
            tracing::error!(error = %e, "userinfo: cannot check an API key");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    if verified.owner.service_account || !verified.has_scope("openid") {
        return bearer_error(
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            "the API key lacks the openid scope of a person",
        );
    }
    // A key for another API, or limited to paths, is not for UserInfo.
    let k = &verified.key;
    let method_ok = k.methods.is_empty() || k.methods.iter().any(|m| m == method.as_str());
    if k.audience.is_some() || !k.routes.is_empty() || !method_ok {
        return bearer_error(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "the API key is limited to another API or to other paths",
        );
    }
    state.services.api_keys().record_use(k).await;
    let scopes: Vec<String> = verified.scopes.iter().map(ToString::to_string).collect();
    let all = all_claims(&verified.owner);
    let mut out = serde_json::Map::new();
    out.insert("sub".into(), verified.owner.sub.as_str().into());
    for n in names_for_scopes(&scopes) {
        if let Some(v) = all.get(n) {
            out.insert(n.to_owned(), v.clone());
        }
    }
    let mut response = axum::Json(serde_json::Value::Object(out)).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

pub async fn userinfo(State(state): State<AppState>, method: Method, headers: HeaderMap, body: Bytes) -> Response {
    // Another scheme (Basic, say) carries no bearer token: the request lacks one (RFC 6750 §3.1).
    let from_header = match crate::edge::authorization::bearer(&headers) {
        Ok(token) => token,
        Err(AuthorizationError::OtherScheme) => None,
        Err(e) => return bearer_error(StatusCode::BAD_REQUEST, "invalid_request", &e.to_string()),
    };
    let from_body = if method == Method::POST && !body.is_empty() {
        match Params::from_form(&headers, &body) {
            Ok(p) => p.get("access_token").map(str::to_owned),
            Err(e) => return bearer_error(StatusCode::BAD_REQUEST, "invalid_request", &e.to_string()),
        }
    } else {
        None
    };
    let token = match (from_header, from_body.as_deref()) {
        (Some(_), Some(_)) => {
            return bearer_error(StatusCode::BAD_REQUEST, "invalid_request", "send the token one way only");
        }
        (Some(t), None) | (None, Some(t)) => t.trim().to_owned(),
        (None, None) => return no_token(),
    };
    if PresentedApiKey::parse(&token).is_ok() {
        return api_key_userinfo(&state, &method, &token).await;
    }
    let claims = match state.services.live_access_token(&token).await {
        Ok(c) => c,
        Err(e) => return bearer_error(StatusCode::UNAUTHORIZED, "invalid_token", &format!("the access token is {e}")),
    };
    // A token issued for another API (RFC 8707 resource) is not for UserInfo.
    if claims.aud != state.default_audience() {
        return bearer_error(StatusCode::UNAUTHORIZED, "invalid_token", "the access token is for another audience");
    }
    let scopes: Vec<String> = claims.scope.split(' ').map(str::to_owned).collect();
    if !scopes.iter().any(|s| s == "openid") {
        return bearer_error(StatusCode::FORBIDDEN, "insufficient_scope", "the token lacks the openid scope");
    }
    // Only a token from a user's grant names a user; a client-credentials token's sub is a
    // client id, never looked up as a person's (RFC 9068 §5).
    let Some(user_sub) = claims.user_sub() else {
        return bearer_error(StatusCode::UNAUTHORIZED, "invalid_token", "the access token was not issued for a user");
    };
    let user = match SubjectId::parse(user_sub) {
        Ok(sub) => state.caches.user(&sub).await,
        Err(_) => Ok(None),
    };
    let user = match user {
        Ok(Some(u)) if !u.locked => u,
        Ok(_) => {
            return bearer_error(StatusCode::UNAUTHORIZED, "invalid_token", "the user no longer exists or is locked");
        }
        Err(e) => {
            tracing::error!(error = %e, "userinfo: cannot load user");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let all = all_claims(&user);
    let mut out = serde_json::Map::new();
    out.insert("sub".into(), claims.sub.clone().into());
    for n in names_for_scopes(&scopes) {
        if let Some(v) = all.get(n) {
            out.insert(n.to_owned(), v.clone());
        }
    }
    // OIDC Core §5.5: claims asked for one by one, as the user allowed them with the grant.
    if let Some(requests) = &claims.userinfo_claims {
        out.extend(release(&all, requests));
    }
    // Roles, groups and entitlements as the client's policy releases them, as they are now.
    match state.services.access().current_claims(&claims.client_id, user_sub).await {
        Ok(access) => out.extend(access.into_map()),
        Err(e) => {
            tracing::error!(error = %e, "userinfo: cannot load the user's roles");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    }
    let mut response = axum::Json(serde_json::Value::Object(out)).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
