//! The client IP is the socket peer, unless that peer is a configured trusted proxy; then
//! the right-most `X-Forwarded-For` entry that is not itself a trusted proxy. A forwarded
//! header from anyone else is ignored (rate limits, audit and `/metrics` access depend on it).

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use ipnet::IpNet;

use crate::state::AppState;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

pub use latchkey_service::sign_in::per_ip;

pub fn resolve(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    // A dual-stack listener reports IPv4 peers as ::ffff:a.b.c.d; compare them as IPv4.
    let peer = peer.to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let forwarded: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse::<IpAddr>().ok())
        .map(|ip| ip.to_canonical())
        .collect();
    forwarded.into_iter().rev().find(|ip| !is_trusted(ip)).unwrap_or(peer)
}

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map_or(IpAddr::from([0, 0, 0, 0]), |c| c.0.ip());
        Ok(ClientIp(resolve(peer, &parts.headers, &state.config.server.trusted_proxies)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", xff.parse().unwrap_or_else(|_| panic!("header")));
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|_| panic!("{s}"))
    }

    #[test]
    fn forwarded_headers_from_untrusted_peers_are_ignored() {
        assert_eq!(resolve(ip("203.0.113.9"), &headers("10.0.0.1"), &[]), ip("203.0.113.9"));
        let trusted: Vec<IpNet> = vec!["192.0.2.0/24".parse().unwrap_or_else(|_| panic!("net"))];
        assert_eq!(resolve(ip("203.0.113.9"), &headers("10.0.0.1"), &trusted), ip("203.0.113.9"));
    }

    #[test]
    fn trusted_proxies_yield_the_rightmost_untrusted_address() {
        let trusted: Vec<IpNet> = vec!["192.0.2.0/24".parse().unwrap_or_else(|_| panic!("net"))];
        // A client may prepend anything; only what our proxies appended counts.
        let h = headers("6.6.6.6, 198.51.100.7, 192.0.2.3");
        assert_eq!(resolve(ip("192.0.2.1"), &h, &trusted), ip("198.51.100.7"));
        assert_eq!(resolve(ip("192.0.2.1"), &HeaderMap::new(), &trusted), ip("192.0.2.1"));
        assert_eq!(resolve(ip("192.0.2.1"), &headers("garbage"), &trusted), ip("192.0.2.1"));
    }
}
