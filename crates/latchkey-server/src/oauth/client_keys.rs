//! Client public keys for `private_key_jwt` (RFC 7523): from the registered `jwks`, or
//! fetched from `jwks_uri`. Fetches are https only and never to loopback, private or
//! link-local addresses (a client must not make Latchkey probe its network), unless
//! `clients.allow_insecure_jwks_uri` says so; they time out, are size-bounded, and cached.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use latchkey_store::Client;
use serde_json::Value;

const CACHE_FOR: Duration = Duration::from_secs(300);
/// A key id the cache does not know triggers a refetch, at most this often.
const REFETCH_AFTER: Duration = Duration::from_secs(10);
const MAX_BYTES: usize = 64 * 1024;

#[derive(Default)]
pub struct ClientKeyCache {
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

fn forbidden_ip(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.octets()[0] == 100 && (64..128).contains(&v4.octets()[1]) // CGNAT 100.64/10
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || (v6.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

impl ClientKeyCache {
    /// The client's JWK set; `refresh` asks for a fresh copy of a fetched one.
    pub async fn keys(&self, client: &Client, allow_insecure: bool, refresh: bool) -> Result<Value, ClientKeyError> {
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
        let fresh = fetch(uri, allow_insecure).await?;
        if let Ok(mut m) = self.fetched.write() {
            m.insert(uri.to_owned(), (Instant::now(), fresh.clone()));
        }
        Ok(fresh)
    }
}

async fn fetch(uri: &str, allow_insecure: bool) -> Result<Value, ClientKeyError> {
    let url = url::Url::parse(uri).map_err(|_| ClientKeyError::Refused("not a URL".into()))?;
    if url.scheme() != "https" && !allow_insecure {
        return Err(ClientKeyError::Refused("only https is allowed".into()));
    }
    let host = url.host_str().ok_or_else(|| ClientKeyError::Refused("no host".into()))?.to_owned();
    let port = url.port_or_known_default().unwrap_or(443);
    let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host.trim_matches(['[', ']']), port))
        .await
        .map_err(|e| ClientKeyError::Fetch(format!("cannot resolve {host}: {e}")))?
        .collect();
    let addr = addrs.iter().find(|a| allow_insecure || !forbidden_ip(a.ip())).copied().ok_or_else(|| {
        ClientKeyError::Refused(format!("{host} resolves only to loopback, private or link-local addresses"))
    })?;
    // Pin the checked address, so a second DNS answer cannot point the request elsewhere.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .resolve(&host, addr)
        .no_proxy()
        .build()
        .map_err(|e| ClientKeyError::Fetch(e.to_string()))?;
    let response = http.get(url.as_str()).send().await.map_err(|e| ClientKeyError::Fetch(e.to_string()))?;
    if !response.status().is_success() {
        return Err(ClientKeyError::Fetch(format!("status {}", response.status())));
    }
    if response.content_length().is_some_and(|n| n > MAX_BYTES as u64) {
        return Err(ClientKeyError::Fetch("response too large".into()));
    }
    let body = response.bytes().await.map_err(|e| ClientKeyError::Fetch(e.to_string()))?;
    if body.len() > MAX_BYTES {
        return Err(ClientKeyError::Fetch("response too large".into()));
    }
    let v: Value = serde_json::from_slice(&body).map_err(|_| ClientKeyError::BadJwks)?;
    if v["keys"].is_array() { Ok(v) } else { Err(ClientKeyError::BadJwks) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_forbidden() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.1.1",
            "172.16.0.1",
            "169.254.169.254",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(forbidden_ip(ip.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))), "{ip}");
        }
        assert!(!forbidden_ip("93.184.216.34".parse().unwrap_or(IpAddr::from([127, 0, 0, 1]))));
    }
}
