//! Cryptography, all through aws-lc-rs (the binary's one crypto provider) except Argon2id,
//! which aws-lc-rs does not offer.

pub mod envelope;
pub mod password;
pub mod random;
pub mod signing;
pub mod token_hash;

pub use envelope::{EnvelopeError, MasterKey};
pub use password::{PasswordError, PasswordHash, PasswordPolicy};
pub use signing::{KeyError, PublicJwk, SigningKeyPair};
pub use token_hash::{TokenHash, TokenHasher};
