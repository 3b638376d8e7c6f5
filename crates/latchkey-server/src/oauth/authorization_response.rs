//! The authorization response (RFC 6749 §4.1.2, RFC 9207 `iss`): the code, or an error,
//! sent back to the client by redirect or form post once the client and its redirect URI
//! are trusted; an error page before that.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use latchkey_core::domain::TenantId;
use latchkey_core::records::{BrowserSession, Client};
use url::Url;

use super::parked::{AuthorizationRequest, ResponseMode, forget_pending};
use crate::pages::PageError;
use crate::sessions;
use crate::state::AppState;
use latchkey_service::grants::CodeRequest;

/// Where errors and results go once client and redirect URI are trusted.
pub struct Target {
    pub redirect_uri: String,
    pub state: Option<String>,
    pub mode: ResponseMode,
}

pub enum Failure {
    Page(StatusCode, String),
    Redirect(Target, &'static str, String),
}

pub fn clone_target(t: &Target) -> Target {
    Target { redirect_uri: t.redirect_uri.clone(), state: t.state.clone(), mode: t.mode }
}

pub fn target_of(r: &AuthorizationRequest) -> Target {
    Target { redirect_uri: r.redirect_uri.clone(), state: r.state.clone(), mode: r.response_mode }
}

/// Issues the code and sends the browser back to the client.
pub async fn issue_code(
    state: &AppState,
    tenant: &TenantId,
    session: &BrowserSession,
    request: &AuthorizationRequest,
    client: &Client,
    pending_id: Option<String>,
) -> Response {
    if let Some(id) = &pending_id {
        forget_pending(state, tenant, id).await;
    }
    let issued = state
        .services
        .grants()
        .issue_code(
            tenant,
            session,
            client,
            CodeRequest {
                scope: &request.scope,
                redirect_uri: &request.redirect_uri,
                code_challenge: request.code_challenge.as_deref(),
                nonce: request.nonce.as_deref(),
                requested_claims: request.claims.as_ref(),
                audience: &request.audience,
            },
        )
        .await;
    let code = match issued {
        Ok(code) => code,
        Err(latchkey_service::grants::GrantError::NotAdmitted) => return no_access(state, client, Some(session)).await,
        Err(e) => {
            tracing::error!(error = %e, "cannot store code");
            return fail(state, Failure::Redirect(target_of(request), "server_error", "internal error".into()));
        }
    };
    let browser_state = sessions::browser_state(state, &session.sid);
    let session_state = sessions::session_state(&request.client_id, &request.redirect_uri, &browser_state);
    respond(state, &target_of(request), vec![("code".into(), code), ("session_state".into(), session_state)])
}

/// The user signed in but lacks a role the client requires. Nothing goes back to the client.
pub async fn no_access(state: &AppState, client: &Client, session: Option<&BrowserSession>) -> Response {
    let base = crate::state::base_path(&state.issuer);
    let user = match session {
        Some(s) => state.caches.user(&s.sub).await.ok().flatten(),
        None => None,
    };
    let who = user.map(|u| format!(" as {}", u.username)).unwrap_or_default();
    let message = format!(
        "No access to this application: you are signed in{who}, and {} requires a role your account does not hold. \
         Ask an administrator for access, or sign out on your account page ({base}/account) and sign in as someone else.",
        client.name
    );
    PageError::new(StatusCode::FORBIDDEN, message).into_response()
}

/// Sends a redirectable error to the client.
pub fn deny(state: &AppState, request: &AuthorizationRequest, error: &'static str, description: &str) -> Response {
    fail(state, Failure::Redirect(target_of(request), error, description.into()))
}

pub fn fail(state: &AppState, failure: Failure) -> Response {
    match failure {
        Failure::Page(status, message) => PageError::new(status, message).into_response(),
        Failure::Redirect(target, error, description) => {
            respond(state, &target, vec![("error".into(), error.into()), ("error_description".into(), description)])
        }
    }
}

/// The authorization response, with `state` and `iss` (RFC 9207), by query or form post.
fn respond(state: &AppState, target: &Target, mut fields: Vec<(String, String)>) -> Response {
    if let Some(s) = &target.state {
        fields.push(("state".into(), s.clone()));
    }
    fields.push(("iss".into(), state.issuer.to_string()));
    match target.mode {
        ResponseMode::Query => {
            let Ok(mut url) = Url::parse(&target.redirect_uri) else {
                return PageError::new(StatusCode::BAD_REQUEST, "The redirect_uri is not a URL.").into_response();
            };
            url.query_pairs_mut().extend_pairs(fields.iter());
            let mut response = StatusCode::SEE_OTHER.into_response();
            if let Ok(v) = HeaderValue::from_str(url.as_str()) {
                response.headers_mut().insert(header::LOCATION, v);
            }
            response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        ResponseMode::FormPost => {
            let origin = Url::parse(&target.redirect_uri).map(|u| u.origin().ascii_serialization()).unwrap_or_default();
            let base = crate::state::base_path(&state.issuer);
            let mut response = state.templates.render(
                StatusCode::OK,
                "form_post.html",
                minijinja::context! { title => "Returning", base, action => target.redirect_uri, fields },
            );
            // The form posts to the client, so form-action must allow its origin.
            crate::edge::headers::set_csp(&mut response, &crate::edge::headers::csp_allowing_forms_to(&[origin]));
            response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
    }
}
