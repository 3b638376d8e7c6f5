//! Rows as the database returns them, and their conversion to the records of
//! `latchkey_core::records`; a row that no longer parses is `StoreError::Corrupt`.

use latchkey_core::UnixTime;
use latchkey_core::crypto::TokenHash;
use latchkey_core::domain::*;
use latchkey_core::records::*;

use crate::StoreError;

// ---- rows ----------------------------------------------------------------------------

pub(crate) fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

fn json_list<T, F: Fn(&str) -> Result<T, E>, E: std::fmt::Display>(
    raw: &str,
    what: &str,
    f: F,
) -> Result<Vec<T>, StoreError> {
    let items: Vec<String> = serde_json::from_str(raw).map_err(|e| corrupt(what, e))?;
    items.iter().map(|s| f(s).map_err(|e| corrupt(what, e))).collect()
}

pub(crate) fn to_json_list<T: AsRef<str>>(items: impl IntoIterator<Item = T>) -> String {
    let v: Vec<String> = items.into_iter().map(|s| s.as_ref().to_owned()).collect();
    serde_json::Value::from(v).to_string()
}

/// A stored user row. The email, name and profile come out sealed (or in clear, for a
/// row written before sealing: `sealed_gen` NULL); the store opens them
/// (`user_from`) before `into_user` makes the domain value.
#[derive(sqlx::FromRow)]
pub(crate) struct UserRow {
    pub(crate) tenant_id: String,
    pub(crate) sub: String,
    username: String,
    pub(crate) email: Option<String>,
    email_verified: bool,
    pub(crate) name: Option<String>,
    pub(crate) profile: String,
    password_hash: Option<String>,
    locked: bool,
    service_account: bool,
    created_at: i64,
    updated_at: i64,
    password_changed_at: Option<i64>,
    changes_blocked_at: Option<i64>,
    pub(crate) sealed_gen: Option<i64>,
}

impl UserRow {
    /// The user, given the opened email, name and profile.
    pub(crate) fn into_user(
        self,
        email: Option<String>,
        name: Option<String>,
        profile: String,
    ) -> Result<User, StoreError> {
        let r = self;
        Ok(User {
            tenant: TenantId::parse(&r.tenant_id).map_err(|e| corrupt("user tenant", e))?,
            sub: SubjectId::parse(&r.sub).map_err(|e| corrupt("user sub", e))?,
            username: Username::parse(&r.username).map_err(|e| corrupt("username", e))?,
            email: email.as_deref().map(Email::parse).transpose().map_err(|e| corrupt("email", e))?,
            email_verified: r.email_verified,
            name: name.as_deref().map(DisplayName::parse).transpose().map_err(|e| corrupt("name", e))?,
            profile: serde_json::from_str(&profile).map_err(|e| corrupt("profile", e))?,
            has_password: r.password_hash.is_some(),
            password_hash: r.password_hash,
            locked: r.locked,
            service_account: r.service_account,
            created_at: r.created_at,
            updated_at: r.updated_at,
            password_changed_at: r.password_changed_at.map(UnixTime::from_secs),
            changes_blocked_at: r.changes_blocked_at.map(UnixTime::from_secs),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ClientRow {
    tenant_id: String,
    client_id: String,
    name: String,
    kind: String,
    secret_hash: Option<String>,
    previous_secret_hash: Option<String>,
    previous_secret_expires_at: Option<i64>,
    redirect_uris: String,
    post_logout_redirect_uris: String,
    grant_types: String,
    allowed_scopes: String,
    auth_method: String,
    id_token_alg: String,
    first_party: bool,
    jwks: Option<String>,
    jwks_uri: Option<String>,
    allow_insecure_no_pkce: bool,
    allow_legacy_assertion_audience: bool,
    access_token_lifetime: Option<i64>,
    session_policy: String,
    access_policy: String,
    allow_insecure_redirect_uris: bool,
    refresh_reuse_grace: Option<i64>,
    admin_client: bool,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<ClientRow> for Client {
    type Error = StoreError;
    fn try_from(r: ClientRow) -> Result<Self, StoreError> {
        let uri = |s: &str| Ok::<_, String>(RedirectUri::from_stored(s.to_owned()));
        Ok(Client {
            tenant: TenantId::parse(&r.tenant_id).map_err(|e| corrupt("client tenant", e))?,
            client_id: ClientId::parse(&r.client_id).map_err(|e| corrupt("client id", e))?,
            name: r.name,
            kind: ClientKind::parse(&r.kind).map_err(|e| corrupt("client kind", e))?,
            secret_hash: r.secret_hash.map(TokenHash::from_stored),
            previous_secret_hash: r.previous_secret_hash.map(TokenHash::from_stored),
            previous_secret_expires_at: r.previous_secret_expires_at,
            redirect_uris: json_list(&r.redirect_uris, "redirect uris", uri)?,
            post_logout_redirect_uris: json_list(&r.post_logout_redirect_uris, "post-logout uris", uri)?,
            grant_types: json_list(&r.grant_types, "grant types", GrantType::parse)?,
            allowed_scopes: json_list(&r.allowed_scopes, "allowed scopes", ScopeName::parse)?,
            token_endpoint_auth_method: TokenEndpointAuthMethod::parse(&r.auth_method)
                .map_err(|e| corrupt("auth method", e))?,
            id_token_signed_response_alg: SigningAlg::parse(&r.id_token_alg).map_err(|e| corrupt("id token alg", e))?,
            first_party: r.first_party,
            jwks: r.jwks,
            jwks_uri: r.jwks_uri,
            allow_insecure_no_pkce: r.allow_insecure_no_pkce,
            allow_legacy_assertion_audience: r.allow_legacy_assertion_audience,
            access_token_lifetime: r.access_token_lifetime,
            session_policy: serde_json::from_str(&r.session_policy).map_err(|e| corrupt("client session policy", e))?,
            access_policy: serde_json::from_str(&r.access_policy).map_err(|e| corrupt("client access policy", e))?,
            allow_insecure_redirect_uris: r.allow_insecure_redirect_uris,
            refresh_reuse_grace: r.refresh_reuse_grace,
            admin_client: r.admin_client,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ScopeRow {
    name: String,
    description: String,
    built_in: bool,
}

impl TryFrom<ScopeRow> for ScopeDefinition {
    type Error = StoreError;
    fn try_from(r: ScopeRow) -> Result<Self, StoreError> {
        Ok(ScopeDefinition {
            name: ScopeName::parse(&r.name).map_err(|e| corrupt("scope", e))?,
            description: r.description,
            built_in: r.built_in,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct SigningKeyRow {
    kid: String,
    alg: String,
    state: String,
    private_key: Vec<u8>,
    public_jwk: String,
    created_at: i64,
    activated_at: Option<i64>,
    retired_at: Option<i64>,
    publish_until: Option<i64>,
}

impl TryFrom<SigningKeyRow> for StoredSigningKey {
    type Error = StoreError;
    fn try_from(r: SigningKeyRow) -> Result<Self, StoreError> {
        Ok(StoredSigningKey {
            kid: r.kid,
            alg: SigningAlg::parse(&r.alg).map_err(|e| corrupt("key alg", e))?,
            state: KeyState::parse(&r.state)
                .ok_or_else(|| StoreError::Corrupt(format!("unknown signing key state `{}`", &r.state)))?,
            sealed_private_key: r.private_key,
            public_jwk: r.public_jwk,
            created_at: UnixTime::from_secs(r.created_at),
            activated_at: r.activated_at.map(UnixTime::from_secs),
            retired_at: r.retired_at.map(UnixTime::from_secs),
            publish_until: r.publish_until.map(UnixTime::from_secs),
        })
    }
}

/// An audit log entry as stored, with its subject's salt (none once they are erased).
#[derive(sqlx::FromRow)]
pub(crate) struct AuditLogRow {
    pub id: i64,
    pub seq: Option<i64>,
    pub at: i64,
    pub action: String,
    pub actor_ref: String,
    pub target_ref: String,
    pub sealed: String,
    pub mac: Option<String>,
    pub salt: Option<String>,
}

impl AuditLogRow {
    /// The event as read: opened, or (its subject erased) pseudonyms and no details.
    pub fn into_event(self, opened: Option<crate::shared::audit::SealedPart>) -> Result<AuditEvent, StoreError> {
        let (actor, target, details, erased) = match opened {
            Some(p) => (p.actor, p.target, p.details, false),
            None => (self.actor_ref, self.target_ref, serde_json::json!({}), true),
        };
        Ok(AuditEvent {
            at: UnixTime::from_secs(self.at),
            seq: self.seq,
            actor,
            action: self.action,
            target,
            details,
            erased,
        })
    }

    pub fn into_chain_entry(self, checkpoint: Option<serde_json::Value>) -> Result<crate::ChainEntry, StoreError> {
        let (Some(seq), Some(mac)) = (self.seq, self.mac) else {
            return Err(StoreError::Corrupt(format!(
                "audit entry {} was read as chained but has no position",
                self.id
            )));
        };
        Ok(crate::ChainEntry {
            id: self.id,
            seq,
            at: self.at,
            action: self.action,
            actor_ref: self.actor_ref,
            target_ref: self.target_ref,
            sealed: self.sealed,
            mac,
            checkpoint,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ApiKeyRow {
    key_id: String,
    owner_sub: String,
    name: String,
    secret_hash: String,
    previous_secret_hash: Option<String>,
    previous_valid_until: Option<i64>,
    scopes: String,
    routes: String,
    methods: String,
    audience: Option<String>,
    created_at: i64,
    expires_at: Option<i64>,
    last_used_at: Option<i64>,
    revoked_at: Option<i64>,
}

impl TryFrom<ApiKeyRow> for ApiKey {
    type Error = StoreError;
    fn try_from(r: ApiKeyRow) -> Result<Self, StoreError> {
        Ok(ApiKey {
            id: ApiKeyId::parse(&r.key_id).map_err(|e| corrupt("API key id", e))?,
            owner: SubjectId::parse(&r.owner_sub).map_err(|e| corrupt("API key owner", e))?,
            name: r.name,
            secret_hash: TokenHash::from_stored(r.secret_hash),
            previous_secret_hash: r.previous_secret_hash.map(TokenHash::from_stored),
            previous_valid_until: r.previous_valid_until,
            scopes: json_list(&r.scopes, "API key scopes", ScopeName::parse)?,
            routes: json_list(&r.routes, "API key routes", RoutePattern::parse)?,
            methods: json_list(&r.methods, "API key methods", parse_method)?,
            audience: r.audience,
            created_at: r.created_at,
            expires_at: r.expires_at,
            last_used_at: r.last_used_at,
            revoked_at: r.revoked_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct OutboxRow {
    tenant_id: String,
    id: String,
    channel: String,
    kind: String,
    sealed: Vec<u8>,
    attempts: i64,
    expires_at: i64,
}

impl TryFrom<OutboxRow> for latchkey_core::records::QueuedMessage {
    type Error = StoreError;
    fn try_from(r: OutboxRow) -> Result<Self, StoreError> {
        Ok(Self {
            tenant: TenantId::parse(&r.tenant_id).map_err(|e| StoreError::Corrupt(format!("outbox tenant: {e}")))?,
            channel: latchkey_core::records::Channel::parse(&r.channel)
                .ok_or_else(|| StoreError::Corrupt(format!("outbox channel `{}`", r.channel)))?,
            id: r.id,
            kind: r.kind,
            sealed: r.sealed,
            // Counted when claimed: the attempts before this one.
            attempts: u32::try_from(r.attempts.saturating_sub(1)).unwrap_or(0),
            claim: u32::try_from(r.attempts).unwrap_or(0),
            expires_at: UnixTime::from_secs(r.expires_at),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct OneTimeTokenRow {
    pub(crate) token_hash: String,
    purpose: String,
    sub: String,
    /// Sealed (or in clear, for a row written before sealing: `sealed_gen` NULL).
    pub(crate) detail: String,
    created_at: i64,
    expires_at: i64,
    pub(crate) sealed_gen: Option<i64>,
}

impl OneTimeTokenRow {
    /// The token, given its opened detail.
    pub(crate) fn into_token(self, detail: String) -> Result<OneTimeToken, StoreError> {
        let r = self;
        Ok(OneTimeToken {
            purpose: r.purpose,
            sub: SubjectId::parse(&r.sub).map_err(|e| corrupt("one-time token sub", e))?,
            detail,
            created_at: UnixTime::from_secs(r.created_at),
            expires_at: UnixTime::from_secs(r.expires_at),
        })
    }
}
