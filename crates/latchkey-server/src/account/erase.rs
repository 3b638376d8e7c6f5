//! "Delete my account" (GDPR Art. 17): the page that says what goes, and erasing it. A
//! recent sign-in and the username typed again are needed; afterwards this browser is
//! signed out and the page shows the receipt (what kinds of data went, when), which holds
//! none of the erased data.

use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use latchkey_core::records::Actor;
use serde::Deserialize;

use crate::account_forms::recent;
use crate::browser::{cookies, csrf};
use crate::edge::Tenant;
use crate::pages::PageError;
use crate::sessions;
use crate::state::AppState;

fn sign_in_first(state: &AppState) -> Response {
    Redirect::to(&format!("{}/login?return_to=delete-account", state.base())).into_response()
}

fn no_store(mut response: Response) -> Response {
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `GET /account/delete`: what deleting the account erases, and the form.
pub async fn page(State(state): State<AppState>, Tenant(tenant): Tenant, headers: HeaderMap) -> Response {
    let Some(session) = sessions::current(&state, &tenant, &headers).await else { return sign_in_first(&state) };
    let Ok(Some(user)) = state.services.users().by_sub(&tenant, &session.sub).await else {
        return sign_in_first(&state);
    };
    render_form(&state, &headers, user.username.as_str(), recent(&state, &session), None)
}

fn render_form(state: &AppState, headers: &HeaderMap, username: &str, recent: bool, error: Option<&str>) -> Response {
    let (csrf, set_cookie) = csrf::token(state, headers);
    let status = if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    let mut response = state.templates.render(
        status,
        "account_delete.html",
        minijinja::context! { title => "Delete your account", base => state.base(), csrf, username, recent, error },
    );
    if let Some(c) = set_cookie {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    no_store(response)
}

#[derive(Deserialize)]
pub struct DeleteForm {
    csrf: Option<String>,
    confirm: Option<String>,
}

/// `POST /account/delete`: erases the account once the username is typed again.
pub async fn erase(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    headers: HeaderMap,
    Form(form): Form<DeleteForm>,
) -> Response {
    if !csrf::verify(&state, &headers, form.csrf.as_deref()) {
        return csrf::expired_form();
    }
    let Some(session) = sessions::current(&state, &tenant, &headers).await else { return sign_in_first(&state) };
    if !recent(&state, &session) {
        return sign_in_first(&state);
    }
    let Ok(Some(user)) = state.services.users().by_sub(&tenant, &session.sub).await else {
        return sign_in_first(&state);
    };
    let typed = form.confirm.as_deref().unwrap_or_default().trim().to_lowercase();
    if typed != user.username.as_str().to_lowercase() {
        let error = "Type your username exactly as shown to confirm. Nothing was deleted.";
        return render_form(&state, &headers, user.username.as_str(), true, Some(error));
    }
    let actor = Actor::User(session.sub.to_string());
    let receipt = match state.services.erasure().erase(&tenant, &session.sub, &actor).await {
        Ok(receipt) => receipt,
        Err(
            latchkey_service::ServiceError::Forbidden(m)
            | latchkey_service::ServiceError::Invalid(m)
            | latchkey_service::ServiceError::Conflict(m),
        ) => {
            return no_store(PageError::new(StatusCode::FORBIDDEN, m).into_response());
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot erase an account");
            return PageError::internal().into_response();
        }
    };
    let removed: Vec<minijinja::Value> = receipt
        .removed
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(kind, n)| minijinja::context! { kind => kind.replace('_', " "), count => n })
        .collect();
    let mut response = state.templates.render(
        StatusCode::OK,
        "account_deleted.html",
        minijinja::context! {
            title => "Your account is deleted", base => state.base(), receipt_id => receipt.id,
            erased_at => receipt.erased_at.to_rfc3339(), removed,
        },
    );
    let clear = vec![cookies::clear(state.https, sessions::SESSION_COOKIE)];
    sessions::set_cookies(&mut response, clear);
    no_store(response)
}
