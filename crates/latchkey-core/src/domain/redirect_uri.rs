use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};
use url::Url;

use super::ClientKind;

/// A redirect URI as registered for a client. Matching against a request is exact string
/// comparison (RFC 9700 §4.1.3), except the RFC 8252 §7.3 loopback rule for native clients.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RedirectUri(String);

/// The only hosts a development client (`allow_insecure_redirect_uris`) may use over plain
/// http, written exactly so: this machine, under the names a developer's browser uses.
const DEVELOPMENT_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "[::1]"];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedirectUriError {
    #[error("`{0}` is not an absolute URI")]
    NotAbsolute(String),
    #[error("`{0}` has a fragment; redirect URIs must not (RFC 6749 §3.1.2)")]
    Fragment(String),
    #[error("`{0}` has user information before the host; redirect URIs must not (RFC 3986 §7.6)")]
    UserInfo(String),
    #[error("`{0}` has a `.` or `..` path segment; register the path it stands for (RFC 3986 §5.2.4)")]
    DotSegment(String),
    #[error("`{0}` contains a wildcard; redirect URIs are matched exactly")]
    Wildcard(String),
    #[error("`{0}` must use https; http is allowed only for loopback IP literals (127.0.0.1, [::1]) of native clients")]
    InsecureScheme(String),
    #[error(
        "`{0}` is a plain-http URI on this machine; only a client that allows insecure redirect URIs (development only) may register it"
    )]
    DevelopmentOnly(String),
    #[error(
        "`{0}` uses a custom scheme; only public (native) clients may, with a reverse-DNS private-use scheme such as com.example.app:/callback (RFC 8252 §7.1)"
    )]
    CustomScheme(String),
}

/// An `http://` URI cut where RFC 8252 §7.3 lets one part vary: host, port and the rest
/// (path, query, fragment), as written, never normalised.
struct HttpParts<'a> {
    host: &'a str,
    rest: &'a str,
}

/// Splits `raw` by hand rather than with `Url`: `Url` normalises (`/a/../cb` becomes `/cb`,
/// `127.1` becomes `127.0.0.1`, a fragment is set aside), and matching must see what the
/// browser will be sent to. `None` unless it is `http://host[:port]...` without user-info.
fn http_parts(raw: &str) -> Option<HttpParts<'_>> {
    let after = raw.strip_prefix("http://")?;
    let end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let (authority, rest) = after.split_at(end);
    if authority.contains('@') {
        return None;
    }
    let (host, port) = if authority.starts_with('[') {
        let close = authority.find(']')? + 1;
        let (host, tail) = authority.split_at(close);
        (host, if tail.is_empty() { None } else { Some(tail.strip_prefix(':')?) })
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if let Some(port) = port
        && (!port.bytes().all(|b| b.is_ascii_digit()) || port.parse::<u16>().ok().is_none_or(|p| p == 0))
    {
        return None;
    }
    Some(HttpParts { host, rest })
}

/// A loopback IP literal as written (`127.0.0.1`, `[::1]`); `Ipv4Addr`'s parser is strict,
/// so `127.1` or `0x7f.0.0.1` are not.
fn is_loopback_literal(host: &str) -> bool {
    match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => v6.parse::<Ipv6Addr>().is_ok_and(|ip| ip.is_loopback()),
        None => host.parse::<Ipv4Addr>().is_ok_and(|ip| ip.is_loopback()),
    }
}

/// `scheme://user@host…`: the authority holds user information.
fn has_user_info(raw: &str) -> bool {
    let Some((_, after)) = raw.split_once("://") else { return false };
    let end = after.find(['/', '?', '#']).unwrap_or(after.len());
    after[..end].contains('@')
}

/// A `.` or `..` path segment, also percent-encoded (`%2e`), which a browser or `Url`
/// would resolve into another path than the one written.
fn has_dot_segment(raw: &str) -> bool {
    let path_start = match raw.split_once("://") {
        Some((scheme, after)) => scheme.len() + 3 + after.find('/').unwrap_or(after.len()),
        None => raw.find(':').map_or(0, |i| i + 1),
    };
    let path = &raw[path_start..];
    let path = &path[..path.find(['?', '#']).unwrap_or(path.len())];
    path.split('/').any(|segment| {
        let s = segment.to_ascii_lowercase().replace("%2e", ".");
        s == "." || s == ".."
    })
}

impl RedirectUri {
    /// Parses a URI offered for registration and enforces the registration rules:
    /// https only; http only for loopback IP literals of public (native) clients;
    /// private-use reverse-DNS schemes only for public clients; no fragment, user-info,
    /// dot segment or wildcard.
    pub fn parse_for_registration(raw: &str, kind: ClientKind) -> Result<Self, RedirectUriError> {
        Self::parse_for_client(raw, kind, false)
    }

    /// As [`parse_for_registration`](Self::parse_for_registration), for a client whose
    /// `allow_insecure_redirect_uris` is `allow_insecure`: then it may also register plain
    /// `http://localhost[:port]/…`, `http://127.0.0.1[:port]/…` and `http://[::1][:port]/…`
    /// (a web app in development), matched exactly, port included.
    pub fn parse_for_client(raw: &str, kind: ClientKind, allow_insecure: bool) -> Result<Self, RedirectUriError> {
        let owned = || raw.to_owned();
        if raw.contains('*') {
            return Err(RedirectUriError::Wildcard(owned()));
        }
        let url = Url::parse(raw).map_err(|_| RedirectUriError::NotAbsolute(owned()))?;
        if url.fragment().is_some() || raw.contains('#') {
            return Err(RedirectUriError::Fragment(owned()));
        }
        if has_user_info(raw) {
            return Err(RedirectUriError::UserInfo(owned()));
        }
        if has_dot_segment(raw) {
            return Err(RedirectUriError::DotSegment(owned()));
        }
        match url.scheme() {
            "https" => {
                if url.host().is_none() {
                    return Err(RedirectUriError::NotAbsolute(owned()));
                }
            }
            "http" => {
                let host = http_parts(raw).map(|p| p.host).unwrap_or_default();
                let native = kind == ClientKind::Public && is_loopback_literal(host);
                let development = DEVELOPMENT_HOSTS.contains(&host);
                let allowed = native || (development && allow_insecure);
                if !allowed {
                    return Err(if development {
                        RedirectUriError::DevelopmentOnly(owned())
                    } else {
                        RedirectUriError::InsecureScheme(owned())
                    });
                }
            }
            scheme => {
                // RFC 8252 §7.1: a private-use scheme is a reverse domain name (contains a dot).
                if kind != ClientKind::Public || !scheme.contains('.') {
                    return Err(RedirectUriError::CustomScheme(owned()));
                }
            }
        }
        Ok(Self(raw.to_owned()))
    }

    /// Parses a URI in a form some client could register (the most a native client in
    /// development may): what *this* client may register is [`check_for`](Self::check_for),
    /// which the client service applies to every URI it stores.
    pub fn parse_any(raw: &str) -> Result<Self, RedirectUriError> {
        Self::parse_for_client(raw, ClientKind::Public, true)
    }

    /// Whether a client of `kind`, allowing insecure (development) URIs or not, may register
    /// this URI.
    pub fn check_for(&self, kind: ClientKind, allow_insecure: bool) -> Result<(), RedirectUriError> {
        Self::parse_for_client(&self.0, kind, allow_insecure).map(drop)
    }

    /// Whether `requested` names this URI. Exact string comparison (RFC 9700 §4.1.3);
    /// only for a native (public) client's loopback IP literal may the port differ
    /// (RFC 8252 §7.3), with host, path and query still exact. Nothing is normalised, so
    /// `/a/../cb` is not `/cb`; a fragment or user-info is never accepted (RFC 6749 §3.1.2),
    /// even should a URI stored before these rules carry one.
    pub fn matches(&self, requested: &str, kind: ClientKind) -> bool {
        if requested.contains('#') || has_user_info(requested) || has_dot_segment(requested) {
            return false;
        }
        if self.0 == requested {
            return true;
        }
        if kind != ClientKind::Public {
            return false;
        }
        match (http_parts(&self.0), http_parts(requested)) {
            (Some(registered), Some(asked)) => {
                is_loopback_literal(registered.host) && registered.host == asked.host && registered.rest == asked.rest
            }
            _ => false,
        }
    }

    /// Whether `requested` matches one of `registered` (see [`matches`](Self::matches)).
    pub fn is_registered(registered: &[Self], kind: ClientKind, requested: &str) -> bool {
        registered.iter().any(|r| r.matches(requested, kind))
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
            Err(RedirectUriError::DevelopmentOnly("http://127.0.0.1/cb".into()))
        );
        assert!(matches!(
            RedirectUri::parse_for_registration("http://localhost/cb", Public),
            Err(RedirectUriError::DevelopmentOnly(_))
        ));
        assert!(matches!(
            RedirectUri::parse_for_registration("http://127.1/cb", Public),
            Err(RedirectUriError::InsecureScheme(_))
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

    fn registered(raw: &str, kind: ClientKind) -> RedirectUri {
        RedirectUri::parse_for_registration(raw, kind).unwrap_or_else(|e| panic!("{raw}: {e}"))
    }

    #[test]
    fn user_info_and_dot_segments_are_refused_at_registration() {
        for kind in [Confidential, Public] {
            for raw in ["https://evil.example@app.example.com/cb", "https://@app.example.com/cb"] {
                assert_eq!(
                    RedirectUri::parse_for_registration(raw, kind),
                    Err(RedirectUriError::UserInfo(raw.into())),
                    "{raw}"
                );
            }
            for raw in [
                "https://app.example.com/a/../cb",
                "https://app.example.com/./cb",
                "https://app.example.com/a/%2E%2e/cb",
            ] {
                assert_eq!(
                    RedirectUri::parse_for_registration(raw, kind),
                    Err(RedirectUriError::DotSegment(raw.into())),
                    "{raw}"
                );
            }
        }
        assert!(matches!(
            RedirectUri::parse_for_registration("http://evil.com@127.0.0.1:5555/cb", Public),
            Err(RedirectUriError::UserInfo(_))
        ));
        assert!(matches!(
            RedirectUri::parse_for_registration("com.example.app:/a/../cb", Public),
            Err(RedirectUriError::DotSegment(_))
        ));
        // A dot inside a segment is an ordinary name.
        assert!(RedirectUri::parse_for_registration("https://app.example.com/v1.2/..cb/cb.", Confidential).is_ok());
    }

    #[test]
    fn a_native_loopback_uri_matches_on_any_port_and_nothing_else_varies() {
        let uri = registered("http://127.0.0.1:5555/cb", Public);
        for same in ["http://127.0.0.1:5555/cb", "http://127.0.0.1:61000/cb", "http://127.0.0.1/cb"] {
            assert!(uri.matches(same, Public), "{same}");
        }
        for other in [
            "http://127.0.0.1:5555/cb#frag",
            "http://127.0.0.1:5555/cb#",
            "http://evil.com@127.0.0.1:5555/cb",
            "http://@127.0.0.1:5555/cb",
            "http://127.0.0.1:5555/a/../cb",
            "http://127.0.0.1:5555/a/%2e%2e/cb",
            "http://127.0.0.1:5555/./cb",
            "http://127.0.0.1:5555/cb/",
            "http://127.0.0.1:5555/cb?x=1",
            "http://127.0.0.1:5555/CB",
            "http://127.0.0.2:5555/cb",
            "http://127.1:5555/cb",
            "http://localhost:5555/cb",
            "http://[::1]:5555/cb",
            "https://127.0.0.1:5555/cb",
            "HTTP://127.0.0.1:5555/cb",
            "http://127.0.0.1:/cb",
            "http://127.0.0.1:0/cb",
            "http://127.0.0.1:65536/cb",
            "http://127.0.0.1:+80/cb",
            "http://127.0.0.1:5555",
        ] {
            assert!(!uri.matches(other, Public), "{other}");
        }
        let v6 = registered("http://[::1]/cb?app=1", Public);
        assert!(v6.matches("http://[::1]:4000/cb?app=1", Public));
        assert!(!v6.matches("http://[::1]:4000/cb?app=2", Public));
        assert!(!v6.matches("http://[::1]x:4000/cb?app=1", Public));
    }

    #[test]
    fn every_other_uri_matches_exactly() {
        let web = registered("https://app.example.com/cb", Confidential);
        assert!(web.matches("https://app.example.com/cb", Confidential));
        for other in [
            "https://app.example.com/cb#frag",
            "https://evil.example@app.example.com/cb",
            "https://app.example.com/a/../cb",
            "https://app.example.com:443/cb",
            "https://APP.example.com/cb",
        ] {
            assert!(!web.matches(other, Confidential), "{other}");
        }
        // A confidential client's development URI: the port is part of the match.
        let dev = RedirectUri::parse_for_client("http://127.0.0.1:3000/cb", Confidential, true)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(dev.matches("http://127.0.0.1:3000/cb", Confidential));
        assert!(!dev.matches("http://127.0.0.1:3001/cb", Confidential));
        // So for `localhost`, which is no loopback literal (RFC 8252 §8.3), on any client.
        let local =
            RedirectUri::parse_for_client("http://localhost:3000/cb", Public, true).unwrap_or_else(|e| panic!("{e}"));
        assert!(local.matches("http://localhost:3000/cb", Public));
        assert!(!local.matches("http://localhost:3001/cb", Public));
        assert!(!local.matches("http://localhost:3000/cb#x", Public));
    }

    #[test]
    fn a_uri_stored_with_a_fragment_or_user_info_is_never_matched() {
        for raw in ["http://127.0.0.1:5555/cb#frag", "http://evil.com@127.0.0.1:5555/cb", "http://127.0.0.1/a/../cb"] {
            let stored = RedirectUri::from_stored(raw.to_owned());
            assert!(!stored.matches(raw, Public), "{raw}");
        }
    }

    #[test]
    fn the_development_switch_allows_plain_http_on_three_hosts_only() {
        for raw in [
            "http://localhost:3000/callback",
            "http://localhost/callback",
            "http://127.0.0.1:3000/callback",
            "http://[::1]:3000/callback",
        ] {
            for kind in [Confidential, Public] {
                assert!(RedirectUri::parse_for_client(raw, kind, true).is_ok(), "{raw} {kind}");
            }
            assert_eq!(
                RedirectUri::parse_for_client(raw, Confidential, false),
                Err(RedirectUriError::DevelopmentOnly(raw.into())),
                "{raw}: off by default"
            );
        }
        for raw in [
            "http://app.example.com/cb",
            "http://192.168.1.20:3000/cb",
            "http://127.0.0.2:3000/cb",
            "http://127.1:3000/cb",
            "http://LOCALHOST:3000/cb",
            "http://localhost.:3000/cb",
            "http://app.localhost:3000/cb",
            "http://[0:0:0:0:0:0:0:1]:3000/cb",
        ] {
            assert!(
                matches!(
                    RedirectUri::parse_for_client(raw, Confidential, true),
                    Err(RedirectUriError::InsecureScheme(_))
                ),
                "{raw}"
            );
        }
        assert!(matches!(
            RedirectUri::parse_for_client("http://localhost:3000/cb#x", Confidential, true),
            Err(RedirectUriError::Fragment(_))
        ));
    }
}
