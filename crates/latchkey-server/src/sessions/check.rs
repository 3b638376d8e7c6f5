//! OIDC Session Management 1.0 §3.2: the OP iframe (`check_session_iframe`). A relying
//! party frames it and posts `client_id session_state`; the page's script recomputes the
//! session state from the browser-state cookie and answers `unchanged`, `changed` or
//! `error`. Only this page may be framed, and only by registered client origins.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use latchkey_core::domain::TenantId;

use crate::app::AppState;
use crate::login::cookies;
use crate::sessions::BROWSER_STATE_COOKIE;

pub async fn check_session_iframe(State(state): State<AppState>) -> Response {
    let clients = match state.store.list_clients(&TenantId::default_tenant()).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot list clients");
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    };
    let mut origins: Vec<String> =
        clients.iter().flat_map(|c| c.redirect_uris.iter().filter_map(|r| r.web_origin())).collect();
    origins.sort();
    origins.dedup();
    let ancestors = if origins.is_empty() { "'none'".to_owned() } else { origins.join(" ") };
    let base = crate::app::base_path(&state.issuer);
    let cookie = cookies::name(state.https, BROWSER_STATE_COOKIE);
    let mut response =
        state.templates.render(StatusCode::OK, "check_session.html", minijinja::context! { base, cookie });
    let csp = format!(
        "default-src 'none'; script-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors {ancestors}"
    );
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
