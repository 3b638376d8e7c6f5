//! Protected-path rules for forward-auth: which requests to a host behind a reverse proxy
//! pass without sign-in, which need a sign-in (and how strong), which roles, groups or
//! scopes, from which networks — and which are refused. The first rule that matches
//! decides; a request no rule matches is denied.
//!
//! Pure: [`AccessRules::parse`] takes the text of the rules file, [`AccessRules::first_match`]
//! takes a request already normalised ([`NormalHost`], [`NormalPath`]). Which roles and
//! groups exist is the service's to check ([`AccessRules::named_roles`]).

mod parse;
mod path;
mod request;

use std::net::IpAddr;

use ipnet::IpNet;

use crate::domain::{GroupName, Requirement, RoleName, RoutePattern, ScopeName};
pub use parse::RulesError;
pub use path::{MAX_PATH, NormalHost, NormalPath, RequestRefusal, forwarded_method};
pub use request::{ForwardedRequest, MAX_URI};

/// What a matching rule asks of the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Served without asking who it is.
    Bypass,
    /// Any sign-in (a password, a passkey), an access token or an API key.
    OneFactor,
    /// A multi-factor sign-in (or a user-verified passkey), or an access token that says so.
    TwoFactor,
    /// A sign-in with a passkey.
    Passkey,
    /// Never served.
    Deny,
}

impl Policy {
    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "bypass" => Self::Bypass,
            "one_factor" => Self::OneFactor,
            "two_factor" => Self::TwoFactor,
            "passkey" => Self::Passkey,
            "deny" => Self::Deny,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bypass => "bypass",
            Self::OneFactor => "one_factor",
            Self::TwoFactor => "two_factor",
            Self::Passkey => "passkey",
            Self::Deny => "deny",
        }
    }
}

/// A host a rule covers: exact (`app.example.com`) or every subdomain (`*.example.com`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    Exact(String),
    /// The suffix with its leading dot (`.example.com`).
    Subdomains(String),
}

impl HostPattern {
    pub fn matches(&self, host: &NormalHost) -> bool {
        match self {
            Self::Exact(h) => host.as_str() == h,
            Self::Subdomains(suffix) => host.as_str().ends_with(suffix.as_str()) && host.as_str().len() > suffix.len(),
        }
    }

    /// Whether every host this pattern covers lies inside `domain` (a cookie domain).
    pub fn is_within(&self, domain: &str) -> bool {
        let inside = |h: &str| h == domain || h.ends_with(&format!(".{domain}"));
        match self {
            Self::Exact(h) => inside(h),
            Self::Subdomains(suffix) => inside(&suffix[1..]),
        }
    }
}

/// One rule of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Where it is written (1-based), for messages and logs.
    pub line: usize,
    pub hosts: Vec<HostPattern>,
    /// Empty: every path.
    pub paths: Vec<RoutePattern>,
    /// `paths` lowercased: what every rule but `bypass` matches against.
    pub folded_paths: Vec<RoutePattern>,
    /// Empty: every method.
    pub methods: Vec<String>,
    /// Empty: every client address.
    pub networks: Vec<IpNet>,
    pub policy: Policy,
    pub roles: Option<Requirement<RoleName>>,
    pub groups: Option<Requirement<GroupName>>,
    pub scopes: Option<Requirement<ScopeName>>,
}

/// The request a rule is matched against.
#[derive(Debug, Clone)]
pub struct RuleRequest<'a> {
    pub host: &'a NormalHost,
    pub path: &'a NormalPath,
    /// Uppercase.
    pub method: &'a str,
    pub client_ip: IpAddr,
}

impl Rule {
    /// Whether the rule covers `req`. Paths fail closed whatever the upstream makes of them:
    /// a rule that protects (or denies) matches regardless of case and with or without a
    /// trailing slash, as case-insensitive servers and lenient routers read a path; a
    /// `bypass` rule matches only the path exactly as written.
    pub fn matches(&self, req: &RuleRequest<'_>) -> bool {
        self.hosts.iter().any(|h| h.matches(req.host))
            && (self.paths.is_empty() || self.path_matches(req.path))
            && (self.methods.is_empty() || self.methods.iter().any(|m| m == req.method))
            && (self.networks.is_empty() || self.networks.iter().any(|n| n.contains(&req.client_ip)))
    }

    fn path_matches(&self, path: &NormalPath) -> bool {
        if self.policy == Policy::Bypass {
            return self.paths.iter().any(|p| p.matches(path.as_str()));
        }
        let folded = path.folded();
        let trimmed = folded.strip_suffix('/').filter(|t| !t.is_empty()).unwrap_or(folded);
        self.folded_paths.iter().any(|p| p.matches(folded) || p.matches(trimmed))
    }
}

/// Names a rule requires, each with the line of its rule.
pub type Named<'a, T> = Vec<(usize, &'a T)>;

/// The rules of the file, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessRules {
    pub rules: Vec<Rule>,
}

impl AccessRules {
    /// The rule that decides `req`: the first that matches. `None` means deny.
    pub fn first_match(&self, req: &RuleRequest<'_>) -> Option<&Rule> {
        self.rules.iter().find(|r| r.matches(req))
    }

    /// Whether some rule names `host`: only such hosts are sent back to after sign-in.
    pub fn covers_host(&self, host: &NormalHost) -> bool {
        self.rules.iter().any(|r| r.hosts.iter().any(|h| h.matches(host)))
    }

    /// Every role and group the rules name, each with the line of its rule.
    pub fn named_roles(&self) -> (Named<'_, RoleName>, Named<'_, GroupName>) {
        let mut roles = Vec::new();
        let mut groups = Vec::new();
        for rule in &self.rules {
            roles.extend(rule.roles.iter().flat_map(|r| r.items()).map(|n| (rule.line, n)));
            groups.extend(rule.groups.iter().flat_map(|g| g.items()).map(|n| (rule.line, n)));
        }
        (roles, groups)
    }
}

#[cfg(test)]
mod tests;
