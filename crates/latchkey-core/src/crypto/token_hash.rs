//! Keyed hashing of the secrets Latchkey generates itself (session ids, codes, refresh
//! tokens, client secrets, API keys, one-time links). They carry 256 random bits, so
//! HMAC-SHA-256 under a server key is as strong as a slow hash and costs microseconds;
//! the key means a stolen database alone cannot test guesses offline.

use std::fmt;

use aws_lc_rs::hmac;
use subtle::ConstantTimeEq;

/// Hashes tokens for storage and lookup. Each hash is bound to a purpose, so a token
/// minted for one purpose never matches a lookup for another.
#[derive(Clone)]
pub struct TokenHasher {
    key: hmac::Key,
}

/// The stored form of a secret token: hex of HMAC-SHA-256(purpose || 0 || token).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TokenHash(String);

impl TokenHasher {
    /// A hasher keyed by `key_material` (derived from the master key).
    pub fn new(key_material: &[u8]) -> Self {
        Self { key: hmac::Key::new(hmac::HMAC_SHA256, key_material) }
    }

    pub fn hash(&self, purpose: &str, token: &str) -> TokenHash {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(purpose.as_bytes());
        ctx.update(&[0]);
        ctx.update(token.as_bytes());
        TokenHash(hex::encode(ctx.sign().as_ref()))
    }

    /// Whether `token` hashes to `stored`, compared in constant time.
    pub fn verify(&self, purpose: &str, token: &str, stored: &TokenHash) -> bool {
        let computed = self.hash(purpose, token);
        computed.0.as_bytes().ct_eq(stored.0.as_bytes()).into()
    }
}

impl TokenHash {
    pub fn from_stored(hex: String) -> Self {
        Self(hex)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A hash is not a secret, but it is a lookup key: keep it out of debug output.
        f.write_str("TokenHash(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_is_bound_to_its_purpose() {
        let h = TokenHasher::new(b"k");
        let stored = h.hash("client_secret", "s3cret");
        assert!(h.verify("client_secret", "s3cret", &stored));
        assert!(!h.verify("refresh_token", "s3cret", &stored));
        assert!(!h.verify("client_secret", "s3cret2", &stored));
    }

    #[test]
    fn a_different_key_gives_a_different_hash() {
        assert_ne!(TokenHasher::new(b"a").hash("p", "t"), TokenHasher::new(b"b").hash("p", "t"));
    }
}
