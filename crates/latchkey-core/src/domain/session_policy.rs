//! A client's settings for single sign-on sessions and the OIDC logout channels
//! (Front-Channel Logout 1.0, Back-Channel Logout 1.0).

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use url::{Host, Url};

use super::{ClientKind, RedirectUri};

/// A front- or back-channel logout URI: absolute `https`, or `http` on a loopback IP literal
/// (a relying party on the same machine); no fragment (both specifications forbid one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutUri(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogoutUriError {
    #[error("`{0}` is not an absolute http(s) URI")]
    NotAbsolute(String),
    #[error("`{0}` has a fragment; logout URIs must not")]
    Fragment(String),
    #[error("`{0}` must use https; http is allowed only for loopback IP literals (127.0.0.1, [::1])")]
    InsecureScheme(String),
    #[error(
        "the front-channel logout URI `{0}` must have the scheme, host and port of one of the client's redirect URIs (Front-Channel Logout 1.0 §2)"
    )]
    NotRedirectOrigin(String),
}

impl LogoutUri {
    pub fn parse(raw: &str) -> Result<Self, LogoutUriError> {
        let owned = || raw.to_owned();
        let url = Url::parse(raw).map_err(|_| LogoutUriError::NotAbsolute(owned()))?;
        if url.fragment().is_some() || raw.contains('#') {
            return Err(LogoutUriError::Fragment(owned()));
        }
        match (url.scheme(), url.host()) {
            ("https", Some(_)) => Ok(Self(raw.to_owned())),
            ("http", Some(Host::Ipv4(ip))) if IpAddr::V4(ip).is_loopback() => Ok(Self(raw.to_owned())),
            ("http", Some(Host::Ipv6(ip))) if IpAddr::V6(ip).is_loopback() => Ok(Self(raw.to_owned())),
            ("http", Some(_)) => Err(LogoutUriError::InsecureScheme(owned())),
            _ => Err(LogoutUriError::NotAbsolute(owned())),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `scheme://host[:port]`, for a page's `frame-src`.
    pub fn origin(&self) -> String {
        Url::parse(&self.0).map(|u| u.origin().ascii_serialization()).unwrap_or_default()
    }
}

impl fmt::Display for LogoutUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for LogoutUri {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for LogoutUri {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        LogoutUri::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// Per-client session and logout settings. Every field defaults to "off".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClientSessionPolicy {
    /// Loaded in a hidden iframe by the signed-out page, with `iss` and `sid`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frontchannel_logout_uri: Option<LogoutUri>,
    pub frontchannel_logout_session_required: bool,
    /// Receives a logout token by POST when a session it signed into ends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backchannel_logout_uri: Option<LogoutUri>,
    pub backchannel_logout_session_required: bool,
    /// Logout revokes this client's `offline_access` refresh tokens too (by default they
    /// survive it, Back-Channel Logout 1.0 §2.7).
    pub logout_revokes_offline_tokens: bool,
    /// A `max_age` (seconds) applied when a request carries none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_max_age: Option<u64>,
    /// Issue refresh tokens without `offline_access`, bound to the session: they end with it.
    pub session_refresh_tokens: bool,
    /// Sign-ins for this client need two factors (or a user-verified passkey).
    pub require_mfa: bool,
    /// Sign-ins for this client need a passkey (phishing-resistant); for admin consoles.
    pub require_passkey: bool,
}

/// A change to a client's session settings, as the CLI and the admin API take it: a field
/// left `None` keeps what is there; `Some(None)` removes a setting that may be absent.
#[derive(Debug, Clone, Default)]
pub struct SessionPolicyChange {
    pub frontchannel_logout_uri: Option<Option<LogoutUri>>,
    pub frontchannel_logout_session_required: Option<bool>,
    pub backchannel_logout_uri: Option<Option<LogoutUri>>,
    pub backchannel_logout_session_required: Option<bool>,
    pub logout_revokes_offline_tokens: Option<bool>,
    pub default_max_age: Option<Option<u64>>,
    pub session_refresh_tokens: Option<bool>,
    pub require_mfa: Option<bool>,
    pub require_passkey: Option<bool>,
}

impl SessionPolicyChange {
    /// `current` with this change made.
    pub fn applied_to(self, current: &ClientSessionPolicy) -> ClientSessionPolicy {
        let c = current.clone();
        ClientSessionPolicy {
            frontchannel_logout_uri: self.frontchannel_logout_uri.unwrap_or(c.frontchannel_logout_uri),
            frontchannel_logout_session_required: self
                .frontchannel_logout_session_required
                .unwrap_or(c.frontchannel_logout_session_required),
            backchannel_logout_uri: self.backchannel_logout_uri.unwrap_or(c.backchannel_logout_uri),
            backchannel_logout_session_required: self
                .backchannel_logout_session_required
                .unwrap_or(c.backchannel_logout_session_required),
            logout_revokes_offline_tokens: self
                .logout_revokes_offline_tokens
                .unwrap_or(c.logout_revokes_offline_tokens),
            default_max_age: self.default_max_age.unwrap_or(c.default_max_age),
            session_refresh_tokens: self.session_refresh_tokens.unwrap_or(c.session_refresh_tokens),
            require_mfa: self.require_mfa.unwrap_or(c.require_mfa),
            require_passkey: self.require_passkey.unwrap_or(c.require_passkey),
        }
    }
}

impl ClientSessionPolicy {
    /// The weakest sign-in this client accepts.
    pub fn required_level(&self) -> Option<super::AuthLevel> {
        if self.require_passkey {
            Some(super::AuthLevel::PhishingResistant)
        } else if self.require_mfa {
            Some(super::AuthLevel::MultiFactor)
        } else {
            None
        }
    }

    /// Front-Channel Logout 1.0 §2: the URI's scheme, host and port are those of a
    /// registered redirect URI (any port for a native client's loopback redirect URI).
    pub fn check_against(&self, redirect_uris: &[RedirectUri], kind: ClientKind) -> Result<(), LogoutUriError> {
        let Some(front) = &self.frontchannel_logout_uri else { return Ok(()) };
        let Ok(f) = Url::parse(front.as_str()) else { return Err(LogoutUriError::NotAbsolute(front.0.clone())) };
        let fits = redirect_uris.iter().filter_map(|r| Url::parse(r.as_str()).ok()).any(|r| {
            let loopback = kind == ClientKind::Public && r.scheme() == "http";
            r.scheme() == f.scheme() && r.host() == f.host() && (loopback || r.port() == f.port())
        });
        if fits { Ok(()) } else { Err(LogoutUriError::NotRedirectOrigin(front.0.clone())) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(raw: &str) -> LogoutUri {
        LogoutUri::parse(raw).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn logout_uris_are_https_or_loopback_without_fragments() {
        assert_eq!(uri("https://rp.example/logout?x=1").as_str(), "https://rp.example/logout?x=1");
        assert_eq!(uri("http://127.0.0.1:9000/bc").origin(), "http://127.0.0.1:9000");
        assert!(LogoutUri::parse("http://[::1]/bc").is_ok());
        assert!(matches!(LogoutUri::parse("http://rp.example/bc"), Err(LogoutUriError::InsecureScheme(_))));
        assert!(matches!(LogoutUri::parse("http://localhost/bc"), Err(LogoutUriError::InsecureScheme(_))));
        assert!(matches!(LogoutUri::parse("https://rp.example/bc#f"), Err(LogoutUriError::Fragment(_))));
        assert!(matches!(LogoutUri::parse("/bc"), Err(LogoutUriError::NotAbsolute(_))));
        assert!(matches!(LogoutUri::parse("mailto:a@b.c"), Err(LogoutUriError::NotAbsolute(_))));
    }

    #[test]
    fn front_channel_uri_must_share_a_redirect_uri_origin() {
        let redirect = |r: &str, k| RedirectUri::parse_for_registration(r, k).unwrap_or_else(|e| panic!("{e}"));
        let policy = |f: &str| ClientSessionPolicy { frontchannel_logout_uri: Some(uri(f)), ..Default::default() };
        let web = [redirect("https://rp.example/cb", ClientKind::Confidential)];
        assert!(policy("https://rp.example/fc").check_against(&web, ClientKind::Confidential).is_ok());
        assert!(matches!(
            policy("https://other.example/fc").check_against(&web, ClientKind::Confidential),
            Err(LogoutUriError::NotRedirectOrigin(_))
        ));
        assert!(policy("https://rp.example:8443/fc").check_against(&web, ClientKind::Confidential).is_err());
        let native = [redirect("http://127.0.0.1/cb", ClientKind::Public)];
        assert!(policy("http://127.0.0.1:5555/fc").check_against(&native, ClientKind::Public).is_ok());
        assert!(ClientSessionPolicy::default().check_against(&[], ClientKind::Public).is_ok());
    }

    #[test]
    fn stored_policies_round_trip_and_reject_unknown_fields() {
        let p = ClientSessionPolicy {
            backchannel_logout_uri: Some(uri("https://rp.example/bc")),
            default_max_age: Some(600),
            ..Default::default()
        };
        let json = serde_json::to_string(&p).unwrap_or_default();
        assert_eq!(serde_json::from_str::<ClientSessionPolicy>(&json).ok(), Some(p));
        assert_eq!(serde_json::from_str::<ClientSessionPolicy>("{}").ok(), Some(ClientSessionPolicy::default()));
        assert!(serde_json::from_str::<ClientSessionPolicy>(r#"{"bogus":1}"#).is_err());
    }
}
