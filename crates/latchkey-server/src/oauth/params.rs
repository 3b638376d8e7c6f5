//! Request parameters, parsed strictly: a parameter sent twice is an error (RFC 6749 §3.1),
//! and protocol POSTs must be `application/x-www-form-urlencoded`.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::http::{HeaderMap, header};

/// Parameters by name; each name appears once.
#[derive(Debug, Clone, Default)]
pub struct Params(HashMap<String, String>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamsError {
    #[error("parameter `{0}` was sent more than once")]
    Duplicate(String),
    #[error("the request body must be application/x-www-form-urlencoded")]
    NotForm,
}

impl Params {
    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Result<Self, ParamsError> {
        let mut map = HashMap::new();
        for (k, v) in pairs {
            // RFC 6749 §3.1: parameters sent without a value are treated as omitted.
            if v.is_empty() {
                continue;
            }
            if map.insert(k.clone(), v).is_some() {
                return Err(ParamsError::Duplicate(k));
            }
        }
        Ok(Self(map))
    }

    pub fn from_query(query: Option<&str>) -> Result<Self, ParamsError> {
        Self::from_pairs(url::form_urlencoded::parse(query.unwrap_or("").as_bytes()).into_owned())
    }

    /// A form body; anything but `application/x-www-form-urlencoded` is refused.
    pub fn from_form(headers: &HeaderMap, body: &Bytes) -> Result<Self, ParamsError> {
        let is_form = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"));
        if !is_form {
            return Err(ParamsError::NotForm);
        }
        Self::from_pairs(url::form_urlencoded::parse(body).into_owned())
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.0.iter()
    }

    /// The first parameter of `limits` whose value is longer than its limit (bytes).
    pub fn first_oversized(&self, limits: &[(&'static str, usize)]) -> Option<(&'static str, usize)> {
        limits.iter().copied().find(|(name, max)| self.get(name).is_some_and(|v| v.len() > *max))
    }
}

/// The longest value (in bytes, after URL decoding) of each authorization request parameter
/// that is kept while the request waits for sign-in and consent, or read before it is
/// parked. An unauthenticated request must not make the database keep kilobytes at will
/// (each parked request is kept for `sessions.authorization_request_lifetime`). The other
/// kept values are bounded already: `client_id` by its format (128 bytes), `redirect_uri`
/// by the registered ones it must equal, `code_challenge` by its 43 characters (RFC 7636
/// §4.2, S256), `response_mode` by its two values. docs/configuration.md lists these.
pub const AUTHORIZATION_PARAMETER_LIMITS: &[(&str, usize)] = &[
    ("state", 4_096),
    ("nonce", 512),
    ("scope", 2_048),
    ("prompt", 128),
    ("max_age", 20),
    ("login_hint", 512),
    ("id_token_hint", 8_192),
    ("acr_values", 512),
    ("ui_locales", 256),
    ("claims", 4_096),
    ("resource", 2_048),
    ("code_challenge", 128),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_refused_and_empty_values_omitted() {
        assert_eq!(Params::from_query(Some("a=1&a=2")).err(), Some(ParamsError::Duplicate("a".into())));
        let p = Params::from_query(Some("a=1&b=&c=x%20y")).unwrap_or_default();
        assert_eq!(p.get("a"), Some("1"));
        assert_eq!(p.get("b"), None);
        assert_eq!(p.get("c"), Some("x y"));
    }

    #[test]
    fn oversized_values_are_named_with_their_limit() {
        let p = Params::from_query(Some("state=abcd&nonce=ab")).unwrap_or_default();
        assert_eq!(p.first_oversized(&[("nonce", 2), ("state", 4)]), None);
        assert_eq!(p.first_oversized(&[("nonce", 2), ("state", 3)]), Some(("state", 3)));
        // Bytes, not characters: "é" is two.
        let p = Params::from_query(Some("state=%C3%A9")).unwrap_or_default();
        assert_eq!(p.first_oversized(&[("state", 1)]), Some(("state", 1)));
    }

    #[test]
    fn only_form_bodies_are_accepted() {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, "application/json".parse().unwrap_or_else(|_| panic!()));
        assert_eq!(Params::from_form(&h, &Bytes::from_static(b"a=1")).err(), Some(ParamsError::NotForm));
        h.insert(
            header::CONTENT_TYPE,
            "application/x-www-form-urlencoded; charset=UTF-8".parse().unwrap_or_else(|_| panic!()),
        );
        assert!(Params::from_form(&h, &Bytes::from_static(b"a=1")).is_ok());
    }
}
