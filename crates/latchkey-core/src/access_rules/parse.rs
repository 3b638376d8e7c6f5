//! The rules file (TOML): `[[rule]]` tables, read into [`AccessRules`], every mistake named
//! with its line.

use ipnet::IpNet;
use serde::Deserialize;

use super::{AccessRules, HostPattern, Policy, Rule};
use crate::domain::{GroupName, ParseError, Requirement, RoleName, RoutePattern, ScopeName, parse_method};

/// At most this many rules: the list is scanned on every decision.
pub const MAX_RULES: usize = 1_000;

/// A rules file that cannot be used, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct RulesError {
    pub line: usize,
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    rule: Vec<RawRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    hosts: Vec<String>,
    #[serde(default)]
    paths: Vec<String>,
    #[serde(default)]
    methods: Vec<String>,
    #[serde(default)]
    networks: Vec<String>,
    policy: String,
    roles: Option<RawRequirement>,
    groups: Option<RawRequirement>,
    scopes: Option<RawRequirement>,
}

/// `["a", "b"]` (any of) or `{ all = ["a", "b"] }`.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawRequirement {
    AnyOf(Vec<String>),
    AllOf(AllOf),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AllOf {
    all: Vec<String>,
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset).map_or(1, |before| before.matches('\n').count() + 1)
}

/// The lines of the `[[rule]]` headers, in order: the i-th rule is written at the i-th.
fn header_lines(text: &str) -> Vec<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| {
            let code = l.split('#').next().unwrap_or_default();
            code.chars().filter(|c| !c.is_whitespace()).collect::<String>() == "[[rule]]"
        })
        .map(|(i, _)| i + 1)
        .collect()
}

impl AccessRules {
    /// Reads the text of a rules file.
    pub fn parse(text: &str) -> Result<Self, RulesError> {
        let raw: RawFile = toml::from_str(text).map_err(|e| RulesError {
            line: e.span().map_or(1, |s| line_of(text, s.start)),
            message: e.message().to_owned(),
        })?;
        if raw.rule.len() > MAX_RULES {
            return Err(RulesError { line: 1, message: format!("more than {MAX_RULES} rules") });
        }
        let headers = header_lines(text);
        let rules = raw
            .rule
            .into_iter()
            .enumerate()
            .map(|(i, raw)| {
                let line = headers.get(i).copied().unwrap_or(1);
                rule(line, raw).map_err(|message| RulesError { line, message })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { rules })
    }
}

fn rule(line: usize, raw: RawRule) -> Result<Rule, String> {
    let why = |e: ParseError| e.to_string();
    if raw.hosts.is_empty() {
        return Err("a rule needs at least one host in `hosts`".into());
    }
    let policy = Policy::parse(&raw.policy).ok_or_else(|| {
        format!("policy `{}` is not one of bypass, one_factor, two_factor, passkey, deny", raw.policy)
    })?;
    let roles = requirement(raw.roles, "roles", RoleName::parse).map_err(why)?;
    let groups = requirement(raw.groups, "groups", GroupName::parse).map_err(why)?;
    let scopes = requirement(raw.scopes, "scopes", ScopeName::parse).map_err(why)?;
    let requires = roles.is_some() || groups.is_some() || scopes.is_some();
    if requires && matches!(policy, Policy::Bypass | Policy::Deny) {
        return Err(format!("a `{}` rule cannot require roles, groups or scopes", policy.as_str()));
    }
    let paths: Vec<RoutePattern> =
        raw.paths.iter().map(|p| RoutePattern::parse(p)).collect::<Result<_, _>>().map_err(why)?;
    let folded_paths = paths
        .iter()
        .map(|p| RoutePattern::parse(&p.as_str().to_ascii_lowercase()))
        .collect::<Result<_, _>>()
        .map_err(why)?;
    Ok(Rule {
        line,
        hosts: raw.hosts.iter().map(|h| host_pattern(h)).collect::<Result<_, _>>()?,
        paths,
        folded_paths,
        methods: raw.methods.iter().map(|m| parse_method(m)).collect::<Result<_, _>>().map_err(why)?,
        networks: raw.networks.iter().map(|n| network(n)).collect::<Result<_, _>>()?,
        policy,
        roles,
        groups,
        scopes,
    })
}

fn requirement<T: Ord + Clone>(
    raw: Option<RawRequirement>,
    what: &'static str,
    parse: impl Fn(&str) -> Result<T, ParseError>,
) -> Result<Option<Requirement<T>>, ParseError> {
    let Some(raw) = raw else { return Ok(None) };
    let (all, names) = match raw {
        RawRequirement::AnyOf(n) => (false, n),
        RawRequirement::AllOf(AllOf { all }) => (true, all),
    };
    if names.is_empty() {
        return Err(ParseError::new(what, "is an empty list: leave it out to require nothing"));
    }
    let items = names.iter().map(|n| parse(n)).collect::<Result<Vec<_>, _>>()?;
    Ok(if all { Requirement::all_of(items) } else { Requirement::any_of(items) })
}

fn host_pattern(raw: &str) -> Result<HostPattern, String> {
    let lower = raw.to_ascii_lowercase();
    let (wildcard, name) = match lower.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, lower.as_str()),
    };
    let labels_ok = name.split('.').all(|l| {
        !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    });
    if name.is_empty() || !labels_ok || (wildcard && !name.contains('.')) {
        return Err(format!(
            "host `{raw}` must be a host name without port or path (`app.example.com`), or `*.` and a domain of at least two labels (`*.example.com`)"
        ));
    }
    Ok(if wildcard { HostPattern::Subdomains(format!(".{name}")) } else { HostPattern::Exact(name.to_owned()) })
}

fn network(raw: &str) -> Result<IpNet, String> {
    raw.parse::<IpNet>()
        .or_else(|_| raw.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| format!("network `{raw}` is not an address or CIDR range (`10.0.0.0/8`, `2001:db8::/32`)"))
}
