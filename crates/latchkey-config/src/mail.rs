//! `[mail]`: the SMTP relay Latchkey sends its emails through. Without the section, nothing
//! that needs mail is offered.

use serde::{Deserialize, Serialize};

use crate::SecretRef;
use crate::load::{ConfigError, ConfigSource};

/// How the connection to the relay is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MailTls {
    /// TLS from the first byte (port 465).
    Implicit,
    /// Plain, then `STARTTLS`, required (port 587).
    Starttls,
    /// Plain text: only to a relay on this machine (127.0.0.1, ::1, localhost).
    None,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MailConfig {
    /// The sender: `Latchkey <id@example.com>` or `id@example.com`.
    pub from: String,
    pub host: String,
    /// Default: 465 (implicit), 587 (starttls), 25 (none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    pub tls: MailTls,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<SecretRef>,
    /// How long one delivery may take (connect, TLS, the SMTP dialogue).
    #[serde(default = "default_timeout", with = "latchkey_core::duration::serde_human")]
    pub timeout: std::time::Duration,
    /// The wait before the first retry of a message that failed for now; it doubles with
    /// each attempt, up to an hour.
    #[serde(default = "default_thirty", with = "latchkey_core::duration::serde_human")]
    pub retry_base: std::time::Duration,
    /// After 5 failures in a row the relay's circuit opens: messages wait this long in the
    /// outbox before one is tried again.
    #[serde(default = "default_thirty", with = "latchkey_core::duration::serde_human")]
    pub circuit_cool_down: std::time::Duration,
    /// A directory whose files replace the built-in email templates of the same name
    /// (`verify_email.subject.txt`, `verify_email.txt`, `verify_email.html`, …); relative
    /// to the config file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub templates: Option<std::path::PathBuf>,
}

fn default_timeout() -> std::time::Duration {
    std::time::Duration::from_secs(15)
}

fn default_thirty() -> std::time::Duration {
    std::time::Duration::from_secs(30)
}

impl MailConfig {
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.tls {
            MailTls::Implicit => 465,
            MailTls::Starttls => 587,
            MailTls::None => 25,
        })
    }

    /// Whether the relay is on this machine.
    pub fn is_loopback(&self) -> bool {
        let host = self.host.trim_start_matches('[').trim_end_matches(']');
        host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }

    pub(crate) fn check(&self, s: &ConfigSource) -> Result<(), ConfigError> {
        if self.host.is_empty() || self.host.contains(['/', ' ']) {
            return Err(ConfigError::invalid(s, "mail.host", "must be a host name or address"));
        }
        if !self.from.contains('@') || self.from.contains(['\r', '\n']) {
            return Err(ConfigError::invalid(
                s,
                "mail.from",
                "must be an address: `id@example.com` or `Name <id@example.com>`",
            ));
        }
        // Plain SMTP (and so SMTP AUTH in the clear) only to a relay on this machine.
        if self.tls == MailTls::None && !self.is_loopback() {
            return Err(ConfigError::invalid(
                s,
                "mail.tls",
                "\"none\" is allowed only for a relay on this machine (127.0.0.1, ::1, localhost); use \"implicit\" or \"starttls\"",
            ));
        }
        if self.username.is_some() != self.password.is_some() {
            return Err(ConfigError::invalid(s, "mail.password", "username and password go together"));
        }
        let (second, hour) = (std::time::Duration::from_secs(1), std::time::Duration::from_secs(3_600));
        for (key, value) in [
            ("mail.timeout", self.timeout),
            ("mail.retry_base", self.retry_base),
            ("mail.circuit_cool_down", self.circuit_cool_down),
        ] {
            if value < second || value > hour {
                return Err(ConfigError::invalid(s, key, "must be from 1s to 1h"));
            }
        }
        Ok(())
    }
}
