//! Client public keys for `private_key_jwt` (RFC 7523): from the registered `jwks`, or
//! fetched from `jwks_uri` through the outbound guard (`crate::outbound`: https, no
//! special-purpose address unless `outbound.allow` opens it for `jwks_uri`, pinned, no
//! redirects, size-bounded while read, timed out), and cached.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use latchkey_core::records::Client;
use serde_json::Value;

use crate::outbound::{Outbound, OutboundError, Purpose, Request};

const CACHE_FOR: Duration = Duration::from_secs(300);
/// A key id the cache does not know triggers a refetch, at most this often.
const REFETCH_AFTER: Duration = Duration::from_secs(10);
const MAX_BYTES: usize = 64 * 1024;

pub struct ClientKeyCache {
    outbound: Arc<Outbound>,
    fetched: RwLock<HashMap<String, (Instant, Value)>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientKeyError {
    #[error("the client has no registered keys (jwks or jwks_uri)")]
    NoKeys,
    #[error("the registered jwks is not a JWK set")]
    BadJwks,
    #[error("jwks_uri is refused: {0}")]
    Refused(String),
    #[error("fetching jwks_uri failed: {0}")]
    Fetch(String),
}

impl ClientKeyCache {
    pub fn new(outbound: Arc<Outbound>) -> Self {
        Self { outbound, fetched: RwLock::default() }
    }

    /// The client's JWK set; `refresh` asks for a fresh copy of a fetched one.
    pub async fn keys(&self, client: &Client, refresh: bool) -> Result<Value, ClientKeyError> {
        if let Some(jwks) = &client.jwks {
            let v: Value = serde_json::from_str(jwks).map_err(|_| ClientKeyError::BadJwks)?;
            return if v["keys"].is_array() { Ok(v) } else { Err(ClientKeyError::BadJwks) };
        }
        let uri = client.jwks_uri.as_deref().ok_or(ClientKeyError::NoKeys)?;
        let cached = self.fetched.read().ok().and_then(|m| m.get(uri).cloned());
        if let Some((at, v)) = &cached {
            let age = at.elapsed();
            if age < CACHE_FOR && !(refresh && age > REFETCH_AFTER) {
                return Ok(v.clone());
            }
        }
        let fresh = self.fetch(uri).await?;
        if let Ok(mut m) = self.fetched.write() {
            m.insert(uri.to_owned(), (Instant::now(), fresh.clone()));
        }
        Ok(fresh)
    }

    async fn fetch(&self, uri: &str) -> Result<Value, ClientKeyError> {
        let failed = |e: OutboundError| match e {
            OutboundError::Refused(r) => ClientKeyError::Refused(r.to_string()),
            OutboundError::TooLarge(_) => ClientKeyError::Fetch("response too large".into()),
            other => ClientKeyError::Fetch(other.to_string()),
        };
        let response = self.outbound.send(Purpose::JwksUri, Request::get(uri)).await.map_err(failed)?;
        if !(200..300).contains(&response.status()) {
            return Err(ClientKeyError::Fetch(format!("status {}", response.status())));
        }
        let body = response.body(MAX_BYTES).await.map_err(failed)?;
        let v: Value = serde_json::from_slice(&body).map_err(|_| ClientKeyError::BadJwks)?;
        if v["keys"].is_array() { Ok(v) } else { Err(ClientKeyError::BadJwks) }
    }
}
