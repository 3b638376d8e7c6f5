//! `[federation.providers.ID]`: upstream identity providers people sign in through (Google,
//! GitHub, any OpenID Connect provider, a plain OAuth 2 server). The table key is the
//! provider's permanent id: stored links name it, so renaming it unlinks everyone.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use url::Url;

use crate::SecretRef;
use crate::load::{ConfigError, ConfigSource};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct FederationConfig {
    pub providers: BTreeMap<String, ProviderConfig>,
    /// Sign-ins through providers one client address (IPv6: its /64) may start in 10
    /// minutes. Each start can make Latchkey redeem a code at the provider; set it above
    /// the busiest office that shares one address.
    pub max_starts_per_ip: u32,
}

impl Default for FederationConfig {
    fn default() -> Self {
        Self { providers: BTreeMap::new(), max_starts_per_ip: 300 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    /// Any OpenID Connect provider, found through its discovery document.
    Oidc,
    /// Google: OpenID Connect with Google's settings preset.
    Google,
    /// GitHub (or GitHub Enterprise): OAuth 2 with the user and emails APIs.
    Github,
    /// A plain OAuth 2 server with a UserInfo URL.
    Oauth2,
}

/// Whether a first sign-in through the provider may make a new account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NewAccounts {
    #[default]
    Off,
    On,
    /// Only for a verified email address in `account_domains`, from a provider that is
    /// authoritative for the domain (a `hosted_domains` check on the ID token's `hd`).
    ListedDomains,
}

/// Upstream groups a person is in, mapped to Latchkey groups and roles.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct GroupMapping {
    pub groups: Vec<String>,
    pub roles: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    pub kind: ProviderKind,
    /// What the sign-in button says: "Sign in with {name}".
    pub name: String,
    /// `oidc`: the issuer; discovery is at `{issuer}/.well-known/openid-configuration`.
    /// For Entra ID's multi-tenant endpoints it may contain `{tenantid}` (with
    /// `allowed_tenants`). `google`: preset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// `oidc`: where the discovery document is, when not under the issuer (Entra ID's
    /// multi-tenant `…/common/v2.0/.well-known/openid-configuration`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovery_url: Option<Url>,
    pub client_id: String,
    /// `client_secret_basic` (or `client_secret_post` where the provider takes only that):
    /// a secret reference (`env:NAME`, `file:PATH` or the value).
    #[serde(default, skip_serializing)]
    pub client_secret: Option<SecretRef>,
    /// `private_key_jwt` (RFC 7523) instead of a secret: a PKCS#8 PEM private key, usually
    /// `file:PATH`. Its public key is published at `{public_url}/federation/jwks.json`,
    /// the `jwks_uri` to register at the provider.
    #[serde(default, skip_serializing)]
    pub private_key: Option<SecretRef>,
    /// The key's algorithm: `ES256` (default), `RS256` or `EdDSA`.
    #[serde(default = "default_key_alg")]
    pub private_key_alg: String,
    /// Default: `openid email profile` (OIDC kinds), `read:user user:email` (GitHub),
    /// none (`oauth2`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    /// `oidc`/`google`: also read the UserInfo endpoint (its `sub` must be the ID token's).
    #[serde(default)]
    pub userinfo: bool,
    #[serde(default)]
    pub new_accounts: NewAccounts,
    /// With `new_accounts = "listed_domains"`: the email domains that may get an account.
    #[serde(default)]
    pub account_domains: Vec<String>,
    /// The ID token's `hd` claim must be one of these (Google Workspace domains).
    #[serde(default)]
    pub hosted_domains: Vec<String>,
    /// Entra ID with a `{tenantid}` issuer: the tenant ids (`tid`) allowed in.
    #[serde(default)]
    pub allowed_tenants: Vec<String>,
    /// `github`: the web base (`https://github.com`, or `https://HOST` for Enterprise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<Url>,
    /// `github`: the API base (`https://api.github.com`, or `https://HOST/api/v3`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_url: Option<Url>,
    /// `oauth2`: the endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_url: Option<Url>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_url: Option<Url>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userinfo_url: Option<Url>,
    /// `oauth2`: the field of the UserInfo answer that is the stable key of the account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_field: Option<String>,
    #[serde(default = "default_email_field")]
    pub email_field: String,
    /// `oauth2`: the field saying the email is verified; without it, no email counts as verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_verified_field: Option<String>,
    /// Latchkey claim = upstream field. Defaults to the same names.
    #[serde(default)]
    pub claims: BTreeMap<String, String>,
    /// The upstream claim that lists the person's groups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups_claim: Option<String>,
    /// Upstream group name → Latchkey groups and roles, applied at each sign-in.
    #[serde(default)]
    pub groups: BTreeMap<String, GroupMapping>,
}

fn default_key_alg() -> String {
    "ES256".into()
}

fn default_email_field() -> String {
    "email".into()
}

/// The Latchkey claims an upstream may fill.
pub const MAPPABLE_CLAIMS: &[&str] = &[
    "name",
    "given_name",
    "family_name",
    "middle_name",
    "nickname",
    "preferred_username",
    "profile",
    "picture",
    "website",
    "locale",
    "zoneinfo",
];

pub const GOOGLE_ISSUER: &str = "https://accounts.google.com";

impl ProviderConfig {
    /// The OIDC issuer: configured, or Google's.
    pub fn oidc_issuer(&self) -> Option<&str> {
        match self.kind {
            ProviderKind::Google => Some(self.issuer.as_deref().unwrap_or(GOOGLE_ISSUER)),
            ProviderKind::Oidc => self.issuer.as_deref(),
            _ => None,
        }
    }

    pub fn scopes(&self) -> Vec<String> {
        if let Some(s) = &self.scopes {
            return s.clone();
        }
        let defaults: &[&str] = match self.kind {
            ProviderKind::Oidc | ProviderKind::Google => &["openid", "email", "profile"],
            ProviderKind::Github => &["read:user", "user:email"],
            ProviderKind::Oauth2 => &[],
        };
        defaults.iter().map(|s| (*s).to_owned()).collect()
    }
}

fn valid_id(id: &str) -> bool {
    (1..=32).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

impl FederationConfig {
    pub(crate) fn check(&self, s: &ConfigSource) -> Result<(), ConfigError> {
        if self.max_starts_per_ip == 0 {
            return Err(ConfigError::invalid(s, "federation.max_starts_per_ip", "must be at least 1"));
        }
        for (id, p) in &self.providers {
            let key = format!("federation.providers.{id}");
            let bad = |what: &str| Err(ConfigError::invalid(s, &key, what));
            if !valid_id(id) {
                return bad("the id must be 1-32 lowercase letters, digits and '-'");
            }
            if p.name.trim().is_empty() || p.name.len() > 64 {
                return bad("`name` must be 1-64 characters");
            }
            if p.client_id.is_empty() {
                return bad("`client_id` is missing");
            }
            match (&p.client_secret, &p.private_key) {
                (Some(_), Some(_)) => return bad("give `client_secret` or `private_key` (private_key_jwt), not both"),
                (None, None) => return bad("give `client_secret`, or `private_key` for private_key_jwt"),
                _ => {}
            }
            if p.private_key.is_some() && p.kind == ProviderKind::Github {
                return bad("GitHub takes a client secret, not `private_key`");
            }
            if !matches!(p.private_key_alg.as_str(), "ES256" | "RS256" | "EdDSA") {
                return bad("`private_key_alg` must be \"ES256\", \"RS256\" or \"EdDSA\"");
            }
            let oidc = matches!(p.kind, ProviderKind::Oidc | ProviderKind::Google);
            if p.kind == ProviderKind::Oidc && p.issuer.is_none() {
                return bad("kind \"oidc\" needs `issuer`");
            }
            if let Some(issuer) = p.oidc_issuer() {
                let with_tenant = issuer.replace("{tenantid}", "tenant");
                if Url::parse(&with_tenant).is_err() {
                    return bad("`issuer` is not a URL");
                }
                if issuer.contains("{tenantid}") == p.allowed_tenants.is_empty() {
                    return bad(
                        "an issuer with {tenantid} needs `allowed_tenants`, and `allowed_tenants` needs such an issuer",
                    );
                }
                if issuer.contains("{tenantid}") && p.discovery_url.is_none() {
                    return bad("an issuer with {tenantid} needs `discovery_url`");
                }
                if !p.scopes().iter().any(|s| s == "openid") {
                    return bad("`scopes` must include \"openid\"");
                }
            }
            if !oidc && (p.userinfo || !p.hosted_domains.is_empty() || p.issuer.is_some()) {
                return bad("`issuer`, `userinfo` and `hosted_domains` are for the OIDC kinds");
            }
            if p.kind != ProviderKind::Github && (p.base_url.is_some() || p.api_url.is_some()) {
                return bad("`base_url` and `api_url` are for kind \"github\"");
            }
            if p.kind == ProviderKind::Oauth2 {
                if p.authorization_url.is_none()
                    || p.token_url.is_none()
                    || p.userinfo_url.is_none()
                    || p.subject_field.is_none()
                {
                    return bad(
                        "kind \"oauth2\" needs `authorization_url`, `token_url`, `userinfo_url` and `subject_field`",
                    );
                }
            } else if p.authorization_url.is_some() || p.token_url.is_some() || p.subject_field.is_some() {
                return bad("`authorization_url`, `token_url` and `subject_field` are for kind \"oauth2\"");
            }
            let lists =
                [&p.account_domains, &p.hosted_domains, &p.allowed_tenants, &p.scopes.clone().unwrap_or_default()];
            if lists.iter().any(|l| l.iter().any(|v| v.trim().is_empty())) {
                return bad(
                    "`account_domains`, `hosted_domains`, `allowed_tenants` and `scopes` may not hold empty strings",
                );
            }
            if p.new_accounts == NewAccounts::ListedDomains && p.account_domains.is_empty() {
                return bad("new_accounts = \"listed_domains\" needs `account_domains`");
            }
            if let Some(claim) = p.claims.keys().find(|c| !MAPPABLE_CLAIMS.contains(&c.as_str())) {
                return bad(&format!(
                    "`claims.{claim}` is not a claim Latchkey takes from upstream (one of {})",
                    MAPPABLE_CLAIMS.join(", ")
                ));
            }
            if p.new_accounts == NewAccounts::ListedDomains && !oidc {
                return bad(
                    "new_accounts = \"listed_domains\" needs an OpenID Connect provider that is authoritative for the domains (GitHub and plain OAuth 2 are not)",
                );
            }
            for (upstream, to) in &p.groups {
                let invalid = to
                    .groups
                    .iter()
                    .find_map(|g| latchkey_core::domain::GroupName::parse(g).err())
                    .or_else(|| to.roles.iter().find_map(|r| latchkey_core::domain::RoleName::parse(r).err()));
                if let Some(e) = invalid {
                    return bad(&format!("`groups.{upstream}`: {e}"));
                }
            }
            if !p.groups.is_empty() && p.groups_claim.is_none() {
                return bad("`groups` needs `groups_claim`");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::Config;
    use super::*;

    fn load(toml: &str) -> Result<Config, String> {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let file = dir.path().join("latchkey.toml");
        std::fs::write(&file, toml).unwrap_or_else(|e| panic!("{e}"));
        Config::load(Some(Path::new(&file)), &[], dir.path()).map_err(|e| e.to_string())
    }

    const GOOGLE: &str = "[federation.providers.google]\nkind = \"google\"\nname = \"Google\"\nclient_id = \"c\"\nclient_secret = \"s\"\n";

    #[test]
    fn providers_load_with_their_kinds_defaults() {
        let config = load(&format!(
            "{GOOGLE}hosted_domains = [\"example.com\"]\nnew_accounts = \"listed_domains\"\naccount_domains = [\"example.com\"]\n\n\
             [federation.providers.gh]\nkind = \"github\"\nname = \"GitHub\"\nclient_id = \"c\"\nclient_secret = \"env:GH\"\n\
             base_url = \"https://git.example.com\"\napi_url = \"https://git.example.com/api/v3\"\n\n\
             [federation.providers.corp]\nkind = \"oauth2\"\nname = \"Corp\"\nclient_id = \"c\"\nclient_secret = \"s\"\n\
             authorization_url = \"https://corp.example/authorize\"\ntoken_url = \"https://corp.example/token\"\n\
             userinfo_url = \"https://corp.example/me\"\nsubject_field = \"id\"\n[federation.providers.corp.claims]\nname = \"display_name\"\n"
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        let p = &config.federation.providers;
        assert_eq!(p["google"].oidc_issuer(), Some(GOOGLE_ISSUER));
        assert_eq!(p["google"].scopes(), ["openid", "email", "profile"]);
        assert_eq!(p["gh"].scopes(), ["read:user", "user:email"]);
        assert_eq!(p["gh"].new_accounts, NewAccounts::Off, "off unless turned on");
        assert_eq!(p["corp"].claims["name"], "display_name");
        let printed = toml::to_string(&config).unwrap_or_default();
        assert!(!printed.contains("client_secret"), "secrets are never printed: {printed}");
    }

    #[test]
    fn bad_providers_are_errors_that_name_the_provider_and_the_rule() {
        let oidc = "[federation.providers.x]\nkind = \"oidc\"\nname = \"X\"\nclient_id = \"c\"\n";
        for (toml, expected) in [
            (format!("{oidc}client_secret = \"s\"\n"), "needs `issuer`"),
            (format!("{oidc}issuer = \"https://x.example\"\n"), "give `client_secret`, or `private_key`"),
            (
                format!("{oidc}issuer = \"https://x.example\"\nclient_secret = \"s\"\nprivate_key = \"file:k.pem\"\n"),
                "not both",
            ),
            (format!("{oidc}issuer = \"https://x.example\"\nclient_secret = \"s\"\nscopes = [\"email\"]\n"), "\"openid\""),
            (
                format!("{oidc}issuer = \"https://login.example/{{tenantid}}/v2.0\"\nclient_secret = \"s\"\n"),
                "allowed_tenants",
            ),
            (
                format!("{oidc}issuer = \"https://x.example\"\nclient_secret = \"s\"\nnew_accounts = \"listed_domains\"\n"),
                "needs `account_domains`",
            ),
            (
                format!("{oidc}issuer = \"https://x.example\"\nclient_secret = \"s\"\n[federation.providers.x.claims]\nemail = \"mail\"\n"),
                "`claims.email`",
            ),
            (
                format!("{oidc}issuer = \"https://x.example\"\nclient_secret = \"s\"\n[federation.providers.x.groups]\neng = {{ groups = [\"e\"] }}\n"),
                "needs `groups_claim`",
            ),
            (
                "[federation.providers.gh]\nkind = \"github\"\nname = \"G\"\nclient_id = \"c\"\nclient_secret = \"s\"\nnew_accounts = \"listed_domains\"\naccount_domains = [\"a.example\"]\n".into(),
                "authoritative",
            ),
            (
                "[federation.providers.gh]\nkind = \"github\"\nname = \"G\"\nclient_id = \"c\"\nprivate_key = \"file:k.pem\"\n".into(),
                "GitHub takes a client secret",
            ),
            (
                "[federation.providers.o]\nkind = \"oauth2\"\nname = \"O\"\nclient_id = \"c\"\nclient_secret = \"s\"\n".into(),
                "needs `authorization_url`",
            ),
            (
                format!("{oidc}issuer = \"https://x.example\"\nclient_secret = \"s\"\ngroups_claim = \"g\"\n[federation.providers.x.groups]\neng = {{ roles = [\"Not Valid\"] }}\n"),
                "`groups.eng`",
            ),
            (format!("{GOOGLE}hosted_domains = [\"\"]\n"), "empty strings"),
            ("[federation.providers.Bad]\nkind = \"github\"\nname = \"G\"\nclient_id = \"c\"\nclient_secret = \"s\"\n".into(), "lowercase"),
            (format!("{GOOGLE}issuer_typo = 1\n"), "unknown field `issuer_typo`"),
        ] {
            let text = load(&toml).err().unwrap_or_else(|| panic!("loaded: {toml}"));
            assert!(text.contains(expected), "{toml}\n=> {text}");
            assert!(text.contains("federation.providers") || text.contains("unknown field"), "{text}");
        }
    }
}
