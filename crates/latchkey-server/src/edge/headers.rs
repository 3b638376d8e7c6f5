//! Security headers on every response. A page that needs more (a form posting to a client,
//! a frame) sets its own `Content-Security-Policy`, which is then left alone.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::state::AppState;

/// No inline script anywhere; framing refused unless a page allows it.
pub const DEFAULT_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Where a form on our page may end up after redirects: browsers apply `form-action` to the
/// whole redirect chain, so a sign-in that ends at the client's redirect URI must allow it.
pub fn redirect_source(uri: &str) -> Option<String> {
    let url = url::Url::parse(uri).ok()?;
    match url.scheme() {
        "http" | "https" => Some(url.origin().ascii_serialization()),
        // A native app's private-use scheme (RFC 8252 §7.1) has no origin: allow the scheme.
        scheme => Some(format!("{scheme}:")),
    }
}

/// The default policy with `form-action` widened to `'self'` plus `extra` sources.
pub fn csp_allowing_forms_to(extra: &[String]) -> String {
    let sources: Vec<&str> = extra.iter().map(String::as_str).collect();
    DEFAULT_CSP.replace("form-action 'self'", format!("form-action 'self' {}", sources.join(" ")).trim_end())
}

pub fn set_csp(response: &mut Response, csp: &str) {
    if let Ok(v) = HeaderValue::from_str(csp) {
        response.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
    }
}

pub async fn security_headers(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    // A page whose own policy lets some origins frame it (the check-session iframe) must
    // not be denied by the older header.
    let framable = h
        .get(header::CONTENT_SECURITY_POLICY)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|csp| csp.contains("frame-ancestors") && !csp.contains("frame-ancestors 'none'"));
    let mut set = |name: header::HeaderName, value: &'static str| {
        if !h.contains_key(&name) {
            h.insert(name, HeaderValue::from_static(value));
        }
    };
    set(header::CONTENT_SECURITY_POLICY, DEFAULT_CSP);
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(header::REFERRER_POLICY, "no-referrer");
    if !framable {
        set(header::X_FRAME_OPTIONS, "DENY");
    }
    if state.https {
        set(header::STRICT_TRANSPORT_SECURITY, "max-age=31536000; includeSubDomains");
    }
    response
}
