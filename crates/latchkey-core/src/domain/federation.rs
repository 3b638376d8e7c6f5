//! Names for upstream identity providers and the accounts people have there.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::ParseError;

/// A provider's permanent id (`[federation.providers.ID]`): 1-32 lowercase letters, digits
/// and `-`. Stored links name it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ProviderId(String);

impl ProviderId {
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let ok = (1..=32).contains(&raw.len())
            && raw.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !ok {
            return Err(ParseError::new("provider id", "must be 1-32 lowercase letters, digits and '-'"));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ProviderId {
    type Error = ParseError;
    fn try_from(raw: String) -> Result<Self, ParseError> {
        Self::parse(&raw)
    }
}

impl From<ProviderId> for String {
    fn from(id: ProviderId) -> String {
        id.0
    }
}

impl fmt::Display for ProviderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The stable key of an account at a provider: the OIDC `sub`, GitHub's numeric `id`,
/// Entra ID's `tid` and `oid` — never a name or an address, which can change hands. At most
/// 255 bytes of visible ASCII (OIDC Core §2 limits `sub` to 255 ASCII characters).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UpstreamSubject(String);

impl UpstreamSubject {
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        if raw.is_empty() || raw.len() > 255 || !raw.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ParseError::new("upstream subject", "must be 1-255 visible ASCII characters"));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for UpstreamSubject {
    type Error = ParseError;
    fn try_from(raw: String) -> Result<Self, ParseError> {
        Self::parse(&raw)
    }
}

impl From<UpstreamSubject> for String {
    fn from(s: UpstreamSubject) -> String {
        s.0
    }
}

impl fmt::Display for UpstreamSubject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_subjects_have_one_shape() {
        assert!(ProviderId::parse("google").is_ok());
        assert!(ProviderId::parse("corp-sso2").is_ok());
        for bad in ["", "Google", "a b", "x/y", &"a".repeat(33)] {
            assert!(ProviderId::parse(bad).is_err(), "{bad}");
        }
        assert!(UpstreamSubject::parse("12345").is_ok());
        assert!(UpstreamSubject::parse("tid:oid").is_ok());
        for bad in ["", "a b", "x\n", &"a".repeat(256)] {
            assert!(UpstreamSubject::parse(bad).is_err(), "{bad:?}");
        }
    }
}
