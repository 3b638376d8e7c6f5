//! What Latchkey keeps, as the store hands it over and takes it: users, clients, keys,
//! grants, sessions, factors, audit events. Plain data in domain types; the rules about
//! them live in the service crate, the SQL in the store.

mod access;
mod admin;
mod audit;
mod changes;
mod erasure;
mod factors;
mod federation;
mod identity;
mod oauth;
mod outbox;
mod sessions;

pub use access::*;
pub use admin::{AuditQuery, IdempotentClaim, MAX_PAGE, UserQuery, like_prefix};
pub use audit::{Actor, AuditEvent};
pub use changes::Change;
pub use erasure::{ErasureReceipt, ErasureRequest};
pub use factors::*;
pub use federation::{FederatedIdentity, NewFederatedIdentity};
pub use identity::*;
pub use oauth::*;
pub use outbox::{Channel, NewMessage, NewOneTimeToken, OneTimeToken, QueuedMessage, SendOutcome};
pub use sessions::*;
