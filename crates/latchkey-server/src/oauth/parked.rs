//! The parked authorization request: an authorization request that waits, server-side and
//! bound to the browser by a cookie, while the user signs in, chooses an account or
//! consents. The authorization endpoint parks it; the sign-in pages load, update and drop
//! it here without going through the endpoint.

use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use latchkey_core::crypto::random;
use latchkey_core::domain::{ClientId, TenantId};
use latchkey_core::records::{Client, PendingAuthorization};

use super::authorization_response::{Failure, deny, fail};
use crate::browser::cookies;
use crate::edge::ClientIp;
use crate::pages::PageError;
use crate::state::AppState;

pub use latchkey_service::authorization::{AuthorizationRequest, ResponseMode, session_level};

const BINDING_COOKIE: &str = "latchkey-authz";

const REQUEST_PURPOSE: &str = "authorization_request";

const BINDING_PURPOSE: &str = "authorization_binding";

/// Keeps the request server-side, bound to this browser, and sends the user to `page`. A
/// new request (`pending_id` is `None`) is parked under its client IP, which may have only
/// `sessions.max_authorization_requests_per_ip` waiting at once.
pub async fn park(
    state: &AppState,
    tenant: &TenantId,
    headers: &HeaderMap,
    request: &AuthorizationRequest,
    pending_id: Option<String>,
    ip: Option<ClientIp>,
    page: &str,
) -> Response {
    let base = crate::state::base_path(&state.issuer);
    if let Some(id) = pending_id {
        return Redirect::to(&format!("{base}{page}?req={id}")).into_response();
    }
    let binding_name = cookies::name(state.https, BINDING_COOKIE);
    let (binding, set_cookie) = match cookies::get(headers, &binding_name).filter(|v| v.len() >= 32) {
        Some(b) => (b.to_owned(), None),
        None => {
            let b = random::token_string::<32>();
            (b.clone(), Some(cookies::set(state.https, BINDING_COOKIE, &b, None)))
        }
    };
    let id = random::token_string::<32>();
    let json = match serde_json::to_string(request) {
        Ok(j) => j,
        Err(e) => {
            return fail(
                state,
                Failure::Page(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot keep the request: {e}")),
            );
        }
    };
    let pending = PendingAuthorization {
        binding_hash: state.token_hasher.hash(BINDING_PURPOSE, &binding),
        request: json,
        expires_at: state.clock.now().plus(state.config.sessions.authorization_request_lifetime),
        ip_key: ip.map(|ip| state.services.throttle_ip(ip.0)).unwrap_or_default(),
    };
    let limit = state.config.sessions.max_authorization_requests_per_ip;
    let hash = state.token_hasher.hash(REQUEST_PURPOSE, &id);
    match state.services.tokens().park_request(tenant, &hash, &pending, limit).await {
        Ok(true) => {}
        Ok(false) => {
            metrics::counter!("latchkey_authorization_requests_refused_total", "limit" => "per_ip").increment(1);
            // RFC 6749 §4.1.2.1: the server is temporarily unable to take the request.
            return deny(
                state,
                request,
                "temporarily_unavailable",
                "too many sign-in requests from this network are waiting; try again in a few minutes",
            );
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot store authorization request");
            return fail(state, Failure::Page(StatusCode::INTERNAL_SERVER_ERROR, PageError::INTERNAL.into()));
        }
    }
    let mut response = Redirect::to(&format!("{base}{page}?req={id}")).into_response();
    if let Some(c) = set_cookie {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    response
}

/// Loads a parked request if it exists, has not expired, and belongs to this browser.
pub async fn load_pending(
    state: &AppState,
    tenant: &TenantId,
    headers: &HeaderMap,
    id: &str,
) -> Option<(AuthorizationRequest, Arc<Client>)> {
    let binding = cookies::get(headers, &cookies::name(state.https, BINDING_COOKIE))?;
    let stored = state
        .services
        .tokens()
        .parked_request(tenant, &state.token_hasher.hash(REQUEST_PURPOSE, id), state.clock.now())
        .await
        .ok()
        .flatten()?;
    if !state.token_hasher.verify(BINDING_PURPOSE, binding, &stored.binding_hash) {
        return None;
    }
    let request: AuthorizationRequest = serde_json::from_str(&stored.request).ok()?;
    let client = state.caches.client(&ClientId::parse(&request.client_id).ok()?).await.ok().flatten()?;
    Some((request, client))
}

pub async fn forget_pending(state: &AppState, tenant: &TenantId, id: &str) {
    let _ = state.services.tokens().drop_parked_request(tenant, &state.token_hasher.hash(REQUEST_PURPOSE, id)).await;
}

/// Replaces what a parked request waits with (after the user answered a question about it).
pub async fn replace_pending(state: &AppState, tenant: &TenantId, id: &str, request: &AuthorizationRequest) -> bool {
    let Ok(json) = serde_json::to_string(request) else { return false };
    let hash = state.token_hasher.hash(REQUEST_PURPOSE, id);
    state.services.tokens().update_parked_request(tenant, &hash, &json).await.unwrap_or(false)
}
