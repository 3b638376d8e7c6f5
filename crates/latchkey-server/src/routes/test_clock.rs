//! Test-only: lets a test that drives a running server move its clock. Compiled only with the
//! `test-clock` feature, which a release build refuses (see lib.rs).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::state::AppState;

#[derive(Deserialize)]
pub struct Advance {
    seconds: u64,
}

pub async fn advance(State(state): State<AppState>, axum::Form(form): axum::Form<Advance>) -> Response {
    state.clock.advance(std::time::Duration::from_secs(form.seconds));
    (StatusCode::OK, axum::Json(serde_json::json!({"now": state.clock.now().secs()}))).into_response()
}
