//! Adding, naming and removing passkeys on the security page.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use latchkey_core::records::Actor;
use latchkey_service::ServiceError;
use latchkey_service::passkeys::{PasskeyRegistration, Uuid};
use serde::Deserialize;

use super::{back, failure, recent_session};
use crate::browser::ceremony::{self, Purpose};
use crate::browser::csrf;
use crate::browser::json::json_error;
use crate::edge::Tenant;
use crate::pages::PageError;
use crate::state::AppState;
use latchkey_service::passkeys::new_user_handle;

#[derive(Deserialize)]
pub struct CsrfOnly {
    csrf: Option<String>,
}

/// A passkey's name: what the user typed, trimmed, 1 to 64 characters.
pub(crate) fn passkey_name(raw: Option<&str>, fallback: &str) -> Option<String> {
    let name = raw.map(str::trim).filter(|n| !n.is_empty()).unwrap_or(fallback);
    let ok = (1..=64).contains(&name.chars().count()) && !name.chars().any(char::is_control);
    ok.then(|| name.to_owned())
}

/// Options for `navigator.credentials.create`: JSON for the page's script.
pub async fn options(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    headers: HeaderMap,
    Form(form): Form<CsrfOnly>,
) -> Response {
    if !csrf::verify(&state, &headers, form.csrf.as_deref()) {
        return json_error(StatusCode::FORBIDDEN, "This page has expired. Reload it and try again.");
    }
    let (_, user) = match recent_session(&state, &tenant, &headers).await {
        Ok(found) => found,
        Err(_) => {
            let url = format!("{}/login?return_to=security", state.base());
            return (
                StatusCode::FORBIDDEN,
                Json(serde_json::json!({ "error": "Please confirm it's you first.", "reauthenticate": url })),
            )
                .into_response();
        }
    };
    let (options, registration) = match registration_options(&state, &tenant, &user).await {
        Ok(started) => started,
        Err(r) => return r,
    };
    match ceremony::put(&state, &tenant, &headers, Purpose::PasskeyRegistration, &registration).await {
        Ok(cookie) => crate::browser::json::options_response(options, cookie),
        Err(e) => json_error(StatusCode::INTERNAL_SERVER_ERROR, &e),
    }
}

/// A new passkey's creation options for `user` (their WebAuthn user handle, made on first
/// use; their passkeys excluded), and the state to finish it with; or the JSON error.
pub(crate) async fn registration_options(
    state: &AppState,
    tenant: &latchkey_core::domain::TenantId,
    user: &latchkey_core::records::User,
) -> Result<(serde_json::Value, PasskeyRegistration), Response> {
    let candidate = new_user_handle().to_string();
    let handle = match state.services.factors().webauthn_user_id(tenant, &user.sub, &candidate).await {
        Ok(h) => h,
        Err(e) => return Err(json_error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string())),
    };
    let Ok(handle) = Uuid::parse_str(&handle) else {
        return Err(json_error(StatusCode::INTERNAL_SERVER_ERROR, "the stored user handle is damaged"));
    };
    let existing = state.services.factors().passkeys(tenant, &user.sub).await.unwrap_or_default();
    let shown = super::known_as(state, user);
    let display = user.name.as_ref().map_or_else(|| shown.clone(), |n| n.as_str().to_owned());
    state
        .passkeys
        .start_registration(handle, &shown, &display, &existing)
        .map_err(|e| json_error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()))
}

#[derive(Deserialize)]
pub struct AddForm {
    csrf: Option<String>,
    credential: Option<String>,
    name: Option<String>,
}

pub async fn add(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    headers: HeaderMap,
    Form(form): Form<AddForm>,
) -> Response {
    let (session, user) = match super::recent_form(&state, &tenant, &headers, form.csrf.as_deref()).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let Some(name) = passkey_name(form.name.as_deref(), "Passkey") else {
        return super::redirect_error(&state, "bad_name");
    };
    let Some(registration) =
        ceremony::take::<PasskeyRegistration>(&state, &tenant, &headers, Purpose::PasskeyRegistration).await
    else {
        return PageError::new(StatusCode::BAD_REQUEST, "The passkey request expired. Please try again.")
            .into_response();
    };
    let passkey =
        match state.passkeys.finish_registration(form.credential.as_deref().unwrap_or(""), &registration, &name) {
            Ok(p) => p,
            Err(e) => {
                tracing::info!(error = %e, "passkey registration refused");
                return PageError::new(StatusCode::BAD_REQUEST, "That passkey could not be added. Please try again.")
                    .into_response();
            }
        };
    match state.services.factors().add_passkey(&tenant, &user.sub, passkey, &Actor::User(session.sub.to_string())).await
    {
        Ok(()) => back(&state, "passkey_added"),
        Err(ServiceError::Conflict(_)) => {
            PageError::new(StatusCode::CONFLICT, "That passkey is already registered.").into_response()
        }
        Err(e) => failure(e),
    }
}

#[derive(Deserialize)]
pub struct PasskeyForm {
    csrf: Option<String>,
    id: Option<String>,
    name: Option<String>,
}

pub async fn rename(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    headers: HeaderMap,
    Form(form): Form<PasskeyForm>,
) -> Response {
    if !csrf::verify(&state, &headers, form.csrf.as_deref()) {
        return csrf::expired_form();
    }
    let Some(session) = crate::sessions::current(&state, &tenant, &headers).await else {
        return super::sign_in_first(&state);
    };
    let Some(name) = passkey_name(form.name.as_deref(), "") else { return super::redirect_error(&state, "bad_name") };
    let id = form.id.unwrap_or_default();
    match state
        .services
        .factors()
        .rename_passkey(&tenant, &session.sub, &id, &name, &Actor::User(session.sub.to_string()))
        .await
    {
        Ok(()) => back(&state, "passkey_renamed"),
        Err(ServiceError::NotFound(_)) => super::redirect_error(&state, "not_found"),
        Err(e) => failure(e),
    }
}

pub async fn remove(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    headers: HeaderMap,
    Form(form): Form<PasskeyForm>,
) -> Response {
    let (session, user) = match super::recent_form(&state, &tenant, &headers, form.csrf.as_deref()).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let id = form.id.unwrap_or_default();
    let actor = Actor::User(session.sub.to_string());
    match state.services.factors().remove_passkey(&tenant, &user.sub, &id, &session.sid, &actor).await {
        Ok(()) => back(&state, "passkey_removed"),
        Err(e) if super::is_blocked(&e) => failure(e),
        Err(ServiceError::Invalid(_)) => super::redirect_error(&state, "last_method"),
        Err(ServiceError::NotFound(_)) => super::redirect_error(&state, "not_found"),
        Err(e) => failure(e),
    }
}
