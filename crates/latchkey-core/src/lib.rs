//! Latchkey's domain: types that are valid by construction, protocol rules and cryptography.
//!
//! Nothing in this crate performs I/O. The HTTP edge parses requests into these types; the
//! services and the store rely on them being valid.

pub mod access_rules;
pub mod clock;
pub mod crypto;
pub mod domain;
pub mod duration;
pub mod records;
mod redact;
pub mod user_agent;

pub use clock::{Clock, UnixTime};
pub use redact::redact_url;
