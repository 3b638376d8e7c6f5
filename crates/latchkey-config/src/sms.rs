//! `[sms]`: text messages through Twilio's Messages API. Without the section nothing that
//! needs a phone is offered.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::SecretRef;
use crate::load::{ConfigError, ConfigSource};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SmsConfig {
    /// `https://api.twilio.com`, or a stand-in's URL in development and tests (which must
    /// also be opened in `outbound.allow` for `sms`).
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// The Twilio account (`AC…`): the path of the Messages resource.
    pub account_sid: String,
    /// HTTP Basic user: the account SID, or an API key (`SK…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_sid: Option<String>,
    /// HTTP Basic password: the account's auth token, or the API key's secret.
    pub auth_token: SecretRef,
    /// The sender: a Twilio number in E.164 (`+15005550006`) …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// … or a Messaging Service (`MG…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messaging_service_sid: Option<String>,
    /// Calling codes numbers may have (`["+1", "+44"]`): none is allowed until listed, so
    /// nobody can make Latchkey text premium numbers around the world (SMS pumping). `+1`
    /// means the United States and Canada only: the other countries and territories of the
    /// North American Numbering Plan (the Caribbean, Bermuda, Guam, …) and the premium-rate
    /// area code 900 are listed by their own prefix (`+1876` for Jamaica).
    #[serde(default)]
    pub allowed_countries: Vec<String>,
    /// Daily caps on texts sent: per number, per account, per client IP, and in all.
    #[serde(default)]
    pub daily_limits: SmsDailyLimits,
    /// How long one request to the API may take.
    #[serde(default = "default_timeout", with = "latchkey_core::duration::serde_human")]
    pub timeout: Duration,
    #[serde(default = "default_thirty", with = "latchkey_core::duration::serde_human")]
    pub retry_base: Duration,
    #[serde(default = "default_thirty", with = "latchkey_core::duration::serde_human")]
    pub circuit_cool_down: Duration,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmsDailyLimits {
    pub per_number: u32,
    pub per_account: u32,
    pub per_ip: u32,
    pub total: u32,
}

impl Default for SmsDailyLimits {
    fn default() -> Self {
        Self { per_number: 5, per_account: 10, per_ip: 10, total: 500 }
    }
}

fn default_base_url() -> String {
    "https://api.twilio.com".into()
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_thirty() -> Duration {
    Duration::from_secs(30)
}

/// Whether `raw` is a calling code as listed in `allowed_countries`: `+` and 1 to 3 digits
/// (a longer prefix, such as `+1242`, narrows it to one area).
fn calling_code(raw: &str) -> bool {
    raw.strip_prefix('+').is_some_and(|d| (1..=6).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))
        && !raw.starts_with("+0")
}

impl SmsConfig {
    pub(crate) fn check(&self, s: &ConfigSource) -> Result<(), ConfigError> {
        let url = url::Url::parse(&self.base_url)
            .map_err(|_| ConfigError::invalid(s, "sms.base_url", "must be a URL such as https://api.twilio.com"))?;
        if !matches!(url.scheme(), "https" | "http")
            || url.host_str().is_none()
            || url.query().is_some()
            || url.fragment().is_some()
            || !url.username().is_empty()
            || url.password().is_some()
        {
            return Err(ConfigError::invalid(
                s,
                "sms.base_url",
                "must be an http(s) URL without a query, a fragment or credentials (those go in account_sid and auth_token)",
            ));
        }
        let sid = |v: &str, prefix: &str| {
            v.len() == 34 && v.starts_with(prefix) && v[2..].bytes().all(|b| b.is_ascii_hexdigit())
        };
        if !sid(&self.account_sid, "AC") {
            return Err(ConfigError::invalid(
                s,
                "sms.account_sid",
                "must be a Twilio account SID: AC and 32 hex digits",
            ));
        }
        if self.api_key_sid.as_deref().is_some_and(|k| !sid(k, "SK")) {
            return Err(ConfigError::invalid(
                s,
                "sms.api_key_sid",
                "must be a Twilio API key SID: SK and 32 hex digits",
            ));
        }
        match (&self.from, &self.messaging_service_sid) {
            (Some(_), Some(_)) | (None, None) => {
                return Err(ConfigError::invalid(s, "sms.from", "give either from or messaging_service_sid"));
            }
            (Some(from), None) if !crate::sms::e164(from) => {
                return Err(ConfigError::invalid(
                    s,
                    "sms.from",
                    "must be a number in E.164 form, such as +15005550006",
                ));
            }
            (None, Some(mg)) if !sid(mg, "MG") => {
                return Err(ConfigError::invalid(
                    s,
                    "sms.messaging_service_sid",
                    "must be a Messaging Service SID: MG and 32 hex digits",
                ));
            }
            _ => {}
        }
        if let Some(bad) = self.allowed_countries.iter().find(|c| !calling_code(c)) {
            return Err(ConfigError::invalid(
                s,
                "sms.allowed_countries",
                format!("`{bad}` is not a calling code such as \"+1\" or \"+44\""),
            ));
        }
        let l = &self.daily_limits;
        if [l.per_number, l.per_account, l.per_ip, l.total].contains(&0) {
            return Err(ConfigError::invalid(s, "sms.daily_limits", "every limit must be at least 1"));
        }
        let (second, hour) = (Duration::from_secs(1), Duration::from_secs(3_600));
        for (key, value) in [
            ("sms.timeout", self.timeout),
            ("sms.retry_base", self.retry_base),
            ("sms.circuit_cool_down", self.circuit_cool_down),
        ] {
            if value < second || value > hour {
                return Err(ConfigError::invalid(s, key, "must be from 1s to 1h"));
            }
        }
        Ok(())
    }

    /// Whether texts may go to `number` (E.164): its calling code is listed. A number of the
    /// North American Numbering Plan outside the United States and Canada needs its own
    /// `+1` and area code listed: `+1` alone does not admit it.
    pub fn allows(&self, number: &str) -> bool {
        let elsewhere = number.strip_prefix("+1").and_then(|rest| rest.get(..3)).is_some_and(nanp_elsewhere);
        self.allowed_countries.iter().any(|c| number.starts_with(c.as_str()) && !(elsewhere && c.len() < "+1NNN".len()))
    }
}

/// Area codes of the North American Numbering Plan that are not the United States' 50
/// states or Canada: other countries (dialled as if domestic, billed as international: the
/// classic SMS-pumping and "one ring" ranges), US territories that Twilio prices and
/// permits as countries of their own, and 900, premium rate.
const NANP_ELSEWHERE: &[&str] = &[
    "242", "246", "264", "268", "284", "340", "345", "441", "473", "649", "658", "664", "670", "671", "684", "721",
    "758", "767", "784", "787", "809", "829", "849", "868", "869", "876", "900", "939",
];

fn nanp_elsewhere(area: &str) -> bool {
    NANP_ELSEWHERE.contains(&area)
}

/// Whether `raw` has the E.164 shape: `+`, a first digit 1–9, 7 to 15 digits in all.
pub fn e164(raw: &str) -> bool {
    raw.strip_prefix('+')
        .is_some_and(|d| (7..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()) && !d.starts_with('0'))
}
