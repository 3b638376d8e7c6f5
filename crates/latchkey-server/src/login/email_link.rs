//! Sign-in by a link emailed to the account's verified address (`login.email_link`):
//! [`latchkey_service::email_sign_in`] keeps the rules. Asking keeps a random secret in this
//! browser's ceremony state; the link works only where that secret is, through its
//! confirmation page's POST, and then finishes like any sign-in (the second step, if the
//! account has one, then the application).

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use latchkey_core::crypto::random;
use latchkey_core::domain::{Factor, Factors};
use latchkey_service::email_sign_in::{self, LINK_LIFETIME, LINK_PATH};
use latchkey_service::message_limits::Limited;
use serde::{Deserialize, Serialize};

use super::complete::{self, ReturnTo};
use crate::browser::ceremony::{self, Purpose};
use crate::browser::csrf;
use crate::edge::{ClientIp, Tenant};
use crate::email_links::{LinkForm, LinkQuery, confirmation};
use crate::pages::PageError;
use crate::state::AppState;

/// What this browser asked for: the secret its link is bound to, and where to go after.
#[derive(Serialize, Deserialize)]
struct Asked {
    secret: String,
    req: Option<String>,
    return_to: Option<ReturnTo>,
}

#[derive(Deserialize)]
pub struct AskForm {
    csrf: Option<String>,
    identifier: Option<String>,
    req: Option<String>,
    return_to: Option<String>,
}

fn not_offered() -> Response {
    PageError::new(StatusCode::NOT_FOUND, "Sign-in links are not offered here.").into_response()
}

fn dead_link() -> Response {
    PageError::new(
        StatusCode::BAD_REQUEST,
        "This sign-in link has expired, was already used, or was asked for in another browser. Open it in the browser where you asked for it, or ask for a new one.",
    )
    .into_response()
}

/// `POST /login/email-link`: asks for a link. The same page for every name.
pub async fn ask(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Form(form): Form<AskForm>,
) -> Response {
    if !csrf::verify(&state, &headers, form.csrf.as_deref()) {
        return csrf::expired_form();
    }
    if !state.services.email_sign_in().offered() {
        return not_offered();
    }
    let typed = form.identifier.unwrap_or_default();
    if typed.trim().is_empty() || typed.len() > 320 {
        return PageError::new(StatusCode::BAD_REQUEST, "Give your username or email address.").into_response();
    }
    let req =
        form.req.filter(|r| r.len() <= 64 && r.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    let asked =
        Asked { secret: random::token_string::<32>(), req, return_to: ReturnTo::parse(form.return_to.as_deref()) };
    let mut page = match email_sign_in::request(&state.services, &tenant, &typed, &asked.secret, ip).await {
        // Kept only once the ask is taken, so that a refused ask never replaces the secret
        // of a link already on its way to this browser.
        Ok(()) => {
            let until = state.clock.now().plus(LINK_LIFETIME);
            let cookie = match ceremony::put_until(&state, &tenant, &headers, Purpose::EmailLink, &asked, until).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "cannot keep the sign-in link request");
                    return PageError::internal().into_response();
                }
            };
            let mut page = state.templates.render(
            StatusCode::OK,
            "message.html",
            minijinja::context! {
                title => "Check your email", base => state.base(),
                message => format!("If an account without a passkey and with a verified email address matches, a sign-in link is on its way there. Open it in this browser within {} minutes: it works nowhere else.", LINK_LIFETIME.as_secs() / 60),
            },
        );
            if let Some(c) = cookie {
                page.headers_mut().append(header::SET_COOKIE, c);
            }
            page
        }
        Err(Limited::TooMany) => PageError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many sign-in links were asked for. Try again in an hour.",
        )
        .into_response(),
        Err(Limited::Unavailable) => {
            PageError::new(StatusCode::SERVICE_UNAVAILABLE, "Sign-in links cannot be sent right now. Try again later.")
                .into_response()
        }
    };
    page.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    page
}

/// `GET /login/link?token=…`: a button, in the browser that asked only (opening uses nothing).
pub async fn page(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    headers: HeaderMap,
    Query(q): Query<LinkQuery>,
) -> Response {
    if !state.services.email_sign_in().offered() {
        return not_offered();
    }
    let token = q.token.unwrap_or_default();
    let Some(asked) = ceremony::peek::<Asked>(&state, &tenant, &headers, Purpose::EmailLink).await else {
        return dead_link();
    };
    match state.services.email_sign_in().look(&tenant, &token, &asked.secret).await {
        Ok(Some(user)) => confirmation(
            &state,
            &headers,
            (
                "Sign in",
                format!("Sign in to your account {} in this browser?", crate::account::known_as(&state, &user)),
                "Sign in",
            ),
            LINK_PATH,
            &token,
        ),
        Ok(None) => dead_link(),
        Err(e) => PageError::from(e).into_response(),
    }
}

/// `POST /login/link`: uses the link and signs this browser in (or goes on to the second step).
pub async fn sign_in(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Form(form): Form<LinkForm>,
) -> Response {
    if !csrf::verify(&state, &headers, form.csrf.as_deref()) {
        return csrf::expired_form();
    }
    if !state.services.email_sign_in().offered() {
        return not_offered();
    }
    let Some(asked) = ceremony::peek::<Asked>(&state, &tenant, &headers, Purpose::EmailLink).await else {
        return dead_link();
    };
    let token = form.token.as_deref().unwrap_or_default();
    let user = match state.services.email_sign_in().use_link(&tenant, token, &asked.secret).await {
        Ok(user) => user,
        Err(latchkey_service::ServiceError::NotFound(_)) => return dead_link(),
        Err(e) => return PageError::from(e).into_response(),
    };
    let _: Option<Asked> = ceremony::take(&state, &tenant, &headers, Purpose::EmailLink).await;
    let done = complete::SignedIn {
        user: &user,
        factors: Factors::new(Factor::EmailLink),
        remember: false,
        req: asked.req,
        return_to: asked.return_to,
        ip,
    };
    complete::complete(&state, &tenant, &headers, done).await
}
