//! `Idempotency-Key` on creates: the first response is kept 24 hours per caller and sent
//! again for a retry with the same body; the same key with another body is 422, and one
//! whose create is still running is 409.

use std::future::Future;

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use latchkey_core::records::IdempotentClaim;
use latchkey_service::admin::AdminCaller;

use super::problem::{Kind, Problem};
use super::request::idempotency_key;
use crate::state::AppState;

const REPLAYED: HeaderName = HeaderName::from_static("idempotency-replayed");

/// What a create made: where it is and how it is shown.
pub struct Created {
    pub location: String,
    pub body: String,
    pub etag: Option<String>,
    /// What a replay answers instead of `body`, when that holds a secret to show once.
    pub replay_body: Option<String>,
}

fn response(status: StatusCode, location: Option<&str>, etag: Option<&str>, body: String) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    for (name, value) in [(header::LOCATION, location), (header::ETAG, etag)] {
        if let Some(v) = value.and_then(|v| HeaderValue::from_str(v).ok()) {
            headers.insert(name, v);
        }
    }
    response
}

/// Runs `create` once per `Idempotency-Key` (when one is sent) and answers 201. `what` names
/// the operation and its target (`POST /users/SUB/api-keys`): the same key for another one,
/// or another body, is a key reused.
pub async fn idempotent_create(
    state: &AppState,
    caller: &AdminCaller,
    headers: &HeaderMap,
    what: &str,
    body: &[u8],
    create: impl Future<Output = Result<Created, Problem>>,
) -> Result<Response, Problem> {
    let Some(key) = idempotency_key(headers)? else {
        let made = create.await?;
        return Ok(response(StatusCode::CREATED, Some(&made.location), made.etag.as_deref(), made.body));
    };
    let tenant = state.services.request_tenant();
    let admin = state.services.admin();
    let who = caller.key();
    let mut request = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    request.update(what.as_bytes());
    request.update(b"\n");
    request.update(body);
    let hash = hex::encode(request.finish().as_ref());
    match admin.claim_idempotency_key(&tenant, &who, &key, &hash).await? {
        IdempotentClaim::Fresh => {}
        IdempotentClaim::Running { request_hash } if request_hash == hash => {
            return Err(Problem::new(
                Kind::IdempotencyKeyInUse,
                "a request with this Idempotency-Key is still running",
            ));
        }
        IdempotentClaim::Done { request_hash, status, location, body } if request_hash == hash => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::CREATED);
            let mut replay = response(status, location.as_deref(), None, body);
            replay.headers_mut().insert(REPLAYED, HeaderValue::from_static("true"));
            return Ok(replay);
        }
        IdempotentClaim::Running { .. } | IdempotentClaim::Done { .. } => {
            return Err(Problem::new(
                Kind::IdempotencyKeyReused,
                "this Idempotency-Key was used for a request with another body; use a new key",
            ));
        }
    }
    match create.await {
        Ok(made) => {
            let kept = admin
                .keep_idempotent_response(
                    &tenant,
                    &who,
                    &key,
                    StatusCode::CREATED.as_u16(),
                    Some(&made.location),
                    made.replay_body.as_ref().unwrap_or(&made.body),
                )
                .await;
            if let Err(e) = kept {
                // Free it rather than leave it "running": a retry then makes the thing again
                // (or is told it exists), never a day of 409s.
                tracing::error!(error = %e, "admin API: cannot keep an idempotent response");
                if let Err(e) = admin.release_idempotency_key(&tenant, &who, &key).await {
                    tracing::error!(error = %e, "admin API: cannot release an idempotency key");
                }
            }
            Ok(response(StatusCode::CREATED, Some(&made.location), made.etag.as_deref(), made.body))
        }
        Err(problem) => {
            // Nothing was made: the key is free for a corrected request.
            if let Err(e) = admin.release_idempotency_key(&tenant, &who, &key).await {
                tracing::error!(error = %e, "admin API: cannot release an idempotency key");
            }
            Err(problem)
        }
    }
}
