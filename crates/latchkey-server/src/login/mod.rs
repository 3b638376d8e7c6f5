//! Signing in: the sign-in page, passwords, and what every way of signing in shares
//! (ceremony state, throttling, the second factor, completion). Passkeys are in
//! [`passkey`].
//!
//! No user enumeration: unknown accounts get the same answer, the same status and the same
//! timing (a dummy Argon2 verification) as a wrong password. Attempts are limited per
//! account and per client IP, reserved before the password is checked
//! ([`crate::attempt_limits`]).

/// The end of every sign-in (its own module: federation ends sign-ins too).
pub use crate::completion as complete;
pub mod consent;
pub mod email_link;
pub mod passkey;
pub mod recovery;
pub mod second_factor;
pub mod select_account;

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::IntoResponse as _;
use axum::response::Response;
use latchkey_core::domain::{Factor, Factors, TenantId, TypedPassword};
use serde::Deserialize;

use crate::attempt_limits;
use crate::browser::csrf;
use crate::edge::ClientIp;
use crate::edge::Tenant;
use crate::oauth::parked::load_pending;
use crate::pages::PageError;
use crate::sessions;
use crate::state::AppState;
pub use complete::ReturnTo;
pub use consent::{consent_page, consent_submit};
use latchkey_config::{Identifier, RegistrationMode};
use latchkey_service::password_sign_in::PasswordRefusal as Refusal;

#[derive(Deserialize)]
pub struct LoginQuery {
    req: Option<String>,
    /// `account`, `security` or `forward-auth`: where to go after signing in.
    return_to: Option<String>,
    /// `passkey` or `mfa`: what the app behind a proxy asks for (forward-auth).
    step_up: Option<String>,
}

pub(crate) struct LoginView<'a> {
    pub req: Option<&'a str>,
    pub return_to: Option<ReturnTo>,
    pub client_name: Option<String>,
    pub username: String,
    pub error: Option<&'a str>,
    /// The client's redirect URI the sign-in ends at, if it is for a client.
    pub redirect_uri: Option<String>,
    /// Why the user is asked (again): a step-up, a re-authentication.
    pub notice: Option<&'a str>,
}

pub(crate) fn identifier_label(state: &AppState) -> &'static str {
    match state.config.registration.identifier {
        Identifier::Username => "Username",
        Identifier::Email => "Email",
        Identifier::Both => "Username or email",
    }
}

pub(crate) fn render_login(state: &AppState, headers: &HeaderMap, status: StatusCode, view: LoginView<'_>) -> Response {
    let (csrf, set_cookie) = csrf::token(state, headers);
    let mut response = state.templates.render(
        status,
        "login.html",
        minijinja::context! {
            title => "Sign in", base => state.base(), csrf, req => view.req, client_name => view.client_name,
            username => view.username, error => view.error, return_to => view.return_to.map(ReturnTo::as_str),
            remember_me => !state.config.sessions.remember_me_lifetime.is_zero(),
            passwords => state.config.login.passwords, passkeys => state.passkeys.available(),
            identifier_label => identifier_label(state), notice => view.notice,
            sign_up => state.config.registration.mode == RegistrationMode::Open,
            recover => state.services.recovery().offered() && state.passkeys.available(),
            email_link => state.services.email_sign_in().offered(),
            providers => state.upstreams.list().map(|p| minijinja::context! { id => p.id.as_str(), name => &p.config.name }).collect::<Vec<_>>(),
            messages_delayed => state.services.outbox().mail_delayed() || state.services.outbox().sms_delayed(),
        },
    );
    if let Some(c) = set_cookie {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let mut sources: Vec<String> =
        view.redirect_uri.as_deref().and_then(crate::edge::headers::redirect_source).into_iter().collect();
    sources.extend(state.upstreams.form_origins());
    if !sources.is_empty() {
        crate::edge::headers::set_csp(&mut response, &crate::edge::headers::csp_allowing_forms_to(&sources));
    }
    response
}

/// The form's POST ends (after 303s) at the client's redirect URI; Chrome checks the whole
/// chain against `form-action`, so the page must allow that origin too.
pub(crate) fn allow_form_redirect(response: &mut Response, redirect_uri: Option<&str>) {
    if let Some(source) = redirect_uri.and_then(crate::edge::headers::redirect_source) {
        crate::edge::headers::set_csp(response, &crate::edge::headers::csp_allowing_forms_to(&[source]));
    }
}

/// Why this sign-in is asked for, when it is not the first.
const ASK_PASSKEY: &str = "This application asks you to sign in with a passkey.";
const ASK_SECOND_FACTOR: &str =
    "This application asks for a second factor: sign in with a passkey, or with your password and a code.";

async fn notice_for(
    state: &AppState,
    tenant: &TenantId,
    headers: &HeaderMap,
    pending: Option<&crate::oauth::parked::AuthorizationRequest>,
) -> Option<&'static str> {
    let session = sessions::current(state, tenant, headers).await?;
    match pending.and_then(|r| r.required_level) {
        Some(level) if !crate::oauth::parked::session_level(&session).satisfies(level) => Some(match level {
            latchkey_core::domain::AuthLevel::PhishingResistant => ASK_PASSKEY,
            _ => ASK_SECOND_FACTOR,
        }),
        _ => Some("Please confirm it's you to continue."),
    }
}

pub async fn login_page(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    headers: HeaderMap,
    Query(q): Query<LoginQuery>,
) -> Response {
    let pending = match &q.req {
        Some(id) => match load_pending(&state, &tenant, &headers, id).await {
            Some(p) => Some(p),
            None => return expired(),
        },
        None => None,
    };
    let (client_name, mut username) = match &pending {
        Some((r, c)) => (Some(c.name.clone()), r.login_hint.clone().unwrap_or_default()),
        None => (None, String::new()),
    };
    let notice = match q.step_up.as_deref() {
        Some("passkey") => Some(ASK_PASSKEY),
        Some("mfa") => Some(ASK_SECOND_FACTOR),
        _ => notice_for(&state, &tenant, &headers, pending.as_ref().map(|(r, _)| r)).await,
    };
    if notice.is_some()
        && username.is_empty()
        && let Some(s) = sessions::current(&state, &tenant, &headers).await
        && let Ok(Some(u)) = state.caches.user(&s.sub).await
    {
        username = crate::account::known_as(&state, &u);
    }
    render_login(
        &state,
        &headers,
        StatusCode::OK,
        LoginView {
            req: q.req.as_deref(),
            return_to: ReturnTo::parse(q.return_to.as_deref()),
            client_name,
            username,
            error: None,
            redirect_uri: pending.as_ref().map(|(r, _)| r.redirect_uri.clone()),
            notice,
        },
    )
}

pub(crate) fn expired() -> Response {
    PageError::new(
        StatusCode::BAD_REQUEST,
        "This sign-in request has expired or belongs to another browser. Please start again from the application.",
    )
    .into_response()
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

/// The account a typed identifier names (username or email address, as configured). An
/// email address names an account only when verified: whoever signed up first with someone
/// else's address gains nothing by it.
pub async fn login_submit(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    if !csrf::verify(&state, &headers, form.csrf.as_deref()) {
        return csrf::expired_form();
    }
    let pending = match &form.req {
        Some(id) => match load_pending(&state, &tenant, &headers, id).await {
            Some(p) => Some(p),
            None => return expired(),
        },
        None => None,
    };
    let typed = form.username.clone().unwrap_or_default();
    let login = typed.trim().to_lowercase();
    let return_to = ReturnTo::parse(form.return_to.as_deref());
    let refuse = |status, message: &str| {
        let view = LoginView {
            req: form.req.as_deref(),
            return_to,
            client_name: pending.as_ref().map(|(_, c)| c.name.clone()),
            username: login.clone(),
            error: Some(message),
            redirect_uri: pending.as_ref().map(|(r, _)| r.redirect_uri.clone()),
            notice: None,
        };
        render_login(&state, &headers, status, view)
    };
    if !state.config.login.passwords {
        return refuse(StatusCode::BAD_REQUEST, "Signing in with a password is turned off here. Use a passkey.");
    }
    // Checked before anything is counted or hashed; the same answer for every account.
    let password = match TypedPassword::parse(form.password.clone().unwrap_or_default()) {
        Ok(p) => p,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, &latchkey_service::passwords::explain(e)),
    };
    let user = match state.services.sign_in().with_password(&tenant, &typed, password, ip).await {
        Ok(user) => user,
        Err(Refusal::Wrong) => return refuse(StatusCode::UNAUTHORIZED, "The username or password is wrong."),
        Err(Refusal::Throttled) => {
            let message = "Too many failed attempts. Please wait a few minutes and try again.";
            let mut response = refuse(StatusCode::TOO_MANY_REQUESTS, message);
            attempt_limits::retry_after(&state, &mut response);
            return response;
        }
        Err(Refusal::Unavailable) => return refuse(StatusCode::SERVICE_UNAVAILABLE, attempt_limits::UNAVAILABLE),
    };
    let done = complete::SignedIn {
        user: &user,
        factors: Factors::new(Factor::Password),
        remember: form.remember.is_some(),
        req: form.req.clone(),
        return_to,
        ip,
    };
    complete::complete(&state, &tenant, &headers, done).await
}

pub async fn signed_in(State(state): State<AppState>, Tenant(tenant): Tenant, headers: HeaderMap) -> Response {
    let (title, message) = match sessions::current(&state, &tenant, &headers).await {
        Some(_) => ("Signed in", "You are signed in. You can close this page or return to your application."),
        None => ("Not signed in", "You are not signed in."),
    };
    state.templates.render(StatusCode::OK, "message.html", minijinja::context! { title, message, base => state.base() })
}
