//! How many connections may be open at once: in all, and per client IP.
//!
//! Counted per socket peer, the only address known when a connection is accepted. A
//! trusted proxy (`server.trusted_proxies`) carries many clients over its connections, so
//! its connections count towards the total only: capping it per IP would cap every client
//! behind it together. Per-client limits for proxied traffic belong to the proxy.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use ipnet::IpNet;

use crate::edge::client_ip::per_ip;

/// Which cap refused a connection (the label of the refusal metric).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    Total,
    PerIp,
}

impl Refused {
    pub fn label(self) -> &'static str {
        match self {
            Refused::Total => "total",
            Refused::PerIp => "per_ip",
        }
    }
}

pub struct Caps {
    max_total: usize,
    max_per_ip: usize,
    open: Mutex<Open>,
}

#[derive(Default)]
struct Open {
    total: usize,
    /// Only networks with open connections: at most `max_total` entries.
    per_ip: HashMap<IpNet, usize>,
}

/// An open connection's place in the counts, given back when it is dropped.
pub struct Slot {
    caps: Arc<Caps>,
    /// `None` for a connection that is not counted per IP (a trusted proxy's).
    ip: Option<IpNet>,
}

impl Caps {
    pub fn new(max_total: usize, max_per_ip: usize) -> Arc<Self> {
        Arc::new(Self { max_total, max_per_ip, open: Mutex::default() })
    }

    /// A place for a connection from `peer`, unless a cap is reached. `per_ip_exempt` for
    /// a trusted proxy.
    pub fn admit(self: &Arc<Self>, peer: IpAddr, per_ip_exempt: bool) -> Result<Slot, Refused> {
        // The counters are only ever changed whole under the lock, so a panic elsewhere
        // cannot leave them half-updated: a poisoned lock is still right.
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if open.total >= self.max_total {
            return Err(Refused::Total);
        }
        let ip = if per_ip_exempt {
            None
        } else {
            let key = per_ip(peer);
            let count = open.per_ip.entry(key).or_insert(0);
            if *count >= self.max_per_ip {
                return Err(Refused::PerIp);
            }
            *count += 1;
            Some(key)
        };
        open.total += 1;
        Ok(Slot { caps: self.clone(), ip })
    }

    /// Open connections: in all, and from `peer`'s network.
    #[cfg(test)]
    pub fn open(&self, peer: IpAddr) -> (usize, usize) {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        (open.total, open.per_ip.get(&per_ip(peer)).copied().unwrap_or(0))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.caps.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.total = open.total.saturating_sub(1);
        if let Some(ip) = self.ip
            && let Some(count) = open.per_ip.get_mut(&ip)
        {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.per_ip.remove(&ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|_| panic!("{s}"))
    }

    #[test]
    fn one_address_cannot_take_more_than_its_share() {
        let caps = Caps::new(10, 2);
        let a = [caps.admit(ip("192.0.2.1"), false), caps.admit(ip("192.0.2.1"), false)];
        assert!(a.iter().all(Result::is_ok));
        assert_eq!(caps.admit(ip("192.0.2.1"), false).err(), Some(Refused::PerIp));
        assert!(caps.admit(ip("192.0.2.2"), false).is_ok(), "another address still gets in");
        drop(a);
        assert!(caps.admit(ip("192.0.2.1"), false).is_ok(), "closed connections give their places back");
    }

    #[test]
    fn an_ipv6_slash_64_counts_as_one_address() {
        let caps = Caps::new(10, 2);
        let _a = caps.admit(ip("2001:db8:0:1::1"), false);
        let _b = caps.admit(ip("2001:db8:0:1::2"), false);
        assert_eq!(caps.admit(ip("2001:db8:0:1:ffff::3"), false).err(), Some(Refused::PerIp));
        assert!(caps.admit(ip("2001:db8:0:2::1"), false).is_ok());
    }

    #[test]
    fn the_total_caps_everyone_and_trusted_proxies_count_only_there() {
        let caps = Caps::new(3, 1);
        let proxy: Vec<_> = (0..2).map(|_| caps.admit(ip("10.0.0.1"), true)).collect();
        assert!(proxy.iter().all(Result::is_ok), "a trusted proxy is not capped per IP");
        let _c = caps.admit(ip("192.0.2.1"), false);
        assert_eq!(caps.admit(ip("192.0.2.2"), false).err(), Some(Refused::Total));
        assert_eq!(caps.open(ip("192.0.2.1")), (3, 1));
        drop(proxy);
        assert_eq!(caps.open(ip("10.0.0.1")), (1, 0));
    }
}
