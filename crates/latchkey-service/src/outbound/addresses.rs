//! Which IP addresses a request may reach without an `outbound.allow` entry: every address
//! outside the IANA special-purpose registries (IPv4: RFC 6890 and its updates; IPv6:
//! RFC 6890, RFC 8190 and later registrations), multicast and, for IPv6, outside global
//! unicast `2000::/3`. Blocks the registry marks "globally reachable" (AS112, AMT, the
//! anycast addresses in 192.0.0.0/24) are refused too: none of them serves a web API.
//!
//! Addresses that carry an IPv4 address (IPv4-mapped and -compatible, NAT64, 6to4) are
//! judged by that IPv4 address: `64:ff9b::7f00:1` reaches 127.0.0.1 through a translator.
//! Written by hand: no maintained crate classifies addresses against these registries
//! (`std`'s `is_global` is unstable and does not look inside NAT64 or 6to4).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// A special-purpose block an address fell into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpecialRange {
    pub block: IpNet,
    pub name: &'static str,
    /// The embedded IPv4 address that was judged, when the address was an IPv6 one.
    pub via: Option<Ipv4Addr>,
}

impl fmt::Display for SpecialRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.via {
            Some(v4) => write!(f, "embeds {v4}, which is in {} ({})", self.block, self.name),
            None => write!(f, "is in {} ({})", self.block, self.name),
        }
    }
}

const fn v4(a: u8, b: u8, c: u8, d: u8, len: u8) -> IpNet {
    IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), len))
}

#[allow(clippy::too_many_arguments)]
const fn v6(a: u16, b: u16, c: u16, d: u16, e: u16, f: u16, g: u16, h: u16, len: u8) -> IpNet {
    IpNet::V6(Ipv6Net::new_assert(Ipv6Addr::new(a, b, c, d, e, f, g, h), len))
}

/// IANA IPv4 Special-Purpose Address Registry, every entry, and multicast (RFC 5771).
/// More specific blocks come first so that the name given is the most precise one.
const IPV4: &[(IpNet, &str)] = &[
    (v4(0, 0, 0, 0, 8), "\"this network\", RFC 791"),
    (v4(10, 0, 0, 0, 8), "private-use, RFC 1918"),
    (v4(100, 64, 0, 0, 10), "shared address space (CGNAT), RFC 6598"),
    (v4(127, 0, 0, 0, 8), "loopback, RFC 1122"),
    (v4(169, 254, 0, 0, 16), "link-local, RFC 3927"),
    (v4(172, 16, 0, 0, 12), "private-use, RFC 1918"),
    (v4(192, 0, 0, 0, 24), "IETF protocol assignments, RFC 6890"),
    (v4(192, 0, 2, 0, 24), "documentation (TEST-NET-1), RFC 5737"),
    (v4(192, 31, 196, 0, 24), "AS112-v4, RFC 7535"),
    (v4(192, 52, 193, 0, 24), "AMT, RFC 7450"),
    (v4(192, 88, 99, 0, 24), "deprecated 6to4 relay anycast, RFC 7526"),
    (v4(192, 168, 0, 0, 16), "private-use, RFC 1918"),
    (v4(192, 175, 48, 0, 24), "direct delegation AS112 service, RFC 7534"),
    (v4(198, 18, 0, 0, 15), "benchmarking, RFC 2544"),
    (v4(198, 51, 100, 0, 24), "documentation (TEST-NET-2), RFC 5737"),
    (v4(203, 0, 113, 0, 24), "documentation (TEST-NET-3), RFC 5737"),
    (v4(224, 0, 0, 0, 4), "multicast, RFC 5771"),
    (v4(255, 255, 255, 255, 32), "limited broadcast, RFC 919"),
    (v4(240, 0, 0, 0, 4), "reserved, RFC 1112"),
];

/// IANA IPv6 Special-Purpose Address Registry, every entry, plus the deprecated site-local
/// block and multicast. The forms that embed IPv4 are handled before this table.
const IPV6: &[(IpNet, &str)] = &[
    (v6(0, 0, 0, 0, 0, 0, 0, 1, 128), "loopback, RFC 4291"),
    (v6(0, 0, 0, 0, 0, 0, 0, 0, 128), "unspecified, RFC 4291"),
    (v6(0x64, 0xff9b, 1, 0, 0, 0, 0, 0, 48), "local-use IPv4/IPv6 translation, RFC 8215"),
    (v6(0x100, 0, 0, 0, 0, 0, 0, 0, 64), "discard-only, RFC 6666"),
    (v6(0x100, 0, 0, 1, 0, 0, 0, 0, 64), "dummy IPv6 prefix, RFC 9780"),
    (v6(0x2001, 0, 0, 0, 0, 0, 0, 0, 32), "Teredo, RFC 4380"),
    (v6(0x2001, 2, 0, 0, 0, 0, 0, 0, 48), "benchmarking, RFC 5180"),
    (v6(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0, 32), "documentation, RFC 3849"),
    (v6(0x2001, 0, 0, 0, 0, 0, 0, 0, 23), "IETF protocol assignments, RFC 2928"),
    (v6(0x2620, 0x4f, 0x8000, 0, 0, 0, 0, 0, 48), "direct delegation AS112 service, RFC 7534"),
    (v6(0x3fff, 0, 0, 0, 0, 0, 0, 0, 20), "documentation, RFC 9637"),
    (v6(0x5f00, 0, 0, 0, 0, 0, 0, 0, 16), "segment routing (SRv6) SIDs, RFC 9602"),
    (v6(0xfc00, 0, 0, 0, 0, 0, 0, 0, 7), "unique-local, RFC 4193"),
    (v6(0xfe80, 0, 0, 0, 0, 0, 0, 0, 10), "link-local, RFC 4291"),
    (v6(0xfec0, 0, 0, 0, 0, 0, 0, 0, 10), "deprecated site-local, RFC 3879"),
    (v6(0xff00, 0, 0, 0, 0, 0, 0, 0, 8), "multicast, RFC 4291"),
];

/// Everything IANA hands out as IPv6 unicast lies here (RFC 4291 §2.4); the rest is reserved.
const GLOBAL_UNICAST: IpNet = v6(0x2000, 0, 0, 0, 0, 0, 0, 0, 3);
const NOT_GLOBAL_UNICAST: &str = "reserved by the IETF, outside global unicast 2000::/3 (RFC 4291)";

/// The IPv4 address an IPv6 address carries, for the forms that carry exactly one:
/// IPv4-mapped `::ffff:0:0/96` and IPv4-compatible `::/96` (RFC 4291 §2.5.5), NAT64
/// `64:ff9b::/96` (RFC 6052 §2.1: only the /96 layout) and 6to4 `2002::/16` (RFC 3056 §2).
pub fn embedded_ipv4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let o = ip.octets();
    let last = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    let s = ip.segments();
    match s {
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some(last),
        // `::` and `::1` are not IPv4-compatible addresses (RFC 4291 §2.5.5.1).
        [0, 0, 0, 0, 0, 0, 0, 0 | 1] => None,
        [0, 0, 0, 0, 0, 0, _, _] => Some(last),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(last),
        [0x2002, _, _, ..] => Some(Ipv4Addr::new(o[2], o[3], o[4], o[5])),
        _ => None,
    }
}

/// The IPv4 addresses a local-use NAT64 address (`64:ff9b:1::/48`, RFC 8215) may carry:
/// the network chooses the prefix length, so every RFC 6052 §2.2 layout that fits inside a
/// /48 (prefixes of 96, 64, 56 and 48 bits; bits 64-71 are the reserved "u" octet).
fn local_nat64_candidates(ip: Ipv6Addr) -> Option<[Ipv4Addr; 4]> {
    let s = ip.segments();
    if s[0..3] != [0x64, 0xff9b, 1] {
        return None;
    }
    let o = ip.octets();
    Some([
        Ipv4Addr::new(o[12], o[13], o[14], o[15]),
        Ipv4Addr::new(o[9], o[10], o[11], o[12]),
        Ipv4Addr::new(o[7], o[9], o[10], o[11]),
        Ipv4Addr::new(o[6], o[7], o[9], o[10]),
    ])
}

fn special_v4(ip: Ipv4Addr) -> Option<SpecialRange> {
    IPV4.iter().find(|(block, _)| block.contains(&IpAddr::V4(ip))).map(|&(block, name)| SpecialRange {
        block,
        name,
        via: None,
    })
}

/// The special-purpose block `ip` falls into, or `None` for an address on the public
/// internet.
pub fn special_range(ip: IpAddr) -> Option<SpecialRange> {
    match ip {
        IpAddr::V4(v4) => special_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = embedded_ipv4(v6) {
                return special_v4(v4).map(|r| SpecialRange { via: Some(v4), ..r });
            }
            if let Some(candidates) = local_nat64_candidates(v6) {
                // Any layout that lands on a special address is enough to refuse.
                if let Some(r) =
                    candidates.iter().find_map(|&c| special_v4(c).map(|r| SpecialRange { via: Some(c), ..r }))
                {
                    return Some(r);
                }
                return None;
            }
            if let Some(&(block, name)) = IPV6.iter().find(|(block, _)| block.contains(&ip)) {
                return Some(SpecialRange { block, name, via: None });
            }
            if !GLOBAL_UNICAST.contains(&ip) {
                let block = IpNet::V6(Ipv6Net::new_assert(v6, 128)).trunc();
                return Some(SpecialRange { block, name: NOT_GLOBAL_UNICAST, via: None });
            }
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(raw: &str) -> IpAddr {
        raw.parse().unwrap_or_else(|e| panic!("{raw}: {e}"))
    }

    fn block_of(raw: &str) -> Option<String> {
        special_range(ip(raw)).map(|r| r.block.to_string())
    }

    #[test]
    fn every_ipv4_special_purpose_block_is_refused() {
        for (addr, block) in [
            ("0.0.0.0", "0.0.0.0/8"),
            ("0.255.255.255", "0.0.0.0/8"),
            ("10.0.0.1", "10.0.0.0/8"),
            ("10.255.255.255", "10.0.0.0/8"),
            ("100.64.0.1", "100.64.0.0/10"),
            ("100.127.255.254", "100.64.0.0/10"),
            ("127.0.0.1", "127.0.0.0/8"),
            ("127.255.0.1", "127.0.0.0/8"),
            ("169.254.169.254", "169.254.0.0/16"),
            ("172.16.0.1", "172.16.0.0/12"),
            ("172.31.255.255", "172.16.0.0/12"),
            ("192.0.0.8", "192.0.0.0/24"),
            ("192.0.0.170", "192.0.0.0/24"),
            ("192.0.2.10", "192.0.2.0/24"),
            ("192.31.196.1", "192.31.196.0/24"),
            ("192.52.193.1", "192.52.193.0/24"),
            ("192.88.99.1", "192.88.99.0/24"),
            ("192.168.1.1", "192.168.0.0/16"),
            ("192.175.48.1", "192.175.48.0/24"),
            ("198.18.0.1", "198.18.0.0/15"),
            ("198.19.255.255", "198.18.0.0/15"),
            ("198.51.100.7", "198.51.100.0/24"),
            ("203.0.113.9", "203.0.113.0/24"),
            ("224.0.0.1", "224.0.0.0/4"),
            ("239.255.255.250", "224.0.0.0/4"),
            ("240.0.0.1", "240.0.0.0/4"),
            ("254.1.2.3", "240.0.0.0/4"),
            ("255.255.255.255", "255.255.255.255/32"),
        ] {
            assert_eq!(block_of(addr).as_deref(), Some(block), "{addr}");
        }
    }

    #[test]
    fn public_ipv4_neighbours_of_the_special_blocks_pass() {
        for addr in [
            "1.1.1.1",
            "9.255.255.255",
            "11.0.0.0",
            "93.184.216.34",
            "100.63.255.255",
            "100.128.0.0",
            "126.255.255.255",
            "128.0.0.0",
            "169.253.255.255",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.1.0",
            "192.0.3.0",
            "192.167.255.255",
            "192.169.0.0",
            "198.17.255.255",
            "198.20.0.0",
            "203.0.112.255",
            "223.255.255.255",
        ] {
            assert_eq!(block_of(addr), None, "{addr}");
        }
    }

    #[test]
    fn every_ipv6_special_purpose_block_is_refused() {
        for (addr, block) in [
            ("::", "::/128"),
            ("::1", "::1/128"),
            ("100::1", "100::/64"),
            ("100:0:0:1::1", "100:0:0:1::/64"),
            ("2001::1", "2001::/32"),
            ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "2001::/32"),
            ("2001:1::1", "2001::/23"),
            ("2001:1::2", "2001::/23"),
            ("2001:2::1", "2001:2::/48"),
            ("2001:3::1", "2001::/23"),
            ("2001:4:112::1", "2001::/23"),
            ("2001:10::1", "2001::/23"),
            ("2001:20::1", "2001::/23"),
            ("2001:1ff:ffff::1", "2001::/23"),
            ("2001:db8::1", "2001:db8::/32"),
            ("2620:4f:8000::1", "2620:4f:8000::/48"),
            ("3fff::1", "3fff::/20"),
            ("5f00::1", "5f00::/16"),
            ("fc00::1", "fc00::/7"),
            ("fd12:3456::1", "fc00::/7"),
            ("fe80::1", "fe80::/10"),
            ("febf::1", "fe80::/10"),
            ("fec0::1", "fec0::/10"),
            ("ff02::1", "ff00::/8"),
            ("ff0e::1", "ff00::/8"),
        ] {
            assert_eq!(block_of(addr).as_deref(), Some(block), "{addr}");
        }
        // Reserved space outside 2000::/3 is refused as a whole.
        for addr in ["1::1", "4000::1", "e000::1", "fe00::1"] {
            assert!(special_range(ip(addr)).is_some_and(|r| r.name == NOT_GLOBAL_UNICAST), "{addr}");
        }
        for addr in ["2001:200::1", "2001:4860:4860::8888", "2606:4700::1111", "2a00:1450::1", "3ffe::1"] {
            assert_eq!(block_of(addr), None, "{addr}");
        }
    }

    #[test]
    fn addresses_that_embed_ipv4_are_judged_by_it() {
        for (addr, v4, block) in [
            ("::ffff:127.0.0.1", "127.0.0.1", "127.0.0.0/8"),
            ("::ffff:10.0.0.1", "10.0.0.1", "10.0.0.0/8"),
            ("::127.0.0.1", "127.0.0.1", "127.0.0.0/8"),
            ("::169.254.169.254", "169.254.169.254", "169.254.0.0/16"),
            ("64:ff9b::7f00:1", "127.0.0.1", "127.0.0.0/8"),
            ("64:ff9b::a9fe:a9fe", "169.254.169.254", "169.254.0.0/16"),
            ("64:ff9b::c0a8:101", "192.168.1.1", "192.168.0.0/16"),
            ("2002:7f00:1::1", "127.0.0.1", "127.0.0.0/8"),
            ("2002:a00:1::", "10.0.0.1", "10.0.0.0/8"),
            ("2002:c612:1::1", "198.18.0.1", "198.18.0.0/15"),
        ] {
            let r = special_range(ip(addr)).unwrap_or_else(|| panic!("{addr} passed"));
            assert_eq!((r.via.map(|v| v.to_string()), r.block.to_string()), (Some(v4.into()), block.into()), "{addr}");
            assert!(r.to_string().starts_with(&format!("embeds {v4}")), "{r}");
        }
        for addr in ["::ffff:8.8.8.8", "::8.8.8.8", "64:ff9b::808:808", "2002:808:808::1"] {
            assert_eq!(block_of(addr), None, "{addr}: embeds a public IPv4 address");
        }
        assert_eq!(embedded_ipv4("::1".parse().unwrap_or(Ipv6Addr::UNSPECIFIED)), None);
        assert_eq!(embedded_ipv4("64:ff9b:0:1::7f00:1".parse().unwrap_or(Ipv6Addr::UNSPECIFIED)), None);
    }

    #[test]
    fn local_use_nat64_is_refused_if_any_layout_lands_on_a_special_address() {
        // /96 layout: 127.0.0.1 in the last 32 bits.
        assert!(block_of("64:ff9b:1::7f00:1").is_some_and(|b| b == "127.0.0.0/8"));
        // /48 layout: 10.20.30.40 in bits 48-63 and 72-87; every other layout public.
        let crafted = "64:ff9b:1:a14:1e:2801:808:808";
        let r = special_range(ip(crafted)).unwrap_or_else(|| panic!("{crafted} passed"));
        assert_eq!(r.via, Some(Ipv4Addr::new(10, 20, 30, 40)), "{r}");
        // Every layout public: the translator reaches a public address.
        assert_eq!(block_of("64:ff9b:1:808:8:808:808:808"), None);
    }
}
