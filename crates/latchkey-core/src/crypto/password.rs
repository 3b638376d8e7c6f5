//! Password hashing with Argon2id (RFC 9106). Parameters come from configuration; the OWASP
//! defaults are 19 MiB of memory, 2 iterations, 1 lane.
//!
//! Hashes imported from the systems Latchkey replaces are verified too: Argon2id, and bcrypt
//! (`$2a$`, `$2b$`, `$2y$`), each within cost bounds ([`BCRYPT_MAX_COST`], [`ARGON2_MAX_MEMORY_KIB`],
//! [`ARGON2_MAX_ITERATIONS`], [`ARGON2_MAX_LANES`]) so that no stored hash can make one
//! sign-in cost minutes of CPU or gigabytes of memory. Anything else is refused. After a
//! successful sign-in, [`PasswordPolicy::needs_rehash`] says whether to replace the hash.
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
    #[error("the stored password hash is not a valid Argon2id PHC string or bcrypt hash")]
    BadStoredHash,
    #[error("the password hash is of an unsupported kind (Latchkey verifies Argon2id and bcrypt $2a$, $2b$, $2y$)")]
    UnsupportedHash,
    #[error("the password hash costs too much to verify: {0}")]
    CostTooHigh(String),
}

/// The highest bcrypt cost (log2 of the rounds) a stored hash may have: cost 14 takes about
/// a second on one core, and each step doubles it.
pub const BCRYPT_MAX_COST: u32 = 14;
/// The most memory an Argon2id hash may need to verify, in KiB (256 MiB).
pub const ARGON2_MAX_MEMORY_KIB: u32 = 256 * 1024;
/// The most Argon2id passes over that memory.
pub const ARGON2_MAX_ITERATIONS: u32 = 10;
/// The most Argon2id lanes.
pub const ARGON2_MAX_LANES: u32 = 4;

/// A stored hash Latchkey can verify, with its cost; [`inspect`] makes one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashScheme {
    Argon2id { memory_kib: u32, iterations: u32, lanes: u32, version: u32 },
    Bcrypt { cost: u32 },
}

/// What kind of hash `stored` is, refusing every other kind and any cost beyond the bounds.
/// Errors never contain the hash.
pub fn inspect(stored: &PasswordHash) -> Result<HashScheme, PasswordError> {
    let s = stored.as_str();
    if ["$2a$", "$2b$", "$2y$"].iter().any(|p| s.starts_with(p)) {
        let parts: bcrypt::HashParts = s.parse().map_err(|_| PasswordError::BadStoredHash)?;
        let cost = parts.get_cost();
        if cost > BCRYPT_MAX_COST {
            return Err(PasswordError::CostTooHigh(format!("bcrypt cost {cost} is above {BCRYPT_MAX_COST}")));
        }
        return Ok(HashScheme::Bcrypt { cost });
    }
    if !s.starts_with("$argon2id$") {
        return Err(PasswordError::UnsupportedHash);
    }
    let phc = Phc::new(s).map_err(|_| PasswordError::BadStoredHash)?;
    if phc.salt.is_none() || phc.hash.is_none() {
        return Err(PasswordError::BadStoredHash);
    }
    let version = match phc.version {
        Some(v) => Version::try_from(v).map_err(|_| PasswordError::BadStoredHash)?,
        None => Version::default(),
    };
    let params = Params::try_from(&phc).map_err(|_| PasswordError::BadStoredHash)?;
    let (memory_kib, iterations, lanes) = (params.m_cost(), params.t_cost(), params.p_cost());
    let too_high =
        |what: &str, got: u32, max: u32| PasswordError::CostTooHigh(format!("Argon2id {what} {got} is above {max}"));
    if memory_kib > ARGON2_MAX_MEMORY_KIB {
        return Err(too_high("memory (KiB)", memory_kib, ARGON2_MAX_MEMORY_KIB));
    }
    if iterations > ARGON2_MAX_ITERATIONS {
        return Err(too_high("iterations", iterations, ARGON2_MAX_ITERATIONS));
    }
    if lanes > ARGON2_MAX_LANES {
        return Err(too_high("lanes", lanes, ARGON2_MAX_LANES));
    }
    Ok(HashScheme::Argon2id { memory_kib, iterations, lanes, version: u32::from(version) })
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
    /// They must lie within the bounds every stored hash is held to, or Latchkey would
    /// refuse its own hashes.
    pub fn validate(&self) -> Result<(), PasswordError> {
        self.argon2()?;
        for (what, got, max) in [
            ("memory_kib", self.memory_kib, ARGON2_MAX_MEMORY_KIB),
            ("iterations", self.iterations, ARGON2_MAX_ITERATIONS),
            ("parallelism", self.parallelism, ARGON2_MAX_LANES),
        ] {
            if got > max {
                return Err(PasswordError::BadParameters(format!("{what} = {got} is above the limit of {max}")));
            }
        }
        Ok(())
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
    /// so hashes made under older settings (or by another system: [`inspect`]) still verify.
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
        let scheme = inspect(stored)?;
        if check_length(password).is_err() {
            return Ok(false);
        }
        if let HashScheme::Bcrypt { .. } = scheme {
            // As the systems that made these hashes did: bcrypt reads the first 72 bytes.
            return bcrypt::verify(password, &stored.0).map_err(|_| PasswordError::BadStoredHash);
        }
        let phc = Phc::new(&stored.0).map_err(|_| PasswordError::BadStoredHash)?;
        let (Some(salt), Some(expected)) = (&phc.salt, &phc.hash) else { return Err(PasswordError::BadStoredHash) };
        let version = match phc.version {
            Some(v) => Version::try_from(v).map_err(|_| PasswordError::BadStoredHash)?,
            None => Version::default(),
        };
        let params = Params::try_from(&phc).map_err(|_| PasswordError::BadStoredHash)?;
        let argon2 = Argon2::new(Algorithm::Argon2id, version, params);
        let mut out = vec![0u8; expected.len()];
        if argon2
            .hash_password_into_with_memory(password.as_bytes(), salt, &mut out, workspace.blocks(argon2.params()))
            .is_err()
        {
            return Ok(false);
        }
        Ok(out.as_slice().ct_eq(expected.as_bytes()).into())
    }

    /// Whether `stored` should be replaced by a hash at these parameters after a successful
    /// sign-in: every bcrypt hash, and an Argon2id hash with less memory, fewer iterations
    /// or an older version. A hash that is stronger than these parameters stays.
    pub fn needs_rehash(&self, stored: &PasswordHash) -> bool {
        match inspect(stored) {
            Ok(HashScheme::Argon2id { memory_kib, iterations, version, .. }) => {
                version != u32::from(Version::V0x13) || memory_kib < self.memory_kib || iterations < self.iterations
            }
            Ok(HashScheme::Bcrypt { .. }) | Err(_) => true,
        }
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
        // Argon2id hashes made elsewhere (another output length) still verify; Argon2i does not.
        let elsewhere =
            Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(64, 1, 1, Some(16)).unwrap_or_default());
        let other =
            argon2::password_hash::PasswordHasher::hash_password_with_salt(&elsewhere, b"pw", b"saltsaltsaltsalt")
                .unwrap_or_else(|e| panic!("{e}"));
        let other = PasswordHash::from_stored(other.to_string());
        assert_eq!(p.verify_in("pw", &other, &mut ws), Ok(true));
        assert_eq!(p.verify_in("px", &other, &mut ws), Ok(false));
    }

    fn bcrypt_of(password: &str, cost: u32) -> PasswordHash {
        PasswordHash::from_stored(bcrypt::hash(password, cost).unwrap_or_else(|e| panic!("{e}")))
    }

    #[test]
    fn bcrypt_hashes_from_other_systems_verify_in_every_prefix_and_always_ask_for_rehash() {
        let p = cheap();
        let hash = bcrypt_of("correct horse", 4);
        for prefix in ["$2a$", "$2b$", "$2y$"] {
            let h = PasswordHash::from_stored(format!("{prefix}{}", &hash.as_str()[4..]));
            assert_eq!(inspect(&h), Ok(HashScheme::Bcrypt { cost: 4 }));
            assert_eq!(p.verify("correct horse", &h), Ok(true), "{prefix}");
            assert_eq!(p.verify("wrong horse", &h), Ok(false), "{prefix}");
            assert!(p.needs_rehash(&h), "{prefix}: bcrypt is always replaced");
        }
        let x = PasswordHash::from_stored(format!("$2x${}", &hash.as_str()[4..]));
        assert_eq!(p.verify("correct horse", &x), Err(PasswordError::UnsupportedHash), "$2x$ (a buggy variant)");
    }

    #[test]
    fn hashes_beyond_the_cost_bounds_are_refused_before_any_work() {
        // Cost 31 would take days; only the prefix is changed, so nothing else is wrong.
        let cheap_hash = bcrypt_of("pw", 4);
        let costly = PasswordHash::from_stored(format!("$2b$31{}", &cheap_hash.as_str()[6..]));
        assert!(matches!(cheap().verify("pw", &costly), Err(PasswordError::CostTooHigh(ref m)) if m.contains("31")));
        let fifteen = PasswordHash::from_stored(format!("$2b$15{}", &cheap_hash.as_str()[6..]));
        assert!(matches!(inspect(&fifteen), Err(PasswordError::CostTooHigh(_))));
        let fourteen = PasswordHash::from_stored(format!("$2b$14{}", &cheap_hash.as_str()[6..]));
        assert_eq!(inspect(&fourteen), Ok(HashScheme::Bcrypt { cost: 14 }));

        let salt_and_hash = "c2FsdHNhbHRzYWx0c2FsdA$2xvoUDUPYQ3MCZyZUzw6d3FGZn6ZvDw1JbP0sSTJWGE";
        let argon = |params: &str| PasswordHash::from_stored(format!("$argon2id$v=19${params}${salt_and_hash}"));
        for (params, word) in
            [("m=262145,t=1,p=1", "memory"), ("m=64,t=11,p=1", "iterations"), ("m=64,t=1,p=5", "lanes")]
        {
            let err = cheap().verify("pw", &argon(params));
            assert!(matches!(err, Err(PasswordError::CostTooHigh(ref m)) if m.contains(word)), "{params}: {err:?}");
        }
        assert!(matches!(inspect(&argon("m=262144,t=10,p=4")), Ok(HashScheme::Argon2id { .. })));
        // Other kinds are refused, and no error repeats the hash.
        for other in ["$argon2i$v=19$m=64,t=1,p=1$c2FsdA$aGFzaA", "$1$salt$hash", "{SSHA}abc", "plain"] {
            let err = cheap().verify("pw", &PasswordHash::from_stored(other.into()));
            assert_eq!(err, Err(PasswordError::UnsupportedHash), "{other}");
        }
        let shown = inspect(&costly).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(!shown.contains(&cheap_hash.as_str()[7..20]), "{shown}");
        assert!(PasswordPolicy { memory_kib: 300_000, ..cheap() }.validate().is_err(), "a policy beyond the bounds");
    }

    #[test]
    fn only_weaker_argon2id_hashes_ask_for_rehash() {
        let policy = PasswordPolicy { memory_kib: 128, iterations: 2, parallelism: 1 };
        let weaker_memory = PasswordPolicy { memory_kib: 64, ..policy }.hash("pw").unwrap_or_else(|e| panic!("{e}"));
        let weaker_time = PasswordPolicy { iterations: 1, ..policy }.hash("pw").unwrap_or_else(|e| panic!("{e}"));
        let stronger = PasswordPolicy { memory_kib: 256, iterations: 3, parallelism: 2 }
            .hash("pw")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(policy.needs_rehash(&weaker_memory));
        assert!(policy.needs_rehash(&weaker_time));
        assert!(!policy.needs_rehash(&stronger), "a stronger hash stays");
        assert!(!policy.needs_rehash(&policy.hash("pw").unwrap_or_else(|e| panic!("{e}"))));
    }

    #[test]
    fn bad_input_is_refused() {
        assert_eq!(cheap().hash(""), Err(PasswordError::Empty));
        assert_eq!(cheap().hash(&"x".repeat(1025)), Err(PasswordError::TooLong));
        assert!(PasswordPolicy { memory_kib: 1, iterations: 0, parallelism: 0 }.validate().is_err());
        assert_eq!(
            cheap().verify("pw", &PasswordHash::from_stored("$argon2id$garbage".into())),
            Err(PasswordError::BadStoredHash)
        );
    }
}
