//! `[server.limits]`: how long a client may take over each part of a request, and how many
//! connections it may hold. A client that is slow on purpose (slowloris) or opens hundreds
//! of connections must not tie up what everyone else needs.

use std::time::Duration;

use latchkey_core::duration::serde_human;
use serde::{Deserialize, Serialize};

use super::{ConfigError, ConfigSource};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerLimits {
    /// Time for a request's headers to arrive, from when the server starts waiting for
    /// them: on a new connection the first request's, on a kept-alive HTTP/1.1 connection
    /// the next one's. With TLS the handshake gets the same time again before that.
    #[serde(with = "serde_human")]
    pub header_timeout: Duration,
    /// Time for a request's body to arrive, from when its headers did.
    #[serde(with = "serde_human")]
    pub body_timeout: Duration,
    /// A connection with no request in progress for this long is closed.
    #[serde(with = "serde_human")]
    pub idle_timeout: Duration,
    /// Time for a whole request, from its headers to the response (answered `408`).
    #[serde(with = "serde_human")]
    pub request_timeout: Duration,
    /// Open connections, all clients together; more are closed as soon as they are accepted.
    pub max_connections: usize,
    /// Open connections per client IP (per IPv4 address, per IPv6 /64). A trusted proxy's
    /// connections count towards `max_connections` only.
    pub max_connections_per_ip: usize,
    /// Requests in progress at once on one HTTP/2 connection.
    pub http2_max_concurrent_streams: u32,
    /// Size of a request's headers, in bytes: HTTP/2's header list, HTTP/1.1's request line
    /// and headers.
    pub max_header_size: u32,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(60),
            max_connections: 1_024,
            max_connections_per_ip: 64,
            http2_max_concurrent_streams: 100,
            max_header_size: 16 * 1_024,
        }
    }
}

/// hyper refuses a smaller HTTP/1.1 buffer (and panics when given one).
pub const MIN_HEADER_SIZE: u32 = 8 * 1_024;

impl ServerLimits {
    pub(super) fn check(&self, s: &ConfigSource) -> Result<(), ConfigError> {
        for (key, value) in [
            ("header_timeout", self.header_timeout),
            ("body_timeout", self.body_timeout),
            ("idle_timeout", self.idle_timeout),
            ("request_timeout", self.request_timeout),
        ] {
            if value.is_zero() {
                return Err(ConfigError::invalid(s, &format!("server.limits.{key}"), "must be more than 0s"));
            }
        }
        for (key, value) in [
            ("max_connections", self.max_connections),
            ("max_connections_per_ip", self.max_connections_per_ip),
            ("http2_max_concurrent_streams", self.http2_max_concurrent_streams as usize),
        ] {
            if value == 0 {
                return Err(ConfigError::invalid(s, &format!("server.limits.{key}"), "must be at least 1"));
            }
        }
        if self.max_header_size < MIN_HEADER_SIZE {
            return Err(ConfigError::invalid(
                s,
                "server.limits.max_header_size",
                format!("must be at least {MIN_HEADER_SIZE} (bytes)"),
            ));
        }
        Ok(())
    }
}
