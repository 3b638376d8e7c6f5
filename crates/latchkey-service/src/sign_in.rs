//! Limits on guessing at sign-in: passwords, the authenticator-app and recovery codes of
//! the second step, and recovery-code sign-ins. (Client authentication has its own throttle,
//! [`ClientAuthThrottle`], driven by the server's client authentication.)
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

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::RwLock;
use std::time::Duration;

use latchkey_core::UnixTime;
use latchkey_core::domain::{SubjectId, TenantId};
use latchkey_core::records::ReservedAttempt;

use crate::{Latchkey, pass_through};

pub struct SignIn<'a>(pub(crate) &'a Latchkey);

impl SignIn<'_> {
    pass_through! {
        /// Reserves one attempt against each key before the answer is checked (atomic across nodes).
        fn reserve_attempts(tenant: &TenantId, keys: &[&str], now: UnixTime, window: Duration) -> Vec<ReservedAttempt>
            => reserve_attempts;
        /// Gives back attempts whose answer was right.
        fn release_attempts(tenant: &TenantId, reserved: &[(&str, ReservedAttempt)]) -> () => release_attempts;
        /// Counts a failure against `key`; returns the failures within the window.
        fn record_failure(tenant: &TenantId, key: &str, now: UnixTime, window: Duration) -> i64 => record_login_failure;
        fn failures(tenant: &TenantId, keys: &[&str], now: UnixTime, window: Duration) -> Vec<i64> => login_failures;
        fn clear_failures(tenant: &TenantId, key: &str) -> () => clear_login_failures;
    }
}

/// Addresses (IP buckets) that failed client authentication too often, refused on this
/// node until a time. Kept in memory so that a successful request costs no database round
/// trip.
#[derive(Default)]
pub struct ClientAuthThrottle {
    blocked: RwLock<HashMap<String, i64>>,
}

impl ClientAuthThrottle {
    pub fn blocked_for(&self, bucket: &str, now: i64) -> Option<u64> {
        let until = *self.blocked.read().ok()?.get(bucket)?;
        (until > now).then(|| u64::try_from(until - now).unwrap_or(1))
    }

    pub fn block(&self, bucket: &str, until: i64) {
        if let Ok(mut m) = self.blocked.write() {
            m.retain(|_, u| *u > until - 86_400);
            m.insert(bucket.to_owned(), until);
        }
    }
}

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

/// The unit of every per-IP limit: an IPv4 address, or the /64 of an IPv6 address (one
/// subscriber's network, who may use any of its 2^64 addresses). IPv4-mapped IPv6
/// addresses count as the IPv4 address.
pub fn per_ip(ip: IpAddr) -> ipnet::IpNet {
    match ip.to_canonical() {
        IpAddr::V4(v4) => ipnet::IpNet::V4(ipnet::Ipv4Net::from(v4)),
        IpAddr::V6(v6) => ipnet::IpNet::V6(ipnet::Ipv6Net::new_assert(v6, 64).trunc()),
    }
}

/// The purpose addresses are hashed under for their counters' keys.
const IP_KEY_PURPOSE: &str = "attempt_limit_ip";

impl Latchkey {
    /// "Per IP" as it goes into a counter's key: a keyed hash (under a key derived from the
    /// master key) of [`ip_bucket`], so the counters hold no address in clear.
    pub fn throttle_ip(&self, ip: IpAddr) -> String {
        self.token_hasher.hash(IP_KEY_PURPOSE, &ip_bucket(ip)).as_str().to_owned()
    }
}

/// "Per IP": the IPv4 address, or the IPv6 /64 (see [`per_ip`]). Counters key it hashed
/// ([`Latchkey::throttle_ip`]).
pub fn ip_bucket(ip: IpAddr) -> String {
    match per_ip(ip) {
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
    /// Where a wrong answer is tallied for the audit log, and about whom.
    tally: (std::sync::Arc<crate::failed_sign_ins::FailureTally>, TenantId, Option<SubjectId>),
}

fn account_key(services: &Latchkey, guess: Guess, account: Account<'_>) -> String {
    match account {
        Account::Known(sub) => format!("{}:sub:{sub}", guess.label()),
        Account::Unknown(typed) => {
            let normalised = typed.trim().to_lowercase();
            format!("{}:typed:{}", guess.label(), services.token_hasher.hash(TYPED_KEY_PURPOSE, &normalised).as_str())
        }
    }
}

impl SignIn<'_> {
    /// Reserves an attempt at `guess` for `account` from `ip` before anything is checked.
    pub async fn reserve(&self, tenant: &TenantId, guess: Guess, account: Account<'_>, ip: IpAddr) -> Admission {
        let state = self.0;
        let account_key = account_key(state, guess, account);
        let known = match account {
            Account::Known(sub) => Some(sub.clone()),
            Account::Unknown(_) => None,
        };
        let ip_key = format!("ip:{}", state.throttle_ip(ip));
        let login = &state.config.login;
        let now = state.clock.now();
        let reserved =
            self.reserve_attempts(tenant, &[account_key.as_str(), ip_key.as_str()], now, login.failure_window).await;
        let (account, ip) = match reserved.as_deref() {
            Ok([account, ip]) => (*account, *ip),
            Ok(_) => return unavailable(guess, "the counters answered for other keys"),
            Err(e) => return unavailable(guess, e),
        };
        let tally = (state.failed_sign_ins.clone(), tenant.clone(), known);
        let attempt = Attempt { guess, account: (account_key, account), ip: (ip_key, ip), tally };
        if account.count > i64::from(login.max_failures_per_account) || ip.count > i64::from(login.max_failures_per_ip)
        {
            // A refused attempt is checked nowhere, so it counts nowhere: an address that is
            // refused cannot go on using up accounts' budgets.
            self.give_back(&attempt, tenant, false).await;
            let (tally, tenant, sub) = &attempt.tally;
            tally.count(tenant, sub.as_ref(), guess.label(), true);
            metrics::counter!("latchkey_attempts_refused_total", "limit" => guess.label()).increment(1);
            tracing::info!(limit = guess.label(), "attempt refused: too many failures");
            return Admission::Refused;
        }
        Admission::Allowed(attempt)
    }

    /// The answer was right: the account's failures are cleared and the IP's reservation is
    /// given back (a right answer never counts against anyone).
    pub async fn succeeded(&self, tenant: &TenantId, attempt: Attempt) {
        self.give_back(&attempt, tenant, true).await;
    }

    async fn give_back(&self, attempt: &Attempt, tenant: &TenantId, clear_account: bool) {
        let account = if clear_account {
            self.clear_failures(tenant, &attempt.account.0).await
        } else {
            self.release_attempts(tenant, &[(attempt.account.0.as_str(), attempt.account.1)]).await
        };
        let ip = self.release_attempts(tenant, &[(attempt.ip.0.as_str(), attempt.ip.1)]).await;
        if let Err(e) = account.and(ip) {
            // The counter stays one higher until its window ends: fewer attempts for a
            // while, never more.
            tracing::warn!(error = %e, limit = attempt.guess.label(), "cannot give an attempt back");
            metrics::counter!("latchkey_attempt_counter_errors_total", "limit" => attempt.guess.label()).increment(1);
        }
    }
}

fn unavailable(guess: Guess, e: impl std::fmt::Display) -> Admission {
    tracing::error!(error = %e, limit = guess.label(), "cannot reserve an attempt; refusing it unchecked (fail closed)");
    metrics::counter!("latchkey_attempt_counter_errors_total", "limit" => guess.label()).increment(1);
    Admission::Unavailable
}

impl Attempt {
    /// The answer was wrong: the reservation stays, as a failure.
    pub fn failed(self) {
        tracing::debug!(limit = self.guess.label(), "wrong answer counted");
        let (tally, tenant, sub) = &self.tally;
        tally.count(tenant, sub.as_ref(), self.guess.label(), false);
    }
}

#[cfg(test)]
mod attempt_tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|_| panic!("{s}"))
    }

    #[test]
    fn per_ip_counts_an_ipv4_address_or_an_ipv6_slash_64() {
        assert_eq!(per_ip(ip("192.0.2.7")).to_string(), "192.0.2.7/32");
        assert_eq!(per_ip(ip("::ffff:192.0.2.7")).to_string(), "192.0.2.7/32");
        assert_eq!(per_ip(ip("2001:db8:1:2:aaaa::1")), per_ip(ip("2001:db8:1:2:ffff::9")));
        assert_eq!(per_ip(ip("2001:db8:1:2:aaaa::1")).to_string(), "2001:db8:1:2::/64");
        assert_ne!(per_ip(ip("2001:db8:1:2::1")), per_ip(ip("2001:db8:1:3::1")));
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
