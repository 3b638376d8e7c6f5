//! Test databases and sample records for the tests of the service, the server and the CLI.

pub use latchkey_store::testing::*;

/// The store under the services, for tests that must set up or inspect what no service
/// offers (expired rows for the cleanup, data stored before a rule existed).
pub fn store_of(services: &crate::Latchkey) -> std::sync::Arc<dyn latchkey_store::Store> {
    services.store.clone()
}

/// The kinds of expired rows the cleanup removes, for tests that run it ([`clean`]).
pub use latchkey_store::cleanup::Expired;
