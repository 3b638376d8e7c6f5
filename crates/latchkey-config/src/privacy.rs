//! `[privacy]`: how much personal data Latchkey keeps beyond what a sign-in needs.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrivacyConfig {
    /// The client IP address kept with each session (shown on the account page and to
    /// operators): not at all, its network only, or whole.
    pub ip: IpRecording,
    /// The browser's User-Agent kept with each session: not at all, as a description
    /// ("Firefox on Linux"), or whole (its first 256 characters).
    pub user_agent: UserAgentRecording,
}

/// How a session's user agent is kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UserAgentRecording {
    /// Not kept.
    Off,
    /// The browser and system only, as the account page describes them.
    #[default]
    Truncated,
    /// The whole header, up to 256 characters.
    Full,
}

impl UserAgentRecording {
    pub fn keep(self, ua: &str) -> Option<String> {
        match self {
            UserAgentRecording::Off => None,
            UserAgentRecording::Truncated => Some(latchkey_core::user_agent::describe(Some(ua))),
            UserAgentRecording::Full => Some(ua.chars().take(256).collect()),
        }
    }
}

/// How a session's client IP address is kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IpRecording {
    /// Not kept.
    #[default]
    Off,
    /// Its network only: the IPv4 /24 or the IPv6 /48, e.g. `192.0.2.0/24`.
    Truncated,
    /// The whole address.
    Full,
}

impl IpRecording {
    /// What is kept of `ip` (a client address as the edge saw it); `None` when nothing is,
    /// or it is no IP address.
    pub fn keep(self, ip: &str) -> Option<String> {
        let addr: std::net::IpAddr = ip.trim().parse().ok()?;
        let addr = addr.to_canonical();
        match self {
            IpRecording::Off => None,
            IpRecording::Full => Some(addr.to_string()),
            IpRecording::Truncated => Some(match addr {
                std::net::IpAddr::V4(v4) => ipnet::Ipv4Net::new_assert(v4, 24).trunc().to_string(),
                std::net::IpAddr::V6(v6) => ipnet::Ipv6Net::new_assert(v6, 48).trunc().to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{IpRecording, UserAgentRecording};

    #[test]
    fn a_user_agent_is_kept_whole_as_a_description_or_not_at_all() {
        let ua = "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0";
        assert_eq!(UserAgentRecording::Off.keep(ua), None);
        assert_eq!(UserAgentRecording::Truncated.keep(ua).as_deref(), Some("Firefox on Linux"));
        assert_eq!(UserAgentRecording::Full.keep(ua).as_deref(), Some(ua));
        assert_eq!(UserAgentRecording::Full.keep(&"x".repeat(300)).map(|s| s.len()), Some(256));
    }

    #[test]
    fn an_address_is_kept_whole_as_its_network_or_not_at_all() {
        assert_eq!(IpRecording::Off.keep("192.0.2.77"), None);
        assert_eq!(IpRecording::Full.keep("192.0.2.77").as_deref(), Some("192.0.2.77"));
        assert_eq!(IpRecording::Truncated.keep("192.0.2.77").as_deref(), Some("192.0.2.0/24"));
        assert_eq!(IpRecording::Truncated.keep("2001:db8:1:2:3::9").as_deref(), Some("2001:db8:1::/48"));
        assert_eq!(IpRecording::Truncated.keep("::ffff:198.51.100.9").as_deref(), Some("198.51.100.0/24"));
        assert_eq!(IpRecording::Full.keep("not an address"), None);
    }
}
