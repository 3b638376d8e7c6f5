//! OIDC Session Management 1.0 §3.2: the OP iframe (`check_session_iframe`). A relying
//! party frames it and posts `client_id session_state`; the page's script recomputes the
//! session state from the browser-state cookie and answers `unchanged`, `changed` or
//! `error`. Only this page may be framed, and only by registered client origins.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::browser::cookies;
use crate::edge::Tenant;
use crate::sessions::BROWSER_STATE_COOKIE;
use crate::state::AppState;

/// The CSP source that lets a client at `redirect` frame the page: its web origin, and for
/// a native client's loopback redirect URI any port (RFC 8252 §7.3 lets it pick one).
fn frame_source(redirect: &latchkey_core::domain::RedirectUri) -> Option<String> {
    let origin = redirect.web_origin()?;
    let url = url::Url::parse(redirect.as_str()).ok()?;
    let loopback = url.scheme() == "http"
        && (matches!(url.host(), Some(url::Host::Ipv4(ip)) if ip.is_loopback())
            || matches!(url.host(), Some(url::Host::Ipv6(ip)) if ip.is_loopback()));
    if loopback {
        let host = url.host_str()?;
        return Some(format!("http://{host}:*"));
    }
    Some(origin)
}

pub async fn check_session_iframe(State(state): State<AppState>, Tenant(tenant): Tenant) -> Response {
    let clients = match state.services.clients().list(&tenant).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot list clients");
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    };
    let mut origins: Vec<String> =
        clients.iter().flat_map(|c| c.redirect_uris.iter().filter_map(frame_source)).collect();
    origins.sort();
    origins.dedup();
    let ancestors = if origins.is_empty() { "'none'".to_owned() } else { origins.join(" ") };
    let base = crate::state::base_path(&state.issuer);
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

#[cfg(test)]
mod tests {
    use latchkey_core::domain::{ClientKind, RedirectUri};

    #[test]
    fn loopback_clients_may_frame_from_any_port_others_from_their_origin() {
        let source = |raw: &str, kind| {
            super::frame_source(&RedirectUri::parse_for_registration(raw, kind).unwrap_or_else(|e| panic!("{e}")))
        };
        assert_eq!(source("http://127.0.0.1/cb", ClientKind::Public).as_deref(), Some("http://127.0.0.1:*"));
        assert_eq!(source("http://[::1]:8000/cb", ClientKind::Public).as_deref(), Some("http://[::1]:*"));
        let web = source("https://app.example.com:8443/cb", ClientKind::Confidential);
        assert_eq!(web.as_deref(), Some("https://app.example.com:8443"));
        assert_eq!(source("com.example.app:/cb", ClientKind::Public), None);
    }
}
