//! The pages behind links sent by email. Opening a link only shows what it will do, with a
//! button: the link's token is used by that page's POST, never by the GET, so a mail
//! scanner that fetches every link in a message cannot use one up.

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use latchkey_service::ServiceError;
use serde::Deserialize;

use crate::browser::csrf;
use crate::edge::Tenant;
use crate::pages::PageError;
use crate::state::AppState;

#[derive(Deserialize)]
pub struct LinkQuery {
    pub(crate) token: Option<String>,
}

#[derive(Deserialize)]
pub struct LinkForm {
    pub(crate) csrf: Option<String>,
    pub(crate) token: Option<String>,
}

/// What a person is told about a link that does not (or no longer) work.
fn dead_link(what: &str) -> Response {
    PageError::new(
        StatusCode::BAD_REQUEST,
        format!("This {what} link has expired or was already used. Ask for a new one."),
    )
    .into_response()
}

/// The page that asks to confirm what a link does, its form carrying the token.
pub(crate) fn confirmation(
    state: &AppState,
    headers: &HeaderMap,
    (title, message, button): (&str, String, &str),
    action: &str,
    token: &str,
) -> Response {
    let (csrf, set_cookie) = csrf::token(state, headers);
    let mut response = state.templates.render(
        StatusCode::OK,
        "confirm_link.html",
        minijinja::context! {
            title, message, button, csrf, token, base => state.base(),
            action => format!("{}{action}", state.base()),
        },
    );
    if let Some(c) = set_cookie {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `GET /email/verify?token=…`: which address the link confirms, and a button.
pub async fn verify_page(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    headers: HeaderMap,
    Query(q): Query<LinkQuery>,
) -> Response {
    let token = q.token.unwrap_or_default();
    let (user, address) = match state.services.email_verification().look(&tenant, &token).await {
        Ok(Some(found)) => found,
        Ok(None) => return dead_link("verification"),
        Err(e) => return PageError::from(e).into_response(),
    };
    let account = crate::account::known_as(&state, &user);
    let signed_in = crate::sessions::current(&state, &tenant, &headers).await;
    if signed_in.is_none_or(|s| s.sub != user.sub) {
        return sign_in_as(&state, &account);
    }
    confirmation(
        &state,
        &headers,
        (
            "Confirm your email address",
            format!("Confirm that {address} is the email address of your account {account}."),
            "Confirm",
        ),
        latchkey_service::email_verification::PATH,
        &token,
    )
}

/// The page for a verification link opened in a browser not signed in to its account: the
/// link works only there, so that nobody can have an address verified for their account by
/// sending its owner a link.
fn sign_in_as(state: &AppState, account: &str) -> Response {
    let mut page = state.templates.render(
        StatusCode::FORBIDDEN,
        "message.html",
        minijinja::context! {
            title => "Sign in first", base => state.base(),
            message => format!("This link confirms the email address of the account {account}. Sign in to that account in this browser, then open the link again."),
            link => format!("{}/login?return_to=security", state.base()), link_text => "Sign in",
        },
    );
    page.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    page
}

/// `POST /email/verify`: uses the link; the address becomes the account's, verified.
pub async fn verify(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    headers: HeaderMap,
    Form(form): Form<LinkForm>,
) -> Response {
    if !csrf::verify(&state, &headers, form.csrf.as_deref()) {
        return csrf::expired_form();
    }
    let token = form.token.as_deref().unwrap_or_default();
    let Some(session) = crate::sessions::current(&state, &tenant, &headers).await else {
        return match state.services.email_verification().look(&tenant, token).await {
            Ok(Some((user, _))) => sign_in_as(&state, &crate::account::known_as(&state, &user)),
            _ => dead_link("verification"),
        };
    };
    match state.services.email_verification().confirm(&tenant, token, &session.sub).await {
        Ok((_, address)) => state.templates.render(
            StatusCode::OK,
            "message.html",
            minijinja::context! {
                title => "Email address confirmed", base => state.base(),
                message => format!("{address} is now the verified email address of your account."),
                link => format!("{}/account/security", state.base()), link_text => "Go to your security page",
            },
        ),
        Err(ServiceError::NotFound(_)) => dead_link("verification"),
        Err(ServiceError::Invalid(_)) => PageError::new(
            StatusCode::FORBIDDEN,
            "This link confirms the address of another account. Sign in to that account in this browser, then open the link again.",
        )
        .into_response(),
        Err(ServiceError::Conflict(_)) => PageError::new(
            StatusCode::CONFLICT,
            "Another account has verified this address already. Use a different address, or ask the people who run this site.",
        )
        .into_response(),
        Err(e) => PageError::from(e).into_response(),
    }
}
