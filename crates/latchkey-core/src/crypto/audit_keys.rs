//! Keys of the tamper-evident audit log, each derived from the master key for one purpose:
//!
//! - the **chain key** links every entry to the one before it by HMAC-SHA-256, so a person
//!   who can write the database but does not hold the master key cannot change, insert or
//!   delete an entry without breaking the chain (a plain hash could be recomputed);
//! - the **pseudonym key** turns actor and subject ids into keyed pseudonyms (the same id
//!   always gives the same pseudonym, so the log can be searched, but the id cannot be read
//!   back without the key: pseudonymisation, GDPR Recital 26, not anonymisation);
//! - the **subject key** turns a subject's random salt (stored in the database) into the key
//!   that encrypts the personal data of the entries about them. Erasure deletes the salt:
//!   the entries stay in the chain, which covers the ciphertext, and can no longer be read;
//! - the **checkpoint key** is an Ed25519 key that signs the chain head, so a copy of the
//!   head kept elsewhere (the metric, a checkpoint entry) proves what the log held.

use aws_lc_rs::aead::NONCE_LEN;
use aws_lc_rs::hmac;
use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

use super::envelope::{EnvelopeError, MasterKey, open_from, seal_into};
use super::random;

/// The length of a subject's salt, in bytes.
pub const SUBJECT_SALT_LEN: usize = 32;

pub struct AuditKeys {
    chain: hmac::Key,
    pseudonyms: hmac::Key,
    subjects: hmac::Key,
    checkpoint: Ed25519KeyPair,
}

/// The fields of one entry the chain covers. `sealed` is the ciphertext: erasing a subject
/// leaves it, so the chain still verifies.
#[derive(Debug, Clone, Copy)]
pub struct ChainLink<'a> {
    pub tenant: &'a str,
    pub seq: i64,
    pub at: i64,
    pub action: &'a str,
    pub actor_ref: &'a str,
    pub target_ref: &'a str,
    pub sealed: &'a str,
}

/// What a checkpoint signs: the chain of `tenant` held `seq` entries, the newest with `mac`,
/// at time `at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointStatement {
    pub tenant: String,
    pub seq: i64,
    pub mac: String,
    pub at: i64,
}

impl CheckpointStatement {
    fn to_bytes(&self) -> Vec<u8> {
        self.to_bytes_as(b"latchkey audit checkpoint v1")
    }

    /// A statement signed for another purpose: a checkpoint's signature never verifies as
    /// a retention base, nor the other way round.
    fn to_bytes_as(&self, purpose: &[u8]) -> Vec<u8> {
        let mut out = purpose.to_vec();
        for part in [self.tenant.as_bytes(), &self.seq.to_be_bytes(), self.mac.as_bytes(), &self.at.to_be_bytes()] {
            push_field(&mut out, part);
        }
        out
    }
}

fn push_field(out: &mut Vec<u8>, field: &[u8]) {
    out.extend_from_slice(&(field.len() as u64).to_be_bytes());
    out.extend_from_slice(field);
}

fn hmac_key(master: &MasterKey, label: &str) -> hmac::Key {
    hmac::Key::new(hmac::HMAC_SHA256, &master.derive(label))
}

impl AuditKeys {
    pub fn derive(master: &MasterKey) -> Self {
        let seed = master.derive("latchkey audit checkpoint signing v1");
        // A 32-byte seed is always a valid Ed25519 private key.
        let checkpoint = Ed25519KeyPair::from_seed_unchecked(&seed).unwrap_or_else(|_| std::process::abort());
        Self {
            chain: hmac_key(master, "latchkey audit chain v1"),
            pseudonyms: hmac_key(master, "latchkey audit pseudonyms v1"),
            subjects: hmac_key(master, "latchkey audit subject keys v1"),
            checkpoint,
        }
    }

    /// The keyed pseudonym of an actor or subject id within a tenant.
    pub fn pseudonym(&self, tenant: &str, value: &str) -> String {
        let mut input = Vec::with_capacity(tenant.len() + value.len() + 16);
        push_field(&mut input, tenant.as_bytes());
        push_field(&mut input, value.as_bytes());
        let tag = hmac::sign(&self.pseudonyms, &input);
        format!("p_{}", URL_SAFE_NO_PAD.encode(&tag.as_ref()[..16]))
    }

    /// The value the first entry of a tenant's chain links to.
    pub fn genesis(&self, tenant: &str) -> String {
        let mut input = b"latchkey audit genesis v1".to_vec();
        push_field(&mut input, tenant.as_bytes());
        hex::encode(hmac::sign(&self.chain, &input).as_ref())
    }

    fn link_input(prev_mac: &str, entry: &ChainLink<'_>) -> Vec<u8> {
        let mut input = Vec::with_capacity(128 + entry.sealed.len());
        push_field(&mut input, prev_mac.as_bytes());
        push_field(&mut input, entry.tenant.as_bytes());
        push_field(&mut input, &entry.seq.to_be_bytes());
        push_field(&mut input, &entry.at.to_be_bytes());
        push_field(&mut input, entry.action.as_bytes());
        push_field(&mut input, entry.actor_ref.as_bytes());
        push_field(&mut input, entry.target_ref.as_bytes());
        push_field(&mut input, entry.sealed.as_bytes());
        input
    }

    /// The MAC of `entry`, which follows the entry whose MAC is `prev_mac`.
    pub fn link(&self, prev_mac: &str, entry: &ChainLink<'_>) -> String {
        hex::encode(hmac::sign(&self.chain, &Self::link_input(prev_mac, entry)).as_ref())
    }

    /// Whether `mac` is the MAC of `entry` after `prev_mac` (compared in constant time).
    pub fn verify_link(&self, prev_mac: &str, entry: &ChainLink<'_>, mac: &str) -> bool {
        hex::decode(mac).is_ok_and(|tag| hmac::verify(&self.chain, &Self::link_input(prev_mac, entry), &tag).is_ok())
    }

    /// A new subject's salt, as stored.
    pub fn new_subject_salt() -> String {
        STANDARD.encode(random::bytes::<SUBJECT_SALT_LEN>())
    }

    fn subject_key(&self, salt: &str) -> Result<[u8; 32], EnvelopeError> {
        let salt = STANDARD.decode(salt).map_err(|_| EnvelopeError::Undecryptable)?;
        let mut key = [0u8; 32];
        key.copy_from_slice(hmac::sign(&self.subjects, &salt).as_ref());
        Ok(key)
    }

    /// Encrypts an entry's personal data under the key of the subject whose salt is given.
    pub fn seal(&self, salt: &str, plaintext: &[u8], aad: &[u8]) -> Result<String, EnvelopeError> {
        let key = self.subject_key(salt)?;
        let mut out = Vec::with_capacity(NONCE_LEN + plaintext.len() + 16);
        seal_into(&key, plaintext, aad, &mut out);
        Ok(STANDARD.encode(out))
    }

    pub fn open(&self, salt: &str, sealed: &str, aad: &[u8]) -> Result<Vec<u8>, EnvelopeError> {
        let key = self.subject_key(salt)?;
        let bytes = STANDARD.decode(sealed).map_err(|_| EnvelopeError::Undecryptable)?;
        if bytes.len() < NONCE_LEN + 16 {
            return Err(EnvelopeError::Undecryptable);
        }
        open_from(&key, &bytes, aad)
    }

    /// The Ed25519 signature of a checkpoint, base64url.
    pub fn sign_checkpoint(&self, statement: &CheckpointStatement) -> String {
        URL_SAFE_NO_PAD.encode(self.checkpoint.sign(&statement.to_bytes()).as_ref())
    }

    /// The Ed25519 signature of a retention base: the chain kept after a trim starts after
    /// `statement.seq`, whose MAC is `statement.mac`. Only the retention job signs these.
    pub fn sign_retention_base(&self, statement: &CheckpointStatement) -> String {
        URL_SAFE_NO_PAD.encode(self.checkpoint.sign(&statement.to_bytes_as(RETENTION_BASE)).as_ref())
    }

    /// The MAC an entry gets when it is written (before it has a place in the chain), over
    /// a random `nonce` and everything stored: a waiting row forged or altered in the
    /// database fails it, and a copied one repeats a MAC the database keeps unique.
    pub fn entry_mac(&self, nonce: &str, entry: &ChainLink<'_>) -> String {
        let mut input = b"latchkey audit entry v1".to_vec();
        push_field(&mut input, nonce.as_bytes());
        input.extend(Self::link_input("", &ChainLink { seq: 0, ..*entry }));
        hex::encode(hmac::sign(&self.chain, &input).as_ref())
    }

    pub fn verify_entry_mac(&self, nonce: &str, entry: &ChainLink<'_>, mac: &str) -> bool {
        let mut input = b"latchkey audit entry v1".to_vec();
        push_field(&mut input, nonce.as_bytes());
        input.extend(Self::link_input("", &ChainLink { seq: 0, ..*entry }));
        hex::decode(mac).is_ok_and(|tag| hmac::verify(&self.chain, &input, &tag).is_ok())
    }

    /// The public key checkpoints verify with, base64url: an auditor can check a
    /// checkpoint with it and without the master key.
    pub fn checkpoint_public_key(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.checkpoint.public_key().as_ref())
    }
}

const RETENTION_BASE: &[u8] = b"latchkey audit retention base v1";

/// Whether `signature` is a retention-base signature of `statement` under `public_key`.
pub fn verify_retention_base(public_key: &str, statement: &CheckpointStatement, signature: &str) -> bool {
    let (Ok(key), Ok(sig)) = (URL_SAFE_NO_PAD.decode(public_key), URL_SAFE_NO_PAD.decode(signature)) else {
        return false;
    };
    UnparsedPublicKey::new(&ED25519, key).verify(&statement.to_bytes_as(RETENTION_BASE), &sig).is_ok()
}

/// Whether `signature` is a checkpoint signature of `statement` under `public_key`
/// (both base64url, as `AuditKeys` writes them).
pub fn verify_checkpoint(public_key: &str, statement: &CheckpointStatement, signature: &str) -> bool {
    let (Ok(key), Ok(sig)) = (URL_SAFE_NO_PAD.decode(public_key), URL_SAFE_NO_PAD.decode(signature)) else {
        return false;
    };
    UnparsedPublicKey::new(&ED25519, key).verify(&statement.to_bytes(), &sig).is_ok()
}

impl std::fmt::Debug for AuditKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditKeys(<hidden>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry<'a>(seq: i64, sealed: &'a str) -> ChainLink<'a> {
        ChainLink {
            tenant: "default",
            seq,
            at: 1_800_000_000,
            action: "user.created",
            actor_ref: "p_a",
            target_ref: "p_b",
            sealed,
        }
    }

    #[test]
    fn a_link_verifies_only_for_the_same_fields_key_and_predecessor() {
        let master = MasterKey::generate();
        let keys = AuditKeys::derive(&master);
        let genesis = keys.genesis("default");
        let mac = keys.link(&genesis, &entry(1, "abc"));
        assert!(keys.verify_link(&genesis, &entry(1, "abc"), &mac));
        assert!(!keys.verify_link(&genesis, &entry(2, "abc"), &mac), "another position");
        assert!(!keys.verify_link(&genesis, &entry(1, "abd"), &mac), "another ciphertext");
        assert!(!keys.verify_link(&mac, &entry(1, "abc"), &mac), "another predecessor");
        assert!(!AuditKeys::derive(&MasterKey::generate()).verify_link(&genesis, &entry(1, "abc"), &mac));
        assert!(!keys.verify_link(&genesis, &entry(1, "abc"), "not hex"));
        assert_ne!(keys.genesis("default"), keys.genesis("other"));
    }

    #[test]
    fn pseudonyms_are_stable_per_tenant_and_hide_the_id() {
        let keys = AuditKeys::derive(&MasterKey::generate());
        let p = keys.pseudonym("default", "user:ada");
        assert_eq!(p, keys.pseudonym("default", "user:ada"));
        assert_ne!(p, keys.pseudonym("other", "user:ada"));
        assert_ne!(p, keys.pseudonym("default", "user:adb"));
        assert!(!p.contains("ada"));
        assert_eq!(p.len(), 2 + 22);
    }

    #[test]
    fn sealed_data_opens_only_with_the_subjects_salt() {
        let keys = AuditKeys::derive(&MasterKey::generate());
        let salt = AuditKeys::new_subject_salt();
        let sealed = keys.seal(&salt, b"ada@example.com", b"aad").unwrap_or_else(|e| panic!("{e}"));
        assert!(!sealed.contains("ada"));
        assert_eq!(keys.open(&salt, &sealed, b"aad").as_deref(), Ok(&b"ada@example.com"[..]));
        assert!(keys.open(&AuditKeys::new_subject_salt(), &sealed, b"aad").is_err());
        assert!(keys.open(&salt, &sealed, b"other").is_err());
        assert!(keys.open(&salt, "AAAA", b"aad").is_err());
    }

    #[test]
    fn checkpoints_verify_with_the_public_key_only_as_signed() {
        let keys = AuditKeys::derive(&MasterKey::generate());
        let statement = CheckpointStatement { tenant: "default".into(), seq: 7, mac: "ab".into(), at: 5 };
        let sig = keys.sign_checkpoint(&statement);
        let public = keys.checkpoint_public_key();
        assert!(verify_checkpoint(&public, &statement, &sig));
        assert!(!verify_checkpoint(&public, &CheckpointStatement { seq: 6, ..statement.clone() }, &sig));
        let other = AuditKeys::derive(&MasterKey::generate()).checkpoint_public_key();
        assert!(!verify_checkpoint(&other, &statement, &sig));
        assert!(!verify_checkpoint(&public, &statement, "!!"));
        // A checkpoint's signature is no retention base's, nor the other way round.
        assert!(!verify_retention_base(&public, &statement, &sig));
        let base = keys.sign_retention_base(&statement);
        assert!(verify_retention_base(&public, &statement, &base));
        assert!(!verify_checkpoint(&public, &statement, &base));
    }

    #[test]
    fn an_entry_mac_covers_its_nonce_and_every_field() {
        let keys = AuditKeys::derive(&MasterKey::generate());
        let mac = keys.entry_mac("n1", &entry(0, "abc"));
        assert!(keys.verify_entry_mac("n1", &entry(0, "abc"), &mac));
        assert!(!keys.verify_entry_mac("n2", &entry(0, "abc"), &mac));
        assert!(!keys.verify_entry_mac("n1", &entry(0, "abd"), &mac));
        assert!(!keys.verify_entry_mac("n1", &ChainLink { actor_ref: "p_x", ..entry(0, "abc") }, &mac));
    }
}
