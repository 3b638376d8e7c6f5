use std::fmt;

use serde::{Deserialize, Serialize};

use super::ParseError;
use crate::crypto::random;

macro_rules! string_newtype {
    ($name:ident) => {
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                Self::parse(&raw).map_err(serde::de::Error::custom)
            }
        }
    };
}

fn is_slug_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'
}

/// A tenant's short name: lowercase letters, digits and `-`, 1–63 characters (it appears
/// in issuer URLs as `/t/{tenant}`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(String);
string_newtype!(TenantId);

impl TenantId {
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        if raw.is_empty() || raw.len() > 63 || !raw.chars().all(is_slug_char) || raw.starts_with('-') {
            return Err(ParseError::new(
                "tenant id",
                "use 1-63 lowercase letters, digits or '-', not starting with '-'",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The tenant every zero-config server has.
    pub fn default_tenant() -> Self {
        Self("default".to_owned())
    }
}

/// The opaque, never-reused subject identifier (`sub`) of a user: 128 random bits, hex, for
/// users made here; users imported from another system keep theirs (`user import`), so any
/// 1–255 characters from A-Z a-z 0-9 and `- _ . ~ | : +` (a UUID, `auth0|…`) parse too
/// (OIDC Core §2: at most 255 ASCII characters). It carries no personal data and never
/// changes when a username or email does.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubjectId(String);
string_newtype!(SubjectId);

impl SubjectId {
    pub fn generate() -> Self {
        Self(hex::encode(random::bytes::<16>()))
    }

    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~' | '|' | ':' | '+');
        if raw.is_empty() || raw.len() > 255 || !raw.chars().all(ok) {
            return Err(ParseError::new("subject id", "use 1-255 characters from A-Z a-z 0-9 - _ . ~ | : +"));
        }
        Ok(Self(raw.to_owned()))
    }
}

/// An OAuth client identifier: 1–128 printable ASCII characters without spaces, quotes,
/// or characters that would need escaping in a URL query (RFC 6749 §A.1 allows VSCHAR;
/// Latchkey narrows it so ids are safe everywhere they are shown).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(String);
string_newtype!(ClientId);

impl ClientId {
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~');
        if raw.is_empty() || raw.len() > 128 || !raw.chars().all(ok) {
            return Err(ParseError::new("client id", "use 1-128 characters from A-Z a-z 0-9 - _ . ~"));
        }
        Ok(Self(raw.to_owned()))
    }

    /// A fresh random client id (32 hex characters, 128 bits): it is typed into commands
    /// (`latchkey client show <id>`), so it never begins with `-`.
    pub fn generate() -> Self {
        Self(random::identifier::<16>())
    }
}

/// A username: a public identifier, compared case-insensitively, stored lowercase.
/// 1–64 characters: letters, digits, `.`, `_`, `-`, `@`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Username(String);
string_newtype!(Username);

impl Username {
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let lower = raw.trim().to_lowercase();
        let ok = |c: char| c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '@');
        if lower.is_empty() || lower.chars().count() > 64 || !lower.chars().all(ok) {
            return Err(ParseError::new("username", "use 1-64 letters, digits or . _ - @"));
        }
        Ok(Self(lower))
    }
}

/// An email address. Checked for shape only (one `@`, a dotless-or-dotted domain, no
/// spaces); whether it is reachable is proven by a verification link, not by parsing.
/// The domain is lowercased; the local part is kept as given.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Email(String);
string_newtype!(Email);

/// [`Email::normalized`] of any stored text (addresses written before they were parsed
/// as they are now are compared the same way).
pub fn normalize_email(address: &str) -> String {
    use unicode_normalization::UnicodeNormalization as _;
    let composed: String = address.trim().nfc().collect();
    composed.to_lowercase().nfc().collect()
}

impl Email {
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let raw = raw.trim();
        let err = || ParseError::new("email", "expected an address like name@example.com");
        let (local, domain) = raw.rsplit_once('@').ok_or_else(err)?;
        let domain_ok = !domain.is_empty()
            && domain.len() <= 253
            && domain.split('.').all(|l| !l.is_empty() && l.chars().all(|c| c.is_alphanumeric() || c == '-'));
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.contains('@')
            && local.chars().all(|c| !c.is_whitespace() && !c.is_control() && c != '<' && c != '>');
        if !domain_ok || !local_ok {
            return Err(err());
        }
        Ok(Self(format!("{local}@{}", domain.to_lowercase())))
    }

    /// The form two addresses are compared and searched in: Unicode NFC, then the whole
    /// address lowercased (local part included: `Ada@x.org` and `ada@x.org` are one
    /// address here, as almost every mail system treats them), then NFC again (lowercasing
    /// can undo it).
    pub fn normalized(&self) -> String {
        normalize_email(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_normalize_to_nfc_lowercase() {
        let composed = Email::parse("Ad\u{00C9}@Example.ORG").map(|e| e.normalized());
        let decomposed = Email::parse("ADE\u{0301}@example.org").map(|e| e.normalized());
        assert_eq!(composed, Ok("ad\u{00e9}@example.org".into()));
        assert_eq!(decomposed, composed);
        assert_eq!(Email::parse("Ada@X.org").map(|e| e.as_str().to_owned()), Ok("Ada@x.org".into()), "kept as typed");
    }

    #[test]
    fn usernames_are_case_insensitive_and_restricted() {
        assert_eq!(Username::parse(" Alice ").map(|u| u.0), Ok("alice".into()));
        assert!(Username::parse("").is_err());
        assert!(Username::parse("a b").is_err());
        assert!(Username::parse(&"x".repeat(65)).is_err());
    }

    #[test]
    fn emails_need_a_local_part_and_a_domain() {
        assert_eq!(Email::parse("Bob@Example.COM").map(|e| e.0), Ok("Bob@example.com".into()));
        for bad in ["bob", "@example.com", "bob@", "bob@exa mple.com", "bob@.com", "a b@x.com"] {
            assert!(Email::parse(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn generated_ids_parse_back() {
        let sub = SubjectId::generate();
        assert_eq!(SubjectId::parse(sub.as_str()), Ok(sub.clone()));
        assert_ne!(sub, SubjectId::generate());
        // Imported users keep the subject ids their apps know.
        for kept in ["550e8400-e29b-41d4-a716-446655440000", "auth0|5f7c8ec7c33c6c004bbafe82", "12345"] {
            assert!(SubjectId::parse(kept).is_ok(), "{kept}");
        }
        for bad in ["", "a b", "x/y", "é", &"a".repeat(256)] {
            assert!(SubjectId::parse(bad).is_err(), "{bad}");
        }
        let client = ClientId::generate();
        assert_eq!(ClientId::parse(client.as_str()), Ok(client));
    }

    #[test]
    fn generated_client_ids_never_look_like_a_command_line_option() {
        // One in 64 URL-safe base64 ids began with `-`; 2,000 draws would all but surely hit one.
        for _ in 0..2_000 {
            let id = ClientId::generate();
            assert!(!id.as_str().starts_with('-'), "{id:?}");
            assert_eq!(id.as_str().len(), 32);
        }
    }

    #[test]
    fn client_ids_and_tenants_reject_unsafe_characters() {
        assert!(ClientId::parse("my app").is_err());
        assert!(ClientId::parse("app\"").is_err());
        assert!(ClientId::parse("my-app_1.0~x").is_ok());
        assert!(TenantId::parse("Acme").is_err());
        assert!(TenantId::parse("-acme").is_err());
        assert!(TenantId::parse("acme-2").is_ok());
    }
}
