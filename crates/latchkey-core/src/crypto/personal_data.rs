//! Keys for personal data at rest (emails, phone numbers, names, profile claims, parked
//! requests), derived from the master key:
//!
//! - **data keys**, one per *generation*: `latchkey keys rotate-data-key` starts a new
//!   generation and the stored values are re-encrypted under it in batches. Each value is
//!   sealed with AES-256-GCM under its own key (HMAC of the generation's key and a random
//!   salt), so no key meets enough values for GCM's random-nonce limits to matter, and the
//!   associated data binds a value to its table, column and row;
//! - the **blind-index key**: a keyed HMAC of a value's normal form, so an encrypted column
//!   can be searched and kept unique by exact value without being readable. It stays the
//!   same across data-key generations (a new one would have to be computed for every row
//!   before any search could use it).
//!
//! Sealed layout (as stored, base64): `salt (16) | nonce (12) | ciphertext + tag (16)`;
//! the generation is kept beside it, in the row.

use std::sync::atomic::{AtomicU32, Ordering};

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

use super::envelope::{EnvelopeError, MasterKey, open_from, seal_into};
use super::random;

const SALT_LEN: usize = 16;

/// The keys personal data is sealed and indexed with, and the generation new values use.
pub struct PersonalDataKeys {
    root: hmac::Key,
    index: hmac::Key,
    active: AtomicU32,
}

impl std::fmt::Debug for PersonalDataKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PersonalDataKeys").field("active", &self.active()).finish_non_exhaustive()
    }
}

impl PersonalDataKeys {
    /// The keys of `master`, sealing under generation 1 until told otherwise.
    pub fn derive(master: &MasterKey) -> Self {
        Self {
            root: hmac::Key::new(hmac::HMAC_SHA256, &master.derive("latchkey personal data keys v1")),
            index: hmac::Key::new(hmac::HMAC_SHA256, &master.derive("latchkey personal data blind index v1")),
            active: AtomicU32::new(1),
        }
    }

    /// The generation new values are sealed under.
    pub fn active(&self) -> u32 {
        self.active.load(Ordering::Relaxed)
    }

    /// Makes `generation` (as the database records it) the one new values use.
    pub fn set_active(&self, generation: u32) {
        self.active.store(generation.max(1), Ordering::Relaxed);
    }

    fn value_key(&self, generation: u32, salt: &[u8]) -> [u8; 32] {
        let gen_key = hmac::sign(&self.root, format!("generation {generation}").as_bytes());
        let key = hmac::Key::new(hmac::HMAC_SHA256, gen_key.as_ref());
        let tag = hmac::sign(&key, salt);
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// `plaintext` sealed under `generation`, bound to `aad` (which names where it is kept).
    pub fn seal(&self, generation: u32, aad: &str, plaintext: &str) -> String {
        let salt = random::bytes::<SALT_LEN>();
        let key = self.value_key(generation, &salt);
        let mut out = Vec::with_capacity(SALT_LEN + 12 + plaintext.len() + 16);
        out.extend_from_slice(&salt);
        seal_into(&key, plaintext.as_bytes(), aad.as_bytes(), &mut out);
        STANDARD.encode(out)
    }

    /// The text `seal` sealed under `generation` with the same `aad`.
    pub fn open(&self, generation: u32, aad: &str, sealed: &str) -> Result<String, EnvelopeError> {
        let bytes = STANDARD.decode(sealed).map_err(|_| EnvelopeError::Undecryptable)?;
        if bytes.len() < SALT_LEN + 12 + 16 {
            return Err(EnvelopeError::Undecryptable);
        }
        let (salt, rest) = bytes.split_at(SALT_LEN);
        let key = self.value_key(generation, salt);
        let plain = open_from(&key, rest, aad.as_bytes())?;
        String::from_utf8(plain).map_err(|_| EnvelopeError::Undecryptable)
    }

    /// The blind index of a value already in its normal form (see
    /// [`crate::domain::Email::normalized`]), for `field` within `tenant`.
    pub fn blind_index(&self, tenant: &str, field: &str, normalized: &str) -> String {
        let mut input = Vec::with_capacity(tenant.len() + field.len() + normalized.len() + 24);
        for part in [tenant.as_bytes(), field.as_bytes(), normalized.as_bytes()] {
            input.extend_from_slice(&(part.len() as u64).to_be_bytes());
            input.extend_from_slice(part);
        }
        format!("bi_{}", URL_SAFE_NO_PAD.encode(hmac::sign(&self.index, &input).as_ref()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_only_with_its_generation_and_place() {
        let keys = PersonalDataKeys::derive(&MasterKey::generate());
        let sealed = keys.seal(1, "users.email|default|u1", "ada@example.org");
        assert!(!sealed.contains("ada"));
        assert_eq!(keys.open(1, "users.email|default|u1", &sealed).as_deref(), Ok("ada@example.org"));
        assert_eq!(keys.open(2, "users.email|default|u1", &sealed), Err(EnvelopeError::Undecryptable));
        assert_eq!(keys.open(1, "users.email|default|u2", &sealed), Err(EnvelopeError::Undecryptable));
        assert_ne!(keys.seal(1, "a", "same"), keys.seal(1, "a", "same"), "each value gets its own salt and nonce");
        let other = PersonalDataKeys::derive(&MasterKey::generate());
        assert_eq!(other.open(1, "users.email|default|u1", &sealed), Err(EnvelopeError::Undecryptable));
        assert_eq!(keys.open(1, "a", "not base64!"), Err(EnvelopeError::Undecryptable));
        assert_eq!(keys.open(1, "a", "c2hvcnQ="), Err(EnvelopeError::Undecryptable));
    }

    #[test]
    fn blind_indexes_are_keyed_and_separate_tenants_and_fields() {
        let master = MasterKey::generate();
        let keys = PersonalDataKeys::derive(&master);
        let a = keys.blind_index("default", "email", "ada@example.org");
        assert_eq!(a, PersonalDataKeys::derive(&master).blind_index("default", "email", "ada@example.org"));
        assert_ne!(a, keys.blind_index("other", "email", "ada@example.org"));
        assert_ne!(a, keys.blind_index("default", "phone", "ada@example.org"));
        assert_ne!(
            a,
            PersonalDataKeys::derive(&MasterKey::generate()).blind_index("default", "email", "ada@example.org")
        );
        assert!(!a.contains("ada"));
    }

    #[test]
    fn the_active_generation_is_at_least_one() {
        let keys = PersonalDataKeys::derive(&MasterKey::generate());
        assert_eq!(keys.active(), 1);
        keys.set_active(3);
        assert_eq!(keys.active(), 3);
        keys.set_active(0);
        assert_eq!(keys.active(), 1);
    }
}
