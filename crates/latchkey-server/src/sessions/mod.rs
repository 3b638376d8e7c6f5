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

use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, header};
use latchkey_core::crypto::random;
use latchkey_core::domain::{ClientSessionPolicy, SubjectId, TenantId};
use latchkey_core::records::{Actor, BrowserSession, SessionSelector, SessionsEnded};
use latchkey_service::ServiceError;

use crate::browser::cookies;
use crate::state::AppState;

pub const SESSION_COOKIE: &str = "latchkey-session";
/// Script-readable and not secret: what the check-session iframe compares (OIDC Session
/// Management 1.0 §3). It changes with every sign-in and is cleared at sign-out.
pub const BROWSER_STATE_COOKIE: &str = "latchkey-browser-state";
const SESSION_PURPOSE: &str = "browser_session";
const BROWSER_STATE_PURPOSE: &str = "browser_state";
/// `last_active_at` is written at most this often per session, not on every request.
pub(crate) const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// The live session of this browser, if any: not expired, not idle, and its user still
/// exists and is not locked.
pub async fn current(state: &AppState, tenant: &TenantId, headers: &HeaderMap) -> Option<BrowserSession> {
    let value = cookies::get(headers, &cookies::name(state.https, SESSION_COOKIE))?;
    let hash = state.token_hasher.hash(SESSION_PURPOSE, value);
    let now = state.clock.now();
    let session =
        match state.services.sessions().by_cookie(tenant, &hash, now, state.config.sessions.idle_timeout).await {
            Ok(s) => s?,
            Err(e) => {
                tracing::error!(error = %e, "cannot read session");
                return None;
            }
        };
    match state.caches.user(&session.sub).await {
        Ok(Some(user)) if !user.locked => {}
        _ => return None,
    }
    if now.since(session.last_active_at) >= TOUCH_EVERY
        && let Err(e) = state.services.sessions().touch(tenant, &session.sid, now).await
    {
        tracing::warn!(error = %e, "cannot record session activity");
    }
    Some(session)
}

/// What a successful sign-in establishes.
pub struct SignIn {
    pub sub: SubjectId,
    pub amr: Vec<String>,
    pub acr: String,
    pub remember: bool,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
}

/// Establishes a sign-in in this browser and returns the session and the cookies to set.
/// The cookie secret is new at every sign-in. The same user signing in again (a forced
/// re-authentication, a step-up) keeps the session's `sid` and clients; anyone else's
/// sign-in ends the session the browser had (its clients hear of it) and starts a new one.
pub async fn start(
    state: &AppState,
    tenant: &TenantId,
    headers: &HeaderMap,
    sign_in: SignIn,
) -> Result<(BrowserSession, Vec<HeaderValue>), ServiceError> {
    let actor = Actor::User(sign_in.sub.to_string());
    let previous = current(state, tenant, headers).await;
    let now = state.clock.now();
    let config = &state.config.sessions;
    let remember = sign_in.remember && !config.remember_me_lifetime.is_zero();
    let lifetime = if remember { config.remember_me_lifetime } else { config.lifetime };
    let secret = random::token_string::<32>();
    let mut session = BrowserSession {
        id_hash: state.token_hasher.hash(SESSION_PURPOSE, &secret),
        sid: random::identifier::<16>(),
        sub: sign_in.sub,
        auth_time: now,
        amr: sign_in.amr,
        acr: sign_in.acr,
        created_at: now,
        expires_at: now.plus(lifetime),
        last_active_at: now,
        remember,
        user_agent: sign_in.user_agent.map(|ua| ua.chars().take(256).collect()),
        ip: if config.record_ip { sign_in.ip } else { None },
    };
    let reauthenticated = match previous.filter(|p| p.sub == session.sub) {
        Some(p) => {
            session.sid = p.sid.clone();
            session.created_at = p.created_at;
            state.services.sessions().reauthenticate(tenant, &p.id_hash, &session, &actor).await?
        }
        None => false,
    };
    if !reauthenticated {
        session.sid = random::identifier::<16>();
        session.created_at = now;
        end_this_browser(state, tenant, headers, "replaced", &actor).await;
        state.services.sessions().create(tenant, &session, &actor).await?;
    }
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
    let Some(value) = cookies::get(headers, &cookies::name(state.https, SESSION_COOKIE)) else {
        return (SessionsEnded::default(), clear);
    };
    let which = SessionSelector::IdHash(state.token_hasher.hash(SESSION_PURPOSE, value));
    match end(state, tenant, &which, reason, false, actor).await {
        Ok(ended) => (ended, clear),
        Err(e) => {
            tracing::error!(error = %e, "cannot end session");
            (SessionsEnded::default(), clear)
        }
    }
}

/// What the store records with a code: that `session` signed into `client`.
pub fn signed_into(
    session: &BrowserSession,
    client: &latchkey_core::records::Client,
) -> latchkey_core::records::CodeSession {
    latchkey_core::records::CodeSession {
        sid: session.sid.clone(),
        backchannel: client.session_policy.backchannel_logout_uri.is_some(),
    }
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

/// The effective `max_age` of a request: its own, else the client's default.
pub fn max_age(requested: Option<i64>, policy: &ClientSessionPolicy) -> Option<i64> {
    requested.or_else(|| policy.default_max_age.and_then(|s| i64::try_from(s).ok()))
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
