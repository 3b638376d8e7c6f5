//! Latchkey's HTTP server: configuration, start-up, the axum application, its pages and
//! middleware, caches and background jobs.

#[cfg(all(feature = "test-clock", not(debug_assertions)))]
compile_error!("the test-clock feature lets anyone move the server clock; it must never be in a release build");

pub mod account;
pub mod app;
pub mod attempt_limits;
pub mod cache;
pub mod config;
mod connections;
pub mod edge;
pub mod jobs;
pub mod keys;
pub mod login;
pub mod oauth;
pub mod oidc;
pub mod opt_ins;
pub mod outbound;
pub mod pages;
pub mod passkeys;
pub mod passwords;
pub mod routes;
pub mod serve;
pub mod sessions;
pub mod signup;
pub mod startup;
pub mod templates;
pub mod user_import;

pub use serve::{RunningServer, start};
pub use startup::{Foundation, StartupError};
