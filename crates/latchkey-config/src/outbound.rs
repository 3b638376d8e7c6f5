//! `[outbound]`: the guard every request Latchkey sends goes through (`crate::outbound`).

use std::fmt;
use std::time::Duration;

use ipnet::IpNet;
use latchkey_core::duration::serde_human;
use serde::{Deserialize, Serialize};

use super::{ConfigError, ConfigSource};

/// What an outbound request is for. An `outbound.allow` entry names the purposes it opens a
/// destination to, so an address opened for logout deliveries cannot be probed through a
/// client's `jwks_uri`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// Fetching a `private_key_jwt` client's keys from its registered `jwks_uri`.
    JwksUri,
    /// POSTing a logout token to a client's `backchannel_logout_uri`.
    BackchannelLogout,
    /// Sending a text message through the SMS provider's API (`sms.base_url`).
    Sms,
    /// Talking to an upstream identity provider (discovery, keys, tokens, user info).
    Federation,
}

impl Purpose {
    /// The name used in `outbound.allow`, metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::JwksUri => "jwks_uri",
            Purpose::BackchannelLogout => "backchannel_logout",
            Purpose::Sms => "sms",
            Purpose::Federation => "federation",
        }
    }
}

impl fmt::Display for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `outbound.allow` entry: a network that the guard would otherwise refuse (loopback,
/// private, any special-purpose range), opened for some purposes on some ports.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AllowEntry {
    pub cidr: IpNet,
    #[serde(rename = "for")]
    pub purposes: Vec<Purpose>,
    pub ports: Vec<u16>,
    /// Also allow plain `http://` to this destination (for these purposes and ports).
    /// Off, an entry opens the network to https only.
    #[serde(default)]
    pub allow_insecure_http: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboundConfig {
    /// Destinations opened despite being loopback, private or otherwise special-purpose.
    pub allow: Vec<AllowEntry>,
    /// How long one request may take in all (resolving, connecting, answering, the body),
    /// unless its caller has its own setting (`logout.backchannel_timeout`).
    #[serde(with = "serde_human")]
    pub timeout: Duration,
    /// How long resolving the name and opening the connection may take.
    #[serde(with = "serde_human")]
    pub connect_timeout: Duration,
    /// Consecutive failures (no answer, or a 5xx answer) after which requests to that
    /// destination fail at once, without being sent, for `circuit_breaker_cool_down`.
    pub circuit_breaker_failures: u32,
    #[serde(with = "serde_human")]
    pub circuit_breaker_cool_down: Duration,
}

impl Default for OutboundConfig {
    fn default() -> Self {
        Self {
            allow: Vec::new(),
            timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(3),
            circuit_breaker_failures: 5,
            circuit_breaker_cool_down: Duration::from_secs(30),
        }
    }
}

impl OutboundConfig {
    pub(super) fn check(&self, s: &ConfigSource) -> Result<(), ConfigError> {
        for (i, entry) in self.allow.iter().enumerate() {
            let key = format!("outbound.allow[{i}]");
            if entry.purposes.is_empty() {
                return Err(ConfigError::invalid(
                    s,
                    &key,
                    "`for` must name at least one purpose: \"jwks_uri\", \"backchannel_logout\", \"sms\", \"federation\"",
                ));
            }
            if entry.ports.is_empty() || entry.ports.contains(&0) {
                return Err(ConfigError::invalid(s, &key, "`ports` must list at least one port, each 1-65535"));
            }
        }
        if self.timeout.is_zero() || self.connect_timeout.is_zero() || self.circuit_breaker_cool_down.is_zero() {
            return Err(ConfigError::invalid(
                s,
                "outbound",
                "timeout, connect_timeout and circuit_breaker_cool_down must be more than 0s",
            ));
        }
        if self.circuit_breaker_failures == 0 {
            return Err(ConfigError::invalid(s, "outbound.circuit_breaker_failures", "must be at least 1"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::Config;
    use super::*;

    fn load(toml: &str, env: &[(&str, &str)]) -> Result<Config, String> {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let file = dir.path().join("latchkey.toml");
        std::fs::write(&file, toml).unwrap_or_else(|e| panic!("{e}"));
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Config::load(Some(Path::new(&file)), &env, dir.path()).map_err(|e| e.to_string())
    }

    #[test]
    fn allow_entries_name_their_network_purposes_and_ports() {
        let config = load(
            "[outbound]\nallow = [\n  { cidr = \"10.1.0.0/16\", for = [\"backchannel_logout\"], ports = [443] },\n  \
             { cidr = \"127.0.0.1/32\", for = [\"jwks_uri\", \"backchannel_logout\"], ports = [8080], allow_insecure_http = true },\n]\n",
            &[],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let allow = &config.outbound.allow;
        assert_eq!(allow.len(), 2);
        assert_eq!(
            (allow[0].purposes.as_slice(), allow[0].ports.as_slice()),
            (&[Purpose::BackchannelLogout][..], &[443][..])
        );
        assert!(!allow[0].allow_insecure_http, "https only unless the entry says otherwise");
        assert!(allow[1].allow_insecure_http);
        // The same from the environment, as the end-to-end tests set it.
        let from_env = load(
            "",
            &[("LATCHKEY_OUTBOUND__ALLOW", "[{ cidr = \"127.0.0.1/32\", for = [\"jwks_uri\"], ports = [9000] }]")],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(from_env.outbound.allow[0].purposes, [Purpose::JwksUri]);
        assert_eq!(config.outbound.circuit_breaker_failures, 5);
    }

    #[test]
    fn bad_allow_entries_are_errors_that_name_the_entry() {
        for (toml, expected) in [
            ("allow = [{ cidr = \"10.0.0.0/8\", for = [], ports = [443] }]", "outbound.allow[0]"),
            ("allow = [{ cidr = \"10.0.0.0/8\", for = [\"jwks_uri\"], ports = [] }]", "outbound.allow[0]"),
            ("allow = [{ cidr = \"10.0.0.0/8\", for = [\"jwks_uri\"], ports = [0] }]", "outbound.allow[0]"),
            ("allow = [{ cidr = \"10.0.0.0/8\", for = [\"jwks_uri\"] }]", "missing field `ports`"),
            ("allow = [{ cidr = \"10.0.0.0/8\", for = [\"smtp\"], ports = [443] }]", "unknown variant `smtp`"),
            ("allow = [{ cidr = \"10.0.0.0/33\", for = [\"jwks_uri\"], ports = [443] }]", "outbound.allow"),
            (
                "allow = [{ cidr = \"10.0.0.0/8\", for = [\"jwks_uri\"], ports = [443], http = true }]",
                "unknown field `http`",
            ),
            ("circuit_breaker_failures = 0", "outbound.circuit_breaker_failures"),
            ("timeout = \"0s\"", "`outbound`"),
        ] {
            let text = load(&format!("[outbound]\n{toml}\n"), &[]).err().unwrap_or_else(|| panic!("{toml} loaded"));
            assert!(text.contains(expected), "{toml}: {text}");
        }
    }

    #[test]
    fn the_removed_insecure_jwks_switch_is_an_error_that_names_outbound_allow() {
        let text = load("[clients]\nallow_insecure_jwks_uri = true\n", &[]).err().unwrap_or_default();
        assert!(text.contains("clients.allow_insecure_jwks_uri") && text.contains("outbound.allow"), "{text}");
        let text = load("", &[("LATCHKEY_CLIENTS__ALLOW_INSECURE_JWKS_URI", "false")]).err().unwrap_or_default();
        assert!(text.contains("outbound.allow"), "even set to false: {text}");
    }
}
