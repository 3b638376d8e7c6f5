//! The authenticator app (TOTP, RFC 6238): enrol with a QR code drawn here as SVG or the
//! secret typed in, confirm with a code before it counts, remove. The secret is sealed
//! under the master key; each code's time step is accepted once.

use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use latchkey_core::records::Actor;
use latchkey_service::ServiceError;
use latchkey_service::factors::TotpConfirmation;
use serde::Deserialize;

use super::{back, failure, recent_session};
use crate::browser::csrf;
use crate::edge::Tenant;
use crate::pages::PageError;
use crate::state::AppState;
use latchkey_core::domain::TenantId;

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: Option<String>,
}

/// Starts (or restarts) enrolment with a fresh secret, then shows it.
pub async fn start(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    let (_, user) = match super::recent_form(&state, &tenant, &headers, form.csrf.as_deref()).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    match state.services.factors().begin_totp(&tenant, &user.sub).await {
        Ok(()) => Redirect::to(&format!("{}/account/totp", state.base())).into_response(),
        Err(ServiceError::Conflict(m)) => PageError::new(StatusCode::CONFLICT, m.to_string()).into_response(),
        Err(e) => failure(e),
    }
}

/// The enrolment page: the QR code, the secret as text, and the confirmation form.
pub async fn page(State(state): State<AppState>, Tenant(tenant): Tenant, headers: HeaderMap) -> Response {
    render(&state, &tenant, &headers, StatusCode::OK, None).await
}

async fn render(
    state: &AppState,
    tenant: &TenantId,
    headers: &HeaderMap,
    status: StatusCode,
    error: Option<&str>,
) -> Response {
    let (_, user) = match recent_session(state, tenant, headers).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let secret = match state.services.factors().pending_totp(tenant, &user.sub).await {
        Ok(Some(secret)) => secret,
        Ok(None) => return Redirect::to(&format!("{}/account/security", state.base())).into_response(),
        Err(e) => return failure(e),
    };
    let issuer = state.config.passkeys.rp_name.clone();
    let account = super::known_as(state, &user);
    let qr = match secret.qr_svg(&issuer, &account) {
        Ok(svg) => svg.find("<svg").map_or(svg.clone(), |at| svg[at..].to_owned()),
        Err(e) => return failure(e),
    };
    let (csrf, set_cookie) = csrf::token(state, headers);
    let mut response = state.templates.render(
        status,
        "totp_setup.html",
        minijinja::context! {
            title => "Set up an authenticator app", base => state.base(), csrf, error,
            qr => minijinja::Value::from_safe_string(qr), secret => secret.to_base32(),
            account, issuer,
        },
    );
    if let Some(c) = set_cookie {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    response.headers_mut().insert(header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
    response
}

#[derive(Deserialize)]
pub struct ConfirmForm {
    csrf: Option<String>,
    code: Option<String>,
}

pub async fn confirm(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    headers: HeaderMap,
    Form(form): Form<ConfirmForm>,
) -> Response {
    let (session, user) = match super::recent_form(&state, &tenant, &headers, form.csrf.as_deref()).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let code = form.code.as_deref().unwrap_or_default();
    let actor = Actor::User(session.sub.to_string());
    let confirmed = state.services.factors().confirm_totp_code(&tenant, &user.sub, code, &actor).await;
    match confirmed {
        Ok(TotpConfirmation::Confirmed) => back(&state, "totp_enabled"),
        Ok(TotpConfirmation::NothingPending) => {
            Redirect::to(&format!("{}/account/security", state.base())).into_response()
        }
        Ok(TotpConfirmation::WrongCode) => {
            render(
                &state,
                &tenant,
                &headers,
                StatusCode::BAD_REQUEST,
                Some("That code is not right. Check the time on your device and try the next code."),
            )
            .await
        }
        Err(e) => failure(e),
    }
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
    match state.services.factors().remove_totp(&tenant, &user.sub, &session.sid, &actor).await {
        Ok(()) => back(&state, "totp_removed"),
        Err(ServiceError::NotFound(_)) => back(&state, "totp_removed"),
        Err(e) => failure(e),
    }
}
