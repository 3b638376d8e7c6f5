//! API keys as people hold them: `lk_` + a base62 key id + `_` + a base62 secret of 256
//! bits + a base62 CRC-32 of everything before it (as GitHub's tokens carry one). Secret
//! scanners find them by the prefix and shape; the checksum refuses a mistyped or
//! truncated key before any lookup.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::ParseError;
use crate::crypto::random::{BASE62, base62};

pub const API_KEY_PREFIX: &str = "lk_";
const ID_LEN: usize = 12;
const SECRET_LEN: usize = 43;
const CHECKSUM_LEN: usize = 6;
/// The whole key: prefix, id, `_`, secret, checksum.
pub const API_KEY_LEN: usize = API_KEY_PREFIX.len() + ID_LEN + 1 + SECRET_LEN + CHECKSUM_LEN;

/// The public part of a key: shown in lists and logs, and what the key is looked up by.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ApiKeyId(String);

fn is_base62(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_alphanumeric())
}

impl ApiKeyId {
    /// A key id as written (`lk_` and 12 base62 characters, or the 12 characters alone).
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let bare = raw.strip_prefix(API_KEY_PREFIX).unwrap_or(raw);
        if bare.len() != ID_LEN || !is_base62(bare) {
            // Never repeated: someone may have pasted the whole key.
            return Err(ParseError::new("API key id", "write `lk_` and the 12 letters or digits `api-key list` shows"));
        }
        Ok(Self(bare.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// How the key is shown: `lk_` and the id.
    pub fn prefix(&self) -> String {
        format!("{API_KEY_PREFIX}{}", self.0)
    }
}

impl fmt::Display for ApiKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{API_KEY_PREFIX}{}", self.0)
    }
}

impl Serialize for ApiKeyId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ApiKeyId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// A key as presented: well formed and its checksum right, not yet known to be valid.
/// `Debug` never shows the secret.
pub struct PresentedApiKey {
    pub id: ApiKeyId,
    secret: String,
}

impl fmt::Debug for PresentedApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PresentedApiKey").field("id", &self.id).finish_non_exhaustive()
    }
}

fn checksum(body: &str) -> String {
    let mut n = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC).checksum(body.as_bytes());
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl PresentedApiKey {
    /// Whether `raw` looks like a Latchkey API key at all (the prefix), to choose how to
    /// read a bearer credential.
    pub fn looks_like(raw: &str) -> bool {
        raw.starts_with(API_KEY_PREFIX)
    }

    /// Checks the shape and the checksum; the message never repeats the key.
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let bad = |why: &str| Err(ParseError::new("API key", why.to_owned()));
        let Some(rest) = raw.strip_prefix(API_KEY_PREFIX) else { return bad("it does not begin with `lk_`") };
        if raw.len() != API_KEY_LEN {
            return bad("it is not as long as a Latchkey API key: was it cut short or run together with something?");
        }
        // Checked before any slicing, which must fall on character boundaries.
        if !rest.is_ascii() {
            return bad("it holds characters an API key never has");
        }
        let (id, rest) = rest.split_at(ID_LEN);
        let Some(tail) = rest.strip_prefix('_') else { return bad("it is not `lk_`, an id, `_` and a secret") };
        if !is_base62(id) || !is_base62(tail) {
            return bad("it holds characters an API key never has");
        }
        let (secret, sum) = tail.split_at(SECRET_LEN);
        let body = &raw[..raw.len() - CHECKSUM_LEN];
        if checksum(body) != sum {
            return bad("its checksum does not match: it was mistyped or changed");
        }
        Ok(Self { id: ApiKeyId(id.to_owned()), secret: secret.to_owned() })
    }

    /// The secret part, to hash and compare.
    pub fn secret(&self) -> &str {
        &self.secret
    }
}

/// A new key: its id, its secret (to hash and store) and the whole key (to show once).
pub struct NewApiKeySecret {
    pub id: ApiKeyId,
    pub secret: String,
    pub full: String,
}

impl NewApiKeySecret {
    pub fn generate() -> Self {
        Self::with_id(ApiKeyId(base62(ID_LEN)))
    }

    /// A new secret for an existing key (rotation keeps the id).
    pub fn with_id(id: ApiKeyId) -> Self {
        let secret = base62(SECRET_LEN);
        let body = format!("{API_KEY_PREFIX}{}_{secret}", id.0);
        let full = format!("{body}{}", checksum(&body));
        Self { id, secret, full }
    }
}

impl fmt::Debug for NewApiKeySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewApiKeySecret").field("id", &self.id).finish_non_exhaustive()
    }
}

/// A path a key may be used for: exact (`/api/reports`), or everything below a prefix
/// (`/api/reports/*` matches `/api/reports` and `/api/reports/2026/q1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutePattern(String);

impl RoutePattern {
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let bad = |why: &str| Err(ParseError::new("route", format!("`{raw}` {why}")));
        if !raw.starts_with('/') || raw.len() > 256 {
            return bad("must be a path that begins with `/` (at most 256 characters)");
        }
        let body = raw.strip_suffix("/*").unwrap_or(raw);
        if body.contains('*') {
            return bad("may hold `*` only as its last segment (`/api/*`)");
        }
        if body.split('/').any(|seg| seg == "." || seg == "..") || body.contains("//") {
            return bad("must not hold `.` or `..` segments or `//`");
        }
        if !body.bytes().all(|b| b.is_ascii_graphic() && !matches!(b, b'?' | b'#' | b'%' | b';' | b'\\')) {
            return bad("may hold only printable characters, without `?`, `#`, `%`, `;` or `\\`");
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether a normalised path (decoded, dot segments removed) falls under the pattern.
    pub fn matches(&self, path: &str) -> bool {
        match self.0.strip_suffix("/*") {
            Some(base) => {
                path == base || path.strip_prefix(base).is_some_and(|rest| rest.starts_with('/')) || base.is_empty()
            }
            None => path == self.0,
        }
    }
}

impl Serialize for RoutePattern {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for RoutePattern {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// The HTTP methods a key may be used with.
pub const READ_ONLY_METHODS: [&str; 3] = ["GET", "HEAD", "OPTIONS"];

/// An HTTP method name, uppercase (`GET`, `POST`, …).
pub fn parse_method(raw: &str) -> Result<String, ParseError> {
    let up = raw.to_ascii_uppercase();
    match up.as_str() {
        "GET" | "HEAD" | "OPTIONS" | "POST" | "PUT" | "PATCH" | "DELETE" => Ok(up),
        _ => Err(ParseError::new("method", format!("`{raw}` is not GET, HEAD, OPTIONS, POST, PUT, PATCH or DELETE"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_key_parses_back_to_its_id_and_secret() {
        let new = NewApiKeySecret::generate();
        assert_eq!(new.full.len(), API_KEY_LEN);
        assert!(new.full.starts_with("lk_"));
        let parsed = PresentedApiKey::parse(&new.full).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(parsed.id, new.id);
        assert_eq!(parsed.secret(), new.secret);
        assert_eq!(new.secret.len(), 43);
        assert!(!format!("{parsed:?}{new:?}").contains(&new.secret), "Debug hides the secret");
    }

    #[test]
    fn a_typo_a_cut_or_a_change_is_refused_by_the_checksum_before_any_lookup() {
        let full = NewApiKeySecret::generate().full;
        let mut typo = full.clone().into_bytes();
        let i = 20;
        typo[i] = if typo[i] == b'a' { b'b' } else { b'a' };
        let typo = String::from_utf8_lossy(&typo).into_owned();
        let e = PresentedApiKey::parse(&typo).err().map(|e| e.reason).unwrap_or_default();
        assert!(e.contains("checksum"), "{e}");
        assert!(!e.contains(&full[16..40]), "the message never repeats the key");
        for bad in [&full[..full.len() - 1], "lk_short", "gh_abc", &format!("{full}x"), &full.replace('_', "-")] {
            assert!(PresentedApiKey::parse(bad).is_err(), "{bad}");
        }
        // Multi-byte characters of the right total length are refused, never sliced apart.
        let odd = format!("lk_aaaaaaaaaa\u{e9}{}", "a".repeat(API_KEY_LEN - 15));
        assert_eq!(odd.len(), API_KEY_LEN);
        assert!(PresentedApiKey::parse(&odd).is_err());
    }

    #[test]
    fn key_ids_parse_with_or_without_the_prefix() {
        let id = NewApiKeySecret::generate().id;
        assert_eq!(ApiKeyId::parse(&id.to_string()).ok(), Some(id.clone()));
        assert_eq!(ApiKeyId::parse(id.as_str()).ok(), Some(id));
        assert!(ApiKeyId::parse("lk_short").is_err());
        let pasted = NewApiKeySecret::generate().full;
        let e = ApiKeyId::parse(&pasted).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(!e.contains(&pasted[16..]), "a pasted key is not echoed: {e}");
    }

    #[test]
    fn routes_match_exactly_or_below_a_prefix() {
        let exact = RoutePattern::parse("/api/reports").unwrap_or_else(|e| panic!("{e}"));
        assert!(exact.matches("/api/reports") && !exact.matches("/api/reports/1"));
        let below = RoutePattern::parse("/api/reports/*").unwrap_or_else(|e| panic!("{e}"));
        assert!(below.matches("/api/reports") && below.matches("/api/reports/2026/q1"));
        assert!(!below.matches("/api/reportsX") && !below.matches("/api"));
        let all = RoutePattern::parse("/*").unwrap_or_else(|e| panic!("{e}"));
        assert!(all.matches("/anything/at/all"));
        for bad in ["api", "/a/*/b", "/a/../b", "/a//b", "/a?x=1", "/a%2F", "/a;b", "/a\\b"] {
            assert!(RoutePattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn methods_are_known_and_uppercase() {
        assert_eq!(parse_method("get").ok().as_deref(), Some("GET"));
        assert!(parse_method("TRACE").is_err());
    }
}
