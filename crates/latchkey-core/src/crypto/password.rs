//! Password hashing with Argon2id (RFC 9106). Parameters come from configuration; the OWASP
//! defaults are 19 MiB of memory, 2 iterations, 1 lane.
//!
//! Hashing is deliberately slow: callers on an async runtime must run it on a blocking pool
//! with bounded concurrency (see the server's `passwords` module), never inline.
//!
//! Each hash needs `memory_kib` of working memory. [`Workspace`] holds it across hashes: a
//! fresh 19 MiB allocation per sign-in costs its page faults and zeroing every time (about
//! 40 % of the hash on a 2-core VM), and the allocator kept many such blocks around.

use std::fmt;

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash as Phc, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq as _;

use super::random;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PasswordError {
    #[error("Argon2id parameters are out of range: {0}")]
    BadParameters(String),
    #[error("the password is empty")]
    Empty,
    #[error("the password is longer than 1024 bytes")]
    TooLong,
    #[error("the stored password hash is not a valid Argon2 PHC string")]
    BadStoredHash,
}

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordPolicy {
    /// Memory per hash in KiB.
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        // OWASP Password Storage Cheat Sheet: m=19456 (19 MiB), t=2, p=1.
        Self { memory_kib: 19_456, iterations: 2, parallelism: 1 }
    }
}

/// A stored password hash (PHC string). Debug output hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl PasswordHash {
    pub fn from_stored(phc: String) -> Self {
        Self(phc)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(<hidden>)")
    }
}

/// Reusable Argon2 working memory; grows to the largest cost it has served.
#[derive(Default)]
pub struct Workspace {
    blocks: Vec<Block>,
}

impl Workspace {
    fn blocks(&mut self, params: &Params) -> &mut [Block] {
        let n = params.block_count();
        if self.blocks.len() < n {
            self.blocks.resize(n, Block::default());
        }
        &mut self.blocks[..n]
    }
}

impl PasswordPolicy {
    fn argon2(&self) -> Result<Argon2<'static>, PasswordError> {
        let params = Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map_err(|e| PasswordError::BadParameters(e.to_string()))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }

    /// Checks the parameters once at start-up, so a bad config fails there, not at login.
    pub fn validate(&self) -> Result<(), PasswordError> {
        self.argon2().map(|_| ())
    }

    pub fn hash(&self, password: &str) -> Result<PasswordHash, PasswordError> {
        self.hash_in(password, &mut Workspace::default())
    }

    /// [`Self::hash`] with the working memory of `workspace`.
    pub fn hash_in(&self, password: &str, workspace: &mut Workspace) -> Result<PasswordHash, PasswordError> {
        check_length(password)?;
        let bad = |e: &dyn fmt::Display| PasswordError::BadParameters(e.to_string());
        let argon2 = self.argon2()?;
        let salt = Salt::new(&random::bytes::<16>()).map_err(|e| bad(&e))?;
        let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
        argon2
            .hash_password_into_with_memory(password.as_bytes(), &salt, &mut out, workspace.blocks(argon2.params()))
            .map_err(|e| bad(&e))?;
        let phc = Phc {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(argon2.params()).map_err(|e| bad(&e))?,
            salt: Some(salt),
            hash: Some(Output::new(&out).map_err(|e| bad(&e))?),
        };
        Ok(PasswordHash(phc.to_string()))
    }

    /// Whether `password` matches `stored`. The parameters are read from the stored hash,
    /// so hashes made under older settings still verify.
    pub fn verify(&self, password: &str, stored: &PasswordHash) -> Result<bool, PasswordError> {
        self.verify_in(password, stored, &mut Workspace::default())
    }

    /// [`Self::verify`] with the working memory of `workspace`.
    pub fn verify_in(
        &self,
        password: &str,
        stored: &PasswordHash,
        workspace: &mut Workspace,
    ) -> Result<bool, PasswordError> {
        if check_length(password).is_err() {
            return Ok(false);
        }
        let phc = Phc::new(&stored.0).map_err(|_| PasswordError::BadStoredHash)?;
        let (Some(salt), Some(expected)) = (&phc.salt, &phc.hash) else { return Err(PasswordError::BadStoredHash) };
        let algorithm = Algorithm::try_from(phc.algorithm.as_str()).map_err(|_| PasswordError::BadStoredHash)?;
        let version = match phc.version {
            Some(v) => Version::try_from(v).map_err(|_| PasswordError::BadStoredHash)?,
            None => Version::default(),
        };
        let params = Params::try_from(&phc).map_err(|_| PasswordError::BadStoredHash)?;
        let argon2 = Argon2::new(algorithm, version, params);
        let mut out = vec![0u8; expected.len()];
        if argon2
            .hash_password_into_with_memory(password.as_bytes(), salt, &mut out, workspace.blocks(argon2.params()))
            .is_err()
        {
            return Ok(false);
        }
        Ok(out.as_slice().ct_eq(expected.as_bytes()).into())
    }

    /// Whether `stored` was made with other parameters than these (re-hash after login).
    pub fn needs_rehash(&self, stored: &PasswordHash) -> bool {
        let wanted = format!("m={},t={},p={}", self.memory_kib, self.iterations, self.parallelism);
        !(stored.0.starts_with("$argon2id$") && stored.0.split('$').nth(3) == Some(wanted.as_str()))
    }
}

fn check_length(password: &str) -> Result<(), PasswordError> {
    match password.len() {
        0 => Err(PasswordError::Empty),
        n if n > 1024 => Err(PasswordError::TooLong),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> PasswordPolicy {
        PasswordPolicy { memory_kib: 64, iterations: 1, parallelism: 1 }
    }

    #[test]
    fn a_hash_verifies_its_password_only() {
        let p = cheap();
        let h = p.hash("correct horse").unwrap_or_else(|e| panic!("{e}"));
        assert!(h.as_str().starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert_eq!(p.verify("correct horse", &h), Ok(true));
        assert_eq!(p.verify("wrong horse", &h), Ok(false));
        assert_eq!(p.verify("", &h), Ok(false));
        assert!(!format!("{h:?}").contains("argon2"));
    }

    #[test]
    fn hashes_under_old_parameters_verify_and_ask_for_rehash() {
        let old = cheap();
        let h = old.hash("pw").unwrap_or_else(|e| panic!("{e}"));
        let new = PasswordPolicy { memory_kib: 128, ..old };
        assert_eq!(new.verify("pw", &h), Ok(true));
        assert!(new.needs_rehash(&h));
        assert!(!old.needs_rehash(&h));
    }

    #[test]
    fn a_reused_workspace_gives_the_same_answers_as_fresh_memory() {
        let p = cheap();
        let mut ws = Workspace::default();
        let h = p.hash_in("pw", &mut ws).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.verify("pw", &h), Ok(true), "a library-style verification accepts it");
        assert_eq!(p.verify_in("pw", &h, &mut ws), Ok(true));
        assert_eq!(p.verify_in("wrong", &h, &mut ws), Ok(false));
        // A stored hash with more memory grows the workspace; a smaller one uses part of it.
        let big = PasswordPolicy { memory_kib: 256, ..p };
        let hb = big.hash("pw").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.verify_in("pw", &hb, &mut ws), Ok(true));
        assert_eq!(p.verify_in("pw", &h, &mut ws), Ok(true));
        // Hashes made elsewhere (argon2i, other output length) still verify.
        let argon2i =
            Argon2::new(Algorithm::Argon2i, Version::V0x13, Params::new(64, 1, 1, Some(16)).unwrap_or_default());
        let other =
            argon2::password_hash::PasswordHasher::hash_password_with_salt(&argon2i, b"pw", b"saltsaltsaltsalt")
                .unwrap_or_else(|e| panic!("{e}"));
        let other = PasswordHash::from_stored(other.to_string());
        assert_eq!(p.verify_in("pw", &other, &mut ws), Ok(true));
        assert_eq!(p.verify_in("px", &other, &mut ws), Ok(false));
    }

    #[test]
    fn bad_input_is_refused() {
        assert_eq!(cheap().hash(""), Err(PasswordError::Empty));
        assert_eq!(cheap().hash(&"x".repeat(1025)), Err(PasswordError::TooLong));
        assert!(PasswordPolicy { memory_kib: 1, iterations: 0, parallelism: 0 }.validate().is_err());
        assert_eq!(
            cheap().verify("pw", &PasswordHash::from_stored("garbage".into())),
            Err(PasswordError::BadStoredHash)
        );
    }
}
