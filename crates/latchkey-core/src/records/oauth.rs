//! OAuth state as the store holds it. Grant details (`grant_data`) are a JSON document the
//! server defines; the store keeps it whole and never looks inside.

use crate::UnixTime;
use crate::crypto::TokenHash;
use crate::domain::{ClientId, SubjectId};

/// What a user allowed a client: scopes, and individual claims beyond them (OIDC Core §5.5),
/// with the version of what they were shown and how they gave it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Consent {
    pub scopes: Vec<String>,
    pub claims: Vec<String>,
    /// A fingerprint of what the user was shown: the consent text and the descriptions of
    /// the scopes and claims. Empty for a consent recorded before versions were kept.
    pub version: String,
    pub how: ConsentHow,
}

/// How a consent was given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ConsentHow {
    /// The user chose Allow on the consent page.
    #[default]
    Page,
    /// The client is first-party: the operator's own app, which the user is not asked
    /// about; recorded when it first got what it asked for.
    FirstParty,
}

impl ConsentHow {
    pub fn as_str(self) -> &'static str {
        match self {
            ConsentHow::Page => "page",
            ConsentHow::FirstParty => "first_party",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "page" => Some(ConsentHow::Page),
            "first_party" => Some(ConsentHow::FirstParty),
            _ => None,
        }
    }
}

/// A consent as it is held: which client, what was allowed, and when last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentRecord {
    pub client_id: ClientId,
    pub consent: Consent,
    pub granted_at: UnixTime,
}

/// One time a user gave a client consent, and when they withdrew it (the history a
/// person's export shows; a later consent to the same client is a new entry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentHistoryEntry {
    pub client_id: ClientId,
    pub consent: Consent,
    pub granted_at: UnixTime,
    pub withdrawn_at: Option<UnixTime>,
}

/// What withdrawing a consent did, for the node that withdrew it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsentWithdrawn {
    /// The grants whose refresh tokens were revoked.
    pub revoked_grants: Vec<String>,
    /// The sessions the client was told of their end (back-channel logout queued).
    pub logouts_queued: usize,
}

/// An authorization request waiting for sign-in or consent.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingAuthorization {
    pub binding_hash: TokenHash,
    pub request: String,
    pub expires_at: UnixTime,
    /// The network the request came from (per IPv4 address, per IPv6 /64), as the server
    /// writes it: what the per-IP limit counts. Empty for requests parked before it existed.
    pub ip_key: String,
}

#[derive(Debug, Clone)]
pub struct NewCode {
    pub code_hash: TokenHash,
    pub grant_id: String,
    pub client_id: ClientId,
    pub grant_data: String,
    pub expires_at: UnixTime,
    /// The browser session the code was issued in: stored with the code, in the same
    /// commit, is that this session signed into the client (what logout notifies).
    pub session: Option<CodeSession>,
}

#[derive(Debug, Clone)]
pub struct CodeSession {
    pub sid: String,
    /// The client has a back-channel logout URI.
    pub backchannel: bool,
}

/// What redeeming a code found.
#[derive(Debug, Clone, PartialEq)]
pub enum CodeRedemption {
    /// First use: the code is now spent.
    Redeemed {
        grant_id: String,
        client_id: String,
        grant_data: String,
        /// When the code was issued.
        issued_at: UnixTime,
        expires_at: UnixTime,
    },
    /// Used before: every token issued from it must be revoked (RFC 9700 §4.5.1).
    Replayed {
        grant_id: String,
        client_id: String,
    },
    /// Issued to another client than the one presenting it: refused, and left as it was
    /// (still redeemable by its own client, if it was).
    IssuedToAnotherClient,
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
    /// The session the grant came from.
    pub sid: Option<String>,
    /// Revoked when that session ends (not an `offline_access` token, or the client asks).
    pub ends_with_session: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StoredRefreshToken {
    pub family_id: String,
    pub grant_id: String,
    pub client_id: ClientId,
    pub sub: SubjectId,
    pub grant_data: String,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
    pub rotated_at: Option<UnixTime>,
    pub revoked_at: Option<UnixTime>,
    pub sid: Option<String>,
    pub ends_with_session: bool,
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
    /// A `consent` revocation refuses the access tokens issued at or before this time.
    pub issued_before: Option<UnixTime>,
}

/// One attempt reserved against a failure counter ([`crate::OAuthStore::reserve_attempts`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReservedAttempt {
    /// The attempts the counter holds within its window, this one included.
    pub count: i64,
    /// When the counter's window began; a release applies only within it.
    pub window_start: UnixTime,
}
