//! Signing in with a passkey: usernameless (the browser offers every passkey it holds for
//! this site, also as autofill), username-first (the same options, whatever name was typed:
//! they tell nothing about accounts), and as the second factor after a password (the
//! account's passkeys, once the password has proved who is asking).

use crate::browser::json::{json_error, options_response};
use crate::edge::Tenant;
use crate::pages::PageError;
use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use latchkey_core::domain::Factors;
use latchkey_service::passkeys::DiscoverableAuthentication;
use serde::Deserialize;

use crate::browser::ceremony::{self, Purpose};
use crate::browser::csrf;
use crate::edge::ClientIp;
use crate::login::complete::{self, Pending, ReturnTo};
use crate::login::{LoginView, render_login};
use crate::oauth::parked::load_pending;
use crate::state::AppState;

#[derive(Deserialize)]
pub struct OptionsForm {
    csrf: Option<String>,
    /// `1` for autofill (conditional mediation).
    conditional: Option<String>,
    /// `1` when the passkey is the second factor after a password.
    second_factor: Option<String>,
}

pub async fn options(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    headers: HeaderMap,
    Form(form): Form<OptionsForm>,
) -> Response {
    if !csrf::verify(&state, &headers, form.csrf.as_deref()) {
        return json_error(StatusCode::FORBIDDEN, "This page has expired. Reload it and try again.");
    }
    let allow: Vec<String> = if form.second_factor.is_some() {
        // The second factor is for the account the password named; the pending sign-in
        // stays where it is (it is taken when the passkey's answer arrives).
        let Some(pending) = ceremony::take::<Pending>(&state, &tenant, &headers, Purpose::SecondFactor).await else {
            return json_error(StatusCode::BAD_REQUEST, "This sign-in has expired. Please start again.");
        };
        let ids = match pending.subject() {
            Some(sub) => state.services.factors().passkeys(&tenant, &sub).await.unwrap_or_default(),
            None => Vec::new(),
        };
        if let Err(e) = ceremony::put(&state, &tenant, &headers, Purpose::SecondFactor, &pending).await {
            tracing::error!(error = %e, "cannot keep the pending sign-in");
            return json_error(StatusCode::INTERNAL_SERVER_ERROR, PageError::INTERNAL);
        }
        ids.into_iter().map(|p| p.credential_id).collect()
    } else {
        // Username-first or not (the page also posts the typed `username`, which is not
        // read), before anyone has proved anything the options name no credential: every
        // Latchkey passkey is discoverable, so the browser finds the site's passkeys itself. A list for the typed name would show which username and
        // which email address share an account (the same list for both), and whether it
        // has passkeys at all (WebAuthn Level 3 §14.6.3, privacy leak via credential IDs);
        // made-up lists for unknown names hide only the second. The same answer for every
        // name hides both. Which account signs in is decided by the passkey.
        Vec::new()
    };
    let (options, challenge) = match state.passkeys.start_sign_in(&allow, form.conditional.as_deref() == Some("1")) {
        Ok(o) => o,
        Err(e) => return json_error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    };
    match ceremony::put(&state, &tenant, &headers, Purpose::PasskeySignIn, &challenge).await {
        Ok(cookie) => options_response(options, cookie),
        Err(e) => {
            tracing::error!(error = %e, "cannot keep the passkey challenge");
            json_error(StatusCode::INTERNAL_SERVER_ERROR, PageError::INTERNAL)
        }
    }
}

#[derive(Deserialize)]
pub struct SignInForm {
    csrf: Option<String>,
    req: Option<String>,
    return_to: Option<String>,
    /// The `PublicKeyCredential` from `navigator.credentials.get`, as JSON.
    credential: Option<String>,
    remember: Option<String>,
    second_factor: Option<String>,
}

pub async fn finish(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Response {
    if !csrf::verify(&state, &headers, form.csrf.as_deref()) {
        return csrf::expired_form();
    }
    let pending_request = match &form.req {
        Some(id) => match load_pending(&state, &tenant, &headers, id).await {
            Some(p) => Some(p),
            None => return crate::login::expired(),
        },
        None => None,
    };
    let return_to = ReturnTo::parse(form.return_to.as_deref());
    let failed = |status: StatusCode, error: &str| {
        let view = LoginView {
            req: form.req.as_deref(),
            return_to,
            client_name: pending_request.as_ref().map(|(_, c)| c.name.clone()),
            username: String::new(),
            error: Some(error),
            redirect_uri: pending_request.as_ref().map(|(r, _)| r.redirect_uri.clone()),
            notice: None,
        };
        render_login(&state, &headers, status, view)
    };
    let second = if form.second_factor.is_some() {
        match ceremony::take::<Pending>(&state, &tenant, &headers, Purpose::SecondFactor).await {
            Some(p) => Some(p),
            None => return failed(StatusCode::BAD_REQUEST, "This sign-in has expired. Please sign in again."),
        }
    } else {
        None
    };
    let Some(challenge) =
        ceremony::take::<DiscoverableAuthentication>(&state, &tenant, &headers, Purpose::PasskeySignIn).await
    else {
        return failed(StatusCode::BAD_REQUEST, "The passkey request expired. Please try again.");
    };
    let Some(response) = form.credential.as_deref().filter(|c| !c.is_empty()) else {
        return failed(StatusCode::BAD_REQUEST, "No passkey was given. Please try again.");
    };
    let verified = state.services.factors().sign_in_with_passkey(&state.passkeys, &tenant, response, challenge).await;
    let (user, factor) = match verified {
        Ok(found) => found,
        Err(e) => {
            metrics::counter!("latchkey_logins_total", "outcome" => "failed").increment(1);
            tracing::info!(error = %e, "passkey sign-in refused");
            return failed(StatusCode::UNAUTHORIZED, "That passkey could not sign you in.");
        }
    };
    let (factors, remember, req, return_to) = match second {
        Some(p) if p.subject().as_ref() == Some(&user.sub) => (p.factors.with(factor), p.remember, p.req, p.return_to),
        Some(_) => return failed(StatusCode::UNAUTHORIZED, "That passkey belongs to another account."),
        None => (Factors::new(factor), form.remember.is_some(), form.req.clone(), return_to),
    };
    let done = complete::SignedIn { user: &user, factors, remember, req, return_to, ip };
    complete::complete(&state, &tenant, &headers, done).await
}
