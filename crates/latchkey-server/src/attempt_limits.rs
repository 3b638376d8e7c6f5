//! Sign-in limits at the edge: the limits themselves are the service's
//! (`latchkey_service::sign_in`); here is what a refused attempt looks like over HTTP.

use axum::http::{HeaderValue, header};
use axum::response::Response;

pub use latchkey_service::sign_in::{Account, Admission, Guess};

use crate::state::AppState;

/// Adds `Retry-After` (the failure window) to a refused answer.
pub fn retry_after(state: &AppState, response: &mut Response) {
    if let Ok(v) = HeaderValue::from_str(&state.config.login.failure_window.as_secs().to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
}

/// What a person sees when the counters cannot be reached.
pub const UNAVAILABLE: &str = "Signing in is not possible for a moment. Please try again shortly.";
