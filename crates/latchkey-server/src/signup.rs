//! Creating an account with a passkey and no password (`registration.mode` = `open`, or
//! `invite` with a link from `latchkey invite create`).
//!
//! What sign-up may reveal: a taken username is reported (usernames are public). An email
//! address is never reported as taken — an unverified address claims nothing, and stays
//! `email_verified: false` until verified by link. The account, its first passkey, its
//! recovery codes and the use of the invitation are stored in one transaction; the ten
//! recovery codes are shown once, on the page that answers the final POST.

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse as _;
use axum::response::Response;
use latchkey_core::crypto::TokenHash;
use latchkey_core::domain::{DisplayName, Email, Factor, Factors, ProfileClaims, SubjectId, Username};
use latchkey_core::records::NewUser;
use latchkey_service::ServiceError;
use latchkey_service::passkeys::PasskeyRegistration;
use serde::{Deserialize, Serialize};

use crate::account::recovery_codes;
use crate::browser::ceremony::{self, Purpose};
use crate::browser::csrf;
use crate::browser::json::json_error;
use crate::edge::ClientIp;
use crate::edge::Tenant;
use crate::pages::PageError;
use crate::sessions;
use crate::state::AppState;
use latchkey_service::passkeys::new_user_handle;
use latchkey_service::sign_up::{NewAccountRequest, SignUpRefusal};

pub fn invitation_hash(state: &AppState, token: &str) -> TokenHash {
    state.services.invitations().hash(token)
}

/// What a person is told when sign-up is refused, and with which status.
fn refusal(refused: SignUpRefusal) -> (StatusCode, &'static str) {
    match refused {
        SignUpRefusal::Closed => {
            (StatusCode::NOT_FOUND, "Sign-up is closed here. Ask an administrator for an account.")
        }
        SignUpRefusal::InvitationNeeded => (StatusCode::FORBIDDEN, "Sign-up needs an invitation link."),
        SignUpRefusal::InvitationUnusable => {
            (StatusCode::FORBIDDEN, "This invitation link has been used, has expired or is not valid.")
        }
        SignUpRefusal::TooManyFromHere => {
            (StatusCode::TOO_MANY_REQUESTS, "Too many sign-ups from here. Please try again later.")
        }
        SignUpRefusal::EmailRequired => (StatusCode::BAD_REQUEST, "Enter your email address."),
        SignUpRefusal::EmailMalformed => (StatusCode::BAD_REQUEST, "That email address does not look right."),
        SignUpRefusal::UsernameMalformed => {
            (StatusCode::BAD_REQUEST, "Choose a username of 1-64 letters, digits, dots, dashes or underscores.")
        }
        // Usernames are public identifiers, so a taken one is said (documented).
        SignUpRefusal::UsernameTaken => (StatusCode::CONFLICT, "That username is taken. Choose another."),
    }
}

#[derive(Deserialize)]
pub struct SignUpQuery {
    invite: Option<String>,
    req: Option<String>,
}

pub async fn page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Tenant(tenant): Tenant,
    Query(q): Query<SignUpQuery>,
) -> Response {
    if let Err(refused) = state.services.sign_up().admission(&tenant, q.invite.as_deref()).await {
        let (status, message) = refusal(refused);
        return PageError::new(status, message.to_owned()).into_response();
    }
    if !state.passkeys.available() {
        return PageError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Passkeys are not available on this server, so sign-up is too.",
        )
        .into_response();
    }
    let sign_up = state.services.sign_up();
    let (csrf, set_cookie) = csrf::token(&state, &headers);
    let mut response = state.templates.render(
        StatusCode::OK,
        "signup.html",
        minijinja::context! {
            title => "Create an account", base => state.base(), csrf, invite => q.invite, req => q.req,
            ask_username => sign_up.asks_username(), email_required => sign_up.email_required(),
        },
    );
    if let Some(c) = set_cookie {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    response
}

/// A sign-up waiting for its passkey.
#[derive(Serialize, Deserialize)]
struct PendingSignUp {
    registration: PasskeyRegistration,
    sub: String,
    handle: String,
    username: String,
    email: Option<String>,
    name: String,
    invitation: Option<String>,
    req: Option<String>,
}

#[derive(Deserialize)]
pub struct OptionsForm {
    csrf: Option<String>,
    username: Option<String>,
    email: Option<String>,
    name: Option<String>,
    invite: Option<String>,
    req: Option<String>,
}

fn refused_json(refused: SignUpRefusal) -> Response {
    let (status, message) = refusal(refused);
    json_error(status, message)
}

pub async fn options(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Form(form): Form<OptionsForm>,
) -> Response {
    if !csrf::verify(&state, &headers, form.csrf.as_deref()) {
        return json_error(StatusCode::FORBIDDEN, "This page has expired. Reload it and try again.");
    }
    let sign_up = state.services.sign_up();
    let invitation = match sign_up.admission(&tenant, form.invite.as_deref()).await {
        Ok(i) => i,
        Err(refused) => return refused_json(refused),
    };
    if let Err(refused) = sign_up.allowed_from(&tenant, ip).await {
        return refused_json(refused);
    }
    let name = match DisplayName::parse(form.name.as_deref().unwrap_or_default()) {
        Ok(n) => n,
        Err(_) => return json_error(StatusCode::BAD_REQUEST, "Enter your name (up to 200 characters)."),
    };
    let (username, email) = match sign_up.identity(&tenant, form.username.as_deref(), form.email.as_deref()).await {
        Ok(identity) => identity,
        Err(refused) => return refused_json(refused),
    };
    let handle = new_user_handle();
    let shown_name = email.as_ref().filter(|_| !sign_up.asks_username()).map_or(username.as_str(), |e| e.as_str());
    let (options, registration) = match state.passkeys.start_registration(handle, shown_name, name.as_str(), &[]) {
        Ok(o) => o,
        Err(e) => return json_error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    };
    let pending = PendingSignUp {
        registration,
        sub: SubjectId::generate().to_string(),
        handle: handle.to_string(),
        username: username.to_string(),
        email: email.map(|e| e.to_string()),
        name: name.as_str().to_owned(),
        invitation: invitation.map(|h| h.as_str().to_owned()),
        // A parked authorization request's id (URL-safe base64); anything else is dropped.
        req: form.req.filter(|r| {
            !r.is_empty() && r.len() <= 64 && r.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        }),
    };
    match ceremony::put(&state, &tenant, &headers, Purpose::SignUp, &pending).await {
        Ok(cookie) => crate::browser::json::options_response(options, cookie),
        Err(e) => json_error(StatusCode::INTERNAL_SERVER_ERROR, &e),
    }
}

#[derive(Deserialize)]
pub struct FinishForm {
    csrf: Option<String>,
    credential: Option<String>,
}

pub async fn finish(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Form(form): Form<FinishForm>,
) -> Response {
    if !csrf::verify(&state, &headers, form.csrf.as_deref()) {
        return csrf::expired_form();
    }
    let Some(pending) = ceremony::take::<PendingSignUp>(&state, &tenant, &headers, Purpose::SignUp).await else {
        return PageError::new(StatusCode::BAD_REQUEST, "This sign-up has expired. Please start again.")
            .into_response();
    };
    let passkey = match state.passkeys.finish_registration(
        form.credential.as_deref().unwrap_or(""),
        &pending.registration,
        "Passkey",
    ) {
        Ok(p) => p,
        Err(e) => {
            tracing::info!(error = %e, "sign-up passkey refused");
            return PageError::new(StatusCode::BAD_REQUEST, "The passkey could not be created. Please start again.")
                .into_response();
        }
    };
    let synced = passkey.backup_eligible;
    let parsed = (|| {
        Some(NewUser {
            sub: SubjectId::parse(&pending.sub).ok()?,
            username: Username::parse(&pending.username).ok()?,
            email: match &pending.email {
                Some(e) => Some(Email::parse(e).ok()?),
                None => None,
            },
            email_verified: false,
            name: Some(DisplayName::parse(&pending.name).ok()?),
            profile: ProfileClaims::default(),
            password_hash: None,
            service_account: false,
        })
    })();
    let Some(user) = parsed else {
        return PageError::new(StatusCode::BAD_REQUEST, "This sign-up has expired. Please start again.")
            .into_response();
    };
    let account = NewAccountRequest {
        user,
        webauthn_user_id: pending.handle.clone(),
        passkey,
        invitation: pending.invitation.map(TokenHash::from_stored),
    };
    let (created, codes) = match state.services.sign_up().create(&tenant, account, ip).await {
        Ok(created) => created,
        Err(ServiceError::Conflict(m)) if m.contains("username") => {
            return PageError::new(
                StatusCode::CONFLICT,
                "That username was taken a moment ago. Please start again with another.",
            )
            .into_response();
        }
        Err(ServiceError::Invalid(m)) => {
            return PageError::new(StatusCode::FORBIDDEN, format!("Sign-up failed: {m}.")).into_response();
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot create account");
            return PageError::internal().into_response();
        }
    };
    let factors = Factors::new(Factor::Passkey { synced, user_verified: true });
    let sign_in = sessions::SignedIn {
        sub: created.sub.clone(),
        amr: factors.amr(),
        acr: factors.level().acr().into(),
        remember: false,
        user_agent: headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(str::to_owned),
        ip: Some(ip.to_string()),
        authenticated_at: None,
    };
    let cookies = match sessions::start(&state, &tenant, &headers, sign_in).await {
        Ok((_, c)) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot create session");
            return PageError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Your account was created, but signing in failed. Please sign in.",
            )
            .into_response();
        }
    };
    let next = match &pending.req {
        Some(req) => format!("{}/authorize/resume?req={req}", state.base()),
        None => format!("{}/account/security", state.base()),
    };
    let device = crate::browser::device::signed_in(&state, &tenant, &headers, &created, true).await;
    let mut response = recovery_codes::show(&state, &codes, &next, true);
    sessions::set_cookies(&mut response, cookies);
    if let Some(c) = device {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    response
}
