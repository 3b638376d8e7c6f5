//! The request a forward-auth rule is matched against, normalised the way the rules are
//! written: the host lowercased without its port, the path percent-decoded with its dot
//! segments removed and repeated slashes collapsed, the query dropped.
//!
//! What an upstream could read differently from us is refused rather than guessed: an
//! encoded `/` or `\`, a NUL, a `;` path parameter, an encoding left after decoding
//! (`%252F`), or a `..` that climbs above the root.

use std::fmt;

/// Why a forwarded request cannot be matched; the edge answers 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestRefusal {
    #[error("the forwarded host `{0}` is not a host name")]
    Host(String),
    #[error("the forwarded path {0}")]
    Path(&'static str),
    #[error("the forwarded method is not an HTTP method")]
    Method,
}

/// The longest path considered; a longer one is refused.
pub const MAX_PATH: usize = 4096;

/// A host name or IP literal, lowercase, without port or trailing dot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalHost(String);

impl NormalHost {
    /// From a `Host` / `X-Forwarded-Host` value (`App.Example.com:8443`, `[::1]:80`).
    pub fn parse(raw: &str) -> Result<Self, RequestRefusal> {
        let bad = || RequestRefusal::Host(raw.chars().take(100).collect());
        let raw_trim = raw.trim();
        let host = if let Some(rest) = raw_trim.strip_prefix('[') {
            let (inside, after) = rest.split_once(']').ok_or_else(bad)?;
            if !(after.is_empty() || after.strip_prefix(':').is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()))) {
                return Err(bad());
            }
            inside.parse::<std::net::Ipv6Addr>().map_err(|_| bad())?;
            format!("[{}]", inside.to_ascii_lowercase())
        } else {
            let name = match raw_trim.rsplit_once(':') {
                Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
                Some(_) => return Err(bad()),
                None => raw_trim,
            };
            let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
            let ok = !name.is_empty()
                && name.len() <= 253
                && name.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                });
            if !ok {
                return Err(bad());
            }
            name
        };
        Ok(Self(host))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NormalHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A path as rules see it: decoded, absolute, without dot segments or empty segments; and
/// the same with ASCII letters lowercased, for the rules that match regardless of case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalPath(String, String);

impl NormalPath {
    /// From the path-and-query of a request (`/a/./b%20c?x=1`); the query is dropped.
    pub fn parse(raw: &str) -> Result<Self, RequestRefusal> {
        let path = raw.split('?').next().unwrap_or_default();
        let path = if path.is_empty() { "/" } else { path };
        if !path.starts_with('/') {
            return Err(RequestRefusal::Path("does not begin with `/`"));
        }
        if path.len() > MAX_PATH {
            return Err(RequestRefusal::Path("is too long"));
        }
        let lower = path.to_ascii_lowercase();
        if ["%2f", "%5c", "%00", "%23", "%3f"].iter().any(|e| lower.contains(e)) {
            return Err(RequestRefusal::Path("holds an encoded `/`, `\\`, `#`, `?` or NUL"));
        }
        if path.contains('#') {
            return Err(RequestRefusal::Path("holds a `#`"));
        }
        if path.contains(';') {
            return Err(RequestRefusal::Path("holds a `;` parameter"));
        }
        let decoded = percent_decode(path)?;
        if decoded.contains('\\') || decoded.chars().any(char::is_control) {
            return Err(RequestRefusal::Path("holds `\\` or a control character"));
        }
        if has_encoding(&decoded) {
            return Err(RequestRefusal::Path("is encoded twice"));
        }
        let normal = remove_dot_segments(&decoded)?;
        let folded = normal.to_ascii_lowercase();
        Ok(Self(normal, folded))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Lowercased (ASCII letters).
    pub fn folded(&self) -> &str {
        &self.1
    }
}

impl fmt::Display for NormalPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

fn percent_decode(path: &str) -> Result<String, RequestRefusal> {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let pair = bytes.get(i + 1).copied().and_then(hex).zip(bytes.get(i + 2).copied().and_then(hex));
            let (hi, lo) = pair.ok_or(RequestRefusal::Path("holds a broken `%` escape"))?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| RequestRefusal::Path("is not UTF-8 once decoded"))
}

/// Whether a decoded path still holds a `%XX` escape (it was encoded twice).
fn has_encoding(decoded: &str) -> bool {
    let b = decoded.as_bytes();
    b.windows(3).any(|w| w[0] == b'%' && hex(w[1]).is_some() && hex(w[2]).is_some())
}

/// RFC 3986 §5.2.4 on a decoded absolute path, collapsing empty segments too; a `..` that
/// would climb above the root is refused.
fn remove_dot_segments(path: &str) -> Result<String, RequestRefusal> {
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    let mut trailing_slash = false;
    for (i, seg) in segments.iter().enumerate() {
        match *seg {
            "" | "." => trailing_slash = i == last,
            ".." => {
                if out.pop().is_none() {
                    return Err(RequestRefusal::Path("climbs above the root with `..`"));
                }
                trailing_slash = i == last;
            }
            s => {
                out.push(s);
                trailing_slash = false;
            }
        }
    }
    let mut normal = format!("/{}", out.join("/"));
    if trailing_slash && !out.is_empty() {
        normal.push('/');
    }
    Ok(normal)
}

/// An HTTP method token as forwarded (`GET`, `PROPFIND`). Methods are case-sensitive
/// (RFC 9110 §9.1): `get` is not `GET` to the upstream, so it is refused, not uppercased.
pub fn forwarded_method(raw: &str) -> Result<String, RequestRefusal> {
    let ok = !raw.is_empty() && raw.len() <= 20 && raw.bytes().all(|b| b.is_ascii_uppercase());
    if ok { Ok(raw.to_owned()) } else { Err(RequestRefusal::Method) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(raw: &str) -> Result<String, RequestRefusal> {
        NormalPath::parse(raw).map(|p| p.0)
    }

    #[test]
    fn paths_are_decoded_and_dot_segments_removed_and_the_query_dropped() {
        assert_eq!(path("/a/b?x=../../admin"), Ok("/a/b".into()));
        assert_eq!(path(""), Ok("/".into()));
        assert_eq!(path("/public/../admin"), Ok("/admin".into()));
        assert_eq!(path("/public/%2e%2e/admin"), Ok("/admin".into()));
        assert_eq!(path("/public/%2E%2E/admin/"), Ok("/admin/".into()));
        assert_eq!(path("//admin///x"), Ok("/admin/x".into()));
        assert_eq!(path("/a/./b/."), Ok("/a/b/".into()));
        assert_eq!(path("/a/b/.."), Ok("/a/".into()));
        assert_eq!(path("/caf%C3%A9"), Ok("/café".into()));
        assert_eq!(path("/"), Ok("/".into()));
    }

    #[test]
    fn ambiguous_paths_are_refused() {
        for raw in [
            "/admin%2F",
            "/admin%2fx",
            "/a%5Cb",
            "/a%00",
            "/admin;jsessionid=1",
            "/..",
            "/a/../../b",
            "/%2e%2e/x",
            "/a%252Fb",
            "/a%zz",
            "/a%",
            "/a%C3",
            "relative",
            "/a\\b",
            "/public/#/../admin",
            "/admin%3F",
            "/admin%23x",
        ] {
            assert!(path(raw).is_err(), "{raw} must be refused");
        }
        assert!(path(&format!("/{}", "a".repeat(MAX_PATH))).is_err());
    }

    #[test]
    fn hosts_are_lowercased_without_port() {
        let host = |raw| NormalHost::parse(raw).map(|h| h.0);
        assert_eq!(host("App.Example.COM:8443"), Ok("app.example.com".into()));
        assert_eq!(host("app.example.com."), Ok("app.example.com".into()));
        assert_eq!(host("[::1]:80"), Ok("[::1]".into()));
        assert_eq!(host("10.0.0.1"), Ok("10.0.0.1".into()));
        for bad in ["", "a b", "evil.com/x", "a..b", "x:y", "[::1", "app.example.com:80:80", "a@b"] {
            assert!(host(bad).is_err(), "{bad} must be refused");
        }
    }

    #[test]
    fn methods_are_tokens() {
        assert_eq!(forwarded_method("GET"), Ok("GET".into()));
        assert!(forwarded_method("get").is_err(), "methods are case-sensitive");
        assert_eq!(forwarded_method("PROPFIND"), Ok("PROPFIND".into()));
        assert!(forwarded_method("").is_err());
        assert!(forwarded_method("GET /").is_err());
    }
}
