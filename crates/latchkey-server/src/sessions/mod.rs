//! Single sign-on sessions: one server-side session per browser, shared by every client.
//!
//! The browser holds a random secret in an `HttpOnly` cookie; the store keeps its keyed
//! hash. `sid` is the session's public id (ID and logout tokens carry it). Ending a session
//! (sign-out, the account page, the CLI, a locked user) goes through [`end`], which queues
//! the back-channel logout tokens and revokes the refresh tokens that end with the session
//! in the same transaction; the signed-out page does the front-channel part.

pub mod backchannel;
pub mod check;
pub mod signed_out;

use axum::http::{HeaderMap, HeaderValue, header};
use latchkey_core::crypto::random;
use latchkey_core::domain::TenantId;
use latchkey_core::records::{Actor, BrowserSession, SessionSelector, SessionsEnded};
use latchkey_service::ServiceError;
pub use latchkey_service::sessions::SignedIn;
use latchkey_service::sessions::Started;

use crate::browser::cookies;
use crate::state::AppState;

pub const SESSION_COOKIE: &str = "latchkey-session";
/// Script-readable and not secret: what the check-session iframe compares (OIDC Session
/// Management 1.0 §3). It changes with every sign-in and is cleared at sign-out.
pub const BROWSER_STATE_COOKIE: &str = "latchkey-browser-state";
const BROWSER_STATE_PURPOSE: &str = "browser_state";

/// The live session of this browser, if any: not expired, not idle, and its user still
/// exists and is not locked.
pub async fn current(state: &AppState, tenant: &TenantId, headers: &HeaderMap) -> Option<BrowserSession> {
    let secret = cookies::get(headers, &cookies::name(state.https, SESSION_COOKIE))?;
    state.services.sessions().live(tenant, secret).await
}

/// Establishes a sign-in in this browser (`Sessions::start` in the service) and returns the
/// session and the cookies to set.
pub async fn start(
    state: &AppState,
    tenant: &TenantId,
    headers: &HeaderMap,
    sign_in: SignedIn,
) -> Result<(BrowserSession, Vec<HeaderValue>), ServiceError> {
    let previous = cookies::get(headers, &cookies::name(state.https, SESSION_COOKIE));
    let Started { session, secret, lifetime } = state.services.sessions().start(tenant, previous, sign_in).await?;
    let cookies = vec![
        cookies::set(state.https, SESSION_COOKIE, &secret, Some(lifetime.as_secs())),
        browser_state_cookie(state, Some(&browser_state(state, &session.sid)), lifetime.as_secs()),
    ];
    Ok((session, cookies))
}

/// Ends sessions and everything that goes with them (`Sessions::end` in the service).
pub async fn end(
    state: &AppState,
    tenant: &TenantId,
    which: &SessionSelector,
    reason: &'static str,
    revoke_all_refresh_tokens: bool,
    actor: &Actor,
) -> Result<SessionsEnded, ServiceError> {
    state.services.sessions().end(tenant, which, reason, revoke_all_refresh_tokens, actor).await
}

/// Ends this browser's session, if it has one. Returns what ended and the cookies that
/// clear the session and the browser state.
pub async fn end_this_browser(
    state: &AppState,
    tenant: &TenantId,
    headers: &HeaderMap,
    reason: &'static str,
    actor: &Actor,
) -> (SessionsEnded, Vec<HeaderValue>) {
    let clear = vec![cookies::clear(state.https, SESSION_COOKIE), browser_state_cookie(state, None, 0)];
    let Some(secret) = cookies::get(headers, &cookies::name(state.https, SESSION_COOKIE)) else {
        return (SessionsEnded::default(), clear);
    };
    (state.services.sessions().end_browser(tenant, secret, reason, actor).await, clear)
}

/// The browser state of a session: derived from its `sid` with a server key, so it changes
/// with the session and reveals nothing.
pub fn browser_state(state: &AppState, sid: &str) -> String {
    state.token_hasher.hash(BROWSER_STATE_PURPOSE, sid).as_str().chars().take(32).collect()
}

/// The browser-state cookie: readable by the check-session iframe when it is framed by a
/// relying party on another site, hence `SameSite=None; Secure` wherever the browser can
/// keep a `Secure` cookie (https, or `localhost`, which browsers treat as secure).
fn browser_state_cookie(state: &AppState, value: Option<&str>, max_age: u64) -> HeaderValue {
    let name = cookies::name(state.https, BROWSER_STATE_COOKIE);
    let secure_context = state.https || url::Url::parse(&state.issuer).is_ok_and(|u| u.host_str() == Some("localhost"));
    let same_site = if secure_context { "SameSite=None; Secure" } else { "SameSite=Lax" };
    let cookie = format!("{name}={}; Path=/; {same_site}; Max-Age={max_age}", value.unwrap_or(""));
    HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static("invalid=1; Max-Age=0"))
}

/// OIDC Session Management 1.0 §3: `session_state` for an authorization response.
pub fn session_state(client_id: &str, redirect_uri: &str, browser_state: &str) -> String {
    let origin = url::Url::parse(redirect_uri).map(|u| u.origin().ascii_serialization()).unwrap_or_default();
    let salt = random::token_string::<8>();
    format!("{}.{salt}", session_state_hash(client_id, &origin, browser_state, &salt))
}

pub fn session_state_hash(client_id: &str, origin: &str, browser_state: &str, salt: &str) -> String {
    let input = format!("{client_id} {origin} {browser_state} {salt}");
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, input.as_bytes()))
}

/// Appends `Set-Cookie` headers.
pub fn set_cookies(response: &mut axum::response::Response, cookies: Vec<HeaderValue>) {
    for c in cookies {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn session_state_follows_the_specification_example_shape() {
        // SHA-256 over "client_id origin browser_state salt", hex, then "." and the salt.
        let h = super::session_state_hash("client", "https://rp.example", "state", "salt");
        assert_eq!(h.len(), 64);
        assert_eq!(
            h,
            hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b"client https://rp.example state salt"))
        );
        let full = super::session_state("client", "https://rp.example/cb?x=1", "state");
        let (hash, salt) = full.split_once('.').unwrap_or_default();
        assert_eq!(hash, super::session_state_hash("client", "https://rp.example", "state", salt));
    }
}
