//! HTML error pages in Latchkey's own look, each replaceable by a file named in
//! `[web.error_pages]`. JSON endpoints keep JSON errors.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use minijinja::Environment;

use latchkey_config::WebConfig;
use latchkey_service::ServiceError;

pub const STYLESHEET: &str = "body{font-family:system-ui,sans-serif;background:#f4f5f7;color:#1d2330;margin:0;\
display:flex;min-height:100vh;align-items:center;justify-content:center}\
.card{background:#fff;border-radius:12px;box-shadow:0 2px 12px rgba(0,0,0,.08);padding:2rem 2.5rem;max-width:32rem;width:100%}\
.notice{background:#eef4ff;border-radius:6px;padding:.5rem .8rem}.tag{font-size:.75rem;background:#eef;border-radius:4px;padding:0 .3rem}\
.passkeys{list-style:none;padding:0}.passkey{margin:.8rem 0}form.inline{display:inline}.qr svg{width:200px;height:200px}\
.codes code{font-size:1rem;letter-spacing:.05em}h2{font-size:1.1rem;margin:1.4rem 0 .4rem}\
.brand{font-weight:700;letter-spacing:.04em;color:#3b5bdb;margin:0 0 1rem}h1{margin:.2rem 0 1rem;font-size:1.5rem}\
.muted{color:#667085;font-size:.85rem}code{font-size:.85rem}\
label{display:block;margin:.8rem 0 .3rem;font-weight:600}\
input[type=text],input[type=password]{width:100%;box-sizing:border-box;padding:.6rem;border:1px solid #c9ced6;border-radius:6px;font-size:1rem}\
button{margin-top:1.2rem;padding:.6rem 1.2rem;border:0;border-radius:6px;background:#3b5bdb;color:#fff;font-size:1rem;cursor:pointer}\
button.secondary{background:#e9ecf2;color:#1d2330}.actions button{margin-right:.6rem}\
.error{background:#fdecec;color:#a61b1b;padding:.6rem .8rem;border-radius:6px}.scopes li{margin:.3rem 0}";

pub struct ErrorPages {
    env: Environment<'static>,
    custom: HashMap<u16, Arc<String>>,
    base: String,
}

impl ErrorPages {
    /// Reads every configured page now, so a missing file fails at start, not at the first error.
    pub fn load(web: &WebConfig, base_path: &str) -> Result<Self, String> {
        let mut env = Environment::new();
        env.add_template("layout.html", include_str!("../templates/layout.html")).map_err(|e| e.to_string())?;
        env.add_template("error.html", include_str!("../templates/error.html")).map_err(|e| e.to_string())?;
        let mut custom = HashMap::new();
        for (status, path) in &web.error_pages {
            let code: u16 = status.parse().map_err(|_| format!("web.error_pages.{status}: not a status"))?;
            let html = std::fs::read_to_string(path)
                .map_err(|e| format!("web.error_pages.{status}: cannot read {}: {e}", path.display()))?;
            custom.insert(code, Arc::new(html));
        }
        Ok(Self { env, custom, base: base_path.to_owned() })
    }

    pub fn render(&self, status: StatusCode, message: &str, request_id: Option<&str>) -> Response {
        if let Some(html) = self.custom.get(&status.as_u16()) {
            return (status, Html(html.as_str().to_owned())).into_response();
        }
        let title = status.canonical_reason().unwrap_or("Error");
        let body = self
            .env
            .get_template("error.html")
            .and_then(|t| t.render(minijinja::context! { title, message, request_id, base => self.base }))
            .unwrap_or_else(|_| format!("<!doctype html><title>{title}</title><h1>{title}</h1>"));
        (status, Html(body)).into_response()
    }
}

/// An error page as a handler's answer: a status and a message for people (never text
/// from the request, never a cause). Handlers return it, or `?` a [`ServiceError`] into
/// it; `app::render_error_pages` renders it with the operator's pages, so a handler needs
/// no access to them. The OAuth endpoints answer with `OAuthError` instead.
#[derive(Debug, Clone)]
pub struct PageError {
    pub status: StatusCode,
    pub message: Cow<'static, str>,
}

impl PageError {
    /// What a person is told when the failure is ours; the cause goes to the log.
    pub const INTERNAL: &'static str = "Something went wrong on our side.";

    pub fn new(status: StatusCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self { status, message: message.into() }
    }

    /// A failure on our side (the caller logs the cause).
    pub fn internal() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, Self::INTERNAL)
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let mut response = self.status.into_response();
        response.extensions_mut().insert(self);
        response
    }
}

impl From<ServiceError> for PageError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::NotFound(_) => Self::new(StatusCode::NOT_FOUND, "There is nothing at this address."),
            ServiceError::Conflict(m) | ServiceError::Invalid(m) | ServiceError::Stale(m) => {
                Self::new(StatusCode::BAD_REQUEST, m)
            }
            ServiceError::Forbidden(m) => Self::new(StatusCode::FORBIDDEN, m),
            ServiceError::Unavailable(cause) => {
                tracing::error!(error = %cause, "a service failed");
                Self::internal()
            }
        }
    }
}

/// Whether the caller wants JSON rather than a page (API clients, fetch()).
pub fn wants_json(headers: &HeaderMap) -> bool {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    accept.contains("application/json") && !accept.contains("text/html")
}

pub fn request_id(headers: &HeaderMap) -> Option<String> {
    headers.get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_owned)
}
