//! The phone number on the security page: a code texted to a new number, typed back here,
//! makes it the account's verified `phone_number` (needs `[sms]`).

use axum::Form;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;

use super::{back, refused};
use crate::edge::{ClientIp, Tenant};
use crate::state::AppState;

#[derive(Deserialize)]
pub struct NumberForm {
    csrf: Option<String>,
    number: Option<String>,
}

/// `POST /account/phone`: texts a code to a new number (a recent sign-in needed).
pub async fn send_code(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Form(form): Form<NumberForm>,
) -> Response {
    let (_, user) = match super::recent_form(&state, &tenant, &headers, form.csrf.as_deref()).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let number = form.number.unwrap_or_default();
    match state.services.phone_verification().send_code(&tenant, &user, &number, Some(ip)).await {
        Ok(_) => back(&state, "phone_code_sent"),
        Err(e) => refused(e),
    }
}

#[derive(Deserialize)]
pub struct CodeForm {
    csrf: Option<String>,
    code: Option<String>,
}

/// `POST /account/phone/confirm`: the code typed back.
pub async fn confirm(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    headers: HeaderMap,
    Form(form): Form<CodeForm>,
) -> Response {
    let (_, user) = match super::recent_form(&state, &tenant, &headers, form.csrf.as_deref()).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    match state.services.phone_verification().confirm(&tenant, &user, form.code.as_deref().unwrap_or_default()).await {
        Ok(_) => back(&state, "phone_verified"),
        Err(e) => refused(e),
    }
}
