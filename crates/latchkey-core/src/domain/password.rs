//! The one rule for passwords people type, shared by every door that takes one (the sign-in
//! page, the security page, the CLI), so they all answer alike.
//!
//! The length that matters is the one the hasher sees: Argon2id takes at most
//! [`MAX_PASSWORD_BYTES`] bytes of UTF-8 (`crypto::password`). A limit counted in
//! characters let 600 × "é" (600 characters, 1,200 bytes) past the page's check and failed
//! in the hasher as a server error; the upper limit is therefore counted in bytes
//! everywhere. The lower limit is counted in characters, as people count.

use std::fmt;

/// The fewest characters a new password may have (NIST SP 800-63B §3.1.1.2 asks for at
/// least 8 when a person chooses it).
pub const MIN_PASSWORD_CHARS: usize = 8;
/// The most bytes (UTF-8) a password may have: what the Argon2id hasher accepts.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Why a typed password is refused. The messages never contain the password.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PasswordRuleError {
    #[error("the password is empty")]
    Empty,
    #[error("a password needs at least {MIN_PASSWORD_CHARS} characters")]
    TooShort,
    #[error(
        "a password may have at most {MAX_PASSWORD_BYTES} bytes (letters with accents and other scripts take 2 to 4 bytes each)"
    )]
    TooLong,
}

/// A password someone chooses (setting or changing one): [`MIN_PASSWORD_CHARS`] characters
/// or more, [`MAX_PASSWORD_BYTES`] bytes or fewer. `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct NewPassword(String);

impl NewPassword {
    pub fn parse(raw: String) -> Result<Self, PasswordRuleError> {
        check_bytes(&raw)?;
        if raw.chars().count() < MIN_PASSWORD_CHARS {
            return Err(PasswordRuleError::TooShort);
        }
        Ok(Self(raw))
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// A password typed to sign in: not empty and at most [`MAX_PASSWORD_BYTES`] bytes. No
/// lower limit: a password set elsewhere under an older rule must still be checked.
#[derive(Clone, PartialEq, Eq)]
pub struct TypedPassword(String);

impl TypedPassword {
    pub fn parse(raw: String) -> Result<Self, PasswordRuleError> {
        check_bytes(&raw)?;
        Ok(Self(raw))
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

fn check_bytes(raw: &str) -> Result<(), PasswordRuleError> {
    match raw.len() {
        0 => Err(PasswordRuleError::Empty),
        n if n > MAX_PASSWORD_BYTES => Err(PasswordRuleError::TooLong),
        _ => Ok(()),
    }
}

impl fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NewPassword(<hidden>)")
    }
}

impl fmt::Debug for TypedPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TypedPassword(<hidden>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{PasswordError, PasswordPolicy};

    #[test]
    fn the_upper_limit_is_counted_in_bytes_as_the_hasher_counts() {
        let accents = "é".repeat(600); // 600 characters, 1,200 bytes
        assert_eq!(NewPassword::parse(accents.clone()), Err(PasswordRuleError::TooLong));
        assert_eq!(TypedPassword::parse(accents), Err(PasswordRuleError::TooLong));
        let at_limit = "é".repeat(MAX_PASSWORD_BYTES / 2);
        assert!(NewPassword::parse(at_limit.clone()).is_ok());
        // What the rule lets through, the hasher takes; one byte more, neither does.
        let cheap = PasswordPolicy { memory_kib: 64, iterations: 1, parallelism: 1 };
        assert!(cheap.hash(&at_limit).is_ok());
        let over = format!("{at_limit}x");
        assert_eq!(TypedPassword::parse(over.clone()), Err(PasswordRuleError::TooLong));
        assert_eq!(cheap.hash(&over), Err(PasswordError::TooLong));
    }

    #[test]
    fn the_lower_limit_is_counted_in_characters_and_only_for_new_passwords() {
        assert_eq!(NewPassword::parse("ééééééé".into()), Err(PasswordRuleError::TooShort), "7 characters, 14 bytes");
        assert!(NewPassword::parse("éééééééé".into()).is_ok());
        assert!(TypedPassword::parse("short".into()).is_ok());
        assert_eq!(TypedPassword::parse(String::new()), Err(PasswordRuleError::Empty));
        assert_eq!(NewPassword::parse(String::new()), Err(PasswordRuleError::Empty));
    }

    #[test]
    fn neither_debug_nor_errors_show_the_password() {
        let p = NewPassword::parse("correct horse".into()).unwrap_or_else(|e| panic!("{e}"));
        assert!(!format!("{p:?}").contains("horse"));
        let t = TypedPassword::parse("correct horse".into()).unwrap_or_else(|e| panic!("{e}"));
        assert!(!format!("{t:?}").contains("horse"));
    }
}
