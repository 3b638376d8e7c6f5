//! The document `latchkey apply` and `POST /admin/api/v1/apply` take: the scopes, API
//! resources, roles, groups, clients and (optionally) users a tenant should have, in TOML
//! or JSON. Unknown keys are refused; every error names where in the document it is.

use latchkey_core::domain::{
    ClientKind, ClientSessionPolicy, Entitlement, GrantType, GroupName, ProviderId, RoleName, ScopeName, SigningAlg,
    TokenEndpointAuthMethod, UpstreamSubject, Username,
};
use serde::Deserialize;

use crate::{ServiceError, ServiceResult};

/// The most objects of one kind a document lists.
pub const MAX_PER_KIND: usize = 1_000;
/// The largest document, in bytes.
pub const MAX_DOCUMENT: usize = 4 * 1024 * 1024;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Document {
    #[serde(default)]
    pub scopes: Vec<ScopeEntry>,
    #[serde(default)]
    pub resources: Vec<ResourceEntry>,
    #[serde(default)]
    pub roles: Vec<RoleEntry>,
    #[serde(default)]
    pub groups: Vec<GroupEntry>,
    #[serde(default)]
    pub clients: Vec<ClientEntry>,
    #[serde(default)]
    pub users: Vec<UserEntry>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeEntry {
    pub name: ScopeName,
    pub description: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceEntry {
    /// The RFC 8707 identifier (an absolute URI).
    pub identifier: String,
    pub name: String,
    #[serde(default)]
    pub scopes: Vec<ScopeName>,
    /// The client the API introspects tokens as.
    pub client_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleEntry {
    pub name: RoleName,
    #[serde(default)]
    pub description: String,
    /// The client the role belongs to; absent: tenant-wide. Fixed once the role exists.
    pub application: Option<String>,
    #[serde(default)]
    pub entitlements: Vec<Entitlement>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupEntry {
    pub name: GroupName,
    #[serde(default)]
    pub description: String,
    /// The roles its members hold: exactly these. Absent: left as they are.
    pub roles: Option<Vec<RoleName>>,
    /// Its members by username: exactly these. Absent: left as they are.
    pub members: Option<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserEntry {
    pub username: String,
    pub email: Option<String>,
    /// Absent: left as it is (a new user's address is unverified).
    pub email_verified: Option<bool>,
    /// Absent: left as it is (users change their own name).
    pub name: Option<String>,
    /// Fixed once the user exists.
    #[serde(default)]
    pub service_account: bool,
    /// Manage a user `apply` did not create (made by hand, or signed up). Without it such
    /// a user is refused: anyone may have signed up under a name a document lists.
    #[serde(default)]
    pub adopt: bool,
    /// The roles the user holds directly: exactly these. Absent: left as they are.
    pub roles: Option<Vec<RoleName>>,
    /// The user's accounts at upstream identity providers, one per provider: exactly these.
    /// Absent: left as they are.
    pub identities: Option<Vec<IdentityEntry>>,
}

/// An account at an upstream identity provider linked to a user, by its stable key there.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityEntry {
    /// The provider's id (`[federation.providers.ID]`).
    pub provider: ProviderId,
    /// The account's stable key at the provider: an OIDC `sub`, a GitHub user id (never an
    /// address or a login name, which can change hands).
    pub subject: UpstreamSubject,
}

/// A client with every setting; a setting left out is its default, as for a client made
/// with `latchkey client create` or `POST /clients`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientEntry {
    pub client_id: String,
    pub name: String,
    pub kind: Option<ClientKind>,
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    pub grant_types: Option<Vec<GrantType>>,
    pub scopes: Option<Vec<ScopeName>>,
    pub token_endpoint_auth_method: Option<TokenEndpointAuthMethod>,
    pub id_token_signed_response_alg: Option<SigningAlg>,
    #[serde(default)]
    pub first_party: bool,
    #[serde(default)]
    pub admin_client: bool,
    pub jwks: Option<serde_json::Value>,
    pub jwks_uri: Option<String>,
    #[serde(default)]
    pub allow_insecure_no_pkce: bool,
    #[serde(default)]
    pub allow_legacy_assertion_audience: bool,
    #[serde(default)]
    pub allow_insecure_redirect_uris: bool,
    /// Seconds; absent: the server's `tokens.access_token_lifetime`.
    pub access_token_lifetime: Option<u64>,
    /// Seconds; absent: the server's `tokens.refresh_reuse_grace`.
    pub refresh_reuse_grace: Option<u64>,
    #[serde(default)]
    pub session: ClientSessionPolicy,
    #[serde(default)]
    pub access: AccessEntry,
    /// In a file: `env:NAME` or `file:PATH`, read by the CLI (never a secret in clear).
    /// Absent: a secret is made when the client is created, shown once, and kept after.
    pub secret: Option<SecretRef>,
    /// Seconds the stored secret keeps working after `secret` replaces it: default a day,
    /// 0 ends it at once (a leaked secret), at most 30 days.
    pub secret_grace: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessEntry {
    #[serde(default)]
    pub release_roles: bool,
    #[serde(default)]
    pub release_groups: bool,
    #[serde(default)]
    pub release_entitlements: bool,
    #[serde(default)]
    pub application_roles_only: bool,
    pub required_roles: Option<RequiredRolesEntry>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequiredRolesEntry {
    pub roles: Vec<RoleName>,
    #[serde(default)]
    pub all: bool,
}

/// Where a client's secret is read from: an environment variable or a file. After the CLI
/// read it, [`SecretRef::Resolved`] holds the secret itself (never written back anywhere).
#[derive(Clone, PartialEq, Eq)]
pub enum SecretRef {
    Env(String),
    File(String),
    Resolved(String),
}

impl std::fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretRef::Env(name) => write!(f, "env:{name}"),
            SecretRef::File(path) => write!(f, "file:{path}"),
            SecretRef::Resolved(_) => f.write_str("(secret)"),
        }
    }
}

impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        match raw.split_once(':') {
            Some(("env", name)) if !name.is_empty() => Ok(SecretRef::Env(name.to_owned())),
            Some(("file", path)) if !path.is_empty() => Ok(SecretRef::File(path.to_owned())),
            _ => Err(serde::de::Error::custom(
                "a secret is a reference, `env:NAME` or `file:PATH`; a document never holds a secret in clear",
            )),
        }
    }
}

/// The format of a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Toml,
    Json,
}

impl Document {
    /// Parses a document; an error names the path of what is wrong (`clients[1].kind`).
    pub fn parse(text: &str, format: Format) -> ServiceResult<Document> {
        if text.len() > MAX_DOCUMENT {
            return Err(invalid(format!("the document is larger than {} MiB", MAX_DOCUMENT / (1024 * 1024))));
        }
        let doc: Document = match format {
            Format::Json => {
                let mut de = serde_json::Deserializer::from_str(text);
                serde_path_to_error::deserialize(&mut de).map_err(|e| at_path(e.path(), e.inner()))?
            }
            Format::Toml => {
                let table: toml::Table =
                    text.parse().map_err(|e: toml::de::Error| invalid(format!("not TOML: {e}")))?;
                serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| at_path(e.path(), e.inner()))?
            }
        };
        doc.check_sizes()?;
        doc.normalize_usernames()
    }

    /// Usernames as they are stored (`Ada` is `ada`), so each is compared as the store
    /// compares it: listed twice, a group's member, pruned or not.
    fn normalize_usernames(mut self) -> ServiceResult<Document> {
        let normal = |at: String, raw: &mut String| -> ServiceResult<()> {
            *raw = Username::parse(raw).map_err(|e| invalid(format!("{at}: {e}")))?.to_string();
            Ok(())
        };
        for (i, u) in self.users.iter_mut().enumerate() {
            normal(format!("users[{i}].username"), &mut u.username)?;
        }
        for (i, g) in self.groups.iter_mut().enumerate() {
            for member in g.members.iter_mut().flatten() {
                normal(format!("groups[{i}].members"), member)?;
            }
        }
        Ok(self)
    }

    fn check_sizes(&self) -> ServiceResult<()> {
        let counts = [
            ("scopes", self.scopes.len()),
            ("resources", self.resources.len()),
            ("roles", self.roles.len()),
            ("groups", self.groups.len()),
            ("clients", self.clients.len()),
            ("users", self.users.len()),
        ];
        if let Some((kind, _)) = counts.iter().find(|(_, n)| *n > MAX_PER_KIND) {
            return Err(invalid(format!("{kind}: a document lists at most {MAX_PER_KIND}")));
        }
        let lists = self
            .resources
            .iter()
            .enumerate()
            .map(|(i, r)| (format!("resources[{i}].scopes"), r.scopes.len(), 100))
            .chain(
                self.roles
                    .iter()
                    .enumerate()
                    .map(|(i, r)| (format!("roles[{i}].entitlements"), r.entitlements.len(), 100)),
            )
            .chain(self.groups.iter().enumerate().flat_map(|(i, g)| {
                [
                    (format!("groups[{i}].roles"), g.roles.as_ref().map_or(0, Vec::len), 100),
                    (format!("groups[{i}].members"), g.members.as_ref().map_or(0, Vec::len), MAX_PER_KIND),
                ]
            }))
            .chain(self.clients.iter().enumerate().flat_map(|(i, c)| {
                [
                    (format!("clients[{i}].scopes"), c.scopes.as_ref().map_or(0, Vec::len), 100),
                    (
                        format!("clients[{i}].access.required_roles.roles"),
                        c.access.required_roles.as_ref().map_or(0, |r| r.roles.len()),
                        50,
                    ),
                ]
            }))
            .chain(
                self.users
                    .iter()
                    .enumerate()
                    .map(|(i, u)| (format!("users[{i}].roles"), u.roles.as_ref().map_or(0, Vec::len), 100)),
            );
        for (at, len, max) in lists {
            if len > max {
                return Err(invalid(format!("{at}: at most {max}")));
            }
        }
        Ok(())
    }

    /// Reads every secret reference with `read` (the CLI's environment and files).
    pub fn resolve_secrets(&mut self, mut read: impl FnMut(&SecretRef) -> Result<String, String>) -> ServiceResult<()> {
        for (i, c) in self.clients.iter_mut().enumerate() {
            if let Some(r) = c.secret.as_ref().filter(|r| !matches!(r, SecretRef::Resolved(_))) {
                let value = read(r).map_err(|e| invalid(format!("clients[{i}].secret ({r:?}): {e}")))?;
                let value = value.trim_end_matches(['\r', '\n']).to_owned();
                if value.chars().count() < 32 {
                    return Err(invalid(format!(
                        "clients[{i}].secret ({r:?}): a client secret is at least 32 characters (make one with `openssl rand -base64 32`)"
                    )));
                }
                c.secret = Some(SecretRef::Resolved(value));
            }
        }
        Ok(())
    }

    /// Refuses secret references (the admin API: the server never reads its own files or
    /// environment for a caller).
    pub fn refuse_secret_references(&self) -> ServiceResult<()> {
        match self.clients.iter().position(|c| c.secret.is_some()) {
            Some(i) => Err(invalid(format!(
                "clients[{i}].secret: the admin API takes no secret references; leave `secret` out and a secret is made for a new client and returned once"
            ))),
            None => Ok(()),
        }
    }
}

fn at_path(path: &serde_path_to_error::Path, e: &impl std::fmt::Display) -> ServiceError {
    let path = path.to_string();
    if path == "." || path.is_empty() { invalid(e.to_string()) } else { invalid(format!("{path}: {e}")) }
}

pub(super) fn invalid(message: impl Into<String>) -> ServiceError {
    ServiceError::Invalid(message.into())
}
