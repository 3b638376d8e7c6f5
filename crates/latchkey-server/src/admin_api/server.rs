//! `/server`: what this server is and what it has turned on. Never a secret, a path or an
//! address of a backing service.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use latchkey_core::domain::AdminScope;
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::Caller;
use super::problem::{Problem, ProblemBody};
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct ServerSummary {
    pub version: &'static str,
    /// `sqlite` or `postgres`.
    pub backend: &'static str,
    pub issuer: String,
    pub features: Features,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Features {
    /// `closed`, `open` or `invite`.
    #[schema(value_type = String)]
    pub registration: serde_json::Value,
    pub mail: bool,
    pub sms: bool,
    pub forward_auth: bool,
    /// The ids of the upstream identity providers.
    pub federation_providers: Vec<String>,
    pub require_mfa: bool,
    pub require_passkey: bool,
}

#[utoipa::path(get, path = "/server", tag = "server",
    description = "The server's version, database backend, issuer and enabled features. Needs `admin:server:read`.",
    responses((status = 200, body = ServerSummary), (status = "4XX", body = ProblemBody, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn summary(State(state): State<AppState>, caller: Caller) -> Result<Response, Problem> {
    caller.require(AdminScope::ServerRead)?;
    let config = &state.config;
    let summary = ServerSummary {
        version: env!("CARGO_PKG_VERSION"),
        backend: state.services.system().backend(),
        issuer: state.issuer.to_string(),
        features: Features {
            registration: serde_json::to_value(config.registration.mode).unwrap_or_default(),
            mail: config.mail.is_some(),
            sms: config.sms.is_some(),
            forward_auth: config.forward_auth.rules.is_some(),
            federation_providers: config.federation.providers.keys().cloned().collect(),
            require_mfa: config.login.require_mfa,
            require_passkey: config.login.require_passkey,
        },
    };
    let mut response = axum::Json(summary).into_response();
    response.headers_mut().insert(axum::http::header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
    Ok(response)
}
