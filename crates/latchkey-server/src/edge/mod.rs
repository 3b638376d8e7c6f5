//! What every request passes through: client IP, request id, security headers, metrics,
//! CORS for browser apps, the request's tenant; and the one parser of the `Authorization`
//! header.

pub mod authorization;
pub mod client_ip;
pub mod cors;
pub mod headers;
pub mod metrics;
pub mod tenant;

pub use client_ip::ClientIp;
pub use tenant::Tenant;
