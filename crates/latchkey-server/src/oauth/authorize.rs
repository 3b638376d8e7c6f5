//! The authorization endpoint (RFC 6749 §3.1, OAuth 2.1, OIDC Core §3.1.2), GET and POST.
//!
//! `client_id` and `redirect_uri` are validated first: until both are known good, every
//! error is a page, never a redirect (RFC 6749 §4.1.2.1; no open redirect). The request
//! then waits server-side, bound to the browser, while the user signs in and consents.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use latchkey_core::domain::{ClaimsRequest, ClientId, ClientKind, GrantType, TenantId};
use latchkey_core::records::Client;
use serde::Deserialize;

use super::authorization_response::{Failure, Target, clone_target, fail, issue_code, no_access, target_of};
use super::params::{AUTHORIZATION_PARAMETER_LIMITS, Params};
use super::parked::{AuthorizationRequest, ResponseMode, load_pending, park};
use crate::edge::ClientIp;
use crate::edge::Tenant;
use crate::pages::PageError;
use crate::sessions;
use crate::state::AppState;
use latchkey_core::domain::AuthLevel;
use latchkey_service::authorization::{Authorization, NextStep, Refusal};

/// The `error` and `error_description` of a refused request.
fn refused(target: &Target, refusal: Refusal) -> Failure {
    let (error, description) = match refusal {
        Refusal::InvalidRequest(d) => ("invalid_request", d),
        Refusal::InvalidScope(d) => ("invalid_scope", d),
        Refusal::AccessDenied(d) => ("access_denied", d.to_owned()),
    };
    Failure::Redirect(clone_target(target), error, description)
}

pub async fn authorize_get(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ip: ClientIp,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    run(&state, &tenant, ip, &headers, Params::from_query(query.as_deref())).await
}

pub async fn authorize_post(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ip: ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    run(&state, &tenant, ip, &headers, Params::from_form(&headers, &body)).await
}

async fn run(
    state: &AppState,
    tenant: &TenantId,
    ip: ClientIp,
    headers: &HeaderMap,
    params: Result<Params, super::params::ParamsError>,
) -> Response {
    let params = match params {
        Ok(p) => p,
        Err(e) => return fail(state, Failure::Page(StatusCode::BAD_REQUEST, e.to_string())),
    };
    match parse(state, tenant, &params).await {
        Ok((request, client)) => proceed(state, tenant, headers, request, &client, Waiting::New(ip)).await,
        Err(f) => fail(state, f),
    }
}

/// Exact match against `registered`, except RFC 8252 §7.3: for native (public) clients a
/// loopback IP redirect URI matches on any port (path and query still exact); never with a
/// fragment or user-info, never after normalising the path (`RedirectUri::matches`). Used
/// for redirect URIs and post-logout redirect URIs alike: a native app's loopback listener
/// gets whatever port the system gives it, at sign-in as at sign-out.
pub(crate) fn uri_matches(
    registered: &[latchkey_core::domain::RedirectUri],
    kind: ClientKind,
    requested: &str,
) -> bool {
    latchkey_core::domain::RedirectUri::is_registered(registered, kind, requested)
}

fn redirect_matches(client: &Client, requested: &str) -> bool {
    uri_matches(&client.redirect_uris, client.kind, requested)
}

async fn parse(
    state: &AppState,
    tenant: &TenantId,
    p: &Params,
) -> Result<(AuthorizationRequest, Arc<Client>), Failure> {
    let page = |m: &str| Failure::Page(StatusCode::BAD_REQUEST, m.to_owned());
    let client_raw = p.get("client_id").ok_or_else(|| page("The request names no client (client_id is missing)."))?;
    let client_id = ClientId::parse(client_raw).map_err(|_| page("The request names an unknown client."))?;
    let client = state
        .caches
        .client(&client_id)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "cannot load client");
            Failure::Page(StatusCode::INTERNAL_SERVER_ERROR, PageError::INTERNAL.into())
        })?
        .ok_or_else(|| page("The request names an unknown client."))?;
    let redirect_uri = p.get("redirect_uri").ok_or_else(|| page("The request has no redirect_uri."))?;
    if !redirect_matches(&client, redirect_uri) {
        return Err(page("The redirect_uri is not registered for this client."));
    }
    let mode = match p.get("response_mode") {
        None | Some("query") => Ok(ResponseMode::Query),
        Some("form_post") => Ok(ResponseMode::FormPost),
        Some(_) => Err(()),
    };
    let oversized = p.first_oversized(AUTHORIZATION_PARAMETER_LIMITS);
    let target = Target {
        redirect_uri: redirect_uri.to_owned(),
        // An oversized state is what is wrong: it is not sent back.
        state: p.get("state").filter(|_| !matches!(oversized, Some(("state", _)))).map(str::to_owned),
        mode: mode.unwrap_or(ResponseMode::Query),
    };
    let redirect = |e: &'static str, d: &str| Failure::Redirect(clone_target(&target), e, d.to_owned());
    // Client and redirect URI are trusted now, so the error goes back to the client
    // (RFC 6749 §4.1.2.1), before anything is parsed or kept.
    if let Some((name, max)) = oversized {
        return Err(redirect("invalid_request", &format!("{name} is longer than {max} bytes")));
    }
    if mode.is_err() {
        return Err(redirect("invalid_request", "response_mode must be query or form_post"));
    }
    if p.contains("request") {
        return Err(redirect("request_not_supported", "request objects are not supported"));
    }
    if p.contains("request_uri") {
        return Err(redirect("request_uri_not_supported", "request_uri is not supported"));
    }
    match p.get("response_type") {
        None => return Err(redirect("invalid_request", "response_type is missing")),
        Some("code") => {}
        // OAuth 2.1: no implicit or hybrid flows.
        Some(_) => return Err(redirect("unsupported_response_type", "only response_type=code is supported")),
    }
    if !client.grant_types.contains(&GrantType::AuthorizationCode) {
        return Err(redirect("unauthorized_client", "this client may not use the authorization code grant"));
    }
    let scope = state.services.authorization().scope(&client, p.get("scope").unwrap_or("")).await.map_err(|e| {
        tracing::error!(error = %e, "cannot list scopes");
        Failure::Page(StatusCode::INTERNAL_SERVER_ERROR, PageError::INTERNAL.into())
    })?;
    let scope = scope.map_err(|r| refused(&target, r))?;
    let code_challenge =
        Authorization::code_challenge(&client, p.get("code_challenge"), p.get("code_challenge_method"))
            .map_err(|r| refused(&target, r))?;
    let prompt: Vec<String> =
        p.get("prompt").unwrap_or("").split(' ').filter(|s| !s.is_empty()).map(str::to_owned).collect();
    if prompt.iter().any(|v| !["none", "login", "consent", "select_account"].contains(&v.as_str())) {
        return Err(redirect("invalid_request", "unknown prompt value"));
    }
    if prompt.iter().any(|v| v == "none") && prompt.len() > 1 {
        return Err(redirect("invalid_request", "prompt=none cannot be combined with other values"));
    }
    let max_age = match p.get("max_age") {
        None => None,
        Some(raw) => Some(
            raw.parse::<i64>()
                .ok()
                .filter(|v| *v >= 0)
                .ok_or_else(|| redirect("invalid_request", "max_age must be a number of seconds"))?,
        ),
    };
    let claims = match p.get("claims") {
        None => None,
        Some(raw) => {
            let claims = ClaimsRequest::parse(raw).map_err(|e| redirect("invalid_request", &e.to_string()))?;
            Authorization::claims(&client, &scope, claims)
        }
    };
    let hint_sub = match p.get("id_token_hint") {
        None => None,
        Some(hint) => {
            // Signature and issuer are verified; an expired hint is still a valid hint.
            let verified = state
                .services
                .verify_jwt(hint, "JWT", true)
                .map_err(|_| redirect("invalid_request", "id_token_hint is not an ID token issued here"))?;
            verified.get("sub").and_then(|v| v.as_str()).map(str::to_owned)
        }
    };
    let (required_level, minimum_level) = state
        .services
        .authorization()
        .levels(&client, p.get("acr_values"), claims.as_ref())
        .map_err(|r| refused(&target, r))?;
    let audience = state
        .services
        .resources()
        .target(tenant, p.get("resource"), &scope)
        .await
        .map_err(|d| redirect("invalid_target", &d))?;
    let request = AuthorizationRequest {
        client_id: client.client_id.to_string(),
        redirect_uri: redirect_uri.to_owned(),
        scope,
        state: target.state.clone(),
        nonce: p.get("nonce").map(str::to_owned),
        code_challenge,
        response_mode: target.mode,
        prompt,
        max_age,
        login_hint: p.get("login_hint").map(str::to_owned),
        claims,
        hint_sub,
        audience,
        created_at: state.clock.now().secs(),
        login_pending: false,
        replaced_login: None,
        account_chosen: false,
        required_level,
        minimum_level,
    };
    Ok((request, client))
}

/// Whether a request is new (from this client IP) or already parked (under this id).
pub enum Waiting {
    New(ClientIp),
    Parked(String),
}

/// Continues a request: sign-in if needed, consent if needed, then the code.
pub async fn proceed(
    state: &AppState,
    tenant: &TenantId,
    headers: &HeaderMap,
    request: AuthorizationRequest,
    client: &Client,
    waiting: Waiting,
) -> Response {
    let (pending_id, ip) = match waiting {
        Waiting::New(ip) => (None, Some(ip)),
        Waiting::Parked(id) => (Some(id), None),
    };
    let session = sessions::current(state, tenant, headers).await;
    let next = state.services.authorization().next_step(tenant, &request, client, session.as_ref()).await;
    let next = match next {
        Ok(next) => next,
        Err(e) => {
            tracing::error!(error = %e, "cannot decide on the authorization request");
            return fail(state, Failure::Page(StatusCode::INTERNAL_SERVER_ERROR, PageError::INTERNAL.into()));
        }
    };
    match (next, session) {
        (NextStep::Issue, Some(session)) => issue_code(state, tenant, &session, &request, client, pending_id).await,
        (NextStep::SignIn, session) => {
            let mut waiting = request;
            waiting.wait_for_sign_in(session.as_ref());
            park(state, tenant, headers, &waiting, pending_id, ip, "/login").await
        }
        (NextStep::LoginRequired(description), _) => {
            fail(state, Failure::Redirect(target_of(&request), "login_required", description.into()))
        }
        (NextStep::Insufficient(minimum), _) => insufficient_sign_in(state, client, minimum),
        (NextStep::SelectAccount, _) => park(state, tenant, headers, &request, pending_id, ip, "/select-account").await,
        (NextStep::NoAccess, session) => no_access(state, client, session.as_ref()).await,
        (NextStep::AccessDenied, _) => {
            let description = "the user has no access to this application".into();
            fail(state, Failure::Redirect(target_of(&request), "access_denied", description))
        }
        (NextStep::Consent, _) => park(state, tenant, headers, &request, pending_id, ip, "/consent").await,
        (NextStep::ConsentRequired, _) => {
            let description = "the user has not consented".into();
            fail(state, Failure::Redirect(target_of(&request), "consent_required", description))
        }
        (NextStep::Issue, None) => {
            fail(state, Failure::Page(StatusCode::INTERNAL_SERVER_ERROR, PageError::INTERNAL.into()))
        }
    }
}

/// The user signed in, but not as strongly as the client (or the server) requires: say
/// what is needed and where to set it up. Nothing goes back to the client.
fn insufficient_sign_in(state: &AppState, client: &Client, minimum: AuthLevel) -> Response {
    let what = match minimum {
        AuthLevel::PhishingResistant => "a sign-in with a passkey",
        _ => "a sign-in with two factors (a passkey, or a password and an authenticator app)",
    };
    let base = crate::state::base_path(&state.issuer);
    let message = format!(
        "{} requires {what}. Add a passkey or an authenticator app on your security page ({base}/account/security), then start again from the application.",
        client.name
    );
    PageError::new(StatusCode::FORBIDDEN, message.to_string()).into_response()
}

#[derive(Deserialize)]
pub struct ResumeQuery {
    req: String,
}

/// After sign-in: continue the parked request.
pub async fn resume(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    headers: HeaderMap,
    Query(q): Query<ResumeQuery>,
) -> Response {
    match load_pending(&state, &tenant, &headers, &q.req).await {
        Some((request, client)) => proceed(&state, &tenant, &headers, request, &client, Waiting::Parked(q.req)).await,
        None => fail(&state, Failure::Page(StatusCode::BAD_REQUEST, "This sign-in request has expired or belongs to another browser. Please start again from the application.".into())),
    }
}
