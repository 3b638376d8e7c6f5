//! Latchkey's HTTP edge: the axum application, its routes, pages and middleware. Every rule
//! lives in `latchkey-service`; a handler parses the request into domain types, calls a
//! service, and turns the answer into a response.

#[cfg(all(feature = "test-clock", not(debug_assertions)))]
compile_error!("the test-clock feature lets anyone move the server clock; it must never be in a release build");

pub mod account;
pub mod account_forms;
pub mod account_recovery;
pub mod admin_api;
pub mod app;
pub mod attempt_limits;
pub mod browser;
pub mod completion;
mod connections;
pub mod edge;
pub mod email_links;
pub mod federation;
pub mod forward_auth;
pub mod login;
pub mod not_me;
pub mod oauth;
pub mod oidc;
pub mod opt_ins;
pub mod pages;
pub mod routes;
pub mod serve;
pub mod sessions;
pub mod signup;
pub mod state;
pub mod templates;

pub use latchkey_service::{Foundation, StartupError};
pub use serve::{RunningServer, start};
