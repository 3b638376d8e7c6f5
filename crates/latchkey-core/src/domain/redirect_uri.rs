use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use url::{Host, Url};

use super::ClientKind;

/// A redirect URI as registered for a client. Matching against a request is exact string
/// comparison (RFC 9700 §4.1.3), except the RFC 8252 §7.3 loopback rule for native clients.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RedirectUri(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedirectUriError {
    #[error("`{0}` is not an absolute URI")]
    NotAbsolute(String),
    #[error("`{0}` has a fragment; redirect URIs must not (RFC 6749 §3.1.2)")]
    Fragment(String),
    #[error("`{0}` contains a wildcard; redirect URIs are matched exactly")]
    Wildcard(String),
    #[error("`{0}` must use https; http is allowed only for loopback IP literals (127.0.0.1, [::1]) of native clients")]
    InsecureScheme(String),
    #[error(
        "`{0}` uses a custom scheme; only public (native) clients may, with a reverse-DNS private-use scheme such as com.example.app:/callback (RFC 8252 §7.1)"
    )]
    CustomScheme(String),
    #[error(
        "`{0}` uses `localhost`; native clients must use the loopback IP literal 127.0.0.1 or [::1] (RFC 8252 §8.3)"
    )]
    Localhost(String),
}

impl RedirectUri {
    /// Parses a URI offered for registration and enforces the registration rules:
    /// https only; http only for loopback IP literals of public (native) clients;
    /// private-use reverse-DNS schemes only for public clients; no fragment; no wildcard.
    pub fn parse_for_registration(raw: &str, kind: ClientKind) -> Result<Self, RedirectUriError> {
        let owned = || raw.to_owned();
        if raw.contains('*') {
            return Err(RedirectUriError::Wildcard(owned()));
        }
        let url = Url::parse(raw).map_err(|_| RedirectUriError::NotAbsolute(owned()))?;
        if url.fragment().is_some() || raw.contains('#') {
            return Err(RedirectUriError::Fragment(owned()));
        }
        match url.scheme() {
            "https" => {
                if url.host().is_none() {
                    return Err(RedirectUriError::NotAbsolute(owned()));
                }
            }
            "http" => match url.host() {
                Some(Host::Ipv4(ip)) if IpAddr::V4(ip).is_loopback() && kind == ClientKind::Public => {}
                Some(Host::Ipv6(ip)) if IpAddr::V6(ip).is_loopback() && kind == ClientKind::Public => {}
                Some(Host::Domain(d)) if d.eq_ignore_ascii_case("localhost") && kind == ClientKind::Public => {
                    return Err(RedirectUriError::Localhost(owned()));
                }
                _ => return Err(RedirectUriError::InsecureScheme(owned())),
            },
            scheme => {
                // RFC 8252 §7.1: a private-use scheme is a reverse domain name (contains a dot).
                if kind != ClientKind::Public || !scheme.contains('.') {
                    return Err(RedirectUriError::CustomScheme(owned()));
                }
            }
        }
        Ok(Self(raw.to_owned()))
    }

    /// Rebuilds a value read back from the store, where it was validated at registration.
    pub fn from_stored(raw: String) -> Self {
        Self(raw)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The web origin (`scheme://host[:port]`) a browser app at this URI runs on, used for
    /// CORS. `None` for custom schemes, which have no web origin.
    pub fn web_origin(&self) -> Option<String> {
        let url = Url::parse(&self.0).ok()?;
        if !matches!(url.scheme(), "http" | "https") {
            return None;
        }
        Some(url.origin().ascii_serialization())
    }
}

impl fmt::Display for RedirectUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for RedirectUri {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for RedirectUri {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Self(String::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ClientKind::{Confidential, Public};

    #[test]
    fn https_is_accepted_for_every_client() {
        for kind in [Confidential, Public] {
            assert!(RedirectUri::parse_for_registration("https://app.example.com/cb", kind).is_ok());
        }
    }

    #[test]
    fn loopback_ip_literals_only_for_native_clients() {
        assert!(RedirectUri::parse_for_registration("http://127.0.0.1:8000/cb", Public).is_ok());
        assert!(RedirectUri::parse_for_registration("http://[::1]/cb", Public).is_ok());
        assert_eq!(
            RedirectUri::parse_for_registration("http://127.0.0.1/cb", Confidential),
            Err(RedirectUriError::InsecureScheme("http://127.0.0.1/cb".into()))
        );
        assert!(matches!(
            RedirectUri::parse_for_registration("http://localhost/cb", Public),
            Err(RedirectUriError::Localhost(_))
        ));
        assert!(matches!(
            RedirectUri::parse_for_registration("http://app.example.com/cb", Public),
            Err(RedirectUriError::InsecureScheme(_))
        ));
    }

    #[test]
    fn private_use_schemes_need_reverse_dns_and_a_public_client() {
        assert!(RedirectUri::parse_for_registration("com.example.app:/cb", Public).is_ok());
        assert!(matches!(
            RedirectUri::parse_for_registration("myapp:/cb", Public),
            Err(RedirectUriError::CustomScheme(_))
        ));
        assert!(matches!(
            RedirectUri::parse_for_registration("com.example.app:/cb", Confidential),
            Err(RedirectUriError::CustomScheme(_))
        ));
    }

    #[test]
    fn fragments_wildcards_and_relative_uris_are_refused() {
        assert!(matches!(
            RedirectUri::parse_for_registration("https://a.example/cb#x", Confidential),
            Err(RedirectUriError::Fragment(_))
        ));
        assert!(matches!(
            RedirectUri::parse_for_registration("https://*.example/cb", Confidential),
            Err(RedirectUriError::Wildcard(_))
        ));
        assert!(matches!(
            RedirectUri::parse_for_registration("/cb", Confidential),
            Err(RedirectUriError::NotAbsolute(_))
        ));
    }

    #[test]
    fn web_origin_drops_path_and_keeps_port() {
        let uri = RedirectUri::parse_for_registration("https://app.example.com:8443/a/b?c=d", Confidential)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(uri.web_origin().as_deref(), Some("https://app.example.com:8443"));
        let native =
            RedirectUri::parse_for_registration("com.example.app:/cb", Public).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(native.web_origin(), None);
    }
}
