//! How the admin API shows a client and takes its settings. Bodies are parsed here into a
//! `NewClient` or a `ClientPatch`; whether the settings fit together is the client
//! service's rule, the same for every door.

use latchkey_core::domain::{
    ClientAccessPolicy, ClientKind, ClientSessionPolicy, GrantType, LogoutUri, RedirectUri, RoleName, RoleRequirement,
    ScopeName, SessionPolicyChange, SigningAlg, TokenEndpointAuthMethod,
};
use latchkey_core::records::Client;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::problem::{Problem, invalid};
use super::request::{nullable, nullable_seconds};
use super::schema;

/// A client as the admin API shows it (never its secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientView {
    pub client_id: String,
    pub name: String,
    #[schema(value_type = schema::ClientKindName)]
    pub kind: ClientKind,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    #[schema(value_type = Vec<schema::GrantTypeName>)]
    pub grant_types: Vec<GrantType>,
    pub scopes: Vec<String>,
    #[schema(value_type = schema::AuthMethodName)]
    pub token_endpoint_auth_method: TokenEndpointAuthMethod,
    #[schema(value_type = schema::SigningAlgName)]
    pub id_token_signed_response_alg: SigningAlg,
    /// No consent page for this client (the operator's own apps).
    pub first_party: bool,
    /// May be given admin scopes.
    pub admin_client: bool,
    /// Whether the client has a secret (shown once, when made or rotated).
    pub has_secret: bool,
    /// Until when the secret before the last rotation still works (Unix time).
    pub previous_secret_valid_until: Option<i64>,
    /// The client's public keys for `private_key_jwt` (a JWK set).
    #[schema(value_type = Option<Object>)]
    pub jwks: Option<serde_json::Value>,
    pub jwks_uri: Option<String>,
    pub allow_insecure_no_pkce: bool,
    pub allow_legacy_assertion_audience: bool,
    pub allow_insecure_redirect_uris: bool,
    /// Seconds; `null` is the server's `tokens.access_token_lifetime`.
    pub access_token_lifetime: Option<i64>,
    /// Seconds; `null` is the server's `tokens.refresh_reuse_grace`.
    pub refresh_reuse_grace: Option<i64>,
    pub session: SessionView,
    pub access: AccessView,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Sessions and logout (OpenID Connect Front- and Back-Channel Logout).
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    pub frontchannel_logout_uri: Option<String>,
    pub frontchannel_logout_session_required: bool,
    pub backchannel_logout_uri: Option<String>,
    pub backchannel_logout_session_required: bool,
    pub logout_revokes_offline_tokens: bool,
    /// Seconds; applied when a request carries no `max_age`.
    pub default_max_age: Option<u64>,
    pub session_refresh_tokens: bool,
    pub require_mfa: bool,
    pub require_passkey: bool,
}

/// Which access claims the client gets, and the roles its users need.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccessView {
    pub release_roles: bool,
    pub release_groups: bool,
    pub release_entitlements: bool,
    pub application_roles_only: bool,
    pub required_roles: Option<RequiredRoles>,
}

/// Roles a user must hold: any one of them, or all of them (`all`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequiredRoles {
    #[schema(value_type = Vec<String>, min_items = 1, max_items = 50, pattern = "^[a-z0-9][a-z0-9._:-]{0,63}$")]
    pub roles: Vec<String>,
    #[serde(default)]
    pub all: bool,
}

impl From<&Client> for ClientView {
    fn from(c: &Client) -> Self {
        let strings = |v: &[RedirectUri]| v.iter().map(|u| u.as_str().to_owned()).collect();
        let p = &c.session_policy;
        let a = &c.access_policy;
        Self {
            client_id: c.client_id.to_string(),
            name: c.name.clone(),
            kind: c.kind,
            redirect_uris: strings(&c.redirect_uris),
            post_logout_redirect_uris: strings(&c.post_logout_redirect_uris),
            grant_types: c.grant_types.clone(),
            scopes: c.allowed_scopes.iter().map(ToString::to_string).collect(),
            token_endpoint_auth_method: c.token_endpoint_auth_method,
            id_token_signed_response_alg: c.id_token_signed_response_alg,
            first_party: c.first_party,
            admin_client: c.admin_client,
            has_secret: c.secret_hash.is_some(),
            previous_secret_valid_until: c.previous_secret_expires_at,
            jwks: c.jwks.as_deref().and_then(|j| serde_json::from_str(j).ok()),
            jwks_uri: c.jwks_uri.clone(),
            allow_insecure_no_pkce: c.allow_insecure_no_pkce,
            allow_legacy_assertion_audience: c.allow_legacy_assertion_audience,
            allow_insecure_redirect_uris: c.allow_insecure_redirect_uris,
            access_token_lifetime: c.access_token_lifetime,
            refresh_reuse_grace: c.refresh_reuse_grace,
            session: SessionView {
                frontchannel_logout_uri: p.frontchannel_logout_uri.as_ref().map(ToString::to_string),
                frontchannel_logout_session_required: p.frontchannel_logout_session_required,
                backchannel_logout_uri: p.backchannel_logout_uri.as_ref().map(ToString::to_string),
                backchannel_logout_session_required: p.backchannel_logout_session_required,
                logout_revokes_offline_tokens: p.logout_revokes_offline_tokens,
                default_max_age: p.default_max_age,
                session_refresh_tokens: p.session_refresh_tokens,
                require_mfa: p.require_mfa,
                require_passkey: p.require_passkey,
            },
            access: AccessView {
                release_roles: a.release_roles,
                release_groups: a.release_groups,
                release_entitlements: a.release_entitlements,
                application_roles_only: a.application_roles_only,
                required_roles: a.required_roles.as_ref().map(|r| RequiredRoles {
                    roles: r.roles().iter().map(ToString::to_string).collect(),
                    all: matches!(r, RoleRequirement::AllOf(_)),
                }),
            },
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

/// Changes to the session and logout settings; a field left out stays, `null` removes.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionBody {
    /// Loaded in a hidden iframe when a session ends: scheme, host and port of a redirect URI.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<schema::UriText>)]
    pub frontchannel_logout_uri: Option<Option<String>>,
    pub frontchannel_logout_session_required: Option<bool>,
    /// Receives a logout token by POST when a session ends.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<schema::UriText>)]
    pub backchannel_logout_uri: Option<Option<String>>,
    pub backchannel_logout_session_required: Option<bool>,
    pub logout_revokes_offline_tokens: Option<bool>,
    /// Seconds.
    #[serde(default, deserialize_with = "nullable_seconds")]
    #[schema(value_type = Option<u64>, minimum = 1, maximum = 31_536_000)]
    pub default_max_age: Option<Option<u64>>,
    pub session_refresh_tokens: Option<bool>,
    pub require_mfa: Option<bool>,
    pub require_passkey: Option<bool>,
}

/// Changes to the access settings; a field left out stays.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccessBody {
    pub release_roles: Option<bool>,
    pub release_groups: Option<bool>,
    pub release_entitlements: Option<bool>,
    pub application_roles_only: Option<bool>,
    /// `null` requires no role.
    #[serde(default, deserialize_with = "nullable")]
    pub required_roles: Option<Option<RequiredRoles>>,
}

fn logout_uri(name: &str, raw: Option<Option<String>>) -> Result<Option<Option<LogoutUri>>, Problem> {
    match raw {
        None => Ok(None),
        Some(None) => Ok(Some(None)),
        Some(Some(u)) => {
            uri_text(&format!("session.{name}"), &u)?;
            LogoutUri::parse(&u).map(|u| Some(Some(u))).map_err(|e| refused(format!("session.{name}: {e}")))
        }
    }
}

impl SessionBody {
    /// `current` with these changes.
    pub fn apply(self, current: &ClientSessionPolicy) -> Result<ClientSessionPolicy, Problem> {
        if self.default_max_age.flatten().is_some_and(|s| !(1..=31_536_000).contains(&s)) {
            return Err(invalid("session.default_max_age: 1 second to a year"));
        }
        let change = SessionPolicyChange {
            frontchannel_logout_uri: logout_uri("frontchannel_logout_uri", self.frontchannel_logout_uri)?,
            frontchannel_logout_session_required: self.frontchannel_logout_session_required,
            backchannel_logout_uri: logout_uri("backchannel_logout_uri", self.backchannel_logout_uri)?,
            backchannel_logout_session_required: self.backchannel_logout_session_required,
            logout_revokes_offline_tokens: self.logout_revokes_offline_tokens,
            default_max_age: self.default_max_age,
            session_refresh_tokens: self.session_refresh_tokens,
            require_mfa: self.require_mfa,
            require_passkey: self.require_passkey,
        };
        Ok(change.applied_to(current))
    }
}

impl AccessBody {
    /// `current` with these changes.
    pub fn apply(self, current: &ClientAccessPolicy) -> Result<ClientAccessPolicy, Problem> {
        let required_roles = match self.required_roles {
            None => current.required_roles.clone(),
            Some(None) => None,
            Some(Some(r)) => {
                if r.roles.is_empty() || r.roles.len() > 50 {
                    return Err(invalid("access.required_roles.roles: 1 to 50 roles"));
                }
                let roles = r
                    .roles
                    .iter()
                    .map(|n| RoleName::parse(n).map_err(|e| invalid(format!("access.required_roles: {e}"))))
                    .collect::<Result<Vec<_>, _>>()?;
                if r.all { RoleRequirement::all_of(roles) } else { RoleRequirement::any_of(roles) }
            }
        };
        Ok(ClientAccessPolicy {
            release_roles: self.release_roles.unwrap_or(current.release_roles),
            release_groups: self.release_groups.unwrap_or(current.release_groups),
            release_entitlements: self.release_entitlements.unwrap_or(current.release_entitlements),
            application_roles_only: self.application_roles_only.unwrap_or(current.application_roles_only),
            required_roles,
        })
    }
}

/// A URI as the document's pattern says (visible ASCII after a scheme, at most 2,000
/// characters), or 400; whether it is one this client may use is a rule (422).
fn uri_text(name: &str, raw: &str) -> Result<(), Problem> {
    if !schema::is_uri_text(raw) {
        return Err(invalid(format!("{name}: an absolute URI of visible ASCII characters, at most 2,000")));
    }
    Ok(())
}

/// A well-formed value that breaks a rule (422).
fn refused(detail: String) -> Problem {
    Problem::new(super::problem::Kind::Invalid, detail)
}

/// Redirect URIs as given, in a form some client could register.
pub fn redirect_uris(name: &str, raw: &[String]) -> Result<Vec<RedirectUri>, Problem> {
    if raw.len() > latchkey_service::clients::MAX_REDIRECT_URIS {
        return Err(invalid(format!("{name}: at most {} URIs", latchkey_service::clients::MAX_REDIRECT_URIS)));
    }
    raw.iter()
        .map(|u| {
            uri_text(name, u)?;
            RedirectUri::parse_any(u).map_err(|e| refused(format!("{name}: {e}")))
        })
        .collect()
}

pub fn scopes(raw: &[String]) -> Result<Vec<ScopeName>, Problem> {
    if raw.len() > 100 {
        return Err(invalid("scopes: at most 100"));
    }
    raw.iter().map(|s| ScopeName::parse(s).map_err(|e| invalid(format!("scopes: {e}")))).collect()
}

/// A client's public keys as stored: a JWK set, or a URI to fetch them from.
pub type Keys = (Option<String>, Option<String>);

/// A JWK set as given (`null` removes the keys), or a URI to fetch them from.
pub fn keys(
    jwks: Option<Option<serde_json::Value>>,
    jwks_uri: Option<Option<String>>,
) -> Result<Option<Keys>, Problem> {
    if jwks.is_none() && jwks_uri.is_none() {
        return Ok(None);
    }
    let set = jwks.flatten().map(|v| v.to_string());
    if let Some(text) = &set {
        latchkey_service::clients::check_jwks(text)?;
    }
    let uri = jwks_uri.flatten();
    if let Some(u) = &uri {
        uri_text("jwks_uri", u)?;
        url::Url::parse(u).map_err(|e| refused(format!("jwks_uri: `{u}` is not an absolute URI: {e}")))?;
    }
    // New keys replace the old ones: a set clears a URI and the other way round.
    Ok(Some((set, uri)))
}
