//! The JWKS: active, next and still-published retired keys, cached by clients for
//! `keys.jwks_cache_lifetime` (the next key is published at least that long before use).

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::state::AppState;

pub async fn jwks(State(state): State<AppState>) -> Response {
    let body = state.keys.jwks_json();
    let max_age = format!("public, max-age={}", state.config.keys.jwks_cache_lifetime.as_secs());
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/jwk-set+json"));
    if let Ok(v) = HeaderValue::from_str(&max_age) {
        headers.insert(header::CACHE_CONTROL, v);
    }
    response
}
