//! Signing in with a recovery code, for someone who lost their passkeys (and password or
//! authenticator app). The code is used up; the user is sent to add a new passkey.

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use latchkey_core::domain::{Factor, Factors};
use serde::Deserialize;

use super::complete::{self, ReturnTo};
use super::identifier_label;
use crate::attempt_limits::{self, Account, Admission, Guess};
use crate::browser::csrf;
use crate::edge::ClientIp;
use crate::edge::Tenant;
use crate::oauth::parked::load_pending;
use crate::state::AppState;

#[derive(Deserialize)]
pub struct RecoveryQuery {
    req: Option<String>,
}

fn render(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    req: Option<&str>,
    username: &str,
    error: Option<&str>,
) -> Response {
    let (csrf, set_cookie) = csrf::token(state, headers);
    let mut response = state.templates.render(
        status,
        "recovery_login.html",
        minijinja::context! {
            title => "Use a recovery code", base => state.base(), csrf, req, username, error,
            identifier_label => identifier_label(state),
        },
    );
    if let Some(c) = set_cookie {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    response
}

pub async fn page(State(state): State<AppState>, headers: HeaderMap, Query(q): Query<RecoveryQuery>) -> Response {
    render(&state, &headers, StatusCode::OK, q.req.as_deref(), "", None)
}

#[derive(Deserialize)]
pub struct RecoveryForm {
    csrf: Option<String>,
    req: Option<String>,
    username: Option<String>,
    code: Option<String>,
}

pub async fn submit(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Form(form): Form<RecoveryForm>,
) -> Response {
    if !csrf::verify(&state, &headers, form.csrf.as_deref()) {
        return csrf::expired_form();
    }
    if let Some(id) = &form.req
        && load_pending(&state, &tenant, &headers, id).await.is_none()
    {
        return super::expired();
    }
    let typed = form.username.as_deref().unwrap_or_default();
    let login = typed.trim().to_lowercase();
    let req = form.req.as_deref();
    let user = state.services.sign_in().account_named(&tenant, typed).await;
    let account = user.as_ref().map_or(Account::Unknown(typed), |u| Account::Known(&u.sub));
    let attempt = match state.services.sign_in().reserve(&tenant, Guess::RecoveryCode, account, ip).await {
        Admission::Allowed(attempt) => attempt,
        Admission::Refused => {
            metrics::counter!("latchkey_logins_total", "outcome" => "throttled").increment(1);
            let message = "Too many failed attempts. Please wait a few minutes and try again.";
            let mut response = render(&state, &headers, StatusCode::TOO_MANY_REQUESTS, req, &login, Some(message));
            attempt_limits::retry_after(&state, &mut response);
            return response;
        }
        Admission::Unavailable => {
            let status = StatusCode::SERVICE_UNAVAILABLE;
            return render(&state, &headers, status, req, &login, Some(attempt_limits::UNAVAILABLE));
        }
    };
    let used = match user.as_ref().filter(|u| !u.locked) {
        Some(u) => {
            state
                .services
                .factors()
                .redeem_recovery_code(&tenant, &u.sub, form.code.as_deref().unwrap_or_default())
                .await
        }
        None => false,
    };
    let Some(user) = user.filter(|_| used) else {
        attempt.failed();
        metrics::counter!("latchkey_logins_total", "outcome" => "failed").increment(1);
        let message = "The username or recovery code is wrong.";
        return render(&state, &headers, StatusCode::UNAUTHORIZED, req, &login, Some(message));
    };
    state.services.sign_in().succeeded(&tenant, attempt).await;
    let done = complete::SignedIn {
        user: &user,
        factors: Factors::new(Factor::RecoveryCode),
        remember: false,
        req: form.req.clone(),
        return_to: Some(ReturnTo::Security),
        ip,
    };
    complete::complete(&state, &tenant, &headers, done).await
}
