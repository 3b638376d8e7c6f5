//! The security page's forms, as every change to an account handles them: a CSRF token and
//! a recent sign-in first, then the service's answer as a page (a rule it enforces as 400, a
//! blocked account as 403). Apart from `account` so that every module with such a form
//! (the sign-in providers' links too) shares them without depending on the account pages.

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use latchkey_core::domain::TenantId;
use latchkey_core::records::{BrowserSession, User};

use crate::browser::csrf;
use crate::pages::PageError;
use crate::sessions;
use crate::state::AppState;

/// Sign in first, then come back to the security page.
pub(crate) fn sign_in_first(state: &AppState) -> Response {
    Redirect::to(&format!("{}/login?return_to=security", state.base())).into_response()
}

/// Whether the session's sign-in is recent enough to change how the user signs in.
pub(crate) fn recent(state: &AppState, session: &BrowserSession) -> bool {
    state.clock.now().since(session.auth_time) <= state.config.login.recent_authentication
}

/// The signed-in session and its user, if the sign-in is recent; otherwise the response
/// that asks the user to sign in (again).
pub(crate) async fn recent_session(
    state: &AppState,
    tenant: &TenantId,
    headers: &HeaderMap,
) -> Result<(BrowserSession, User), Response> {
    let Some(session) = sessions::current(state, tenant, headers).await else { return Err(sign_in_first(state)) };
    if !recent(state, &session) {
        return Err(sign_in_first(state));
    }
    match state.services.users().by_sub(tenant, &session.sub).await {
        Ok(Some(user)) => Ok((session, user)),
        _ => Err(sign_in_first(state)),
    }
}

/// A security-page form: its CSRF token checked, then a recent sign-in required.
pub(crate) async fn recent_form(
    state: &AppState,
    tenant: &TenantId,
    headers: &HeaderMap,
    csrf_token: Option<&str>,
) -> Result<(BrowserSession, User), Response> {
    if !csrf::verify(state, headers, csrf_token) {
        return Err(csrf::expired_form());
    }
    recent_session(state, tenant, headers).await
}

pub(crate) fn failure(e: impl std::fmt::Display) -> Response {
    if is_blocked(&e) {
        return PageError::new(
            StatusCode::FORBIDDEN,
            "Changes to this account are blocked: you reported a change you did not make. Recover your account (\"Can't sign in?\" on the sign-in page) to change it again.",
        )
        .into_response();
    }
    tracing::error!(error = %e, "account change failed");
    PageError::internal().into_response()
}

/// A change the service refused: its rule as the page's error (400), a block as
/// [`failure`] says it, anything else as a failure.
pub(crate) fn refused(e: latchkey_service::ServiceError) -> Response {
    match e {
        latchkey_service::ServiceError::Invalid(m) if !is_blocked(&m) => {
            PageError::new(StatusCode::BAD_REQUEST, m).into_response()
        }
        other => failure(other),
    }
}

/// Whether a change was refused because the account's changes are blocked ("this wasn't me").
pub(crate) fn is_blocked(e: &impl std::fmt::Display) -> bool {
    e.to_string() == latchkey_service::security_notices::blocked_message()
}

/// Back to the security page with a message chosen by key (never text from the request).
pub(crate) fn back(state: &AppState, done: &str) -> Response {
    Redirect::to(&format!("{}/account/security?done={done}", state.base())).into_response()
}
