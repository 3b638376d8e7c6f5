//! Limits on guessing at sign-in: passwords, the authenticator-app and recovery codes of
//! the second step, and recovery-code sign-ins. (Client authentication has its own, in
//! [`crate::oauth::client_auth_limits`].)
//!
//! An attempt is **reserved before its answer is checked**: one statement increments the
//! account's and the client IP's counters and returns their new counts, on any node (the
//! counters are in the database). An attempt whose count passes a limit is refused (429)
//! and given back; one within the limits is checked; a right answer gives its reservation
//! back and clears the account's failures; a wrong one stays counted. Reading the counters,
//! checking, and only then counting let 25 parallel guesses through against a limit of 5
//! (issue 14); now, of any number of parallel attempts, at most the limit reach the check.
//!
//! The account's counter is keyed by what the attempt is about, never by what was typed: an
//! account by its subject id (its username and its email address share one budget), an
//! identifier that names no account by its normalised typed value, limited the same way,
//! so a 429 never tells a known account from an unknown one. Passkey sign-in takes no
//! reservation and is never blocked by these counters: a passkey cannot be guessed.
//!
//! If the counters cannot be reached the attempt is refused (fail closed, 503): a check
//! that nothing bounds is what the limit exists to prevent. Logged, and counted in
//! `latchkey_attempt_counter_errors_total`.

use std::net::IpAddr;

use axum::http::{HeaderValue, header};
use axum::response::Response;
use latchkey_core::domain::{SubjectId, TenantId};
use latchkey_core::records::ReservedAttempt;

use crate::state::AppState;

/// What is guessed at. Each has a budget of its own per account (the `limit` label of the
/// metrics); all share one budget per client IP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guess {
    Password,
    /// An authenticator-app or recovery code in the second step after a password.
    SecondFactor,
    /// A recovery code to sign in with (`/login/recovery`).
    RecoveryCode,
}

impl Guess {
    pub fn label(self) -> &'static str {
        match self {
            Guess::Password => "password",
            Guess::SecondFactor => "second_factor",
            Guess::RecoveryCode => "recovery_code",
        }
    }
}

/// Whose budget an attempt is charged to.
#[derive(Debug, Clone, Copy)]
pub enum Account<'a> {
    /// An account, whatever identifier named it.
    Known(&'a SubjectId),
    /// An identifier that names no account, as typed.
    Unknown(&'a str),
}

/// The purpose typed identifiers are hashed under for their counter's key: a password typed
/// into the username field by mistake must not sit in the database in clear.
const TYPED_KEY_PURPOSE: &str = "attempt_limit_identifier";

/// "Per IP" as a counter key: the IPv4 address, or the IPv6 /64 (see
/// [`crate::edge::client_ip::per_ip`]).
pub fn ip_bucket(ip: IpAddr) -> String {
    match crate::edge::client_ip::per_ip(ip) {
        ipnet::IpNet::V4(v4) => v4.addr().to_string(),
        v6 => v6.to_string(),
    }
}

/// The outcome of [`reserve`].
pub enum Admission {
    /// Within the limits: check the answer, then call [`Attempt::succeeded`] or
    /// [`Attempt::failed`].
    Allowed(Attempt),
    /// A limit is reached: answer 429 without checking.
    Refused,
    /// The counters cannot be reached: answer 503 without checking.
    Unavailable,
}

/// An attempt reserved against the account's and the IP's counters.
#[must_use = "an attempt must end as succeeded or failed"]
pub struct Attempt {
    guess: Guess,
    account: (String, ReservedAttempt),
    ip: (String, ReservedAttempt),
}

fn account_key(state: &AppState, guess: Guess, account: Account<'_>) -> String {
    match account {
        Account::Known(sub) => format!("{}:sub:{sub}", guess.label()),
        Account::Unknown(typed) => {
            let normalised = typed.trim().to_lowercase();
            format!("{}:typed:{}", guess.label(), state.token_hasher.hash(TYPED_KEY_PURPOSE, &normalised).as_str())
        }
    }
}

/// Reserves an attempt at `guess` for `account` from `ip` before anything is checked.
pub async fn reserve(state: &AppState, tenant: &TenantId, guess: Guess, account: Account<'_>, ip: IpAddr) -> Admission {
    let account_key = account_key(state, guess, account);
    let ip_key = format!("ip:{}", ip_bucket(ip));
    let login = &state.config.login;
    let now = state.clock.now();
    let reserved = state
        .services
        .sign_in()
        .reserve_attempts(tenant, &[account_key.as_str(), ip_key.as_str()], now, login.failure_window)
        .await;
    let (account, ip) = match reserved.as_deref() {
        Ok([account, ip]) => (*account, *ip),
        Ok(_) => return unavailable(guess, "the counters answered for other keys"),
        Err(e) => return unavailable(guess, e),
    };
    let attempt = Attempt { guess, account: (account_key, account), ip: (ip_key, ip) };
    if account.count > i64::from(login.max_failures_per_account) || ip.count > i64::from(login.max_failures_per_ip) {
        // A refused attempt is checked nowhere, so it counts nowhere: an address that is
        // refused cannot go on using up accounts' budgets.
        attempt.give_back(state, tenant, false).await;
        metrics::counter!("latchkey_attempts_refused_total", "limit" => guess.label()).increment(1);
        tracing::info!(limit = guess.label(), "attempt refused: too many failures");
        return Admission::Refused;
    }
    Admission::Allowed(attempt)
}

fn unavailable(guess: Guess, e: impl std::fmt::Display) -> Admission {
    tracing::error!(error = %e, limit = guess.label(), "cannot reserve an attempt; refusing it unchecked (fail closed)");
    metrics::counter!("latchkey_attempt_counter_errors_total", "limit" => guess.label()).increment(1);
    Admission::Unavailable
}

impl Attempt {
    /// The answer was right: the account's failures are cleared and the IP's reservation
    /// is given back (a right answer never counts against anyone).
    pub async fn succeeded(self, state: &AppState, tenant: &TenantId) {
        self.give_back(state, tenant, true).await;
    }

    /// The answer was wrong: the reservation stays, as a failure.
    pub fn failed(self) {
        tracing::debug!(limit = self.guess.label(), "wrong answer counted");
    }

    async fn give_back(&self, state: &AppState, tenant: &TenantId, clear_account: bool) {
        let account = if clear_account {
            state.services.sign_in().clear_failures(tenant, &self.account.0).await
        } else {
            state.services.sign_in().release_attempts(tenant, &[(self.account.0.as_str(), self.account.1)]).await
        };
        let ip = state.services.sign_in().release_attempts(tenant, &[(self.ip.0.as_str(), self.ip.1)]).await;
        if let Err(e) = account.and(ip) {
            // The counter stays one higher until its window ends: fewer attempts for a
            // while, never more.
            tracing::warn!(error = %e, limit = self.guess.label(), "cannot give an attempt back");
            metrics::counter!("latchkey_attempt_counter_errors_total", "limit" => self.guess.label()).increment(1);
        }
    }
}

/// Adds `Retry-After` (the failure window) to a refused answer.
pub fn retry_after(state: &AppState, response: &mut Response) {
    if let Ok(v) = HeaderValue::from_str(&state.config.login.failure_window.as_secs().to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
}

/// What a person sees when the counters cannot be reached.
pub const UNAVAILABLE: &str = "Signing in is not possible for a moment. Please try again shortly.";

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|_| panic!("{s}"))
    }

    #[test]
    fn an_ipv4_address_counts_alone_and_an_ipv6_address_counts_with_its_64() {
        assert_eq!(ip_bucket(ip("192.0.2.1")), "192.0.2.1");
        assert_ne!(ip_bucket(ip("192.0.2.1")), ip_bucket(ip("192.0.2.2")));
        assert_eq!(ip_bucket(ip("::ffff:192.0.2.1")), "192.0.2.1", "an IPv4-mapped peer is its IPv4 address");
        assert_eq!(ip_bucket(ip("2001:db8:1:2:aaaa::1")), "2001:db8:1:2::/64");
        assert_eq!(ip_bucket(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")), ip_bucket(ip("2001:db8:1:2::1")));
        assert_ne!(ip_bucket(ip("2001:db8:1:3::1")), ip_bucket(ip("2001:db8:1:2::1")));
    }
}
