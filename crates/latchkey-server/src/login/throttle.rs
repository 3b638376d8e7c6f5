//! Failed attempts at anything guessable — a password, a TOTP code, a recovery code — are
//! counted per account and per client IP in the database, so every node sees them. Only
//! failures count: a correct answer never locks anyone out.

use std::net::IpAddr;

use axum::http::{HeaderValue, header};
use axum::response::Response;
use latchkey_core::domain::TenantId;

use crate::app::AppState;

pub struct Throttle {
    account: String,
    ip: String,
    /// The account's failures when [`Self::exceeded`] read them; `None` before.
    account_failures: Option<i64>,
}

impl Throttle {
    /// `account` names what is guessed at, e.g. `account:ada` or `totp:<sub>`.
    pub fn new(account: String, ip: IpAddr) -> Self {
        Self { account, ip: format!("ip:{ip}"), account_failures: None }
    }

    /// Whether this account or IP has failed too often within the window.
    pub async fn exceeded(&mut self, state: &AppState) -> bool {
        let tenant = TenantId::default_tenant();
        let now = state.clock.now();
        let login = &state.config.login;
        let keys = [self.account.as_str(), self.ip.as_str()];
        let counts = match state.store.login_failures(&tenant, &keys, now, login.failure_window).await {
            Ok(counts) => counts,
            Err(e) => {
                // A counter that cannot be read locks no one out; `succeeded` then clears the
                // account's counter as it would have without the read.
                tracing::warn!(error = %e, "cannot read the failed-attempt counters");
                Vec::new()
            }
        };
        self.account_failures = counts.first().copied();
        let (account, ip) = (counts.first().copied().unwrap_or(0), counts.get(1).copied().unwrap_or(0));
        account >= i64::from(login.max_failures_per_account) || ip >= i64::from(login.max_failures_per_ip)
    }

    pub async fn failed(&self, state: &AppState) {
        let tenant = TenantId::default_tenant();
        let now = state.clock.now();
        let window = state.config.login.failure_window;
        for key in [&self.account, &self.ip] {
            if let Err(e) = state.store.record_login_failure(&tenant, key, now, window).await {
                tracing::warn!(error = %e, "cannot count a failed attempt");
            }
        }
    }

    /// A correct answer clears the account's failures; when there were none at the check,
    /// there is nothing to clear and no write is made.
    pub async fn succeeded(&self, state: &AppState) {
        if self.account_failures == Some(0) {
            return;
        }
        let _ = state.store.clear_login_failures(&TenantId::default_tenant(), &self.account).await;
    }
}

/// Adds `Retry-After` (the failure window) to a throttled answer.
pub fn retry_after(state: &AppState, response: &mut Response) {
    if let Ok(v) = HeaderValue::from_str(&state.config.login.failure_window.as_secs().to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
}
