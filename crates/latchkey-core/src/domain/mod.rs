//! Domain types. Each has one way in, `parse`, so a value that exists is a valid value.

mod access;
mod admin;
mod api_key;
mod authentication;
mod claims;
mod client;
pub mod client_assertion;
mod federation;
mod identifiers;
mod password;
mod redirect_uri;
mod scope;
mod session_policy;
mod user;

pub use access::{ACCESS_CLAIMS, ClientAccessPolicy, Entitlement, GroupName, Requirement, RoleName, RoleRequirement};
pub use admin::{ADMIN_API_PATH, ADMIN_ROLE, AUDITOR_ROLE, AdminScope, BUILT_IN_ROLE_PREFIX};
pub use api_key::{
    API_KEY_LEN, API_KEY_PREFIX, ApiKeyId, NewApiKeySecret, PresentedApiKey, READ_ONLY_METHODS, RoutePattern,
    parse_method,
};
pub use authentication::{AuthLevel, Factor, Factors};
pub use claims::{ClaimRequest, ClaimsRequest, beyond_scopes, claims_of_scope, scope_of_claim};
pub use client::{ClientKind, GrantType, SigningAlg, TokenEndpointAuthMethod};
pub use federation::{ProviderId, UpstreamSubject};
pub use identifiers::{ClientId, Email, SubjectId, TenantId, Username, normalize_email};
pub use password::{MAX_PASSWORD_BYTES, MIN_PASSWORD_CHARS, NewPassword, PasswordRuleError, TypedPassword};
pub use redirect_uri::{RedirectUri, RedirectUriError};
pub use scope::{ScopeName, Scopes};
pub use session_policy::{ClientSessionPolicy, LogoutUri, LogoutUriError, SessionPolicyChange};
pub use user::{Address, DisplayName, ProfileClaims};

/// Why a raw value could not become a domain value. The message names the value's kind and
/// the rule it broke, never the value itself when that value may be secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind}: {reason}")]
pub struct ParseError {
    pub kind: &'static str,
    pub reason: String,
}

impl ParseError {
    pub(crate) fn new(kind: &'static str, reason: impl Into<String>) -> Self {
        Self { kind, reason: reason.into() }
    }
}
