//! The account page's session list: where the user is signed in (device and browser, IP
//! when collected, sign-in time, last activity, applications), and a way to end any of
//! those sessions. Ending this browser's own session is a sign-out, with the front-channel
//! page; ending another only reaches the back channel (that browser is elsewhere).

use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use latchkey_core::domain::{ClientId, TenantId};
use latchkey_core::records::{Actor, BrowserSession, SessionSelector};
use serde::Deserialize;

use crate::browser::csrf;
use crate::edge::Tenant;
use crate::pages::PageError;
use crate::sessions;
use crate::state::AppState;

fn login_first(state: &AppState) -> Response {
    Redirect::to(&format!("{}/login?return_to=account", state.base())).into_response()
}

/// "Firefox on Linux" from a User-Agent header (or the description kept in its place).
pub fn describe_user_agent(ua: Option<&str>) -> String {
    latchkey_core::user_agent::describe(ua)
}

async fn client_names(state: &AppState, ids: &[ClientId]) -> Vec<String> {
    let mut names = Vec::new();
    for id in ids {
        let client = state.caches.client(id).await.ok().flatten();
        names.push(client.map_or_else(|| id.to_string(), |c| c.name.clone()));
    }
    names
}

pub async fn sessions_page(State(state): State<AppState>, Tenant(tenant): Tenant, headers: HeaderMap) -> Response {
    let Some(current) = sessions::current(&state, &tenant, &headers).await else { return login_first(&state) };
    let now = state.clock.now();
    let list =
        match state.services.sessions().of_user(&tenant, &current.sub, now, state.config.sessions.idle_timeout).await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "cannot list sessions");
                return PageError::internal().into_response();
            }
        };
    let mut rows = Vec::new();
    for info in &list {
        let s = &info.session;
        rows.push(minijinja::context! {
            sid => s.sid, this_browser => s.sid == current.sid,
            device => describe_user_agent(s.user_agent.as_deref()), ip => s.ip,
            signed_in => s.created_at.to_rfc3339(), last_active => s.last_active_at.to_rfc3339(),
            expires => s.expires_at.to_rfc3339(), clients => client_names(&state, &info.clients).await,
        });
    }
    let username = state.caches.user(&current.sub).await.ok().flatten().map(|u| u.username.to_string());
    let (csrf, set_cookie) = csrf::token(&state, &headers);
    let mut response = state.templates.render(
        StatusCode::OK,
        "account_sessions.html",
        minijinja::context! { title => "Your sessions", base => state.base(), csrf, sessions => rows, username },
    );
    if let Some(c) = set_cookie {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    response
}

#[derive(Deserialize)]
pub struct EndForm {
    csrf: Option<String>,
    /// A session's `sid`, or `others` for every session but this one.
    sid: Option<String>,
}

pub async fn end_session(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    headers: HeaderMap,
    Form(form): Form<EndForm>,
) -> Response {
    if !csrf::verify(&state, &headers, form.csrf.as_deref()) {
        return csrf::expired_form();
    }
    let Some(current) = sessions::current(&state, &tenant, &headers).await else { return login_first(&state) };
    // Ending other sessions is a security change: it needs a recent sign-in.
    if form.sid.as_deref() != Some(current.sid.as_str()) && !crate::account::recent(&state, &current) {
        return login_first(&state);
    }
    let actor = Actor::User(current.sub.to_string());
    let back = Redirect::to(&format!("{}/account/sessions", state.base())).into_response();
    match form.sid.as_deref() {
        Some("others") => {
            let which = SessionSelector::User { sub: current.sub.clone(), except_sid: Some(current.sid.clone()) };
            ended_or_error(sessions::end(&state, &tenant, &which, "ended_by_user", false, &actor).await.map(|_| back))
        }
        Some(sid) if sid == current.sid => {
            let (ended, cookies) = sessions::end_this_browser(&state, &tenant, &headers, "logout", &actor).await;
            sessions::signed_out::respond(&state, &ended, None, cookies).await
        }
        Some(sid) => {
            if !owns(&state, &tenant, &current, sid).await {
                return PageError::new(StatusCode::NOT_FOUND, "That session does not exist or has ended.")
                    .into_response();
            }
            let which = SessionSelector::Sid(sid.to_owned());
            ended_or_error(sessions::end(&state, &tenant, &which, "ended_by_user", false, &actor).await.map(|_| back))
        }
        None => PageError::new(StatusCode::BAD_REQUEST, "Choose a session to end.").into_response(),
    }
}

/// Whether `sid` is a live session of the signed-in user (a user ends only their own).
async fn owns(state: &AppState, tenant: &TenantId, current: &BrowserSession, sid: &str) -> bool {
    let idle = state.config.sessions.idle_timeout;
    matches!(
        state.services.sessions().by_sid(tenant, sid, state.clock.now(), idle).await,
        Ok(Some(s)) if s.sub == current.sub
    )
}

fn ended_or_error(result: Result<Response, latchkey_service::ServiceError>) -> Response {
    result.unwrap_or_else(|e| {
        tracing::error!(error = %e, "cannot end session");
        PageError::internal().into_response()
    })
}

#[cfg(test)]
mod tests {}
