//! `[recovery]`: how a person who lost their ways to sign in gets back in by themselves.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::load::{ConfigError, ConfigSource};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecoveryConfig {
    /// Recovery by a link to the account's verified email address (needs `[mail]`).
    pub email: bool,
    /// Recovery by a code texted to the account's verified phone number (needs `[sms]`).
    /// Off by default: a phone number can be taken over (SIM swap, number recycling).
    pub sms: bool,
    /// When the account has another factor (an authenticator app, or more than one passkey)
    /// and the user says it is lost too, recovery completes only after this long, while every
    /// channel is told and can cancel it.
    #[serde(with = "latchkey_core::duration::serde_human")]
    pub delay: Duration,
}

impl Default for RecoveryConfig {
    fn default() -> Self {
        Self { email: true, sms: false, delay: Duration::from_secs(86_400) }
    }
}

impl RecoveryConfig {
    pub(crate) fn check(&self, s: &ConfigSource) -> Result<(), ConfigError> {
        if self.delay < Duration::from_secs(60) || self.delay > Duration::from_secs(30 * 86_400) {
            return Err(ConfigError::invalid(s, "recovery.delay", "must be from 1m to 30d"));
        }
        Ok(())
    }
}
