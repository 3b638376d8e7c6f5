//! The account security page: passkeys, password, authenticator app (TOTP) and recovery
//! codes. Every change to a way of signing in needs a recent sign-in
//! (`login.recent_authentication`); otherwise the user is asked to confirm it's them first.
//! Removing a factor or changing the password ends the user's other sessions.

pub mod apps;
pub mod email;
pub mod erase;
pub mod export;
pub mod passkeys;
pub mod password;
pub mod phone;
pub mod recovery_codes;
pub mod sessions_page;
pub mod totp;
pub mod waiting_recovery;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use latchkey_core::domain::{SubjectId, TenantId};
use latchkey_core::records::{BrowserSession, User};
use serde::Deserialize;

use crate::browser::csrf;
use crate::edge::Tenant;
use crate::sessions;
use crate::state::AppState;

/// What the user knows themselves by: their username, or with `identifier = "email"` (where
/// the username is generated and never shown) their email address.
pub(crate) fn known_as(state: &AppState, user: &User) -> String {
    state.services.users().known_as(user)
}

pub(crate) use crate::account_forms::{
    back, failure, is_blocked, recent, recent_form, recent_session, refused, sign_in_first,
};

fn message(done: Option<&str>) -> Option<&'static str> {
    Some(match done? {
        "passkey_added" => "Passkey added.",
        "passkey_renamed" => "Passkey renamed.",
        "passkey_removed" => "Passkey removed. Your other sessions were signed out.",
        "password_set" => "Password saved.",
        "password_set_signed_out" => "Password saved. Your other sessions were signed out.",
        "password_removed" => "Password removed. Your other sessions were signed out.",
        "totp_enabled" => "Authenticator app turned on.",
        "totp_removed" => "Authenticator app removed. Your other sessions were signed out.",
        "email_link_sent" => {
            "We sent a link to the address. It becomes your address once you open the link and confirm."
        }
        "email_replaced" => "Email address saved.",
        "email_unchanged" => "That is your address already.",
        "recovery_cancelled" => "The recovery was stopped. It can no longer complete.",
        "phone_code_sent" => "We texted a code to the number. Type it below to confirm the number.",
        "phone_verified" => "Phone number confirmed.",
        "provider_linked" => "Linked. You can sign in with it now.",
        "provider_unlinked" => "Unlinked. It no longer signs you in here.",
        _ => return None,
    })
}

fn error_message(error: Option<&str>) -> Option<&'static str> {
    Some(match error? {
        "last_method" => "That is your last way to sign in. Add another passkey or a password first.",
        "no_password" => "There is no password to remove.",
        "not_found" => "That passkey does not exist.",
        "bad_name" => "A passkey name must have 1 to 64 characters.",
        "bad_email" => "That is not an email address.",
        "no_email" => "Your account has no email address yet: add one first.",
        _ => return None,
    })
}

#[derive(Deserialize)]
pub struct SecurityQuery {
    done: Option<String>,
    error: Option<String>,
    /// Set after signing in with a recovery code: invite to add a passkey.
    recovered: Option<String>,
    /// A waiting authorization request to continue to.
    req: Option<String>,
}

pub async fn security_page(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    headers: HeaderMap,
    Query(q): Query<SecurityQuery>,
) -> Response {
    let Some(session) = sessions::current(&state, &tenant, &headers).await else { return sign_in_first(&state) };
    let user = match state.services.users().by_sub(&tenant, &session.sub).await {
        Ok(Some(u)) => u,
        Ok(None) => return sign_in_first(&state),
        Err(e) => return failure(e),
    };
    match render(&state, &tenant, &headers, &session, &user, &q).await {
        Ok(r) => r,
        Err(e) => failure(e),
    }
}

async fn render(
    state: &AppState,
    tenant: &TenantId,
    headers: &HeaderMap,
    session: &BrowserSession,
    user: &User,
    q: &SecurityQuery,
) -> Result<Response, latchkey_service::ServiceError> {
    let sub: &SubjectId = &user.sub;
    let passkeys = state.services.factors().passkeys(tenant, sub).await?;
    let totp = state.services.factors().totp(tenant, sub).await?;
    let recovery_left = state.services.factors().recovery_codes_left(tenant, sub).await?;
    let pending_email = state.services.email_verification().pending(tenant, user).await?;
    let waiting_recovery = state.services.recovery().waiting_for(tenant, sub).await?.map(|t| t.to_rfc3339());
    let pending_phone = state.services.phone_verification().pending(tenant, user).await?;
    let (providers, waiting_link) = crate::federation::account::security_rows(state, tenant, headers, sub).await?;
    // Links to providers still configured: a way in.
    let identities = providers
        .iter()
        .filter(|p| {
            p.get_attr("linked").is_ok_and(|l| l.is_true()) && p.get_attr("gone").is_ok_and(|g| g.is_undefined())
        })
        .count();
    let removable = passkeys.len() > 1 || (user.has_password && state.config.login.passwords) || identities > 0;
    let rows: Vec<minijinja::Value> = passkeys
        .iter()
        .map(|p| {
            minijinja::context! {
                id => p.credential_id, name => p.name, created => p.created_at.to_rfc3339(),
                last_used => p.last_used_at.map(|t| t.to_rfc3339()), synced => p.backup_eligible,
                backed_up => p.backup_state, removable,
            }
        })
        .collect();
    let (csrf, set_cookie) = csrf::token(state, headers);
    let mut response = state.templates.render(
        StatusCode::OK,
        "security.html",
        minijinja::context! {
            title => "Security", base => state.base(), csrf, username => known_as(state, user),
            passkeys => rows, passkeys_available => state.passkeys.available(),
            has_password => user.has_password, passwords => state.config.login.passwords,
            password_removable => user.has_password && (!passkeys.is_empty() || identities > 0),
            providers, waiting_link,
            totp => totp.as_ref().map(|t| if t.confirmed { "on" } else { "pending" }).unwrap_or("off"),
            recovery_left, recent => recent(state, session),
            done => message(q.done.as_deref()), error => error_message(q.error.as_deref()),
            recovered => q.recovered.is_some(),
            email => user.email.as_ref().map(|e| e.as_str()), email_verified => user.email_verified,
            pending_email => pending_email.as_ref().map(|e| e.as_str()), waiting_recovery,
            blocked => user.changes_blocked_at.map(|t| t.to_rfc3339()),
            sms => state.services.outbox().sms_enabled(), pending_phone,
            phone => user.profile.phone_number.as_deref(), phone_verified => user.profile.phone_number_verified,
            mail => state.services.outbox().mail_enabled(), mail_delayed => state.services.outbox().mail_delayed(),
            req => q.req.as_deref().filter(|r| r.len() <= 64 && r.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')),
        },
    );
    if let Some(c) = set_cookie {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // "Link …" leads to the provider (a form's redirects are checked against form-action).
    let upstream = state.upstreams.form_origins();
    if !upstream.is_empty() {
        crate::edge::headers::set_csp(&mut response, &crate::edge::headers::csp_allowing_forms_to(&upstream));
    }
    Ok(response)
}

/// Back to the security page with an error chosen by key.
pub(crate) fn redirect_error(state: &AppState, error: &str) -> Response {
    Redirect::to(&format!("{}/account/security?error={error}", state.base())).into_response()
}
