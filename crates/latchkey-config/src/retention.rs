//! `[retention]`: how long kept data stays before the cleanup job deletes it. `"0s"` keeps
//! it without end. What expires by its own nature (sessions, codes, tokens, counters) is
//! deleted when no security check needs it any longer, whatever this says.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use latchkey_core::duration::serde_human;

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
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self { audit_log: Duration::from_secs(365 * 86_400), used_invitations: Duration::from_secs(90 * 86_400) }
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
}
