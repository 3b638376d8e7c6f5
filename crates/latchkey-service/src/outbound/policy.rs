//! The rules every destination must meet, before and after its name is resolved: https,
//! and no special-purpose address unless `outbound.allow` opens it for this purpose and
//! port. The CLI checks a URI with the same rules when a client is registered; a host name
//! can only be judged when it is resolved, at the moment of the request.

use std::fmt;
use std::net::IpAddr;

use url::{Host, Url};

use super::addresses::{SpecialRange, embedded_ipv4, special_range};
use latchkey_config::{AllowEntry, Purpose};

/// Why the guard will not send a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("`{0}` is not an absolute http(s) URL with a host")]
    NotAUrl(String),
    #[error(
        "`{url}` does not use https; plain http is allowed only to a destination that outbound.allow opens for {purpose} on port {port} with allow_insecure_http = true"
    )]
    InsecureScheme { url: String, purpose: Purpose, port: u16 },
    #[error(
        "{target} {range}, a special-purpose range Latchkey does not send requests to; list it in outbound.allow for {purpose} on port {port} to allow it"
    )]
    SpecialPurpose { target: String, range: SpecialRange, purpose: Purpose, port: u16 },
}

impl Refusal {
    /// The `reason` label of `latchkey_outbound_refused_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::NotAUrl(_) => "not_a_url",
            Refusal::InsecureScheme { .. } => "insecure_scheme",
            Refusal::SpecialPurpose { .. } => "special_purpose_address",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Https,
    Http,
}

/// Where a URL points, as far as the URL itself tells.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: Url,
    pub scheme: Scheme,
    pub host: Host<String>,
    pub port: u16,
}

impl Target {
    /// `scheme://host:port`: the unit a circuit breaker watches.
    pub fn destination(&self) -> String {
        let scheme = match self.scheme {
            Scheme::Https => "https",
            Scheme::Http => "http",
        };
        format!("{scheme}://{}:{}", self.host, self.port)
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.url.as_str())
    }
}

/// The operator's exceptions, and the checks that use them.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    allow: Vec<AllowEntry>,
}

impl Policy {
    pub fn new(allow: &[AllowEntry]) -> Self {
        Self { allow: allow.to_vec() }
    }

    /// The entries that open `ip` for `purpose` on `port`. An address that carries an IPv4
    /// address is also opened by an entry for that IPv4 address (it is judged by it).
    fn entries_for(&self, purpose: Purpose, port: u16, ip: IpAddr) -> impl Iterator<Item = &AllowEntry> {
        let embedded = match ip {
            IpAddr::V6(v6) => embedded_ipv4(v6).map(IpAddr::V4),
            IpAddr::V4(_) => None,
        };
        self.allow.iter().filter(move |e| {
            e.purposes.contains(&purpose)
                && e.ports.contains(&port)
                && (e.cidr.contains(&ip) || embedded.is_some_and(|v4| e.cidr.contains(&v4)))
        })
    }

    /// Parses `raw` and checks what can be checked without resolving it: the scheme, and
    /// the address if the host is an IP literal. This is the whole check for an IP literal;
    /// a host name is judged again, address by address, by [`Policy::check_address`].
    pub fn check_url(&self, purpose: Purpose, raw: &str) -> Result<Target, Refusal> {
        let url = Url::parse(raw).map_err(|_| Refusal::NotAUrl(raw.to_owned()))?;
        let scheme = match url.scheme() {
            "https" => Scheme::Https,
            "http" => Scheme::Http,
            _ => return Err(Refusal::NotAUrl(raw.to_owned())),
        };
        let host = url.host().map(|h| h.to_owned()).ok_or_else(|| Refusal::NotAUrl(raw.to_owned()))?;
        let port = url.port_or_known_default().ok_or_else(|| Refusal::NotAUrl(raw.to_owned()))?;
        let target = Target { url, scheme, host, port };
        match &target.host {
            Host::Ipv4(v4) => self.check_address(purpose, &target, IpAddr::V4(*v4))?,
            Host::Ipv6(v6) => self.check_address(purpose, &target, IpAddr::V6(*v6))?,
            Host::Domain(_) => {
                // Which address the name stands for is known only at the request; http can
                // be right only if some entry allows it for this purpose and port at all.
                let any_http = self
                    .allow
                    .iter()
                    .any(|e| e.allow_insecure_http && e.purposes.contains(&purpose) && e.ports.contains(&port));
                if scheme == Scheme::Http && !any_http {
                    return Err(insecure(purpose, &target));
                }
            }
        }
        Ok(target)
    }

    /// Whether `target` may be reached at `ip` (one address its host resolved to).
    pub fn check_address(&self, purpose: Purpose, target: &Target, ip: IpAddr) -> Result<(), Refusal> {
        let mut entries = self.entries_for(purpose, target.port, ip).peekable();
        match target.scheme {
            // RFC 9700 §4.1 and OIDC: keys and tokens travel over TLS; http only where the
            // operator said so for this very destination.
            Scheme::Http => {
                if entries.any(|e| e.allow_insecure_http) {
                    Ok(())
                } else {
                    Err(insecure(purpose, target))
                }
            }
            Scheme::Https if entries.peek().is_some() => Ok(()),
            Scheme::Https => match special_range(ip) {
                None => Ok(()),
                Some(range) => {
                    let target_name = match &target.host {
                        Host::Domain(name) => format!("{name} resolves to {ip}, which"),
                        _ => ip.to_string(),
                    };
                    Err(Refusal::SpecialPurpose { target: target_name, range, purpose, port: target.port })
                }
            },
        }
    }
}

fn insecure(purpose: Purpose, target: &Target) -> Refusal {
    Refusal::InsecureScheme { url: target.url.to_string(), purpose, port: target.port }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(cidr: &str, purposes: &[Purpose], ports: &[u16], http: bool) -> AllowEntry {
        AllowEntry {
            cidr: cidr.parse().unwrap_or_else(|e| panic!("{cidr}: {e}")),
            purposes: purposes.to_vec(),
            ports: ports.to_vec(),
            allow_insecure_http: http,
        }
    }

    const LOGOUT: Purpose = Purpose::BackchannelLogout;
    const JWKS: Purpose = Purpose::JwksUri;

    #[test]
    fn https_to_public_addresses_passes_and_everything_else_is_refused() {
        let p = Policy::default();
        assert!(p.check_url(JWKS, "https://93.184.216.34/jwks").is_ok());
        assert!(p.check_url(JWKS, "https://[2606:4700::1111]:8443/jwks").is_ok());
        assert!(p.check_url(JWKS, "https://rp.example/jwks").is_ok(), "names are judged when resolved");
        for bad in ["/jwks", "ftp://rp.example/jwks", "file:///etc/passwd", "data:,x", "https://"] {
            assert!(matches!(p.check_url(JWKS, bad), Err(Refusal::NotAUrl(_))), "{bad}");
        }
        for http in ["http://rp.example/jwks", "http://93.184.216.34/jwks", "http://127.0.0.1:9000/jwks"] {
            assert!(matches!(p.check_url(JWKS, http), Err(Refusal::InsecureScheme { .. })), "{http}");
        }
        for special in [
            "https://127.0.0.1/jwks",
            "https://10.0.0.1/bc",
            "https://0x7f.1/jwks",
            "https://[::1]/jwks",
            "https://[64:ff9b::7f00:1]/jwks",
            "https://[::ffff:169.254.169.254]/latest",
            "https://[2001::1]/teredo",
        ] {
            let refusal = p.check_url(LOGOUT, special).err();
            assert!(matches!(refusal, Some(Refusal::SpecialPurpose { .. })), "{special}: {refusal:?}");
        }
        let message = p.check_url(JWKS, "https://[64:ff9b::7f00:1]/jwks").err().map(|r| r.to_string());
        assert!(message.is_some_and(|m| m.contains("embeds 127.0.0.1") && m.contains("outbound.allow")));
    }

    #[test]
    fn an_allow_entry_opens_its_network_only_for_its_purposes_and_ports() {
        let p = Policy::new(&[entry("10.1.0.0/16", &[LOGOUT], &[443], false)]);
        assert!(p.check_url(LOGOUT, "https://10.1.2.3/bc").is_ok());
        assert!(p.check_url(LOGOUT, "https://10.1.2.3:443/bc").is_ok());
        // Not for another purpose: a client's jwks_uri cannot probe what logout may reach.
        assert!(matches!(p.check_url(JWKS, "https://10.1.2.3/jwks"), Err(Refusal::SpecialPurpose { .. })));
        // Not on another port, not outside the network.
        assert!(matches!(p.check_url(LOGOUT, "https://10.1.2.3:8443/bc"), Err(Refusal::SpecialPurpose { .. })));
        assert!(matches!(p.check_url(LOGOUT, "https://10.2.0.1/bc"), Err(Refusal::SpecialPurpose { .. })));
        // Not over http: the entry does not say allow_insecure_http.
        assert!(matches!(p.check_url(LOGOUT, "http://10.1.2.3:443/bc"), Err(Refusal::InsecureScheme { .. })));
        // The IPv4 forms of IPv6 are judged by their IPv4 address, allow list included.
        assert!(p.check_url(LOGOUT, "https://[::ffff:10.1.2.3]/bc").is_ok());
        assert!(p.check_url(LOGOUT, "https://[64:ff9b::a01:203]/bc").is_ok());
        assert!(p.check_url(JWKS, "https://[64:ff9b::a01:203]/jwks").is_err());
    }

    #[test]
    fn http_needs_an_entry_that_says_so_for_that_purpose_and_port() {
        let p = Policy::new(&[
            entry("127.0.0.1/32", &[JWKS], &[9000], true),
            entry("127.0.0.1/32", &[LOGOUT], &[9001], false),
        ]);
        assert!(p.check_url(JWKS, "http://127.0.0.1:9000/jwks").is_ok());
        assert!(p.check_url(JWKS, "https://127.0.0.1:9000/jwks").is_ok());
        assert!(matches!(p.check_url(JWKS, "http://127.0.0.1:9001/jwks"), Err(Refusal::InsecureScheme { .. })));
        assert!(matches!(p.check_url(LOGOUT, "http://127.0.0.1:9000/bc"), Err(Refusal::InsecureScheme { .. })));
        assert!(matches!(p.check_url(LOGOUT, "http://127.0.0.1:9001/bc"), Err(Refusal::InsecureScheme { .. })));
        assert!(p.check_url(LOGOUT, "https://127.0.0.1:9001/bc").is_ok());
        // A name over http passes the static check only where some entry allows http for
        // that purpose and port; its addresses are checked when it is resolved.
        assert!(p.check_url(JWKS, "http://keys.internal:9000/jwks").is_ok());
        assert!(p.check_url(LOGOUT, "http://rp.internal:9001/bc").is_err());
        let target = p.check_url(JWKS, "http://keys.internal:9000/jwks").unwrap_or_else(|e| panic!("{e}"));
        assert!(p.check_address(JWKS, &target, "127.0.0.1".parse().unwrap_or(IpAddr::from([0; 4]))).is_ok());
        let elsewhere = p.check_address(JWKS, &target, "93.184.216.34".parse().unwrap_or(IpAddr::from([0; 4])));
        assert!(matches!(elsewhere, Err(Refusal::InsecureScheme { .. })), "http only to the listed network");
    }

    #[test]
    fn a_resolved_name_is_judged_by_each_address() {
        let p = Policy::default();
        let target = p.check_url(JWKS, "https://rebind.example/jwks").unwrap_or_else(|e| panic!("{e}"));
        let refusal = p.check_address(JWKS, &target, "169.254.169.254".parse().unwrap_or(IpAddr::from([0; 4])));
        let text = refusal.err().map(|r| r.to_string()).unwrap_or_default();
        assert!(text.starts_with("rebind.example resolves to 169.254.169.254, which is in 169.254.0.0/16"), "{text}");
        assert!(p.check_address(JWKS, &target, "93.184.216.34".parse().unwrap_or(IpAddr::from([0; 4]))).is_ok());
    }
}
