//! Limits on failed client authentication at `/token`, `/revoke` and `/introspect`, per
//! client IP (an IPv4 address or an IPv6 /64): past `login.max_failures_per_ip` failures
//! within `login.failure_window`, the address gets `429 invalid_client` with `Retry-After`.
//!
//! The count is kept in the database (every node sees it) and each failure is counted by
//! one statement that increments and returns the count, so of any number of parallel
//! failures exactly the limit are answered `401`; the rest get `429`. How an attempt is
//! charged depends on what checking it costs:
//!
//! - **`private_key_jwt`** (a signature, perhaps a JWKS fetch): the attempt is reserved
//!   before the check and given back when it succeeds, so no more than the limit reach the
//!   check, as for passwords ([`crate::attempt_limits`]). Attempts being checked count
//!   too: more than the limit at once from one address get `429` for the excess.
//! - **a client secret** (a keyed SHA-256 of a 256-bit random secret, microseconds, and not
//!   guessable): checked first and only a failure is counted, so a request with the right
//!   secret costs no database write and the token endpoint keeps needing none. Of parallel
//!   wrong secrets, at most the limit get a `401`; the rest are answered `429` without
//!   telling whether the secret was right.
//!
//! Once a node has seen the limit of failed secrets reached it refuses the address itself,
//! in memory, until the window ends, without asking the database.
//!
//! If the counter cannot be reached, the request is **let through** (fail open): a client
//! secret cannot be guessed, and the token endpoint must not stop with a counter. Every such
//! request is logged and counted in `latchkey_attempt_counter_errors_total{limit="client_auth"}`.

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;

use latchkey_core::domain::TenantId;
use latchkey_core::records::Client;

use super::OAuthError;
use crate::state::AppState;
pub use latchkey_service::sign_in::ClientAuthThrottle;

const LIMIT: &str = "client_auth";

/// How the client authenticates, as far as the limit is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Slow: a signature and maybe a key fetch. Reserved before.
    Assertion,
    /// Fast and unguessable: a keyed hash of a secret (or no secret at all). Counted after.
    Secret,
}

/// Runs `check` under the limit for the address `ip`.
pub async fn limited<F, Fut>(
    state: &AppState,
    tenant: &TenantId,
    ip: IpAddr,
    kind: Check,
    check: F,
) -> Result<Arc<Client>, OAuthError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Arc<Client>, OAuthError>>,
{
    let bucket = state.services.throttle_ip(ip);
    let now = state.clock.now().secs();
    if let Some(wait) = state.client_auth_throttle.blocked_for(&bucket, now) {
        metrics::counter!("latchkey_attempts_refused_total", "limit" => LIMIT).increment(1);
        return Err(OAuthError::throttled(wait));
    }
    match kind {
        Check::Assertion => reserved_check(state, tenant, &bucket, check).await,
        Check::Secret => counted_check(state, tenant, &bucket, check).await,
    }
}

fn key(bucket: &str) -> String {
    format!("client-ip:{bucket}")
}

fn is_failure(result: &Result<Arc<Client>, OAuthError>) -> bool {
    result.as_ref().is_err_and(|e| e.error == "invalid_client")
}

/// The address has reached the limit: this node refuses it until the window ends.
fn block(state: &AppState, bucket: &str) {
    let window = state.config.login.failure_window;
    state.client_auth_throttle.block(bucket, state.clock.now().plus(window).secs());
}

/// The address is over the limit: this request is refused.
fn refused(state: &AppState) -> OAuthError {
    let window = state.config.login.failure_window;
    metrics::counter!("latchkey_attempts_refused_total", "limit" => LIMIT).increment(1);
    tracing::info!(limit = LIMIT, "client authentication refused: too many failures from this address");
    OAuthError::throttled(window.as_secs())
}

fn fail_open(e: impl std::fmt::Display) {
    tracing::error!(error = %e, limit = LIMIT, "cannot count client authentication attempts; letting the request through (fail open)");
    metrics::counter!("latchkey_attempt_counter_errors_total", "limit" => LIMIT).increment(1);
}

async fn reserved_check<F, Fut>(
    state: &AppState,
    tenant: &TenantId,
    bucket: &str,
    check: F,
) -> Result<Arc<Client>, OAuthError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Arc<Client>, OAuthError>>,
{
    let key = key(bucket);
    let max = i64::from(state.config.login.max_failures_per_ip);
    let reserved = state
        .services
        .sign_in()
        .reserve_attempts(tenant, &[key.as_str()], state.clock.now(), state.config.login.failure_window)
        .await;
    let reserved = match reserved.as_deref() {
        Ok([r]) => *r,
        Ok(_) => {
            fail_open("the counter answered for other keys");
            return check().await;
        }
        Err(e) => {
            fail_open(e);
            return check().await;
        }
    };
    let give_back = || async {
        if let Err(e) = state.services.sign_in().release_attempts(tenant, &[(key.as_str(), reserved)]).await {
            tracing::warn!(error = %e, limit = LIMIT, "cannot give a client authentication attempt back");
            metrics::counter!("latchkey_attempt_counter_errors_total", "limit" => LIMIT).increment(1);
        }
    };
    if reserved.count > max {
        // Attempts still being checked count too, so this may be a burst of good requests:
        // refused, but the address is not blocked for that.
        give_back().await;
        return Err(refused(state));
    }
    let result = check().await;
    // A failure stays counted. (The node does not block the address from here: the count
    // includes attempts still being checked, and every assertion asks the database anyway.)
    if !is_failure(&result) {
        // Success, or a request refused for another reason than its credentials.
        give_back().await;
    }
    result
}

async fn counted_check<F, Fut>(
    state: &AppState,
    tenant: &TenantId,
    bucket: &str,
    check: F,
) -> Result<Arc<Client>, OAuthError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Arc<Client>, OAuthError>>,
{
    let result = check().await;
    if !is_failure(&result) {
        return result;
    }
    let window = state.config.login.failure_window;
    let max = i64::from(state.config.login.max_failures_per_ip);
    match state.services.sign_in().record_failure(tenant, &key(bucket), state.clock.now(), window).await {
        Ok(failures) if failures > max => {
            block(state, bucket);
            Err(refused(state))
        }
        Ok(failures) => {
            if failures == max {
                block(state, bucket);
            }
            result
        }
        Err(e) => {
            fail_open(e);
            result
        }
    }
}
