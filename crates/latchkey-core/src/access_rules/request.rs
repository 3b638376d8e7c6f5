//! The original request a reverse proxy asks about, read from its forwarded headers
//! (`X-Forwarded-Method`, `-Proto`, `-Host`, `-Uri`, or nginx's `X-Original-URL`). The raw
//! parts are kept to send the browser back to exactly where it was; rules see the
//! normalised host and path.

use super::path::{NormalHost, NormalPath, RequestRefusal, forwarded_method};

/// The longest request-target considered.
pub const MAX_URI: usize = 8192;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardedRequest {
    /// Uppercase.
    pub method: String,
    /// `https`: the browser reached the proxy over TLS.
    pub secure: bool,
    /// The host as sent (with its port, if any), checked.
    pub authority: String,
    pub host: NormalHost,
    pub path: NormalPath,
    /// The request-target as sent (path and query), checked to be printable ASCII.
    pub uri: String,
}

impl ForwardedRequest {
    /// From `X-Forwarded-Method`, `X-Forwarded-Proto`, `X-Forwarded-Host`, `X-Forwarded-Uri`.
    pub fn from_parts(method: &str, proto: &str, host: &str, uri: &str) -> Result<Self, RequestRefusal> {
        let secure = match proto.trim().to_ascii_lowercase().as_str() {
            "https" => true,
            "http" => false,
            _ => return Err(RequestRefusal::Path("scheme is neither http nor https")),
        };
        let authority = host.trim();
        let uri = if uri.is_empty() { "/" } else { uri };
        if uri.len() > MAX_URI || !uri.starts_with('/') || !uri.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(RequestRefusal::Path("is not an absolute request path of printable characters"));
        }
        Ok(Self {
            method: forwarded_method(method.trim())?,
            secure,
            host: NormalHost::parse(authority)?,
            authority: authority.to_owned(),
            path: NormalPath::parse(uri)?,
            uri: uri.to_owned(),
        })
    }

    /// From nginx's `X-Original-URL` (`https://app.example.com/a?b`) and `X-Original-Method`.
    /// Read by hand, not by a URL parser: a parser would resolve dot segments and re-encode
    /// the path before the rules saw what the upstream will see.
    pub fn from_original_url(url: &str, method: &str) -> Result<Self, RequestRefusal> {
        let (scheme, rest) = url.split_once("://").ok_or(RequestRefusal::Path("is not in an absolute URL"))?;
        let cut = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, target) = rest.split_at(cut);
        let target = if target.starts_with('?') { format!("/{target}") } else { target.to_owned() };
        Self::from_parts(method, scheme, authority, &target)
    }

    /// The URL the browser asked for, to return to after sign-in.
    pub fn url(&self) -> String {
        format!("{}://{}{}", if self.secure { "https" } else { "http" }, self.authority, self.uri)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_headers_and_original_urls_read_alike() {
        let a = ForwardedRequest::from_parts("GET", "https", "App.Example.com:8443", "/a/../b?x=1");
        let b = ForwardedRequest::from_original_url("https://App.Example.com:8443/a/../b?x=1", "GET");
        assert_eq!(a, b);
        let a = a.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.host.as_str(), "app.example.com");
        assert_eq!(a.path.as_str(), "/b");
        assert_eq!(a.method, "GET");
        assert_eq!(a.url(), "https://App.Example.com:8443/a/../b?x=1");
        let bare = ForwardedRequest::from_original_url("http://app.example.com?q", "GET");
        assert_eq!(bare.map(|r| r.url()), Ok("http://app.example.com/?q".into()));
    }

    #[test]
    fn malformed_forwarded_requests_are_refused() {
        for (method, proto, host, uri) in [
            ("GET", "ftp", "a.example", "/"),
            ("GET", "https", "a.example/evil", "/"),
            ("GET", "https", "user@a.example", "/"),
            ("GET", "https", "a.example", "relative"),
            ("GET", "https", "a.example", "/a b"),
            ("GET", "https", "a.example", "/admin%2F"),
            ("G T", "https", "a.example", "/"),
        ] {
            assert!(ForwardedRequest::from_parts(method, proto, host, uri).is_err(), "{method} {proto} {host} {uri}");
        }
        assert!(ForwardedRequest::from_original_url("a.example/x", "GET").is_err());
    }
}
