//! "Can't sign in?": recovery by a link to the account's verified email address. The
//! rules are the service's ([`latchkey_service::recovery`]); these pages ask, show the
//! link's confirmation page, keep the recovery session bound to this browser (as a
//! ceremony, server-side), and add the new passkey.

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse as _, Redirect, Response};
use latchkey_core::domain::{SubjectId, TenantId};
use latchkey_service::ServiceError;
use latchkey_service::passkeys::PasskeyRegistration;
use latchkey_service::recovery::{self, Proof, RecoveryRefusal, RecoverySession};
use serde::Deserialize;

use crate::browser::ceremony::{self, Purpose};
use crate::browser::csrf;
use crate::browser::json::json_error;
use crate::edge::{ClientIp, Tenant};
use crate::email_links::{LinkForm, LinkQuery, confirmation};
use crate::pages::PageError;
use crate::state::AppState;

fn not_offered() -> Response {
    PageError::new(
        StatusCode::NOT_FOUND,
        "Recovery by email is not offered here. Ask the people who run this site to help you back in.",
    )
    .into_response()
}

fn refused(r: RecoveryRefusal) -> Response {
    let (status, message) = match r {
        RecoveryRefusal::Gone => (
            StatusCode::BAD_REQUEST,
            "This recovery has expired or was already used. Start again from the sign-in page.",
        ),
        RecoveryRefusal::WrongCode => {
            (StatusCode::BAD_REQUEST, "That code is not right. Try the current code from your authenticator app.")
        }
        RecoveryRefusal::TooMany => (StatusCode::TOO_MANY_REQUESTS, "Too many attempts. Wait a while and try again."),
        RecoveryRefusal::NotNow => {
            (StatusCode::BAD_REQUEST, "That step is not possible now. Go back to your recovery and follow its page.")
        }
        RecoveryRefusal::Cancelled => {
            (StatusCode::BAD_REQUEST, "This recovery was cancelled from the link sent to your email.")
        }
        RecoveryRefusal::Password(rule) => {
            return PageError::new(StatusCode::BAD_REQUEST, format!("That password cannot be used: {rule}"))
                .into_response();
        }
        RecoveryRefusal::Unavailable(cause) => {
            tracing::error!(error = %cause, "a recovery step failed");
            return PageError::internal().into_response();
        }
    };
    PageError::new(status, message).into_response()
}

fn no_store(mut response: Response, cookie: Option<HeaderValue>) -> Response {
    if let Some(c) = cookie {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn form_page(state: &AppState, headers: &HeaderMap, sent: Option<&str>, status: StatusCode) -> Response {
    let (csrf, cookie) = csrf::token(state, headers);
    let recovery = state.services.recovery();
    let outbox = state.services.outbox();
    let page = state.templates.render(
        status,
        "recover.html",
        minijinja::context! {
            title => "Can't sign in?", base => state.base(), csrf, sent => sent.is_some(), identifier => sent,
            by_email => recovery.offered_email(), by_sms => recovery.offered_sms(),
            mail_delayed => recovery.offered_email() && outbox.mail_delayed(),
            sms_delayed => recovery.offered_sms() && outbox.sms_delayed(),
        },
    );
    no_store(page, cookie)
}

/// `GET /recover`: a username or email address.
pub async fn page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if !offered(&state) {
        return not_offered();
    }
    form_page(&state, &headers, None, StatusCode::OK)
}

#[derive(Deserialize)]
pub struct RequestForm {
    csrf: Option<String>,
    identifier: Option<String>,
}

/// `POST /recover`: the same answer whether or not an account matches.
pub async fn submit(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Form(form): Form<RequestForm>,
) -> Response {
    if !offered(&state) {
        return not_offered();
    }
    if !csrf::verify(&state, &headers, form.csrf.as_deref()) {
        return csrf::expired_form();
    }
    let typed = form.identifier.as_deref().unwrap_or_default();
    match recovery::request(&state.services, &tenant, typed, ip).await {
        Ok(()) => form_page(&state, &headers, Some(typed.trim()), StatusCode::OK),
        Err(RecoveryRefusal::Gone) => {
            PageError::new(StatusCode::BAD_REQUEST, "Give your username or email address.").into_response()
        }
        Err(other) => refused(other),
    }
}

#[derive(Deserialize)]
pub struct CodeRequestForm {
    csrf: Option<String>,
    identifier: Option<String>,
    code: Option<String>,
}

/// `POST /recover/code`: the code texted to the account's verified phone number opens the
/// recovery session, as a link does. A wrong code and a name that is no account get the
/// same answer.
pub async fn code(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Form(form): Form<CodeRequestForm>,
) -> Response {
    if !offered(&state) || !state.services.recovery().offered_sms() {
        return not_offered();
    }
    if !csrf::verify(&state, &headers, form.csrf.as_deref()) {
        return csrf::expired_form();
    }
    let typed = form.identifier.as_deref().unwrap_or_default();
    let code = form.code.as_deref().unwrap_or_default();
    match state.services.recovery().begin_with_code(&tenant, typed, code, ip).await {
        Ok(session) => keep(&state, &tenant, &headers, &session).await,
        Err(RecoveryRefusal::WrongCode) => PageError::new(
            StatusCode::BAD_REQUEST,
            "That code is not right, or it expired. Go back and try again, or ask for a new one.",
        )
        .into_response(),
        Err(r) => refused(r),
    }
}

/// `GET /recover/link?token=…`: whose account, and a button (opening the link uses nothing).
pub async fn link_page(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    headers: HeaderMap,
    Query(q): Query<LinkQuery>,
) -> Response {
    let token = q.token.unwrap_or_default();
    match state.services.recovery().look(&tenant, &token).await {
        Ok(Some(user)) => confirmation(
            &state,
            &headers,
            (
                "Recover your account",
                format!(
                    "Recover the account {}? You will add a new passkey to it.",
                    crate::account::known_as(&state, &user)
                ),
                "Recover my account",
            ),
            recovery::LINK_PATH,
            &token,
        ),
        Ok(None) => refused(RecoveryRefusal::Gone),
        Err(e) => PageError::from(e).into_response(),
    }
}

/// `POST /recover/link`: uses the link and opens the recovery session in this browser.
pub async fn link(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    headers: HeaderMap,
    Form(form): Form<LinkForm>,
) -> Response {
    if !csrf::verify(&state, &headers, form.csrf.as_deref()) {
        return csrf::expired_form();
    }
    let session = match state.services.recovery().begin(&tenant, form.token.as_deref().unwrap_or_default()).await {
        Ok(s) => s,
        Err(r) => return refused(r),
    };
    keep(&state, &tenant, &headers, &session).await
}

/// Keeps `session` for this browser and goes to its page.
async fn keep(state: &AppState, tenant: &TenantId, headers: &HeaderMap, session: &RecoverySession) -> Response {
    match ceremony::put_lasting(state, tenant, headers, Purpose::Recovery, session, session.expires()).await {
        Ok(cookie) => no_store(Redirect::to(&format!("{}/recover/session", state.base())).into_response(), cookie),
        Err(e) => {
            tracing::error!(error = %e, "cannot keep a recovery session");
            PageError::internal().into_response()
        }
    }
}

/// This browser's recovery session, left in place.
async fn current(state: &AppState, tenant: &TenantId, headers: &HeaderMap) -> Option<RecoverySession> {
    let session: RecoverySession = ceremony::peek(state, tenant, headers, Purpose::Recovery).await?;
    (state.clock.now() < session.expires()).then_some(session)
}

/// Whether recovery by email works here: offered, and a passkey can be added at its end.
fn offered(state: &AppState) -> bool {
    state.services.recovery().offered() && state.passkeys.available()
}

/// `GET /recover/session`: what this recovery still needs.
pub async fn session_page(State(state): State<AppState>, Tenant(tenant): Tenant, headers: HeaderMap) -> Response {
    let Some(session) = current(&state, &tenant, &headers).await else { return refused(RecoveryRefusal::Gone) };
    let step = match state.services.recovery().may_complete(&tenant, &session).await {
        Ok(()) => "passkey",
        Err(RecoveryRefusal::NotNow) => match &session.proof {
            Proof::AppCodeNeeded => "app_code",
            Proof::TextCodeNeeded => "text_code",
            Proof::OtherPasskeyLost => "other_passkey",
            _ => "waiting",
        },
        Err(r) => return refused(r),
    };
    let ready_at = match &session.proof {
        Proof::Waiting { ready_at, .. } => Some(latchkey_core::UnixTime::from_secs(*ready_at).to_rfc3339()),
        _ => None,
    };
    let (csrf, cookie) = csrf::token(&state, &headers);
    let page = state.templates.render(
        StatusCode::OK,
        "recover_session.html",
        minijinja::context! {
            title => "Recover your account", base => state.base(), csrf, step, ready_at,
            passkeys_available => state.passkeys.available(), passwords => state.config.login.passwords,
        },
    );
    no_store(page, cookie)
}

#[derive(Deserialize)]
pub struct CodeForm {
    csrf: Option<String>,
    code: Option<String>,
}

/// `POST /recover/app-code`: the authenticator app's code, as the second proof.
pub async fn app_code(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Form(form): Form<CodeForm>,
) -> Response {
    second_proof(&state, &tenant, &headers, form, ip, false).await
}

/// `POST /recover/text-code`: the texted code, as the second proof.
pub async fn text_code(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Form(form): Form<CodeForm>,
) -> Response {
    second_proof(&state, &tenant, &headers, form, ip, true).await
}

/// A code as the recovery's second proof: the app's, or (`texted`) the one texted.
async fn second_proof(
    state: &AppState,
    tenant: &TenantId,
    headers: &HeaderMap,
    form: CodeForm,
    ip: std::net::IpAddr,
    texted: bool,
) -> Response {
    if !csrf::verify(state, headers, form.csrf.as_deref()) {
        return csrf::expired_form();
    }
    let Some(session) = current(state, tenant, headers).await else { return refused(RecoveryRefusal::Gone) };
    let code = form.code.unwrap_or_default();
    let recovery = state.services.recovery();
    let given = match texted {
        true => recovery.give_text_code(tenant, &session, code.trim(), ip).await,
        false => recovery.give_app_code(tenant, &session, code.trim(), ip).await,
    };
    match given {
        Ok(next) => keep(state, tenant, headers, &next).await,
        Err(RecoveryRefusal::WrongCode) if texted => {
            PageError::new(StatusCode::BAD_REQUEST, "That code is not right, or it expired: ask for a new one.")
                .into_response()
        }
        Err(r) => refused(r),
    }
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: Option<String>,
}

/// `POST /recover/text-code/send`: texts the account's sign-in code (its second step).
pub async fn send_text_code(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    if !csrf::verify(&state, &headers, form.csrf.as_deref()) {
        return csrf::expired_form();
    }
    let Some(session) = current(&state, &tenant, &headers).await else { return refused(RecoveryRefusal::Gone) };
    match state.services.recovery().send_text_code(&tenant, &session, ip).await {
        Ok(()) => Redirect::to(&format!("{}/recover/session?texted=1", state.base())).into_response(),
        Err(r) => refused(r),
    }
}

/// `POST /recover/lost`: the other factor is lost too; the recovery waits out the delay.
pub async fn lost(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    if !csrf::verify(&state, &headers, form.csrf.as_deref()) {
        return csrf::expired_form();
    }
    let Some(session) = current(&state, &tenant, &headers).await else { return refused(RecoveryRefusal::Gone) };
    match state.services.recovery().declare_lost(&tenant, &session).await {
        Ok(next) => keep(&state, &tenant, &headers, &next).await,
        Err(r) => refused(r),
    }
}

/// `POST /recover/passkey/options`: options for the new passkey, once the recovery may
/// complete.
pub async fn passkey_options(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    if !csrf::verify(&state, &headers, form.csrf.as_deref()) {
        return json_error(StatusCode::FORBIDDEN, "This page has expired. Reload it and try again.");
    }
    let Some(session) = current(&state, &tenant, &headers).await else {
        return json_error(StatusCode::BAD_REQUEST, "This recovery has expired. Start again from the sign-in page.");
    };
    if state.services.recovery().may_complete(&tenant, &session).await.is_err() {
        return json_error(StatusCode::BAD_REQUEST, "This recovery cannot add a passkey now.");
    }
    let user = match state.services.users().by_sub(&tenant, &session.sub).await {
        Ok(Some(u)) => u,
        _ => {
            return json_error(
                StatusCode::BAD_REQUEST,
                "This recovery has expired. Start again from the sign-in page.",
            );
        }
    };
    let (options, registration) = match crate::account::passkeys::registration_options(&state, &tenant, &user).await {
        Ok(started) => started,
        Err(r) => return r,
    };
    // The challenge names the account it is for: finishing it adds to that account only.
    let pending = (session.sub.clone(), registration);
    match ceremony::put(&state, &tenant, &headers, Purpose::RecoveryPasskey, &pending).await {
        Ok(cookie) => crate::browser::json::options_response(options, cookie),
        Err(e) => json_error(StatusCode::INTERNAL_SERVER_ERROR, &e),
    }
}

#[derive(Deserialize)]
pub struct PasswordForm {
    csrf: Option<String>,
    password: Option<String>,
    confirm: Option<String>,
}

/// `POST /recover/password`: sets a new password (where passwords are on) and completes the
/// recovery, as a passkey does; shows the new recovery codes once.
pub async fn set_password(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    headers: HeaderMap,
    Form(form): Form<PasswordForm>,
) -> Response {
    if !csrf::verify(&state, &headers, form.csrf.as_deref()) {
        return csrf::expired_form();
    }
    let Some(session) = current(&state, &tenant, &headers).await else { return refused(RecoveryRefusal::Gone) };
    let typed = form.password.unwrap_or_default();
    if form.confirm.as_deref() != Some(typed.as_str()) {
        return PageError::new(StatusCode::BAD_REQUEST, "The two passwords are not the same.").into_response();
    }
    let password = match latchkey_core::domain::NewPassword::parse(typed) {
        Ok(p) => p,
        Err(e) => {
            return PageError::new(StatusCode::BAD_REQUEST, latchkey_service::passwords::explain(e).to_string())
                .into_response();
        }
    };
    let done = state.services.recovery().complete_with_password(&tenant, &session, password).await;
    completed(&state, &tenant, &headers, done).await
}

/// A completed recovery: its session goes, and the new recovery codes are shown once.
async fn completed(
    state: &AppState,
    tenant: &TenantId,
    headers: &HeaderMap,
    done: Result<Vec<String>, RecoveryRefusal>,
) -> Response {
    match done {
        Ok(codes) => {
            let _: Option<RecoverySession> = ceremony::take(state, tenant, headers, Purpose::Recovery).await;
            crate::account::recovery_codes::show(state, &codes, &format!("{}/login", state.base()), false)
        }
        Err(r) => refused(r),
    }
}

#[derive(Deserialize)]
pub struct PasskeyForm {
    csrf: Option<String>,
    credential: Option<String>,
    name: Option<String>,
}

/// `POST /recover/passkey`: adds the new passkey and completes the recovery; shows the new
/// recovery codes once, then the way to sign in.
pub async fn add_passkey(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    headers: HeaderMap,
    Form(form): Form<PasskeyForm>,
) -> Response {
    if !csrf::verify(&state, &headers, form.csrf.as_deref()) {
        return csrf::expired_form();
    }
    let Some(session) = current(&state, &tenant, &headers).await else { return refused(RecoveryRefusal::Gone) };
    let Some(name) = crate::account::passkeys::passkey_name(form.name.as_deref(), "Passkey") else {
        return PageError::new(StatusCode::BAD_REQUEST, "A passkey name must have 1 to 64 characters.").into_response();
    };
    let registration =
        ceremony::take::<(SubjectId, PasskeyRegistration)>(&state, &tenant, &headers, Purpose::RecoveryPasskey).await;
    let Some(registration) = registration.filter(|(sub, _)| *sub == session.sub).map(|(_, r)| r) else {
        return PageError::new(StatusCode::BAD_REQUEST, "The passkey request expired. Please try again.")
            .into_response();
    };
    let credential = form.credential.as_deref().unwrap_or_default();
    let passkey = match state.passkeys.finish_registration(credential, &registration, &name) {
        Ok(p) => p,
        Err(e) => {
            tracing::info!(error = %e, "recovery passkey refused");
            return PageError::new(StatusCode::BAD_REQUEST, "That passkey could not be added. Please try again.")
                .into_response();
        }
    };
    let done = state.services.recovery().complete(&tenant, &session, passkey).await;
    completed(&state, &tenant, &headers, done).await
}

/// `GET /recover/cancel?token=…`: the button that stops a waiting recovery.
pub async fn cancel_page(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    headers: HeaderMap,
    Query(q): Query<LinkQuery>,
) -> Response {
    let token = q.token.unwrap_or_default();
    match state.services.recovery().look_cancel(&tenant, &token).await {
        Ok(true) => confirmation(
            &state,
            &headers,
            (
                "Stop this recovery",
                "Someone started recovering your account. Stop it, so that it can never complete?".to_owned(),
                "Stop the recovery",
            ),
            recovery::CANCEL_PATH,
            &token,
        ),
        Ok(false) => {
            PageError::new(StatusCode::BAD_REQUEST, "This link has expired or was already used.").into_response()
        }
        Err(e) => PageError::from(e).into_response(),
    }
}

/// `POST /recover/cancel`: stops it.
pub async fn cancel(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    headers: HeaderMap,
    Form(form): Form<LinkForm>,
) -> Response {
    if !csrf::verify(&state, &headers, form.csrf.as_deref()) {
        return csrf::expired_form();
    }
    match state.services.recovery().cancel(&tenant, form.token.as_deref().unwrap_or_default()).await {
        Ok(_) => state.templates.render(
            StatusCode::OK,
            "message.html",
            minijinja::context! {
                title => "Recovery stopped", base => state.base(),
                message => "The recovery was stopped and can no longer complete. If you did not start it, someone can read your email: change your email password.",
                link => format!("{}/login", state.base()), link_text => "Sign in",
            },
        ),
        Err(ServiceError::NotFound(_)) => {
            PageError::new(StatusCode::BAD_REQUEST, "This link has expired or was already used.").into_response()
        }
        Err(e) => PageError::from(e).into_response(),
    }
}
