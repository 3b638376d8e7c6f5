//! Setting, changing and removing the password (Argon2id) on the security page.

use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use latchkey_store::{Actor, StoreError};
use serde::Deserialize;

use super::{back, end_other_sessions, failure, redirect_error, tenant};
use crate::app::AppState;

pub const MIN_LENGTH: usize = 8;
pub const MAX_LENGTH: usize = 1024;

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
    let password = form.password.unwrap_or_default();
    let length = password.chars().count();
    let problem = if length < MIN_LENGTH {
        Some(format!("A password needs at least {MIN_LENGTH} characters."))
    } else if length > MAX_LENGTH {
        Some(format!("A password may have at most {MAX_LENGTH} characters."))
    } else if form.confirm.as_deref() != Some(password.as_str()) {
        Some("The two passwords are not the same.".to_owned())
    } else {
        None
    };
    if let Some(problem) = problem {
        return state.pages.render(StatusCode::BAD_REQUEST, &problem, None);
    }
    let hash = match state.passwords.hash(password).await {
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
