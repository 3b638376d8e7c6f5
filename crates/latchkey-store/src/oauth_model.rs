//! OAuth state as the store holds it. Grant details (`grant_data`) are a JSON document the
//! server defines; the store keeps it whole and never looks inside.

use latchkey_core::UnixTime;
use latchkey_core::crypto::TokenHash;
use latchkey_core::domain::{ClientId, SubjectId};

use crate::StoreError;

/// A signed-in browser. `sid` is public (it goes into ID tokens); the cookie value is not
/// stored, only its hash.
#[derive(Debug, Clone, PartialEq)]
pub struct BrowserSession {
    pub id_hash: TokenHash,
    pub sid: String,
    pub sub: SubjectId,
    pub auth_time: UnixTime,
    pub amr: Vec<String>,
    pub acr: String,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
}

/// An authorization request waiting for sign-in or consent.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingAuthorization {
    pub binding_hash: TokenHash,
    pub request: String,
    pub expires_at: UnixTime,
}

#[derive(Debug, Clone)]
pub struct NewCode {
    pub code_hash: TokenHash,
    pub grant_id: String,
    pub client_id: ClientId,
    pub grant_data: String,
    pub expires_at: UnixTime,
}

/// What redeeming a code found.
#[derive(Debug, Clone, PartialEq)]
pub enum CodeRedemption {
    /// First use: the code is now spent.
    Redeemed {
        grant_id: String,
        client_id: String,
        grant_data: String,
        expires_at: UnixTime,
    },
    /// Used before: every token issued from it must be revoked (RFC 9700 §4.5.1).
    Replayed {
        grant_id: String,
        client_id: String,
    },
    Unknown,
}

#[derive(Debug, Clone)]
pub struct NewRefreshToken {
    pub token_hash: TokenHash,
    pub family_id: String,
    pub grant_id: String,
    pub client_id: ClientId,
    pub sub: String,
    pub grant_data: String,
    pub expires_at: UnixTime,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StoredRefreshToken {
    pub family_id: String,
    pub grant_id: String,
    pub client_id: String,
    pub sub: String,
    pub grant_data: String,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
    pub rotated_at: Option<UnixTime>,
    pub revoked_at: Option<UnixTime>,
}

/// What presenting a refresh token found.
#[derive(Debug, Clone, PartialEq)]
pub enum RefreshRotation {
    /// The token was live; it is now rotated and the new one stored.
    Rotated(StoredRefreshToken),
    /// Rotated moments ago (within the grace): a concurrent duplicate; refused, family kept.
    ConcurrentUse,
    /// Rotated earlier: a stolen copy; the whole family is now revoked.
    Reused {
        family_id: String,
        grant_id: String,
    },
    Revoked,
    Expired,
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    pub seq: i64,
    pub kind: String,
    pub value: String,
    pub expires_at: UnixTime,
}

#[derive(sqlx::FromRow)]
pub(crate) struct SessionRow {
    id_hash: String,
    sid: String,
    sub: String,
    auth_time: i64,
    amr: String,
    acr: String,
    created_at: i64,
    expires_at: i64,
}

impl TryFrom<SessionRow> for BrowserSession {
    type Error = StoreError;
    fn try_from(r: SessionRow) -> Result<Self, StoreError> {
        Ok(BrowserSession {
            id_hash: TokenHash::from_stored(r.id_hash),
            sid: r.sid,
            sub: SubjectId::parse(&r.sub).map_err(|e| StoreError::Corrupt(format!("session sub: {e}")))?,
            auth_time: UnixTime::from_secs(r.auth_time),
            amr: serde_json::from_str(&r.amr).map_err(|e| StoreError::Corrupt(format!("session amr: {e}")))?,
            acr: r.acr,
            created_at: UnixTime::from_secs(r.created_at),
            expires_at: UnixTime::from_secs(r.expires_at),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct RefreshRow {
    family_id: String,
    grant_id: String,
    client_id: String,
    sub: String,
    grant_data: String,
    created_at: i64,
    expires_at: i64,
    rotated_at: Option<i64>,
    revoked_at: Option<i64>,
}

impl From<RefreshRow> for StoredRefreshToken {
    fn from(r: RefreshRow) -> Self {
        StoredRefreshToken {
            family_id: r.family_id,
            grant_id: r.grant_id,
            client_id: r.client_id,
            sub: r.sub,
            grant_data: r.grant_data,
            created_at: UnixTime::from_secs(r.created_at),
            expires_at: UnixTime::from_secs(r.expires_at),
            rotated_at: r.rotated_at.map(UnixTime::from_secs),
            revoked_at: r.revoked_at.map(UnixTime::from_secs),
        }
    }
}
