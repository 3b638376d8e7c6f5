//! The authenticator app (TOTP, RFC 6238): enrol with a QR code drawn here as SVG or the
//! secret typed in, confirm with a code before it counts, remove. The secret is sealed
//! under the master key; each code's time step is accepted once.

use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use latchkey_core::crypto::TotpSecret;
use latchkey_core::domain::SubjectId;
use latchkey_core::records::Actor;
use latchkey_service::ServiceError;
use serde::Deserialize;

use super::{back, failure, recent_session};
use crate::browser::csrf;
use crate::edge::Tenant;
use crate::pages::PageError;
use crate::state::AppState;
use latchkey_core::domain::TenantId;

fn aad(sub: &SubjectId) -> Vec<u8> {
    format!("totp:{sub}").into_bytes()
}

fn seal(state: &AppState, sub: &SubjectId, secret: &TotpSecret) -> String {
    hex::encode(state.master_key.seal(secret.as_bytes(), &aad(sub)))
}

fn open(state: &AppState, sub: &SubjectId, sealed: &str) -> Option<TotpSecret> {
    let bytes = hex::decode(sealed).ok()?;
    state.master_key.open(&bytes, &aad(sub)).ok().map(TotpSecret::from_bytes)
}

/// The step of a correct code for the user's confirmed authenticator app, used up here.
pub async fn verify_code(state: &AppState, tenant: &TenantId, sub: &SubjectId, code: &str) -> bool {
    let Ok(Some(factor)) = state.services.factors().totp(tenant, sub).await else { return false };
    if !factor.confirmed {
        return false;
    }
    let Some(secret) = open(state, sub, &factor.secret_sealed) else {
        tracing::error!(%sub, "cannot open a TOTP secret (wrong master key?)");
        return false;
    };
    let now = u64::try_from(state.clock.now().secs()).unwrap_or(0);
    match secret.check(code, now) {
        Some(step) => state.services.factors().use_totp_step(tenant, sub, step).await.unwrap_or(false),
        None => false,
    }
}

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
    let secret = TotpSecret::generate();
    match state.services.factors().start_totp(&tenant, &user.sub, &seal(&state, &user.sub, &secret)).await {
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
    let factor = match state.services.factors().totp(tenant, &user.sub).await {
        Ok(Some(f)) if !f.confirmed => f,
        Ok(_) => return Redirect::to(&format!("{}/account/security", state.base())).into_response(),
        Err(e) => return failure(e),
    };
    let Some(secret) = open(state, &user.sub, &factor.secret_sealed) else {
        return failure("cannot open the TOTP secret");
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
    let factor = match state.services.factors().totp(&tenant, &user.sub).await {
        Ok(Some(f)) if !f.confirmed => f,
        Ok(_) => return Redirect::to(&format!("{}/account/security", state.base())).into_response(),
        Err(e) => return failure(e),
    };
    let Some(secret) = open(&state, &user.sub, &factor.secret_sealed) else {
        return failure("cannot open the TOTP secret");
    };
    let now = u64::try_from(state.clock.now().secs()).unwrap_or(0);
    let step = secret.check(form.code.as_deref().unwrap_or_default(), now);
    let confirmed = match step {
        Some(step) => {
            state.services.factors().confirm_totp(&tenant, &user.sub, step, &Actor::User(session.sub.to_string())).await
        }
        None => Ok(false),
    };
    match confirmed {
        Ok(true) => back(&state, "totp_enabled"),
        Ok(false) => {
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
