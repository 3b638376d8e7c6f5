//! The email address on the security page: changing it (the new address replaces the old
//! one once its link is confirmed) and sending a verification link again.

use axum::Form;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use latchkey_core::domain::Email;
use latchkey_core::records::Actor;
use latchkey_service::email_verification::AddressChange;
use serde::Deserialize;

use super::{back, failure, redirect_error, refused};
use crate::browser::csrf;
use crate::edge::{ClientIp, Tenant};
use crate::sessions;
use crate::state::AppState;

#[derive(Deserialize)]
pub struct EmailForm {
    csrf: Option<String>,
    email: Option<String>,
}

/// `POST /account/email`: a new address (a recent sign-in needed).
pub async fn change(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Form(form): Form<EmailForm>,
) -> Response {
    let (session, user) = match super::recent_form(&state, &tenant, &headers, form.csrf.as_deref()).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let Ok(address) = Email::parse(form.email.as_deref().unwrap_or_default().trim()) else {
        return redirect_error(&state, "bad_email");
    };
    let actor = Actor::User(session.sub.to_string());
    match state.services.email_verification().change_address(&tenant, &user, address, ip, &actor).await {
        Ok(AddressChange::LinkSent) => back(&state, "email_link_sent"),
        Ok(AddressChange::Replaced) => back(&state, "email_replaced"),
        Ok(AddressChange::Unchanged) => back(&state, "email_unchanged"),
        Err(e) => refused(e),
    }
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: Option<String>,
}

/// `POST /account/email/verify`: the link for the account's unverified address, again.
pub async fn resend(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    if !csrf::verify(&state, &headers, form.csrf.as_deref()) {
        return csrf::expired_form();
    }
    let Some(session) = sessions::current(&state, &tenant, &headers).await else { return super::sign_in_first(&state) };
    let user = match state.services.users().by_sub(&tenant, &session.sub).await {
        Ok(Some(u)) => u,
        Ok(None) => return super::sign_in_first(&state),
        Err(e) => return failure(e),
    };
    let Some(address) = user.email.clone() else { return redirect_error(&state, "no_email") };
    let actor = Actor::User(session.sub.to_string());
    match state.services.email_verification().send_link(&tenant, &user, &address, Some(ip), &actor).await {
        Ok(()) => back(&state, "email_link_sent"),
        Err(e) => refused(e),
    }
}
