use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::ParseError;

/// One scope token (RFC 6749 §3.3: `%x21 / %x23-5B / %x5D-7E`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ScopeName(String);

impl ScopeName {
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let ok = |c: char| c == '\x21' || ('\x23'..='\x5b').contains(&c) || ('\x5d'..='\x7e').contains(&c);
        if raw.is_empty() || raw.len() > 128 || !raw.chars().all(ok) {
            return Err(ParseError::new(
                "scope",
                format!("`{raw}` is not a scope token (printable ASCII without spaces, quotes or backslashes)"),
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The scopes defined by OpenID Connect Core §5.4 and §11 that every tenant has.
    pub const BUILT_IN: [&'static str; 6] = ["openid", "profile", "email", "phone", "address", "offline_access"];
}

impl fmt::Display for ScopeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for ScopeName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ScopeName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// A set of scopes, written space-separated on the wire (RFC 6749 §3.3).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scopes(BTreeSet<ScopeName>);

impl Scopes {
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        raw.split(' ').filter(|s| !s.is_empty()).map(ScopeName::parse).collect::<Result<_, _>>().map(Self)
    }

    pub fn contains(&self, scope: &str) -> bool {
        self.0.iter().any(|s| s.as_str() == scope)
    }

    pub fn iter(&self) -> impl Iterator<Item = &ScopeName> {
        self.0.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<ScopeName> for Scopes {
    fn from_iter<I: IntoIterator<Item = ScopeName>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let joined: Vec<&str> = self.0.iter().map(ScopeName::as_str).collect();
        f.write_str(&joined.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_space_separated_and_dedupe() {
        let s = Scopes::parse("openid  email openid").unwrap_or_default();
        assert_eq!(s.to_string(), "email openid");
        assert!(s.contains("email"));
        assert!(Scopes::parse("openid \"x\"").is_err());
        assert!(ScopeName::parse("a\\b").is_err());
    }
}
