//! Liveness, readiness and metrics.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq as _;

use crate::edge::ClientIp;
use crate::state::AppState;

/// Alive: the process answers.
pub async fn healthz() -> impl IntoResponse {
    (StatusCode::OK, axum::Json(serde_json::json!({"status": "ok"})))
}

/// Ready: the database answers and signing keys are loaded. The mail relay's and the SMS
/// API's circuits are shown (`mail`, `sms`: `ok`, `delayed` while open, `off` without the
/// section) but never make the node unready: messages wait in the outbox.
pub async fn readyz(State(state): State<AppState>) -> Response {
    let database = state.services.system().ping().await.is_ok();
    let keys = state.keys.algorithms().iter().all(|alg| state.keys.active(*alg).is_some());
    let status = if database && keys { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let outbox = state.services.outbox();
    let circuit = |enabled: bool, delayed: bool| match (enabled, delayed) {
        (false, _) => "off",
        (true, true) => "delayed",
        (true, false) => "ok",
    };
    let mail = circuit(outbox.mail_enabled(), outbox.mail_delayed());
    let sms = circuit(outbox.sms_enabled(), outbox.sms_delayed());
    let body = serde_json::json!({
        "status": if status == StatusCode::OK { "ready" } else { "not_ready" },
        "database": if database { "ok" } else { "unreachable" },
        "signing_keys": if keys { "loaded" } else { "missing" },
        "mail": mail,
        "sms": sms,
    });
    (status, axum::Json(body)).into_response()
}

/// Prometheus text format, for clients in `metrics.allowed_networks` or with the token.
pub async fn metrics(State(state): State<AppState>, ClientIp(ip): ClientIp, headers: HeaderMap) -> Response {
    let from_allowed_network = state.config.metrics.allowed_networks.iter().any(|n| n.contains(&ip));
    let with_token = match (&state.metrics_token, bearer(&headers)) {
        (Some(expected), Some(given)) => bool::from(expected.as_bytes().ct_eq(given.as_bytes())),
        _ => false,
    };
    if !from_allowed_network && !with_token {
        return (
            StatusCode::FORBIDDEN,
            axum::Json(serde_json::json!({"error": "forbidden", "error_description": "metrics are not available to this client"})),
        )
            .into_response();
    }
    let Some(handle) = &state.metrics else {
        return (StatusCode::SERVICE_UNAVAILABLE, "metrics recorder unavailable\n").into_response();
    };
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], handle.render()).into_response()
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    crate::edge::authorization::bearer(headers).ok().flatten()
}
