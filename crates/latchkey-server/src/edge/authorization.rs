//! The `Authorization` request header, parsed in one place for every endpoint that takes
//! it: `Bearer` at UserInfo and `/metrics` (RFC 6750 §2.1), `Basic` for client
//! authentication (RFC 6749 §2.3.1, RFC 7617).
//!
//! The scheme is matched case-insensitively (RFC 9110 §11.1: "bearer", "BEARER" and
//! "Bearer" are one scheme) and is separated from its credentials by one or more spaces.

use axum::http::{HeaderMap, header};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthorizationError {
    #[error("send one Authorization header")]
    Repeated,
    #[error("the Authorization header is malformed")]
    Malformed,
    /// The header names another scheme than the endpoint takes.
    #[error("the Authorization header uses another scheme")]
    OtherScheme,
    #[error("malformed Basic credentials")]
    MalformedBasic,
}

/// Client credentials from HTTP Basic, form-decoded (RFC 6749 §2.3.1).
#[derive(Clone, PartialEq, Eq)]
pub struct BasicCredentials {
    pub id: String,
    pub secret: String,
}

impl std::fmt::Debug for BasicCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicCredentials").field("id", &self.id).field("secret", &"<redacted>").finish()
    }
}

/// The scheme and credentials of the request's one `Authorization` header, if it has one.
fn scheme_and_credentials(headers: &HeaderMap) -> Result<Option<(&str, &str)>, AuthorizationError> {
    let mut all = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = all.next() else { return Ok(None) };
    if all.next().is_some() {
        return Err(AuthorizationError::Repeated);
    }
    let value = value.to_str().map_err(|_| AuthorizationError::Malformed)?;
    // RFC 9110 §11.4: credentials = auth-scheme [ 1*SP ( token68 / #auth-param ) ].
    let (scheme, credentials) = value.trim().split_once(' ').ok_or(AuthorizationError::Malformed)?;
    let credentials = credentials.trim_start_matches(' ');
    if scheme.is_empty() || credentials.is_empty() {
        return Err(AuthorizationError::Malformed);
    }
    Ok(Some((scheme, credentials)))
}

/// RFC 7235 §2.1 token68: what a Bearer token (RFC 6750 §2.1 b64token) and Basic
/// credentials are made of.
fn is_token68(s: &str) -> bool {
    let body = s.trim_end_matches('=');
    !body.is_empty()
        && body.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/'))
}

/// The bearer token of the request: `Ok(None)` without an `Authorization` header,
/// `Err(OtherScheme)` when it names another scheme.
pub fn bearer(headers: &HeaderMap) -> Result<Option<&str>, AuthorizationError> {
    let Some((scheme, token)) = scheme_and_credentials(headers)? else { return Ok(None) };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthorizationError::OtherScheme);
    }
    if !is_token68(token) {
        return Err(AuthorizationError::Malformed);
    }
    Ok(Some(token))
}

/// HTTP Basic client credentials: `Ok(None)` without an `Authorization` header,
/// `Err(OtherScheme)` when it names another scheme. RFC 6749 §2.3.1: the id and secret are
/// form-urlencoded before base64, so they are decoded here.
pub fn basic(headers: &HeaderMap) -> Result<Option<BasicCredentials>, AuthorizationError> {
    let Some((scheme, encoded)) = scheme_and_credentials(headers)? else { return Ok(None) };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(AuthorizationError::OtherScheme);
    }
    if !is_token68(encoded) {
        return Err(AuthorizationError::MalformedBasic);
    }
    let decoded = STANDARD
        .decode(encoded)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or(AuthorizationError::MalformedBasic)?;
    let (id, secret) = decoded.split_once(':').ok_or(AuthorizationError::MalformedBasic)?;
    let unescape = |s: &str| {
        url::form_urlencoded::parse(format!("v={s}").as_bytes()).next().map(|(_, v)| v.into_owned()).unwrap_or_default()
    };
    Ok(Some(BasicCredentials { id: unescape(id), secret: unescape(secret) }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::AUTHORIZATION, v.parse().unwrap_or_else(|_| panic!("header {v}")));
        }
        h
    }

    #[test]
    fn the_bearer_scheme_is_matched_whatever_its_case() {
        for v in ["Bearer abc.def-_~+/==", "bearer abc.def-_~+/==", "BEARER abc.def-_~+/==", "bEaReR   abc.def-_~+/=="]
        {
            assert_eq!(bearer(&with(&[v])), Ok(Some("abc.def-_~+/==")), "{v}");
        }
        assert_eq!(bearer(&HeaderMap::new()), Ok(None));
    }

    #[test]
    fn a_malformed_or_foreign_bearer_header_is_refused() {
        assert_eq!(bearer(&with(&["Basic YTpi"])), Err(AuthorizationError::OtherScheme));
        assert_eq!(bearer(&with(&["Bearerabc"])), Err(AuthorizationError::Malformed));
        assert_eq!(bearer(&with(&["Bearer"])), Err(AuthorizationError::Malformed));
        assert_eq!(bearer(&with(&["Bearer a b"])), Err(AuthorizationError::Malformed));
        assert_eq!(bearer(&with(&["Bearer =="])), Err(AuthorizationError::Malformed));
        assert_eq!(bearer(&with(&["Bearer a", "Bearer b"])), Err(AuthorizationError::Repeated));
    }

    #[test]
    fn basic_credentials_are_form_decoded_whatever_the_schemes_case() {
        let encoded = STANDARD.encode("my%20app:p%3Ass+word");
        for scheme in ["Basic", "basic", "BASIC"] {
            let creds = basic(&with(&[&format!("{scheme} {encoded}")]));
            assert_eq!(creds, Ok(Some(BasicCredentials { id: "my app".into(), secret: "p:ss word".into() })));
        }
        assert_eq!(basic(&with(&["Bearer x"])), Err(AuthorizationError::OtherScheme));
        assert_eq!(basic(&with(&["Basic !!!"])), Err(AuthorizationError::MalformedBasic));
        let no_colon = STANDARD.encode("nocolon");
        assert_eq!(basic(&with(&[&format!("Basic {no_colon}")])), Err(AuthorizationError::MalformedBasic));
    }

    #[test]
    fn basic_credentials_never_show_the_secret() {
        let creds = BasicCredentials { id: "app".into(), secret: "hunter2".into() };
        assert!(!format!("{creds:?}").contains("hunter2"));
    }
}
