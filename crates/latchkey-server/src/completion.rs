//! The end of every sign-in, whatever proved it: ask for the second factor a user has set
//! up, or establish the session and send the browser on.
//!
//! A user with a password and a second factor (a passkey or an authenticator app) must use
//! both: a correct password alone only leads to the second-factor page, whose state waits
//! in a ceremony bound to this browser.

use std::net::IpAddr;

use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Redirect, Response};
use latchkey_core::domain::{Factor, Factors, SubjectId, TenantId};
use latchkey_core::records::User;
use serde::{Deserialize, Serialize};

use crate::browser::ceremony::{self, Purpose};
use crate::pages::PageError;
use crate::sessions;
use crate::state::AppState;

/// Where a sign-in that is not for a client leads: an account page or the forward-auth
/// return, never a URL from the request (so never an open redirect).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReturnTo {
    Sessions,
    Security,
    /// "Apps with access" (`/account/apps`).
    Apps,
    /// "Delete your account" (`/account/delete`).
    DeleteAccount,
    /// "Download your data" (`/account/export`).
    Export,
    /// Back to the app behind a proxy that sent the browser here (the URL waits in a
    /// ceremony of this browser; see [`crate::forward_auth`]).
    ForwardAuth,
}

impl ReturnTo {
    pub fn parse(raw: Option<&str>) -> Option<Self> {
        match raw {
            Some("account" | "sessions") => Some(ReturnTo::Sessions),
            Some("security") => Some(ReturnTo::Security),
            Some("apps") => Some(ReturnTo::Apps),
            Some("delete-account") => Some(ReturnTo::DeleteAccount),
            Some("export") => Some(ReturnTo::Export),
            Some("forward-auth") => Some(ReturnTo::ForwardAuth),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ReturnTo::Sessions => "account",
            ReturnTo::Security => "security",
            ReturnTo::Apps => "apps",
            ReturnTo::DeleteAccount => "delete-account",
            ReturnTo::Export => "export",
            ReturnTo::ForwardAuth => "forward-auth",
        }
    }

    fn path(self) -> &'static str {
        match self {
            ReturnTo::Sessions => "/account/sessions",
            ReturnTo::Security => "/account/security",
            ReturnTo::Apps => "/account/apps",
            ReturnTo::DeleteAccount => "/account/delete",
            ReturnTo::Export => "/account/export",
            ReturnTo::ForwardAuth => "/forward-auth/continue",
        }
    }
}

/// A sign-in that has proved its first factor and waits for the second.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pending {
    pub sub: String,
    pub factors: Factors,
    pub remember: bool,
    pub req: Option<String>,
    pub return_to: Option<ReturnTo>,
}

impl Pending {
    pub fn subject(&self) -> Option<SubjectId> {
        SubjectId::parse(&self.sub).ok()
    }
}

pub struct SignedIn<'a> {
    pub user: &'a User,
    pub factors: Factors,
    pub remember: bool,
    pub req: Option<String>,
    pub return_to: Option<ReturnTo>,
    pub ip: IpAddr,
}

pub async fn complete(state: &AppState, tenant: &TenantId, headers: &HeaderMap, done: SignedIn<'_>) -> Response {
    complete_at(state, tenant, headers, done, None).await
}

/// [`complete`] for a sign-in that happened at `authenticated_at` (an upstream provider's
/// `auth_time`): the session's `auth_time` is that, not now, so a provider session from
/// earlier never passes for a recent sign-in here. A second step here makes it now.
pub async fn complete_at(
    state: &AppState,
    tenant: &TenantId,
    headers: &HeaderMap,
    done: SignedIn<'_>,
    authenticated_at: Option<latchkey_core::UnixTime>,
) -> Response {
    if state.services.factors().second_factor_needed(tenant, &done.user.sub, &done.factors).await {
        let pending = Pending {
            sub: done.user.sub.to_string(),
            factors: done.factors,
            remember: done.remember,
            req: done.req,
            return_to: done.return_to,
        };
        return match ceremony::put(state, tenant, headers, Purpose::SecondFactor, &pending).await {
            Ok(cookie) => {
                let mut response = Redirect::to(&format!("{}/login/second-factor", state.base())).into_response();
                if let Some(c) = cookie {
                    response.headers_mut().append(header::SET_COOKIE, c);
                }
                response
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot keep the pending sign-in");
                PageError::internal().into_response()
            }
        };
    }
    let recovered = done.factors.as_slice() == [Factor::RecoveryCode];
    let sign_in = sessions::SignedIn {
        sub: done.user.sub.clone(),
        amr: done.factors.amr(),
        acr: done.factors.level().acr().into(),
        remember: done.remember,
        user_agent: headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(str::to_owned),
        ip: Some(done.ip.to_string()),
        authenticated_at,
    };
    let cookies = match sessions::start(state, tenant, headers, sign_in).await {
        Ok((_, cookies)) => cookies,
        Err(e) => {
            tracing::error!(error = %e, "cannot create session");
            return PageError::internal().into_response();
        }
    };
    metrics::counter!("latchkey_logins_total", "outcome" => "success").increment(1);
    let next = if recovered {
        // A recovery code is spent: the next thing to do is to add a passkey.
        let continue_to = done.req.as_ref().map(|r| format!("&req={r}")).unwrap_or_default();
        format!("{}/account/security?recovered=1{continue_to}", state.base())
    } else {
        match (&done.req, done.return_to) {
            (Some(id), _) => format!("{}/authorize/resume?req={id}", state.base()),
            (None, Some(r)) => format!("{}{}", state.base(), r.path()),
            (None, None) => format!("{}/login/done", state.base()),
        }
    };
    let device = crate::browser::device::signed_in(state, tenant, headers, done.user, false).await;
    // RFC 9700 §4.12: after a POST with credentials, redirect with 303, never 307.
    let mut response = Redirect::to(&next).into_response();
    sessions::set_cookies(&mut response, cookies);
    if let Some(c) = device {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    response
}
