//! Passkeys, TOTP, recovery codes, invitations and ceremony state as the store holds them.

use crate::UnixTime;
use crate::crypto::TokenHash;
use crate::domain::SubjectId;

use super::NewUser;

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

/// The ways a user can sign in now, as a rule about removing one sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInMethods {
    pub password: bool,
    pub passkeys: u32,
    /// The providers at which the user has an account linked (configured or not: the
    /// services count only those still configured as a way in).
    pub linked_providers: Vec<String>,
}
