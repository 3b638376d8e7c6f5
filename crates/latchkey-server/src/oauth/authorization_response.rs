//! The authorization response (RFC 6749 §4.1.2, RFC 9207 `iss`): the code, or an error,
//! sent back to the client by redirect or form post once the client and its redirect URI
//! are trusted; an error page before that.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use latchkey_core::crypto::random;
use latchkey_core::domain::{ClientId, TenantId};
use latchkey_core::records::{BrowserSession, Client, NewCode};
use url::Url;

use super::grant::GrantData;
use super::parked::{AuthorizationRequest, ResponseMode, forget_pending};
use super::token::authorization_code::CODE_PURPOSE;
use crate::pages::PageError;
use crate::sessions;
use crate::state::AppState;

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
    let code = random::token_string::<32>();
    let grant_id = random::token_string::<16>();
    let data = GrantData {
        sub: session.sub.to_string(),
        scope: request.scope.clone(),
        redirect_uri: request.redirect_uri.clone(),
        code_challenge: request.code_challenge.clone(),
        nonce: request.nonce.clone(),
        auth_time: session.auth_time.secs(),
        amr: session.amr.clone(),
        acr: session.acr.clone(),
        sid: session.sid.clone(),
        requested_claims: request.claims.clone(),
        legacy_claims: None,
        audience: request.audience.clone(),
    };
    let new = match (serde_json::to_string(&data), ClientId::parse(&request.client_id)) {
        (Ok(grant_data), Ok(client_id)) => NewCode {
            code_hash: state.token_hasher.hash(CODE_PURPOSE, &code),
            grant_id,
            client_id,
            grant_data,
            expires_at: state.clock.now().plus(state.config.tokens.authorization_code_lifetime),
            session: Some(sessions::signed_into(session, client)),
        },
        _ => {
            return fail(state, Failure::Page(StatusCode::INTERNAL_SERVER_ERROR, PageError::INTERNAL.into()));
        }
    };
    if let Err(e) = state.services.tokens().insert_code(tenant, &new).await {
        tracing::error!(error = %e, "cannot store code");
        return fail(state, Failure::Redirect(target_of(request), "server_error", "internal error".into()));
    }
    let browser_state = sessions::browser_state(state, &session.sid);
    let session_state = sessions::session_state(&request.client_id, &request.redirect_uri, &browser_state);
    respond(state, &target_of(request), vec![("code".into(), code), ("session_state".into(), session_state)])
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
