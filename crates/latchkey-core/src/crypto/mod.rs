//! Cryptography, all through aws-lc-rs (the binary's one crypto provider) except Argon2id,
//! which aws-lc-rs does not offer, and bcrypt, verified for imported hashes only.

pub mod audit_keys;
pub mod envelope;
pub mod password;
pub mod personal_data;
pub mod random;
pub mod recovery_code;
pub mod signing;
pub mod token_hash;
pub mod totp;

pub use audit_keys::{AuditKeys, ChainLink, CheckpointStatement, verify_checkpoint, verify_retention_base};
pub use envelope::{EnvelopeError, MasterKey};
pub use password::{HashScheme, PasswordError, PasswordHash, PasswordPolicy};
pub use personal_data::PersonalDataKeys;
pub use signing::{KeyError, PublicJwk, SigningKeyPair};
pub use token_hash::{TokenHash, TokenHasher};
pub use totp::{TotpError, TotpSecret};
