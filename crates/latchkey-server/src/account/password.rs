//! Setting, changing and removing the password (Argon2id) on the security page.

use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use latchkey_core::domain::NewPassword;
use latchkey_store::{Actor, StoreError};
use serde::Deserialize;

use super::{back, end_other_sessions, failure, redirect_error, tenant};
use crate::app::AppState;

#[derive(Deserialize)]
pub struct PasswordForm {
    csrf: Option<String>,
    password: Option<String>,
    confirm: Option<String>,
}

pub async fn set(State(state): State<AppState>, headers: HeaderMap, Form(form): Form<PasswordForm>) -> Response {
    if !state.config.login.passwords {
        return state.pages.render(StatusCode::BAD_REQUEST, "Passwords are turned off here.", None);
    }
    let (session, user) = match super::recent_form(&state, &headers, form.csrf.as_deref()).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let typed = form.password.unwrap_or_default();
    if form.confirm.as_deref() != Some(typed.as_str()) {
        return state.pages.render(StatusCode::BAD_REQUEST, "The two passwords are not the same.", None);
    }
    let password = match NewPassword::parse(typed) {
        Ok(p) => p,
        Err(e) => return state.pages.render(StatusCode::BAD_REQUEST, &crate::passwords::explain(e), None),
    };
    let hash = match state.passwords.hash(password.into_string()).await {
        Ok(h) => h,
        Err(e) => return failure(&state, e),
    };
    let actor = Actor::User(session.sub.to_string());
    if let Err(e) = state.store.set_password_hash(&tenant(), &user.sub, Some(hash.as_str().to_owned()), &actor).await {
        return failure(&state, e);
    }
    if state.config.sessions.end_other_sessions_on_password_change {
        end_other_sessions(&state, &session).await;
        return back(&state, "password_set_signed_out");
    }
    back(&state, "password_set")
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: Option<String>,
}

pub async fn remove(State(state): State<AppState>, headers: HeaderMap, Form(form): Form<CsrfForm>) -> Response {
    let (session, user) = match super::recent_form(&state, &headers, form.csrf.as_deref()).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    match state.store.remove_password(&tenant(), &user.sub, &Actor::User(session.sub.to_string())).await {
        Ok(()) => {
            end_other_sessions(&state, &session).await;
            back(&state, "password_removed")
        }
        Err(StoreError::Invalid(m)) if m.contains("no password") => redirect_error(&state, "no_password"),
        Err(StoreError::Invalid(_)) => redirect_error(&state, "last_method"),
        Err(e) => failure(&state, e),
    }
}
