//! Single sign-on sessions as the store holds them, and the back-channel logout queue.

use crate::UnixTime;
use crate::crypto::TokenHash;
use crate::domain::{ClientId, SubjectId, TenantId};

/// A signed-in browser. `sid` is public (it goes into ID and logout tokens) and survives
/// nothing: a new sign-in makes a new session. The cookie value is not stored, only its hash.
#[derive(Debug, Clone, PartialEq)]
pub struct BrowserSession {
    pub id_hash: TokenHash,
    pub sid: String,
    pub sub: SubjectId,
    pub auth_time: UnixTime,
    pub amr: Vec<String>,
    pub acr: String,
    pub created_at: UnixTime,
    /// The absolute end: the session is over at this time whatever happens.
    pub expires_at: UnixTime,
    /// Refreshed (coarsely) while the browser uses the session; idle expiry counts from it.
    pub last_active_at: UnixTime,
    /// "Keep me signed in" was chosen.
    pub remember: bool,
    pub user_agent: Option<String>,
    /// Kept only as `privacy.ip` says (the whole address, or its network).
    pub ip: Option<String>,
}

/// A session with the clients it signed into, for the account page and the CLI.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionInfo {
    pub session: BrowserSession,
    pub clients: Vec<ClientId>,
}

/// Which sessions to end.
#[derive(Debug, Clone)]
pub enum SessionSelector {
    /// The session whose cookie hashes to this (a browser's own sign-out).
    IdHash(TokenHash),
    /// The session with this public id.
    Sid(String),
    /// Every session of a user, except one (the one that made a change, say).
    User { sub: SubjectId, except_sid: Option<String> },
}

/// How sessions end.
#[derive(Debug, Clone)]
pub struct SessionEnd {
    pub now: UnixTime,
    /// Until when the revocation of the grants whose refresh tokens die must be kept: past
    /// the expiry of any access token they issued.
    pub revoke_until: UnixTime,
    /// Revoke every refresh token of the user, `offline_access` ones included (the user is
    /// locked or deleted). Only with [`SessionSelector::User`].
    pub revoke_all_refresh_tokens: bool,
    /// Why, for the audit log (`logout`, `user_locked`, `revoked_by_user`, ...).
    pub reason: &'static str,
}

/// What ending one session did.
#[derive(Debug, Clone, PartialEq)]
pub struct EndedSession {
    pub sid: String,
    pub sub: SubjectId,
    /// Every client the session signed into (the front-channel iframes come from these).
    pub clients: Vec<ClientId>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionsEnded {
    pub sessions: Vec<EndedSession>,
    /// Grants whose refresh tokens were revoked (their access tokens are revoked too).
    pub revoked_grants: Vec<String>,
}

/// A back-channel logout token to deliver. The token is signed at each attempt (fresh
/// `iat`/`exp`, the same `jti`), with the client's settings as they are then.
#[derive(Debug, Clone, PartialEq)]
pub struct LogoutDelivery {
    pub tenant: TenantId,
    pub jti: String,
    pub client_id: ClientId,
    pub sub: SubjectId,
    pub sid: String,
    /// Attempts made before this one.
    pub attempts: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum DeliveryOutcome {
    Delivered,
    Retry { at: UnixTime, error: String },
    Failed { error: String },
}

/// A queued or finished delivery, as operators and tests see it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryRecord {
    pub jti: String,
    pub client_id: ClientId,
    pub sid: String,
    pub status: String,
    pub attempts: i64,
    pub last_error: Option<String>,
}
