//! Passkeys, TOTP, recovery codes, invitations and ceremony state as the store holds them.

use latchkey_core::UnixTime;
use latchkey_core::crypto::TokenHash;
use latchkey_core::domain::SubjectId;

use crate::NewUser;

/// A registered passkey. `credential` is the verifier's own record of it (public key,
/// algorithm, counter, flags) as JSON; the store keeps it whole.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredPasskey {
    /// base64url without padding, as browsers report it.
    pub credential_id: String,
    pub sub: SubjectId,
    pub name: String,
    pub credential: String,
    pub sign_count: u32,
    /// May be synced to other devices (a "synced passkey").
    pub backup_eligible: bool,
    /// Is backed up right now.
    pub backup_state: bool,
    pub created_at: UnixTime,
    pub last_used_at: Option<UnixTime>,
}

#[derive(Debug, Clone)]
pub struct NewPasskey {
    pub credential_id: String,
    pub name: String,
    pub credential: String,
    pub sign_count: u32,
    pub backup_eligible: bool,
    pub backup_state: bool,
}

/// What a successful passkey sign-in changes.
#[derive(Debug, Clone)]
pub struct PasskeyUse {
    pub credential_id: String,
    pub credential: String,
    /// The authenticator's new counter; 0 means it keeps none (synced passkeys).
    pub sign_count: u32,
    pub backup_state: bool,
    pub at: UnixTime,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TotpFactor {
    /// The secret sealed under the master key (hex).
    pub secret_sealed: String,
    /// Enrolment was confirmed with a code; until then the factor is not used at sign-in.
    pub confirmed: bool,
    pub last_used_step: u64,
    pub created_at: UnixTime,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Invitation {
    pub id: String,
    pub note: Option<String>,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
    pub used_at: Option<UnixTime>,
    pub used_by: Option<SubjectId>,
}

/// Everything a passkey sign-up creates, in one transaction: the user, their first passkey,
/// their recovery codes (hashes), and the use of the invitation it came with.
#[derive(Debug, Clone)]
pub struct NewAccount {
    pub user: NewUser,
    pub webauthn_user_id: String,
    pub passkey: NewPasskey,
    pub recovery_code_hashes: Vec<TokenHash>,
    pub invitation: Option<TokenHash>,
}

pub(crate) fn time(secs: i64) -> UnixTime {
    UnixTime::from_secs(secs)
}

#[derive(sqlx::FromRow)]
pub(crate) struct PasskeyRow {
    pub credential_id: String,
    pub sub: String,
    pub name: String,
    pub credential: String,
    pub sign_count: i64,
    pub backup_eligible: bool,
    pub backup_state: bool,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

impl TryFrom<PasskeyRow> for StoredPasskey {
    type Error = crate::StoreError;
    fn try_from(r: PasskeyRow) -> Result<Self, Self::Error> {
        Ok(StoredPasskey {
            credential_id: r.credential_id,
            sub: SubjectId::parse(&r.sub).map_err(|e| crate::StoreError::Corrupt(e.to_string()))?,
            name: r.name,
            credential: r.credential,
            sign_count: u32::try_from(r.sign_count).unwrap_or(u32::MAX),
            backup_eligible: r.backup_eligible,
            backup_state: r.backup_state,
            created_at: time(r.created_at),
            last_used_at: r.last_used_at.map(time),
        })
    }
}
