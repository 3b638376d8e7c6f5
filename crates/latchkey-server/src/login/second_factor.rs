//! The second step of a password sign-in for a user who has a second factor: a passkey, a
//! code from their authenticator app, a code by text (where offered), or a recovery code.

use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse as _;
use axum::response::Response;
use latchkey_core::domain::Factor;
use latchkey_service::ServiceError;
use latchkey_service::sms_second_factor::masked;
use serde::Deserialize;

use super::complete::{self, Pending};
use crate::attempt_limits::{self, Account, Admission, Guess};
use crate::browser::ceremony::{self, Purpose};
use crate::browser::csrf;
use crate::edge::ClientIp;
use crate::edge::Tenant;
use crate::pages::PageError;
use crate::state::AppState;
use latchkey_core::domain::TenantId;

fn expired() -> Response {
    PageError::new(
        StatusCode::BAD_REQUEST,
        "This sign-in has expired or belongs to another browser. Please sign in again.",
    )
    .into_response()
}

/// Puts the pending sign-in back (it was taken to be read) and shows the page.
async fn keep_and_render(
    state: &AppState,
    tenant: &TenantId,
    headers: &HeaderMap,
    pending: &Pending,
    status: StatusCode,
    error: Option<&str>,
) -> Response {
    keep_and_show(state, tenant, headers, pending, (status, error), None).await
}

/// [`keep_and_render`], saying where a code was just texted (`texted`, masked).
async fn keep_and_show(
    state: &AppState,
    tenant: &TenantId,
    headers: &HeaderMap,
    pending: &Pending,
    (status, error): (StatusCode, Option<&str>),
    texted: Option<&str>,
) -> Response {
    if let Err(e) = ceremony::put(state, tenant, headers, Purpose::SecondFactor, pending).await {
        tracing::error!(error = %e, "cannot keep the pending sign-in");
        return PageError::internal().into_response();
    }
    let Some(sub) = pending.subject() else { return expired() };
    let has = state.services.factors().second_factors(tenant, &sub).await;
    let (csrf, set_cookie) = csrf::token(state, headers);
    let mut response = state.templates.render(
        status,
        "second_factor.html",
        minijinja::context! {
            title => "Second step", base => state.base(), csrf, error,
            passkeys => has.passkeys > 0 && state.passkeys.available(), totp => has.totp,
            sms => has.sms.as_deref().map(masked), texted,
        },
    );
    if let Some(c) = set_cookie {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    // Both forms end (after 303s) at the client's redirect URI when no consent page comes
    // between: the page must allow that origin as a form target, as the login page does.
    if let Some(req) = &pending.req
        && let Some((request, _)) = crate::oauth::parked::load_pending(state, tenant, headers, req).await
    {
        super::allow_form_redirect(&mut response, Some(&request.redirect_uri));
    }
    response
}

pub async fn page(State(state): State<AppState>, Tenant(tenant): Tenant, headers: HeaderMap) -> Response {
    match ceremony::take::<Pending>(&state, &tenant, &headers, Purpose::SecondFactor).await {
        Some(pending) => keep_and_render(&state, &tenant, &headers, &pending, StatusCode::OK, None).await,
        None => expired(),
    }
}

#[derive(Deserialize)]
pub struct SendForm {
    csrf: Option<String>,
}

/// `POST /login/second-factor/sms`: texts a code to the account's verified number (where
/// codes by text are offered to it) and shows the page again, saying where it went.
pub async fn send_sms(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Form(form): Form<SendForm>,
) -> Response {
    if !csrf::verify(&state, &headers, form.csrf.as_deref()) {
        return csrf::expired_form();
    }
    let Some(pending) = ceremony::take::<Pending>(&state, &tenant, &headers, Purpose::SecondFactor).await else {
        return expired();
    };
    let Some(sub) = pending.subject() else { return expired() };
    let step = latchkey_service::sms_second_factor::Step::SignIn;
    match state.services.sms_second_factor().send(&tenant, &sub, ip, step).await {
        Ok(number) => {
            keep_and_show(&state, &tenant, &headers, &pending, (StatusCode::OK, None), Some(&masked(&number))).await
        }
        Err(ServiceError::Invalid(m)) => {
            keep_and_render(&state, &tenant, &headers, &pending, StatusCode::BAD_REQUEST, Some(&m)).await
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot text a sign-in code");
            let message = "Text messages cannot be sent right now. Use another way, or try again later.";
            keep_and_render(&state, &tenant, &headers, &pending, StatusCode::SERVICE_UNAVAILABLE, Some(message)).await
        }
    }
}

#[derive(Deserialize)]
pub struct CodeForm {
    csrf: Option<String>,
    /// `totp` or `recovery`.
    method: Option<String>,
    code: Option<String>,
}

pub async fn submit(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Form(form): Form<CodeForm>,
) -> Response {
    if !csrf::verify(&state, &headers, form.csrf.as_deref()) {
        return csrf::expired_form();
    }
    let Some(pending) = ceremony::take::<Pending>(&state, &tenant, &headers, Purpose::SecondFactor).await else {
        return expired();
    };
    let Some(sub) = pending.subject() else { return expired() };
    let method = match form.method.as_deref() {
        Some("totp") => Factor::Totp,
        Some("recovery") => Factor::RecoveryCode,
        Some("sms") => Factor::Sms,
        _ => {
            let choose = Some("Choose how to confirm.");
            return keep_and_render(&state, &tenant, &headers, &pending, StatusCode::BAD_REQUEST, choose).await;
        }
    };
    let attempt = match state.services.sign_in().reserve(&tenant, Guess::SecondFactor, Account::Known(&sub), ip).await {
        Admission::Allowed(attempt) => attempt,
        Admission::Refused => {
            metrics::counter!("latchkey_logins_total", "outcome" => "throttled").increment(1);
            let message = "Too many wrong codes. Please wait a few minutes and try again.";
            let mut response =
                keep_and_render(&state, &tenant, &headers, &pending, StatusCode::TOO_MANY_REQUESTS, Some(message))
                    .await;
            attempt_limits::retry_after(&state, &mut response);
            return response;
        }
        Admission::Unavailable => {
            let status = StatusCode::SERVICE_UNAVAILABLE;
            return keep_and_render(&state, &tenant, &headers, &pending, status, Some(attempt_limits::UNAVAILABLE))
                .await;
        }
    };
    let code = form.code.unwrap_or_default();
    let right = match method {
        Factor::Totp => state.services.factors().check_totp(&tenant, &sub, &code).await,
        Factor::Sms => state.services.sms_second_factor().check(&tenant, &sub, &code).await,
        _ => state.services.factors().redeem_recovery_code(&tenant, &sub, &code).await,
    };
    let factor = right.then_some(method);
    let Some(factor) = factor else {
        attempt.failed();
        metrics::counter!("latchkey_logins_total", "outcome" => "failed").increment(1);
        return keep_and_render(
            &state,
            &tenant,
            &headers,
            &pending,
            StatusCode::UNAUTHORIZED,
            Some("That code is not right."),
        )
        .await;
    };
    state.services.sign_in().succeeded(&tenant, attempt).await;
    let Some(user) = state.services.users().by_sub(&tenant, &sub).await.ok().flatten().filter(|u| !u.locked) else {
        return expired();
    };
    let done = complete::SignedIn {
        user: &user,
        factors: pending.factors.with(factor),
        remember: pending.remember,
        req: pending.req,
        return_to: pending.return_to,
        ip,
    };
    complete::complete(&state, &tenant, &headers, done).await
}
