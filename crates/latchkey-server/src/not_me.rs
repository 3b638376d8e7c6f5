//! "This wasn't me": the page behind the link in every security notice
//! ([`latchkey_service::security_notices`]). Opening it only asks; its POST signs the account
//! out everywhere, takes back what was added since the change, and blocks changes until the
//! owner recovers the account.

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use latchkey_service::ServiceError;
use latchkey_service::security_notices::{Disowned, NOT_ME_PATH};

use crate::browser::csrf;
use crate::edge::Tenant;
use crate::email_links::{LinkForm, LinkQuery, confirmation};
use crate::pages::PageError;
use crate::state::AppState;

fn dead_link() -> Response {
    PageError::new(
        StatusCode::BAD_REQUEST,
        "This link has expired or was already used. If someone else is using your account, use \"Can't sign in?\" on the sign-in page to recover it.",
    )
    .into_response()
}

/// `GET /security/not-me?token=…`: what pressing the button will do.
pub async fn page(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    headers: HeaderMap,
    Query(q): Query<LinkQuery>,
) -> Response {
    let token = q.token.unwrap_or_default();
    match state.services.security_notices().look(&tenant, &token).await {
        Ok(Some(user)) => confirmation(
            &state,
            &headers,
            (
                "This wasn't me",
                format!(
                    "Someone changed your account {} without you? This signs it out everywhere, takes back \
                     passkeys, an authenticator app and a password added since that change, withdraws your \
                     recovery codes, and blocks changes until you recover the account.",
                    crate::account::known_as(&state, &user)
                ),
                "Secure my account",
            ),
            NOT_ME_PATH,
            &token,
        ),
        Ok(None) => dead_link(),
        Err(e) => PageError::from(e).into_response(),
    }
}

/// `POST /security/not-me`: does it, and says what was done.
pub async fn disown(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    headers: HeaderMap,
    Form(form): Form<LinkForm>,
) -> Response {
    if !csrf::verify(&state, &headers, form.csrf.as_deref()) {
        return csrf::expired_form();
    }
    let token = form.token.as_deref().unwrap_or_default();
    match state.services.security_notices().disown(&tenant, token).await {
        Ok((_, done)) => {
            let mut page = state.templates.render(
                StatusCode::OK,
                "message.html",
                minijinja::context! {
                    title => "Your account is secured", base => state.base(),
                    message => summary(&done),
                    link => format!("{}/recover", state.base()), link_text => "Recover your account",
                },
            );
            page.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            page
        }
        Err(ServiceError::NotFound(_)) => dead_link(),
        Err(e) => PageError::from(e).into_response(),
    }
}

fn summary(done: &Disowned) -> String {
    let mut taken = Vec::new();
    if done.passkeys_removed > 0 {
        taken.push(format!("{} passkey(s)", done.passkeys_removed));
    }
    if done.identities_unlinked > 0 {
        taken.push(format!("{} linked sign-in provider(s)", done.identities_unlinked));
    }
    if done.app_removed {
        taken.push("the authenticator app".to_owned());
    }
    if done.password_removed {
        taken.push("the password".to_owned());
    }
    let taken = if taken.is_empty() {
        "Nothing had been added since that change.".to_owned()
    } else {
        format!("Taken back: {}.", taken.join(", "))
    };
    format!(
        "Your account was signed out everywhere ({} session(s)) and its recovery codes withdrawn. {taken} \
         Changes are blocked until you recover the account: use the button below, then add a new passkey.",
        done.sessions_ended
    )
}
