use std::net::IpAddr;

use super::*;

fn rules(text: &str) -> AccessRules {
    AccessRules::parse(text).unwrap_or_else(|e| panic!("{e}"))
}

fn ip(raw: &str) -> IpAddr {
    raw.parse().unwrap_or_else(|e| panic!("{e}"))
}

/// The line of the rule deciding `method host path` from `client`, 0 for none (deny).
fn decide(r: &AccessRules, method: &str, host: &str, path: &str, client: &str) -> usize {
    let host = NormalHost::parse(host).unwrap_or_else(|e| panic!("{e}"));
    let path = NormalPath::parse(path).unwrap_or_else(|e| panic!("{e}"));
    let req = RuleRequest { host: &host, path: &path, method, client_ip: ip(client) };
    r.first_match(&req).map_or(0, |rule| rule.line)
}

const FILE: &str = r#"
[[rule]]
hosts = ["app.example.com"]
paths = ["/public/*", "/health"]
policy = "bypass"

[[rule]]
hosts = ["app.example.com"]
paths = ["/admin/*"]
networks = ["10.0.0.0/8"]
policy = "two_factor"
roles = { all = ["admin", "staff"] }

[[rule]]
hosts = ["app.example.com"]
paths = ["/admin/*"]
policy = "deny"

[[rule]]
hosts = ["*.example.com"]
methods = ["GET", "HEAD"]
policy = "one_factor"
groups = ["readers", "writers"]

[[rule]]
hosts = ["*.example.com"]
policy = "passkey"
scopes = ["reports:write"]
"#;

#[test]
fn the_first_matching_rule_decides_and_no_match_denies() {
    let r = rules(FILE);
    assert_eq!(r.rules.len(), 5);
    assert_eq!(decide(&r, "GET", "app.example.com", "/public/a.css", "1.2.3.4"), 2);
    assert_eq!(decide(&r, "GET", "APP.example.com:443", "/health?x=1", "1.2.3.4"), 2);
    assert_eq!(decide(&r, "GET", "app.example.com", "/healthz", "1.2.3.4"), 19, "not exact: falls through");
    assert_eq!(decide(&r, "POST", "app.example.com", "/admin/users", "10.1.2.3"), 7);
    assert_eq!(decide(&r, "POST", "app.example.com", "/admin", "192.0.2.1"), 14, "other networks: the deny rule");
    assert_eq!(decide(&r, "GET", "wiki.example.com", "/", "1.2.3.4"), 19);
    assert_eq!(decide(&r, "DELETE", "wiki.example.com", "/x", "1.2.3.4"), 25);
    assert_eq!(decide(&r, "GET", "example.com", "/", "1.2.3.4"), 0, "*.example.com is not example.com");
    assert_eq!(decide(&r, "GET", "evil-example.com", "/", "1.2.3.4"), 0);
    assert_eq!(decide(&r, "GET", "other.test", "/", "1.2.3.4"), 0);
}

#[test]
fn protecting_rules_match_regardless_of_case_and_trailing_slash_and_bypass_only_exactly() {
    let r = rules(FILE);
    assert_eq!(decide(&r, "POST", "app.example.com", "/ADMIN/users", "192.0.2.1"), 14, "deny matches any case");
    assert_eq!(decide(&r, "POST", "app.example.com", "/Admin", "192.0.2.1"), 14);
    assert_eq!(decide(&r, "GET", "app.example.com", "/health/", "1.2.3.4"), 19, "bypass: not with a slash");
    assert_eq!(decide(&r, "GET", "app.example.com", "/PUBLIC/a.css", "1.2.3.4"), 19, "bypass: exact case only");
    let exact = rules("[[rule]]\nhosts = [\"a.example\"]\npaths = [\"/admin\"]\npolicy = \"deny\"\n");
    assert_eq!(decide(&exact, "GET", "a.example", "/admin/", "1.2.3.4"), 1, "`/admin/` is `/admin` to lenient routers");
    assert_eq!(decide(&exact, "GET", "a.example", "/ADMIN", "1.2.3.4"), 1);
    assert_eq!(decide(&exact, "GET", "a.example", "/administrator", "1.2.3.4"), 0);
}

#[test]
fn dot_segments_do_not_get_past_a_rule() {
    let r = rules(FILE);
    assert_eq!(decide(&r, "GET", "app.example.com", "/public/../admin/x", "1.2.3.4"), 14);
    assert_eq!(decide(&r, "GET", "app.example.com", "/public/%2e%2e/admin", "1.2.3.4"), 14);
    assert_eq!(decide(&r, "GET", "app.example.com", "//admin", "1.2.3.4"), 14);
}

#[test]
fn requirements_are_any_of_unless_written_all() {
    let r = rules(FILE);
    let role = |n| RoleName::parse(n).unwrap_or_else(|e| panic!("{e}"));
    let group = |n| GroupName::parse(n).unwrap_or_else(|e| panic!("{e}"));
    let admin = r.rules[1].roles.as_ref().unwrap_or_else(|| panic!("roles"));
    assert!(!admin.is_met_by(&[role("admin")]));
    assert!(admin.is_met_by(&[role("staff"), role("admin")]));
    let readers = r.rules[3].groups.as_ref().unwrap_or_else(|| panic!("groups"));
    assert!(readers.is_met_by(&[group("writers")]));
    assert!(!readers.is_met_by(&[group("others")]));
    let (roles, groups) = r.named_roles();
    assert_eq!(roles.iter().map(|(l, n)| (*l, n.as_str())).collect::<Vec<_>>(), [(7, "admin"), (7, "staff")]);
    assert_eq!(groups.len(), 2);
}

#[test]
fn mistakes_name_their_line() {
    for (text, line, needle) in [
        ("[[rule]]\nhosts = [\"a.example\"]\npolicy = \"maybe\"\n", 1, "policy `maybe`"),
        ("\n\n[[rule]]\nhosts = [\"a.example:80\"]\npolicy = \"deny\"\n", 3, "host `a.example:80`"),
        ("[[rule]]\nhosts = [\"*.com\"]\npolicy = \"deny\"\n", 1, "host `*.com`"),
        ("[[rule]]\nhosts = [\"a.*.example\"]\npolicy = \"deny\"\n", 1, "host"),
        ("[[rule]]\nhosts = [\"a.example\"]\npaths = [\"/a/*/b\"]\npolicy = \"deny\"\n", 1, "route"),
        ("[[rule]]\nhosts = [\"a.example\"]\npaths = [\"admin\"]\npolicy = \"deny\"\n", 1, "route"),
        ("[[rule]]\nhosts = [\"a.example\"]\npolicy = \"bypass\"\nroles = [\"x\"]\n", 1, "cannot require"),
        ("[[rule]]\nhosts = [\"a.example\"]\npolicy = \"one_factor\"\nroles = [\"Admin\"]\n", 1, "role name"),
        ("[[rule]]\nhosts = [\"a.example\"]\npolicy = \"one_factor\"\nroles = []\n", 1, "empty list"),
        ("[[rule]]\nhosts = [\"a.example\"]\npolicy = \"one_factor\"\nnetworks = [\"10.0.0.0/99\"]\n", 1, "network"),
        ("[[rule]]\nhosts = [\"a.example\"]\npolicy = \"one_factor\"\nmethods = [\"FETCH\"]\n", 1, "method"),
        ("[[rule]]\nhosts = []\npolicy = \"deny\"\n", 1, "at least one host"),
        ("[[rule]]\nhosts = [\"a.example\"]\npolicy = \"deny\"\nhost = \"typo\"\n", 4, "unknown field"),
        ("[[rule]]\nhosts = [\"a.example\"]\npolicy = \"deny\"\n\n[[rule]]\npolicy = \"deny\"\n", 5, "hosts"),
        ("[[rule]\n", 1, ""),
    ] {
        let err = AccessRules::parse(text).err().unwrap_or_else(|| panic!("accepted: {text}"));
        assert_eq!(err.line, line, "{text}: {err}");
        assert!(err.message.contains(needle), "{text}: {err}");
    }
}

#[test]
fn an_empty_file_denies_everything() {
    let r = rules("");
    assert_eq!(decide(&r, "GET", "app.example.com", "/", "1.2.3.4"), 0);
}

#[test]
fn hosts_covered_and_inside_a_cookie_domain() {
    let r = rules(FILE);
    let host = |h| NormalHost::parse(h).unwrap_or_else(|e| panic!("{e}"));
    assert!(r.covers_host(&host("wiki.example.com")));
    assert!(!r.covers_host(&host("evil.test")));
    assert!(r.rules[0].hosts[0].is_within("example.com"));
    assert!(r.rules[4].hosts[0].is_within("example.com"));
    assert!(!r.rules[4].hosts[0].is_within("app.example.com"));
    assert!(!r.rules[0].hosts[0].is_within("ample.com"));
}
