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
use latchkey_core::domain::{ClaimsRequest, ClientId, ClientKind, GrantType, TenantId, scope_of_claim};
use latchkey_core::records::{BrowserSession, Client};
use serde::Deserialize;

use super::authorization_response::{Failure, Target, clone_target, fail, issue_code, target_of};
use super::params::{AUTHORIZATION_PARAMETER_LIMITS, Params};
use super::parked::{AuthorizationRequest, ResponseMode, load_pending, park, session_level};
use crate::edge::ClientIp;
use crate::edge::Tenant;
use crate::pages::PageError;
use crate::sessions;
use crate::state::AppState;
use latchkey_core::domain::AuthLevel;
use latchkey_service::consents::Asked;

/// The levels a request asks for and insists on (see [`AuthorizationRequest`]).
fn requested_levels(
    state: &AppState,
    client: &Client,
    acr_values: Option<&str>,
    claims: Option<&ClaimsRequest>,
) -> Result<(Option<AuthLevel>, Option<AuthLevel>), &'static str> {
    let login = &state.config.login;
    let global = if login.require_passkey {
        Some(AuthLevel::PhishingResistant)
    } else if login.require_mfa {
        Some(AuthLevel::MultiFactor)
    } else {
        None
    };
    let policy = global.max(client.session_policy.required_level());
    let mut voluntary = acr_values.and_then(|v| AuthLevel::weakest_of(v.split(' ').filter(|s| !s.is_empty())));
    let mut essential = None;
    if let Some(acr) = claims.and_then(ClaimsRequest::acr) {
        let values: Vec<&str> = acr.string_values().collect();
        let level = AuthLevel::weakest_of(values.iter().copied());
        // OIDC Core §5.5.1.1: an essential acr that cannot be met fails the request.
        if acr.essential {
            if !values.is_empty() && level.is_none() {
                return Err("the requested authentication level cannot be met");
            }
            essential = level;
        } else {
            voluntary = voluntary.max(level);
        }
    }
    let minimum = policy.max(essential);
    Ok((minimum.max(voluntary), minimum))
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
    let known = state.caches.scopes().await.map_err(|e| {
        tracing::error!(error = %e, "cannot list scopes");
        Failure::Page(StatusCode::INTERNAL_SERVER_ERROR, PageError::INTERNAL.into())
    })?;
    let mut scope = Vec::new();
    for s in p.get("scope").unwrap_or("").split(' ').filter(|s| !s.is_empty()) {
        // OIDC Core §3.1.2.1: scope values the server does not understand are ignored.
        if !known.iter().any(|k| k.name.as_str() == s) {
            continue;
        }
        if !client.allowed_scopes.iter().any(|a| a.as_str() == s) {
            return Err(redirect("invalid_scope", &format!("this client may not request the `{s}` scope")));
        }
        if !scope.iter().any(|x: &String| x == s) {
            scope.push(s.to_owned());
        }
    }
    // PKCE with S256 is required of every client (OAuth 2.1 §4.1.1; RFC 9700 §2.1.1).
    let code_challenge = match (p.get("code_challenge"), p.get("code_challenge_method")) {
        (Some(c), Some("S256")) => {
            if c.len() != 43 || !c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                return Err(redirect("invalid_request", "code_challenge must be a base64url SHA-256 (43 characters)"));
            }
            c.to_owned()
        }
        (Some(_), Some(_)) => return Err(redirect("invalid_request", "code_challenge_method must be S256")),
        (Some(_), None) => return Err(redirect("invalid_request", "code_challenge_method is missing (use S256)")),
        // Only a confidential client registered with allow_insecure_no_pkce may omit PKCE.
        (None, _) if client.kind == ClientKind::Confidential && client.allow_insecure_no_pkce => String::new(),
        (None, _) => return Err(redirect("invalid_request", "PKCE is required: send code_challenge with method S256")),
    };
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
            let mut claims = ClaimsRequest::parse(raw).map_err(|e| redirect("invalid_request", &e.to_string()))?;
            // User claims are OpenID Connect's (§5.5), and a client gets only those of the
            // scopes it may have: the parameter is a finer way to ask, not a way around them.
            let openid = scope.iter().any(|s| s == "openid");
            let allowed = |s: &str| client.allowed_scopes.iter().any(|a| a.as_str() == s);
            claims.retain_user_claims(|n| openid && scope_of_claim(n).is_some_and(allowed));
            Some(claims).filter(|c| !c.is_empty())
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
    let (required_level, minimum_level) = requested_levels(state, &client, p.get("acr_values"), claims.as_ref())
        .map_err(|d| redirect("access_denied", d))?;
    let audience = match p.get("resource") {
        None => state.default_audience(),
        Some(resource) => state
            .services
            .resources()
            .audience_for(tenant, resource, &scope)
            .await
            .map_err(|d| redirect("invalid_target", &d))?,
    };
    let request = AuthorizationRequest {
        client_id: client.client_id.to_string(),
        redirect_uri: redirect_uri.to_owned(),
        scope,
        state: target.state.clone(),
        nonce: p.get("nonce").map(str::to_owned),
        code_challenge: (!code_challenge.is_empty()).then_some(code_challenge),
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
    let now = state.clock.now().secs();
    let prompt = |v: &str| request.prompt.iter().any(|p| p == v);
    let needs_login = if request.login_pending {
        // Waiting for a sign-in: only a new session satisfies it.
        session.as_ref().is_none_or(|s| request.replaced_login.as_deref() == Some(s.id_hash.as_str()))
    } else {
        match &session {
            None => true,
            Some(s) => {
                prompt("login")
                    || sessions::max_age(request.max_age, &client.session_policy)
                        .is_some_and(|m| now - s.auth_time.secs() > m)
                    || names_another_user(&request, s.sub.as_str())
                    // Step-up: the session is weaker than the request asks for.
                    || request.required_level.is_some_and(|l| !session_level(s).satisfies(l))
            }
        }
    };
    if needs_login {
        if prompt("none") {
            return fail(
                state,
                Failure::Redirect(target_of(&request), "login_required", "the user is not signed in".into()),
            );
        }
        let mut waiting = request;
        if !waiting.login_pending {
            waiting.login_pending = true;
            waiting.replaced_login = session.as_ref().map(|s| s.id_hash.as_str().to_owned());
        }
        return park(state, tenant, headers, &waiting, pending_id, ip, "/login").await;
    }
    let Some(session) = session else {
        return fail(state, Failure::Page(StatusCode::INTERNAL_SERVER_ERROR, PageError::INTERNAL.into()));
    };
    // OIDC Core §3.1.2.2: no code for another user than the request names, even one who
    // just signed in.
    if names_another_user(&request, session.sub.as_str()) {
        let description = "the user who signed in is not the one the request names".into();
        return fail(state, Failure::Redirect(target_of(&request), "login_required", description));
    }
    if let Some(minimum) = request.minimum_level.filter(|l| !session_level(&session).satisfies(*l)) {
        return insufficient_sign_in(state, client, minimum);
    }
    // One session per browser: show who is signed in, and let the user continue or switch.
    if prompt("select_account") && !request.account_chosen && !request.login_pending {
        return park(state, tenant, headers, &request, pending_id, ip, "/select-account").await;
    }
    let needs_consent = match consent_needed(state, tenant, &session, client, &request).await {
        Ok(n) => n,
        Err(r) => return r,
    };
    if needs_consent {
        if prompt("none") {
            return fail(
                state,
                Failure::Redirect(target_of(&request), "consent_required", "the user has not consented".into()),
            );
        }
        return park(state, tenant, headers, &request, pending_id, ip, "/consent").await;
    }
    issue_code(state, tenant, &session, &request, client, pending_id).await
}

/// Whether the request names a user (`id_token_hint`, or a `sub` claim with a value, OIDC
/// Core §3.1.2.2) other than `sub`.
fn names_another_user(request: &AuthorizationRequest, sub: &str) -> bool {
    request.hint_sub.as_ref().is_some_and(|h| h != sub)
        || request.claims.as_ref().and_then(ClaimsRequest::subjects).is_some_and(|named| !named.contains(&sub))
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

async fn consent_needed(
    state: &AppState,
    tenant: &TenantId,
    session: &BrowserSession,
    client: &Client,
    request: &AuthorizationRequest,
) -> Result<bool, Response> {
    let asked = Asked {
        scopes: &request.scope,
        claims: request.claims.as_ref(),
        prompt_consent: request.prompt.iter().any(|p| p == "consent"),
    };
    state.services.consents().needed(tenant, &session.sub, client, &asked).await.map_err(|e| {
        tracing::error!(error = %e, "cannot read consent");
        fail(state, Failure::Page(StatusCode::INTERNAL_SERVER_ERROR, PageError::INTERNAL.into()))
    })
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
