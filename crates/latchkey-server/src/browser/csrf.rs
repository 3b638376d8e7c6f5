//! CSRF protection for every form: a random, HttpOnly cookie, and in the form a keyed hash
//! of it. A cross-site page can neither read the cookie nor compute the hash.

use axum::http::HeaderMap;
use latchkey_core::crypto::random;
use subtle::ConstantTimeEq as _;

use super::cookies;
use crate::state::AppState;

pub const COOKIE: &str = "latchkey-csrf";

/// The token for this browser's forms, and the cookie to set when the browser has none yet.
pub fn token(state: &AppState, headers: &HeaderMap) -> (String, Option<axum::http::HeaderValue>) {
    let existing = cookies::get(headers, &cookies::name(state.https, COOKIE)).filter(|v| v.len() >= 32);
    let (secret, set) = match existing {
        Some(v) => (v.to_owned(), None),
        None => {
            let v = random::token_string::<32>();
            let header = cookies::set(state.https, COOKIE, &v, None);
            (v, Some(header))
        }
    };
    (state.token_hasher.hash("csrf", &secret).as_str().to_owned(), set)
}

/// Whether the submitted form token belongs to this browser's CSRF cookie.
pub fn verify(state: &AppState, headers: &HeaderMap, submitted: Option<&str>) -> bool {
    let (Some(secret), Some(submitted)) = (cookies::get(headers, &cookies::name(state.https, COOKIE)), submitted)
    else {
        return false;
    };
    let expected = state.token_hasher.hash("csrf", secret);
    expected.as_str().as_bytes().ct_eq(submitted.as_bytes()).into()
}

/// The page for a form whose CSRF token does not belong to this browser.
pub fn expired_form() -> axum::response::Response {
    use axum::response::IntoResponse as _;
    crate::pages::PageError::new(
        axum::http::StatusCode::BAD_REQUEST,
        "This form has expired. Go back, reload the page and try again.",
    )
    .into_response()
}
