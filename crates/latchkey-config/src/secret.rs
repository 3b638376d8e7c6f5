//! Secret values in configuration: `env:NAME`, `file:PATH` (relative to the config file),
//! or the value itself. Printing a config never shows a literal secret.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// A reference to a secret, resolved only when needed.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct SecretRef(String);

/// A resolved secret. Debug output hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    #[error("environment variable {0} is not set")]
    MissingEnv(String),
    #[error("cannot read secret file {path}: {reason}")]
    File { path: String, reason: String },
    #[error("the secret is empty")]
    Empty,
}

impl SecretRef {
    pub fn new(raw: impl Into<String>) -> Self {
        Self(raw.into())
    }

    /// Reads the secret. `file:` paths are relative to `base_dir`; one trailing newline is
    /// dropped, as editors add it.
    pub fn resolve(&self, base_dir: &Path) -> Result<Secret, SecretError> {
        let value = if let Some(name) = self.0.strip_prefix("env:") {
            std::env::var(name).map_err(|_| SecretError::MissingEnv(name.to_owned()))?
        } else if let Some(path) = self.0.strip_prefix("file:") {
            let full = base_dir.join(path);
            let text = std::fs::read_to_string(&full)
                .map_err(|e| SecretError::File { path: full.display().to_string(), reason: e.to_string() })?;
            text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(&text).to_owned()
        } else {
            self.0.clone()
        };
        if value.is_empty() {
            return Err(SecretError::Empty);
        }
        Ok(Secret(value))
    }

    /// The file a `file:` reference names, resolved against `base_dir`.
    pub fn file_path(&self, base_dir: &Path) -> Option<std::path::PathBuf> {
        self.0.strip_prefix("file:").map(|p| base_dir.join(p))
    }

    fn is_reference(&self) -> bool {
        self.0.starts_with("env:") || self.0.starts_with("file:")
    }
}

impl Serialize for SecretRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // A reference names where the secret lives, which is not secret; a literal is, except
        // the parts of a database URL other than its password.
        if self.is_reference() || self.0.starts_with("sqlite:") {
            s.serialize_str(&self.0)
        } else if self.0.starts_with("postgres://") || self.0.starts_with("postgresql://") {
            s.serialize_str(&latchkey_core::redact_url(&self.0))
        } else {
            s.serialize_str("<hidden>")
        }
    }
}

impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_reference() { write!(f, "SecretRef({})", self.0) } else { f.write_str("SecretRef(<hidden>)") }
    }
}

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<hidden>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_references_resolve_against_the_base_directory() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.path().join("key.txt"), "s3cret\n").unwrap_or_else(|e| panic!("{e}"));
        let secret = SecretRef::new("file:key.txt").resolve(dir.path());
        assert_eq!(secret.map(|s| s.0), Ok("s3cret".to_owned()));
        let missing = SecretRef::new("file:nope.txt").resolve(dir.path());
        assert!(matches!(missing, Err(SecretError::File { .. })));
    }

    #[test]
    fn missing_environment_variables_are_named() {
        let r = SecretRef::new("env:LATCHKEY_TEST_SURELY_UNSET_VAR").resolve(Path::new("."));
        assert_eq!(r, Err(SecretError::MissingEnv("LATCHKEY_TEST_SURELY_UNSET_VAR".into())));
    }

    #[test]
    fn literals_never_print() {
        let literal = SecretRef::new("hunter2");
        assert_eq!(serde_json::to_string(&literal).unwrap_or_default(), "\"<hidden>\"");
        assert!(!format!("{literal:?}").contains("hunter2"));
        assert_eq!(serde_json::to_string(&SecretRef::new("env:X")).unwrap_or_default(), "\"env:X\"");
        let pg = SecretRef::new("postgres://lk:pw@db/lk");
        assert_eq!(serde_json::to_string(&pg).unwrap_or_default(), "\"postgres://lk:****@db/lk\"");
        assert_eq!(SecretRef::new("").resolve(Path::new(".")), Err(SecretError::Empty));
    }
}
