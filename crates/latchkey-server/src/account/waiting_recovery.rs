//! A recovery of the account waiting out its delay (someone used an emailed recovery link
//! and said every factor was lost): the security page shows it, and its owner stops it here.

use axum::Form;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;

use super::{back, failure};
use crate::browser::csrf;
use crate::edge::Tenant;
use crate::sessions;
use crate::state::AppState;

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: Option<String>,
}

/// `POST /account/recovery/cancel`.
pub async fn cancel(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    if !csrf::verify(&state, &headers, form.csrf.as_deref()) {
        return csrf::expired_form();
    }
    let Some(session) = sessions::current(&state, &tenant, &headers).await else { return super::sign_in_first(&state) };
    match state.services.recovery().cancel_for(&tenant, &session.sub, "security_page").await {
        Ok(_) => back(&state, "recovery_cancelled"),
        Err(e) => failure(e),
    }
}
