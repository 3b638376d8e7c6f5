//! What the store holds, in domain types. Row types (raw columns) stay private to the
//! store; a row that no longer parses is reported as `StoreError::Corrupt`.

use crate::UnixTime;
use crate::crypto::TokenHash;
use crate::domain::{
    ClientAccessPolicy, ClientId, ClientKind, ClientSessionPolicy, DisplayName, Email, GrantType, ProfileClaims,
    RedirectUri, ScopeName, SigningAlg, SubjectId, TenantId, TokenEndpointAuthMethod, Username,
};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct User {
    #[serde(skip)]
    pub tenant: TenantId,
    pub sub: SubjectId,
    pub username: Username,
    pub email: Option<Email>,
    pub email_verified: bool,
    pub name: Option<DisplayName>,
    pub profile: ProfileClaims,
    pub has_password: bool,
    #[serde(skip)]
    pub password_hash: Option<String>,
    pub locked: bool,
    /// Never signs in (no password, no passkey): holds roles and API keys for a program.
    pub service_account: bool,
    pub created_at: i64,
    pub updated_at: i64,
    /// When the password was last set (none: no password, or set before this was kept).
    #[serde(skip)]
    pub password_changed_at: Option<UnixTime>,
    /// Since when the owner reported a change they did not make ("this wasn't me"): until
    /// they recover the account, they change nothing on it.
    #[serde(skip)]
    pub changes_blocked_at: Option<UnixTime>,
}

impl User {
    /// The entity tag of the user as the admin API shows them (RFC 9110 §8.8.3): a strong
    /// validator that changes with anything shown, `updated_at` included.
    pub fn etag(&self) -> String {
        entity_tag(self)
    }
}

/// A strong validator (RFC 9110 §8.8.3) of what `shown` serializes to.
pub fn entity_tag<T: Serialize + ?Sized>(shown: &T) -> String {
    let bytes = serde_json::to_vec(shown).unwrap_or_default();
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &bytes);
    format!("\"{}\"", hex::encode(&digest.as_ref()[..16]))
}

#[derive(Debug, Clone)]
pub struct NewUser {
    pub sub: SubjectId,
    pub username: Username,
    pub email: Option<Email>,
    pub email_verified: bool,
    pub name: Option<DisplayName>,
    pub profile: ProfileClaims,
    pub password_hash: Option<String>,
    pub service_account: bool,
}

/// What a bulk import did: every user stored, or none and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportOutcome {
    Imported(u64),
    /// Users that collide with stored users or clients; nothing was stored.
    Conflicts(Vec<ImportConflict>),
}

/// A user of an import that collides with what is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportConflict {
    /// The user's position in the import.
    pub index: usize,
    /// `sub`, `username` or `email` (a verified address another user has verified).
    pub field: &'static str,
    /// `user` or `client` (a `sub` equal to a client id).
    pub taken_by: &'static str,
}

/// Changes to a user; `None` leaves a field as it is. `Some(None)` clears an optional one.
#[derive(Debug, Clone, Default)]
pub struct UserPatch {
    pub username: Option<Username>,
    pub email: Option<Option<Email>>,
    pub email_verified: Option<bool>,
    pub name: Option<Option<DisplayName>>,
    pub profile: Option<ProfileClaims>,
    /// Only if the user is still as the caller saw them (their [`User::etag`]); otherwise
    /// the store refuses with `Stale` and changes nothing.
    pub if_match: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Client {
    #[serde(skip)]
    pub tenant: TenantId,
    pub client_id: ClientId,
    pub name: String,
    pub kind: ClientKind,
    #[serde(skip)]
    pub secret_hash: Option<TokenHash>,
    #[serde(skip)]
    pub previous_secret_hash: Option<TokenHash>,
    pub previous_secret_expires_at: Option<i64>,
    pub redirect_uris: Vec<RedirectUri>,
    pub post_logout_redirect_uris: Vec<RedirectUri>,
    pub grant_types: Vec<GrantType>,
    pub allowed_scopes: Vec<ScopeName>,
    pub token_endpoint_auth_method: TokenEndpointAuthMethod,
    pub id_token_signed_response_alg: SigningAlg,
    pub first_party: bool,
    /// Public keys for `private_key_jwt`, as a JWKS document.
    pub jwks: Option<String>,
    /// Where to fetch those keys instead (https).
    pub jwks_uri: Option<String>,
    /// Confidential clients only: PKCE may be omitted (named so nobody sets it by accident).
    pub allow_insecure_no_pkce: bool,
    /// private_key_jwt only: an assertion may name the token endpoint URL as its audience,
    /// not just the issuer (older client libraries; draft-ietf-oauth-rfc7523bis).
    pub allow_legacy_assertion_audience: bool,
    /// Access token lifetime for this client in seconds, overriding the default.
    pub access_token_lifetime: Option<i64>,
    /// Session and logout settings.
    pub session_policy: ClientSessionPolicy,
    /// Which access claims (roles, groups, entitlements) it gets, and which roles it requires.
    pub access_policy: ClientAccessPolicy,
    /// Development only: plain-http redirect URIs on this machine (localhost, 127.0.0.1, [::1]).
    pub allow_insecure_redirect_uris: bool,
    /// Seconds a rotated refresh token may come back without revoking its family,
    /// overriding `tokens.refresh_reuse_grace`.
    pub refresh_reuse_grace: Option<i64>,
    /// May be given admin scopes (`--admin-client`): registered by an operator for the admin
    /// API; its users are never asked to consent to admin scopes.
    pub admin_client: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone)]
pub struct NewClient {
    pub client_id: ClientId,
    pub name: String,
    pub kind: ClientKind,
    pub secret_hash: Option<TokenHash>,
    pub redirect_uris: Vec<RedirectUri>,
    pub post_logout_redirect_uris: Vec<RedirectUri>,
    pub grant_types: Vec<GrantType>,
    pub allowed_scopes: Vec<ScopeName>,
    pub token_endpoint_auth_method: TokenEndpointAuthMethod,
    pub id_token_signed_response_alg: SigningAlg,
    pub first_party: bool,
    pub jwks: Option<String>,
    pub jwks_uri: Option<String>,
    pub allow_insecure_no_pkce: bool,
    pub allow_legacy_assertion_audience: bool,
    pub access_token_lifetime: Option<i64>,
    pub session_policy: ClientSessionPolicy,
    pub access_policy: ClientAccessPolicy,
    pub allow_insecure_redirect_uris: bool,
    pub refresh_reuse_grace: Option<i64>,
    pub admin_client: bool,
}

#[derive(Debug, Clone, Default)]
pub struct ClientPatch {
    pub name: Option<String>,
    pub redirect_uris: Option<Vec<RedirectUri>>,
    pub post_logout_redirect_uris: Option<Vec<RedirectUri>>,
    pub grant_types: Option<Vec<GrantType>>,
    pub allowed_scopes: Option<Vec<ScopeName>>,
    pub token_endpoint_auth_method: Option<TokenEndpointAuthMethod>,
    pub id_token_signed_response_alg: Option<SigningAlg>,
    pub first_party: Option<bool>,
    pub jwks: Option<Option<String>>,
    pub jwks_uri: Option<Option<String>>,
    pub allow_insecure_no_pkce: Option<bool>,
    pub allow_legacy_assertion_audience: Option<bool>,
    pub access_token_lifetime: Option<Option<i64>>,
    pub session_policy: Option<ClientSessionPolicy>,
    pub access_policy: Option<ClientAccessPolicy>,
    pub allow_insecure_redirect_uris: Option<bool>,
    pub refresh_reuse_grace: Option<Option<i64>>,
    pub admin_client: Option<bool>,
    /// Change only a client whose [`Client::etag`] is this (else `Stale`), checked in the
    /// change's transaction.
    pub if_match: Option<String>,
}

impl Client {
    /// The entity tag of the client as shown (its secret hashes are never shown, but a
    /// rotation changes `previous_secret_expires_at` and `updated_at`).
    pub fn etag(&self) -> String {
        entity_tag(self)
    }
}

impl ClientPatch {
    /// Applies the patch to `c`; the names of the settings it sets.
    pub fn apply_to(self, c: &mut Client) -> Vec<&'static str> {
        let mut changed = Vec::new();
        // The patch is taken apart without `..`: a field added to it and not named here
        // does not compile.
        macro_rules! set_each {
            ($($field:ident),*) => {
                let ClientPatch { $($field,)* if_match: _ } = self;
                $(if let Some(v) = $field { c.$field = v; changed.push(stringify!($field)); })*
            };
        }
        set_each!(
            name,
            redirect_uris,
            post_logout_redirect_uris,
            grant_types,
            allowed_scopes,
            token_endpoint_auth_method,
            id_token_signed_response_alg,
            first_party,
            jwks,
            jwks_uri,
            allow_insecure_no_pkce,
            allow_legacy_assertion_audience,
            access_token_lifetime,
            session_policy,
            access_policy,
            allow_insecure_redirect_uris,
            refresh_reuse_grace,
            admin_client
        );
        changed
    }
}

/// A protected API that access tokens can be issued for (RFC 8707 `resource`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResourceServer {
    pub identifier: String,
    pub name: String,
    pub scopes: Vec<String>,
    /// The client this API authenticates as to introspect tokens issued for it.
    pub client_id: Option<ClientId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScopeDefinition {
    pub name: ScopeName,
    pub description: String,
    pub built_in: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    Next,
    Active,
    Retired,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Next => "next",
            KeyState::Active => "active",
            KeyState::Retired => "retired",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "next" => Some(KeyState::Next),
            "active" => Some(KeyState::Active),
            "retired" => Some(KeyState::Retired),
            _ => None,
        }
    }
}

/// A signing key as stored: the private key sealed under the master key.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSigningKey {
    pub kid: String,
    pub alg: SigningAlg,
    pub state: KeyState,
    pub sealed_private_key: Vec<u8>,
    pub public_jwk: String,
    pub created_at: UnixTime,
    pub activated_at: Option<UnixTime>,
    pub retired_at: Option<UnixTime>,
    pub publish_until: Option<UnixTime>,
}

#[derive(Debug, Clone)]
pub struct NewSigningKey {
    pub kid: String,
    pub alg: SigningAlg,
    pub sealed_private_key: Vec<u8>,
    pub public_jwk: String,
}
