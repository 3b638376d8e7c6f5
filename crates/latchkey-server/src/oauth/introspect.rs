//! Token introspection (RFC 7662): client authenticated; a caller learns about a token only
//! if it was issued to it, or it is the token's audience; anything else is
//! `{"active": false}` and nothing more. Revoked tokens are inactive.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use latchkey_core::domain::{ClientKind, PresentedApiKey, SubjectId, TenantId};
use serde_json::json;

use super::OAuthError;
use super::client_auth::authenticate;
use super::params::Params;
use crate::edge::Tenant;
use crate::state::AppState;
use latchkey_service::tokens::REFRESH_PURPOSE;

fn reply(value: serde_json::Value) -> Response {
    let mut response = axum::Json(value).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn username(state: &AppState, sub: &str) -> Option<String> {
    let sub = SubjectId::parse(sub).ok()?;
    state.caches.user(&sub).await.ok().flatten().map(|u| u.username.to_string())
}

/// Whether `caller` is the client of the resource server the token was issued for.
async fn is_audience(
    state: &AppState,
    tenant: &TenantId,
    aud: &str,
    caller: &latchkey_core::domain::ClientId,
) -> Result<bool, OAuthError> {
    let servers = state.services.resources().cached(tenant).await?;
    Ok(servers.iter().any(|s| s.identifier == aud && s.client_id.as_ref() == Some(caller)))
}

/// An API key: active while it counts, reported with what it is worth now (its scopes the
/// owner still holds) and its limits. A key for a resource is reported only to that
/// resource's client.
async fn api_key(
    state: &AppState,
    tenant: &TenantId,
    caller: &latchkey_core::records::Client,
    token: &str,
) -> Result<serde_json::Value, OAuthError> {
    let keys = state.services.api_keys();
    let verified = match keys.verify(token).await? {
        Ok(v) => v,
        Err(refusal) => {
            tracing::debug!(%refusal, "introspection: API key not active");
            return Ok(json!({"active": false}));
        }
    };
    if !keys.introspectable_by(tenant, &verified.key, caller).await? {
        return Ok(json!({"active": false}));
    }
    keys.record_use(&verified.key).await;
    let k = &verified.key;
    let scope: Vec<&str> = verified.scopes.iter().map(|s| s.as_str()).collect();
    let mut out = json!({
        "active": true, "token_type": "api_key", "scope": scope.join(" "), "sub": k.owner,
        "username": verified.owner.username.as_str(), "iat": k.created_at, "iss": state.issuer.as_ref(),
        "key_id": k.id, "routes": k.routes.iter().map(|r| r.as_str()).collect::<Vec<_>>(), "methods": k.methods,
    });
    if let Some(exp) = k.expires_at {
        out["exp"] = exp.into();
    }
    if let Some(aud) = &k.audience {
        out["aud"] = aud.as_str().into();
    }
    if verified.owner.service_account {
        out["service_account"] = true.into();
    }
    Ok(out)
}

/// Roles, groups and entitlements as the token's client is told them, as they are now.
fn add_access(out: &mut serde_json::Value, access: latchkey_service::access::ReleasedAccess) {
    if let serde_json::Value::Object(members) = out {
        members.extend(access.into_map());
    }
}

pub async fn introspect(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    crate::edge::ClientIp(ip): crate::edge::ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OAuthError> {
    let params = Params::from_form(&headers, &body).map_err(|e| OAuthError::invalid_request(e.to_string()))?;
    let client = authenticate(&state, &tenant, &headers, &params, ip).await?;
    if client.kind == ClientKind::Public {
        return Err(OAuthError::invalid_client("public clients cannot introspect", false));
    }
    let token = params.get("token").ok_or_else(|| OAuthError::invalid_request("token is missing"))?;
    // Only a well-formed key takes the key path: a refresh token may begin with `lk_` too.
    if PresentedApiKey::parse(token).is_ok() {
        return Ok(reply(api_key(&state, &tenant, &client, token).await?));
    }
    if let Ok(c) = state.services.live_access_token(token).await {
        if c.client_id != client.client_id.as_str() && !is_audience(&state, &tenant, &c.aud, &client.client_id).await? {
            return Ok(reply(json!({"active": false})));
        }
        let mut out = json!({
            "active": true, "scope": c.scope, "client_id": c.client_id, "sub": c.sub, "token_type": "Bearer",
            "exp": c.exp, "iat": c.iat, "nbf": c.iat, "aud": c.aud, "iss": c.iss, "jti": c.jti,
        });
        // A client-credentials token has no user, whatever its sub (RFC 9068 §5). A user who
        // lost a role the token's client requires holds a token that no longer counts.
        if let Some(sub) = c.user_sub() {
            if !state.services.access().still_admitted(&c.client_id, sub).await? {
                return Ok(reply(json!({"active": false})));
            }
            if let Some(name) = username(&state, sub).await {
                out["username"] = name.into();
            }
            add_access(&mut out, state.services.access().current_claims(&c.client_id, sub).await?);
        }
        return Ok(reply(out));
    }
    let hash = state.token_hasher.hash(REFRESH_PURPOSE, token);
    if let Some(r) = state.services.tokens().refresh_token(&tenant, &hash).await? {
        let now = state.clock.now();
        let live = r.revoked_at.is_none() && r.rotated_at.is_none() && r.expires_at > now;
        let admitted = live && state.services.access().still_admitted(r.client_id.as_str(), r.sub.as_str()).await?;
        if admitted && r.client_id == client.client_id {
            let data = latchkey_service::grants::GrantData::from_stored(&r.grant_data)
                .map_err(|e| OAuthError::server_error("stored grant is damaged", e))?;
            let mut out = json!({
                "active": true, "scope": data.scope.join(" "), "client_id": r.client_id, "sub": r.sub,
                "token_type": "refresh_token", "exp": r.expires_at.secs(), "iat": r.created_at.secs(),
                "iss": state.issuer.as_ref(),
            });
            // Refresh tokens are issued for a user's grant only.
            if let Some(name) = username(&state, r.sub.as_str()).await {
                out["username"] = name.into();
            }
            add_access(&mut out, state.services.access().current_claims(r.client_id.as_str(), r.sub.as_str()).await?);
            return Ok(reply(out));
        }
    }
    Ok(reply(json!({"active": false})))
}
