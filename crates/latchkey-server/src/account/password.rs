//! Setting, changing and removing the password (Argon2id) on the security page.

use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse as _;
use axum::response::Response;
use latchkey_core::domain::NewPassword;
use latchkey_core::records::Actor;
use latchkey_service::ServiceError;
use latchkey_service::users::PasswordChange;
use serde::Deserialize;

use super::{back, failure, redirect_error};
use crate::edge::Tenant;
use crate::pages::PageError;
use crate::state::AppState;

#[derive(Deserialize)]
pub struct PasswordForm {
    csrf: Option<String>,
    password: Option<String>,
    confirm: Option<String>,
}

pub async fn set(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    headers: HeaderMap,
    Form(form): Form<PasswordForm>,
) -> Response {
    if !state.config.login.passwords {
        return PageError::new(StatusCode::BAD_REQUEST, "Passwords are turned off here.").into_response();
    }
    let (session, user) = match super::recent_form(&state, &tenant, &headers, form.csrf.as_deref()).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let typed = form.password.unwrap_or_default();
    if form.confirm.as_deref() != Some(typed.as_str()) {
        return PageError::new(StatusCode::BAD_REQUEST, "The two passwords are not the same.").into_response();
    }
    let password = match NewPassword::parse(typed) {
        Ok(p) => p,
        Err(e) => {
            return PageError::new(StatusCode::BAD_REQUEST, latchkey_service::passwords::explain(e).to_string())
                .into_response();
        }
    };
    let actor = Actor::User(session.sub.to_string());
    let change = PasswordChange::BySelf { current_sid: session.sid.clone() };
    if let Err(e) = state.services.users().set_password(&tenant, &user.sub, password, change, &actor).await {
        return failure(e);
    }
    if state.config.sessions.end_other_sessions_on_password_change {
        return back(&state, "password_set_signed_out");
    }
    back(&state, "password_set")
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: Option<String>,
}

pub async fn remove(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    let (session, user) = match super::recent_form(&state, &tenant, &headers, form.csrf.as_deref()).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let actor = Actor::User(session.sub.to_string());
    match state.services.users().remove_password(&tenant, &user.sub, &session.sid, &actor).await {
        Ok(()) => back(&state, "password_removed"),
        Err(e) if super::is_blocked(&e) => failure(e),
        Err(ServiceError::Invalid(m)) if m.contains("no password") => redirect_error(&state, "no_password"),
        Err(ServiceError::Invalid(_)) => redirect_error(&state, "last_method"),
        Err(e) => failure(e),
    }
}
