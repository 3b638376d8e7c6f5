//! Counters that limit guessing at sign-in: attempts reserved before an answer is checked,
//! and failures counted per account and per address.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;

use latchkey_core::UnixTime;
use latchkey_core::domain::TenantId;
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
