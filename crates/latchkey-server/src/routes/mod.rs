//! The HTTP routes, one module per area.

pub mod health;
pub mod jwks;
pub mod not_found;
#[cfg(feature = "test-clock")]
pub mod test_clock;
