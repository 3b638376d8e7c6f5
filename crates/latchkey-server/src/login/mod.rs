//! Signing in (password for now; passkeys come in their own module) and consent.
//!
//! No user enumeration: unknown accounts get the same answer, the same status and the same
//! timing (a dummy Argon2 verification) as a wrong password. Failures are throttled per
//! account and per client IP with counters in the database, so every node sees them.

pub mod cookies;
pub mod csrf;
pub mod select_account;

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use latchkey_core::crypto::{PasswordHash, random};
use latchkey_core::domain::{Email, TenantId, Username};
use latchkey_store::{Actor, User};
use serde::Deserialize;

use crate::app::AppState;
use crate::edge::ClientIp;
use crate::oauth::authorize::{self, load_pending};
use crate::sessions;

/// The authentication context class of a password sign-in (published in discovery).
pub const ACR_PASSWORD: &str = "urn:latchkey:acr:password";
pub const ACR_VALUES: [&str; 1] = [ACR_PASSWORD];

#[derive(Deserialize)]
pub struct LoginQuery {
    req: Option<String>,
    /// `account`: go to the account page after signing in (the only place besides a
    /// client that a sign-in leads to; never a URL, so never an open redirect).
    return_to: Option<String>,
}

pub(crate) fn base(state: &AppState) -> String {
    crate::app::base_path(&state.issuer)
}

struct LoginView<'a> {
    req: Option<&'a str>,
    return_to: Option<&'a str>,
    client_name: Option<String>,
    username: String,
    error: Option<&'a str>,
    /// The client's redirect URI the sign-in ends at, if it is for a client.
    redirect_uri: Option<String>,
}

fn render_login(state: &AppState, headers: &HeaderMap, status: StatusCode, view: LoginView<'_>) -> Response {
    let (csrf, set_cookie) = csrf::token(state, headers);
    let mut response = state.templates.render(
        status,
        "login.html",
        minijinja::context! {
            title => "Sign in", base => base(state), csrf, req => view.req, client_name => view.client_name,
            username => view.username, error => view.error, return_to => view.return_to,
            remember_me => !state.config.sessions.remember_me_lifetime.is_zero(),
        },
    );
    if let Some(c) = set_cookie {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    allow_form_redirect(&mut response, view.redirect_uri.as_deref());
    response
}

/// The form's POST ends (after 303s) at the client's redirect URI; Chrome checks the whole
/// chain against `form-action`, so the page must allow that origin too.
fn allow_form_redirect(response: &mut Response, redirect_uri: Option<&str>) {
    if let Some(source) = redirect_uri.and_then(crate::edge::headers::redirect_source) {
        crate::edge::headers::set_csp(response, &crate::edge::headers::csp_allowing_forms_to(&[source]));
    }
}

pub async fn login_page(State(state): State<AppState>, headers: HeaderMap, Query(q): Query<LoginQuery>) -> Response {
    let pending = match &q.req {
        Some(id) => match load_pending(&state, &headers, id).await {
            Some(p) => Some(p),
            None => return expired(&state),
        },
        None => None,
    };
    let (client_name, username) = match &pending {
        Some((r, c)) => (Some(c.name.clone()), r.login_hint.clone().unwrap_or_default()),
        None => (None, String::new()),
    };
    render_login(
        &state,
        &headers,
        StatusCode::OK,
        LoginView {
            req: q.req.as_deref(),
            return_to: account_return(q.return_to.as_deref()),
            client_name,
            username,
            error: None,
            redirect_uri: pending.as_ref().map(|(r, _)| r.redirect_uri.clone()),
        },
    )
}

pub(crate) fn expired(state: &AppState) -> Response {
    state.pages.render(
        StatusCode::BAD_REQUEST,
        "This sign-in request has expired or belongs to another browser. Please start again from the application.",
        None,
    )
}

#[derive(Deserialize)]
pub struct LoginForm {
    csrf: Option<String>,
    req: Option<String>,
    return_to: Option<String>,
    username: Option<String>,
    password: Option<String>,
    /// "Keep me signed in" (a checkbox: present when ticked).
    remember: Option<String>,
}

fn account_return(raw: Option<&str>) -> Option<&'static str> {
    (raw == Some("account")).then_some("account")
}

/// A PHC string for a password nobody has, verified when the account does not exist so the
/// answer takes as long as for a real account.
fn dummy_hash(state: &AppState) -> PasswordHash {
    static DUMMY: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let phc = DUMMY.get_or_init(|| {
        state.passwords.policy().hash(&random::token_string::<16>()).ok().map(|h| h.as_str().to_owned())
    });
    PasswordHash::from_stored(phc.clone().unwrap_or_default())
}

async fn find_user(state: &AppState, login: &str) -> Option<User> {
    let tenant = TenantId::default_tenant();
    let found = if login.contains('@') {
        match Email::parse(login) {
            Ok(e) => state.store.user_by_email(&tenant, &e).await.ok().flatten(),
            Err(_) => None,
        }
    } else {
        None
    };
    match found {
        Some(u) => Some(u),
        None => match Username::parse(login) {
            Ok(u) => state.store.user_by_username(&tenant, &u).await.ok().flatten(),
            Err(_) => None,
        },
    }
}

pub async fn login_submit(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    if !csrf::verify(&state, &headers, form.csrf.as_deref()) {
        return csrf::expired_form(&state);
    }
    let pending = match &form.req {
        Some(id) => match load_pending(&state, &headers, id).await {
            Some(p) => Some(p),
            None => return expired(&state),
        },
        None => None,
    };
    let login = form.username.clone().unwrap_or_default().trim().to_lowercase();
    let password = form.password.clone().unwrap_or_default();
    let view = |error| LoginView {
        req: form.req.as_deref(),
        return_to: account_return(form.return_to.as_deref()),
        client_name: pending.as_ref().map(|(_, c)| c.name.clone()),
        username: login.clone(),
        error,
        redirect_uri: pending.as_ref().map(|(r, _)| r.redirect_uri.clone()),
    };
    let tenant = TenantId::default_tenant();
    let now = state.clock.now();
    let window = state.config.login.failure_window;
    let account_key = format!("account:{login}");
    let ip_key = format!("ip:{ip}");
    let over = |n: i64, max: u32| n >= i64::from(max);
    let account_failures = state.store.login_failures(&tenant, &account_key, now, window).await.unwrap_or(0);
    let ip_failures = state.store.login_failures(&tenant, &ip_key, now, window).await.unwrap_or(0);
    if over(account_failures, state.config.login.max_failures_per_account)
        || over(ip_failures, state.config.login.max_failures_per_ip)
    {
        metrics::counter!("latchkey_logins_total", "outcome" => "throttled").increment(1);
        let mut response = render_login(
            &state,
            &headers,
            StatusCode::TOO_MANY_REQUESTS,
            view(Some("Too many failed attempts. Please wait a few minutes and try again.")),
        );
        if let Ok(v) = HeaderValue::from_str(&window.as_secs().to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return response;
    }
    let user = find_user(&state, &login).await;
    let stored = user
        .as_ref()
        .and_then(|u| u.password_hash.clone())
        .map(PasswordHash::from_stored)
        .unwrap_or_else(|| dummy_hash(&state));
    let matches = !password.is_empty() && state.passwords.verify(password, stored).await.unwrap_or(false);
    let user = match user {
        Some(u) if matches && !u.locked => u,
        _ => {
            // Only failures count; a correct password never locks anyone out.
            let _ = state.store.record_login_failure(&tenant, &account_key, now, window).await;
            let _ = state.store.record_login_failure(&tenant, &ip_key, now, window).await;
            metrics::counter!("latchkey_logins_total", "outcome" => "failed").increment(1);
            return render_login(
                &state,
                &headers,
                StatusCode::UNAUTHORIZED,
                view(Some("The username or password is wrong.")),
            );
        }
    };
    let _ = state.store.clear_login_failures(&tenant, &account_key).await;
    metrics::counter!("latchkey_logins_total", "outcome" => "success").increment(1);
    // The session id is rotated at sign-in: whatever session this browser had ends.
    let sign_in = sessions::SignIn {
        sub: user.sub.clone(),
        amr: vec!["pwd".into()],
        acr: ACR_PASSWORD.into(),
        remember: form.remember.is_some(),
        user_agent: headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(str::to_owned),
        ip: Some(ip.to_string()),
    };
    let cookies = match sessions::start(&state, &headers, sign_in).await {
        Ok((_, cookies)) => cookies,
        Err(e) => {
            tracing::error!(error = %e, "cannot create session");
            return state.pages.render(StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong on our side.", None);
        }
    };
    let next = match (&form.req, account_return(form.return_to.as_deref())) {
        (Some(id), _) => format!("{}/authorize/resume?req={id}", base(&state)),
        (None, Some(_)) => format!("{}/account/sessions", base(&state)),
        (None, None) => format!("{}/login/done", base(&state)),
    };
    // RFC 9700 §4.12: after a POST with credentials, redirect with 303, never 307.
    let mut response = Redirect::to(&next).into_response();
    sessions::set_cookies(&mut response, cookies);
    response
}

pub async fn signed_in(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let (title, message) = match sessions::current(&state, &headers).await {
        Some(_) => ("Signed in", "You are signed in. You can close this page or return to your application."),
        None => ("Not signed in", "You are not signed in."),
    };
    state.templates.render(StatusCode::OK, "message.html", minijinja::context! { title, message, base => base(&state) })
}

#[derive(Deserialize)]
pub struct ConsentQuery {
    pub(crate) req: String,
}

pub async fn consent_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ConsentQuery>,
) -> Response {
    let Some((request, client)) = load_pending(&state, &headers, &q.req).await else { return expired(&state) };
    let Some(session) = sessions::current(&state, &headers).await else {
        return Redirect::to(&format!("{}/login?req={}", base(&state), q.req)).into_response();
    };
    let described = state.caches.scopes().await.unwrap_or_default();
    let scopes: Vec<minijinja::Value> = request
        .scope
        .iter()
        .map(|s| {
            let description =
                described.iter().find(|d| d.name.as_str() == s).map_or(s.clone(), |d| d.description.clone());
            minijinja::context! { name => s, description }
        })
        .collect();
    let username =
        state.caches.user(&session.sub).await.ok().flatten().map(|u| u.username.to_string()).unwrap_or_default();
    let (csrf, set_cookie) = csrf::token(&state, &headers);
    let mut response = state.templates.render(
        StatusCode::OK,
        "consent.html",
        minijinja::context! { title => "Allow access", base => base(&state), csrf, req => q.req, client_name => client.name, scopes, username },
    );
    if let Some(c) = set_cookie {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    allow_form_redirect(&mut response, Some(&request.redirect_uri));
    response
}

#[derive(Deserialize)]
pub struct ConsentForm {
    csrf: Option<String>,
    req: Option<String>,
    decision: Option<String>,
}

pub async fn consent_submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<ConsentForm>,
) -> Response {
    if !csrf::verify(&state, &headers, form.csrf.as_deref()) {
        return csrf::expired_form(&state);
    }
    let Some(req) = form.req.clone() else { return expired(&state) };
    let Some((request, client)) = load_pending(&state, &headers, &req).await else { return expired(&state) };
    let Some(session) = sessions::current(&state, &headers).await else {
        return Redirect::to(&format!("{}/login?req={req}", base(&state))).into_response();
    };
    match form.decision.as_deref() {
        Some("allow") => {
            let actor = Actor::User(session.sub.to_string());
            // Consent accumulates: allowing fewer scopes now does not withdraw earlier ones.
            let tenant = TenantId::default_tenant();
            let mut scopes = state
                .store
                .consented_scopes(&tenant, &session.sub, &client.client_id)
                .await
                .ok()
                .flatten()
                .unwrap_or_default();
            for s in &request.scope {
                if !scopes.contains(s) {
                    scopes.push(s.clone());
                }
            }
            if let Err(e) = state.store.save_consent(&tenant, &session.sub, &client.client_id, &scopes, &actor).await {
                tracing::error!(error = %e, "cannot save consent");
                return state.pages.render(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong on our side.",
                    None,
                );
            }
            authorize::issue_code(&state, &session, &request, &client, Some(req)).await
        }
        Some("deny") => {
            authorize::forget_pending(&state, &req).await;
            authorize::deny(&state, &request, "access_denied", "the user denied the request")
        }
        _ => state.pages.render(StatusCode::BAD_REQUEST, "Choose Allow or Deny.", None),
    }
}
