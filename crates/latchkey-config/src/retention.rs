//! `[retention]`: how long kept data stays before the cleanup job deletes it. `"0s"` keeps
//! it without end. What expires by its own nature (sessions, codes, tokens, counters) is
//! deleted when no security check needs it any longer, whatever this says.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use latchkey_core::duration::serde_human;

use crate::load::{ConfigError, ConfigSource};

const DAY: u64 = 86_400;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Audit entries older than this are deleted; a signed checkpoint of where the kept
    /// chain starts lets it verify as before.
    #[serde(with = "serde_human")]
    pub audit_log: Duration,
    /// Invitations used (or expired unused) this long ago are deleted.
    #[serde(with = "serde_human")]
    pub used_invitations: Duration,
    /// An account not used for this long (no sign-in, no session used, no token refreshed,
    /// no API key used) is told by email that it will be disabled or deleted; `"0s"` (the
    /// default) leaves accounts however long they go unused. Service accounts and locked
    /// accounts are left.
    #[serde(with = "serde_human")]
    pub inactive_accounts: Duration,
    /// How long after the notice an account still unused is disabled or deleted.
    #[serde(with = "serde_human")]
    pub inactive_accounts_grace: Duration,
    /// What happens to it then.
    pub inactive_accounts_action: InactiveAccountAction,
    /// An account created by sign-up whose address is still unverified this long after, and
    /// that nobody used for as long, is deleted; `"0s"` (the default) keeps it.
    #[serde(with = "serde_human")]
    pub unverified_sign_ups: Duration,
}

/// What `[retention] inactive_accounts` does to an account still unused after its grace.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InactiveAccountAction {
    /// Locked, signed out everywhere; an operator can unlock it (`latchkey user unlock`).
    #[default]
    Disable,
    /// Erased, as `latchkey user delete` does.
    Delete,
}

impl InactiveAccountAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Delete => "delete",
        }
    }
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            audit_log: Duration::from_secs(365 * DAY),
            used_invitations: Duration::from_secs(90 * DAY),
            inactive_accounts: Duration::ZERO,
            inactive_accounts_grace: Duration::from_secs(30 * DAY),
            inactive_accounts_action: InactiveAccountAction::Disable,
            unverified_sign_ups: Duration::ZERO,
        }
    }
}

impl RetentionConfig {
    /// The audit log's period, `None` when it is kept without end.
    pub fn audit_log(&self) -> Option<Duration> {
        (!self.audit_log.is_zero()).then_some(self.audit_log)
    }

    pub fn used_invitations(&self) -> Option<Duration> {
        (!self.used_invitations.is_zero()).then_some(self.used_invitations)
    }

    pub fn inactive_accounts(&self) -> Option<Duration> {
        (!self.inactive_accounts.is_zero()).then_some(self.inactive_accounts)
    }

    pub fn unverified_sign_ups(&self) -> Option<Duration> {
        (!self.unverified_sign_ups.is_zero()).then_some(self.unverified_sign_ups)
    }

    /// Periods short enough to be a slip of the pen (`"30s"` for `"30d"`) would disable or
    /// delete accounts in use: a day is the least each accepts.
    pub(crate) fn check(&self, s: &ConfigSource, has_mail: bool) -> Result<(), ConfigError> {
        let at_least_a_day = |key: &str, d: Duration| {
            if !d.is_zero() && d < Duration::from_secs(DAY) {
                return Err(ConfigError::invalid(s, key, "must be at least 1d, or 0s to keep without end"));
            }
            Ok(())
        };
        at_least_a_day("retention.inactive_accounts", self.inactive_accounts)?;
        at_least_a_day("retention.unverified_sign_ups", self.unverified_sign_ups)?;
        if self.inactive_accounts().is_some() {
            if self.inactive_accounts_grace < Duration::from_secs(DAY) {
                return Err(ConfigError::invalid(s, "retention.inactive_accounts_grace", "must be at least 1d"));
            }
            if !has_mail {
                return Err(ConfigError::invalid(
                    s,
                    "retention.inactive_accounts",
                    "needs a [mail] section to tell owners before their account is disabled or deleted",
                ));
            }
        }
        if self.unverified_sign_ups().is_some() && !has_mail {
            return Err(ConfigError::invalid(
                s,
                "retention.unverified_sign_ups",
                "needs a [mail] section: without it no sign-up is sent the link that verifies its address",
            ));
        }
        Ok(())
    }
}
