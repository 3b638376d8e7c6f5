//! `[forward_auth]`: protected-path rules for reverse proxies (nginx, Caddy, Traefik), the
//! forward-auth cookie's domain, and the names of the identity headers.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::load::{ConfigError, ConfigSource};

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ForwardAuthConfig {
    /// The protected-path rules file (relative to the config file); forward-auth is off
    /// without it. Reloaded when it changes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rules: Option<PathBuf>,
    /// The parent domain of Latchkey's host and of every protected host: the
    /// forward-auth cookie is set on it. Required with `rules`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cookie_domain: Option<String>,
    /// Access tokens whose `aud` holds this are accepted; an API key with an audience only
    /// if it is this one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    pub headers: IdentityHeaders,
}

/// The names of the identity headers an allowed request is answered with.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdentityHeaders {
    pub user: String,
    pub email: String,
    pub name: String,
    pub groups: String,
    pub roles: String,
}

impl Default for IdentityHeaders {
    fn default() -> Self {
        Self {
            user: "Remote-User".into(),
            email: "Remote-Email".into(),
            name: "Remote-Name".into(),
            groups: "Remote-Groups".into(),
            roles: "Remote-Roles".into(),
        }
    }
}

impl IdentityHeaders {
    pub fn all(&self) -> [&str; 5] {
        [&self.user, &self.email, &self.name, &self.groups, &self.roles]
    }
}

impl ForwardAuthConfig {
    pub(crate) fn check(&self, s: &ConfigSource, public_host: Option<&str>) -> Result<(), ConfigError> {
        let Some(rules) = &self.rules else {
            return Ok(());
        };
        if !rules.is_file() {
            return Err(ConfigError::invalid(
                s,
                "forward_auth.rules",
                format!("file {} does not exist", rules.display()),
            ));
        }
        let Some(domain) = &self.cookie_domain else {
            return Err(ConfigError::invalid(
                s,
                "forward_auth.cookie_domain",
                "is required with forward_auth.rules: the parent domain of Latchkey and the protected hosts",
            ));
        };
        let well_formed = domain.split('.').count() >= 2
            && domain
                .split('.')
                .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
        let covers_us = public_host.is_some_and(|h| h == domain || h.ends_with(&format!(".{domain}")));
        if !well_formed || !covers_us {
            return Err(ConfigError::invalid(
                s,
                "forward_auth.cookie_domain",
                "must be a lowercase domain of at least two labels that is the host of server.public_url or a parent of it",
            ));
        }
        let mut seen: Vec<String> = Vec::new();
        for name in self.headers.all() {
            let token =
                !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
            if !token || seen.contains(&name.to_ascii_lowercase()) {
                return Err(ConfigError::invalid(
                    s,
                    "forward_auth.headers",
                    format!("`{name}` must be a header name of letters, digits and `-`, each used once"),
                ));
            }
            seen.push(name.to_ascii_lowercase());
        }
        Ok(())
    }
}
