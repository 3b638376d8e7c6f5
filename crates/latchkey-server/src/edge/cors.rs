//! CORS for the endpoints browser apps call. Allowed origins are the web origins of the
//! registered clients' redirect URIs (a preflight carries no client id, so the union), never
//! `*`, and credentials are not allowed.

use axum::http::{HeaderValue, Method, header};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::state::AppState;

pub fn layer(state: &AppState) -> CorsLayer {
    let caches = state.caches.clone();
    CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(move |origin: &HeaderValue, _| {
            origin.to_str().is_ok_and(|o| caches.web_origins().contains(o))
        }))
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .max_age(std::time::Duration::from_secs(600))
}
