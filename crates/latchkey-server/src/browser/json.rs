//! JSON answers to the pages' own scripts (the WebAuthn ceremonies).

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// A JSON error for the script that asked for options.
pub fn json_error(status: StatusCode, message: &str) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

/// Options for the page's script, with the ceremony cookie when the browser had none.
pub fn options_response(options: serde_json::Value, cookie: Option<axum::http::HeaderValue>) -> Response {
    let mut response = Json(options).into_response();
    if let Some(c) = cookie {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    response.headers_mut().insert(header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
    response
}
