//! The browser's long-lived device secret (`login.notify_new_device`): a random value in an
//! HttpOnly cookie, so that a sign-in from a browser the account has not used before can be
//! told to its owner ([`latchkey_service::security_notices`]). Only its keyed hash, bound to
//! the account, is stored.

use axum::http::{HeaderMap, HeaderValue, header};
use latchkey_core::crypto::random;
use latchkey_core::domain::TenantId;
use latchkey_core::records::User;

use super::cookies;
use crate::state::AppState;

const COOKIE: &str = "latchkey-device";
/// Browsers cap cookie lifetimes at 400 days.
const MAX_AGE: u64 = 400 * 86_400;

/// This browser's secret, and the cookie to set when it had none.
fn secret(state: &AppState, headers: &HeaderMap) -> (String, Option<HeaderValue>) {
    match cookies::get(headers, &cookies::name(state.https, COOKIE)).filter(|v| v.len() >= 32 && v.len() <= 64) {
        Some(v) => (v.to_owned(), None),
        None => {
            let v = random::token_string::<32>();
            let set = cookies::set(state.https, COOKIE, &v, Some(MAX_AGE));
            (v, Some(set))
        }
    }
}

/// A sign-in of `user` finished in this browser: tells its owner if the browser is new to
/// the account (where turned on). Returns the cookie to set, if any. Never fails a sign-in.
pub async fn signed_in(
    state: &AppState,
    tenant: &TenantId,
    headers: &HeaderMap,
    user: &User,
    first: bool,
) -> Option<HeaderValue> {
    if !state.config.login.notify_new_device {
        return None;
    }
    let (secret, cookie) = secret(state, headers);
    let notices = state.services.security_notices();
    let done = if first {
        notices.remember_device(tenant, user, &secret).await
    } else {
        let agent = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or_default();
        notices.signed_in_on(tenant, user, &secret, agent).await
    };
    if let Err(e) = done {
        tracing::warn!(error = %e, "cannot check whether this browser is new to the account");
    }
    cookie
}
