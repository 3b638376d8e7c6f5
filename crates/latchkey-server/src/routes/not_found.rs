//! The answer for every path no route claims.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use crate::pages::{request_id, wants_json};
use crate::state::AppState;

/// The 404 for every path no route claims.
pub async fn not_found(State(state): State<AppState>, uri: Uri, headers: HeaderMap) -> Response {
    if wants_json(&headers) {
        let body =
            serde_json::json!({"error": "not_found", "error_description": format!("no resource at {}", uri.path())});
        return (StatusCode::NOT_FOUND, axum::Json(body)).into_response();
    }
    state.pages.render(StatusCode::NOT_FOUND, "There is nothing at this address.", request_id(&headers).as_deref())
}
