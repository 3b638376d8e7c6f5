//! Envelope encryption at rest: each value gets its own data key (AES-256-GCM), and the data
//! key is sealed under the master key. Rotating the master key re-wraps data keys only.
//!
//! Sealed layout (version 1):
//! `0x01 | nonce_k (12) | wrapped data key (32 + 16 tag) | nonce_d (12) | ciphertext + tag`.
//! The associated data (e.g. a key id) binds a ciphertext to the row it belongs to.

use std::fmt;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::random;

const VERSION: u8 = 1;
const KEY_LEN: usize = 32;
const TAG_LEN: usize = 16;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvelopeError {
    #[error("the master key must be 32 bytes, written as 64 hex characters or 44 base64 characters")]
    BadMasterKey,
    #[error("cannot decrypt: the master key differs from the one the data was sealed with, or the data was altered")]
    Undecryptable,
}

/// The 256-bit master key. Debug output never shows it.
#[derive(Clone)]
pub struct MasterKey {
    bytes: [u8; KEY_LEN],
}

impl MasterKey {
    pub fn generate() -> Self {
        Self { bytes: random::bytes::<KEY_LEN>() }
    }

    /// Reads a master key written as hex (64 characters) or base64 (44 characters).
    pub fn parse(text: &str) -> Result<Self, EnvelopeError> {
        let t = text.trim();
        let decoded = if t.len() == 64 { hex::decode(t).ok() } else { STANDARD.decode(t).ok() };
        let bytes: [u8; KEY_LEN] = decoded.and_then(|v| v.try_into().ok()).ok_or(EnvelopeError::BadMasterKey)?;
        Ok(Self { bytes })
    }

    /// The form `parse` reads back (hex), for writing the key file.
    pub fn to_hex(&self) -> String {
        hex::encode(self.bytes)
    }

    /// A sub-key for one purpose (HMAC-SHA-256 of the label), so the master key itself is
    /// used only for wrapping and every other use gets an independent key.
    pub fn derive(&self, label: &str) -> [u8; 32] {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.bytes);
        let tag = hmac::sign(&key, label.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }

    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
        let data_key = random::bytes::<KEY_LEN>();
        let mut out = Vec::with_capacity(1 + 2 * NONCE_LEN + KEY_LEN + 2 * TAG_LEN + plaintext.len());
        out.push(VERSION);
        seal_into(&self.bytes, &data_key, aad, &mut out);
        seal_into(&data_key, plaintext, aad, &mut out);
        out
    }

    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, EnvelopeError> {
        let wrapped_len = NONCE_LEN + KEY_LEN + TAG_LEN;
        if sealed.len() < 1 + wrapped_len + NONCE_LEN + TAG_LEN || sealed[0] != VERSION {
            return Err(EnvelopeError::Undecryptable);
        }
        let (wrapped, data) = sealed[1..].split_at(wrapped_len);
        let data_key = open_from(&self.bytes, wrapped, aad)?;
        open_from(&data_key, data, aad)
    }
}

fn cipher(key: &[u8]) -> LessSafeKey {
    // Both keys are exactly 32 bytes by construction, which AES-256-GCM always accepts.
    let unbound = UnboundKey::new(&AES_256_GCM, key).unwrap_or_else(|_| std::process::abort());
    LessSafeKey::new(unbound)
}

pub(crate) fn seal_into(key: &[u8], plaintext: &[u8], aad: &[u8], out: &mut Vec<u8>) {
    let nonce_bytes = random::bytes::<NONCE_LEN>();
    let mut buf = plaintext.to_vec();
    let nonce = Nonce::assume_unique_for_key(nonce_bytes);
    if cipher(key).seal_in_place_append_tag(nonce, Aad::from(aad), &mut buf).is_err() {
        std::process::abort();
    }
    out.extend_from_slice(&nonce_bytes);
    out.extend_from_slice(&buf);
}

pub(crate) fn open_from(key: &[u8], sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, EnvelopeError> {
    let (nonce_bytes, ct) = sealed.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce_bytes).map_err(|_| EnvelopeError::Undecryptable)?;
    let mut buf = ct.to_vec();
    let plain = cipher(key).open_in_place(nonce, Aad::from(aad), &mut buf).map_err(|_| EnvelopeError::Undecryptable)?;
    Ok(plain.to_vec())
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<hidden>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_data_opens_with_the_same_key_and_aad_only() {
        let key = MasterKey::generate();
        let sealed = key.seal(b"private key", b"kid-1");
        assert_eq!(key.open(&sealed, b"kid-1").as_deref(), Ok(&b"private key"[..]));
        assert_eq!(key.open(&sealed, b"kid-2"), Err(EnvelopeError::Undecryptable));
        assert_eq!(MasterKey::generate().open(&sealed, b"kid-1"), Err(EnvelopeError::Undecryptable));
        let mut tampered = sealed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert_eq!(key.open(&tampered, b"kid-1"), Err(EnvelopeError::Undecryptable));
        assert_eq!(key.open(&sealed[..10], b"kid-1"), Err(EnvelopeError::Undecryptable));
    }

    #[test]
    fn master_keys_parse_from_hex_and_base64() {
        let key = MasterKey::generate();
        let again = MasterKey::parse(&key.to_hex()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(again.bytes, key.bytes);
        let b64 = STANDARD.encode(key.bytes);
        assert!(MasterKey::parse(&b64).is_ok());
        assert_eq!(MasterKey::parse("abcd").err(), Some(EnvelopeError::BadMasterKey));
        assert!(!format!("{key:?}").contains(&key.to_hex()));
    }

    #[test]
    fn derived_keys_differ_by_label() {
        let key = MasterKey::generate();
        assert_ne!(key.derive("a"), key.derive("b"));
        assert_eq!(key.derive("a"), key.derive("a"));
    }
}
