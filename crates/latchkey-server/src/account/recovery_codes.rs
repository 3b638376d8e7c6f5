//! Recovery codes: ten single-use codes, shown once (with a download of the same text),
//! stored only as keyed hashes; regenerating makes the old ones useless.

use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use latchkey_core::crypto::{TokenHash, recovery_code};
use latchkey_core::domain::SubjectId;
use latchkey_core::records::Actor;
use serde::Deserialize;

use super::failure;
use crate::edge::Tenant;
use crate::state::AppState;
use latchkey_core::domain::TenantId;

/// Fresh codes and their hashes.
pub fn generate(state: &AppState) -> (Vec<String>, Vec<TokenHash>) {
    let codes = recovery_code::generate();
    let hashes = codes.iter().map(|c| state.token_hasher.hash(recovery_code::PURPOSE, c)).collect();
    (codes, hashes)
}

/// Uses up one of the user's codes; `false` if it is not an unused code of theirs.
pub async fn use_code(state: &AppState, tenant: &TenantId, sub: &SubjectId, typed: &str) -> bool {
    let Some(code) = recovery_code::normalize(typed) else { return false };
    let hash = state.token_hasher.hash(recovery_code::PURPOSE, &code);
    state.services.factors().use_recovery_code(tenant, sub, &hash, &Actor::User(sub.to_string())).await.unwrap_or(false)
}

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
    let (codes, hashes) = generate(&state);
    if let Err(e) = state
        .services
        .factors()
        .replace_recovery_codes(&tenant, &user.sub, &hashes, &Actor::User(session.sub.to_string()))
        .await
    {
        return failure(e);
    }
    show(&state, &codes, &format!("{}/account/security", state.base()), false)
}
