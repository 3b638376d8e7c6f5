//! Recovery codes: ten single-use codes, shown once (with a download of the same text),
//! stored only as keyed hashes; regenerating makes the old ones useless.

use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use latchkey_core::records::Actor;
use serde::Deserialize;

use super::failure;
use crate::edge::Tenant;
use crate::state::AppState;

/// The page that shows new codes once, with the same text as a download.
pub fn show(state: &AppState, codes: &[String], next: &str, first_time: bool) -> Response {
    let text = format!(
        "Latchkey recovery codes for {}\nEach code works once. Keep them somewhere safe.\n\n{}\n",
        state.issuer,
        codes.join("\n")
    );
    let download = format!(
        "data:text/plain;charset=utf-8,{}",
        url::form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>().replace('+', "%20")
    );
    let mut response = state.templates.render(
        StatusCode::OK,
        "recovery_codes.html",
        minijinja::context! { title => "Your recovery codes", base => state.base(), codes, download, next, first_time },
    );
    // Shown once: never cached, never stored.
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: Option<String>,
}

pub async fn regenerate(
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
    let codes = match state.services.factors().regenerate_recovery_codes(&tenant, &user.sub, &actor).await {
        Ok(codes) => codes,
        Err(e) => return failure(e),
    };
    show(&state, &codes, &format!("{}/account/security", state.base()), false)
}
