//! "Download your data" (GDPR Art. 15 and 20): the person's export as a JSON file. A recent
//! sign-in is needed (it holds everything about them); never cached.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use latchkey_core::records::Actor;

use crate::account_forms::recent;
use crate::edge::Tenant;
use crate::pages::PageError;
use crate::sessions;
use crate::state::AppState;

/// `GET /account/export`.
pub async fn download(State(state): State<AppState>, Tenant(tenant): Tenant, headers: HeaderMap) -> Response {
    let again = || Redirect::to(&format!("{}/login?return_to=export", state.base())).into_response();
    let Some(session) = sessions::current(&state, &tenant, &headers).await else { return again() };
    if !recent(&state, &session) {
        return again();
    }
    let actor = Actor::User(session.sub.to_string());
    let document = match state.services.data_export().of(&tenant, &session.sub, &actor).await {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(error = %e, "cannot export an account's data");
            return PageError::internal().into_response();
        }
    };
    let body = serde_json::to_vec_pretty(&document).unwrap_or_default();
    let mut response = (StatusCode::OK, body).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(header::CONTENT_DISPOSITION, HeaderValue::from_static("attachment; filename=\"my-data.json\""));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
