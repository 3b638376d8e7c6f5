//! Invitations: single-use sign-up links an operator hands out when sign-up is closed.

use latchkey_core::UnixTime;
use latchkey_core::crypto::{TokenHash, TokenHasher, random};
use latchkey_core::domain::TenantId;
use latchkey_core::records::{Actor, Invitation};

use crate::{Latchkey, pass_through};

/// The purpose an invitation token is hashed under: a token minted for anything else never
/// opens sign-up, and an invitation never works as any other token.
pub const INVITATION_PURPOSE: &str = "invitation";

/// A new invitation: `token` goes into the sign-up link and is not kept.
pub struct CreatedInvitation {
    pub id: String,
    pub token: String,
    pub expires_at: UnixTime,
}

pub struct Invitations<'a>(pub(crate) &'a Latchkey);

/// The stored form of an invitation token.
pub fn invitation_hash(hasher: &TokenHasher, token: &str) -> TokenHash {
    hasher.hash(INVITATION_PURPOSE, token)
}

impl Invitations<'_> {
    pub fn hash(&self, token: &str) -> TokenHash {
        invitation_hash(&self.0.token_hasher, token)
    }

    /// Creates an invitation valid for `lifetime` (`registration.invitation_lifetime` when
    /// `None`); a blank note is no note. Returns the token, which is shown once and stored
    /// only as its hash.
    pub async fn create(
        &self,
        tenant: &TenantId,
        note: Option<&str>,
        lifetime: Option<std::time::Duration>,
        actor: &Actor,
    ) -> crate::ServiceResult<CreatedInvitation> {
        let lifetime = lifetime.unwrap_or(self.0.config.registration.invitation_lifetime);
        if lifetime.is_zero() {
            return Err(crate::ServiceError::Invalid("an invitation must be valid for more than 0s".into()));
        }
        let note = note.map(str::trim).filter(|n| !n.is_empty());
        let token = random::token_string::<32>();
        let id = random::identifier::<6>();
        let expires_at = self.0.clock.now().plus(lifetime);
        self.0.store().create_invitation(tenant, &self.hash(&token), &id, note, expires_at, actor).await?;
        Ok(CreatedInvitation { id, token, expires_at })
    }

    pass_through! {
        fn list(tenant: &TenantId) -> Vec<Invitation> => invitations;
        fn usable(tenant: &TenantId, token_hash: &TokenHash, now: UnixTime) -> bool => invitation_usable;
        /// Deletes an unused invitation.
        fn revoke(tenant: &TenantId, id: &str, actor: &Actor) -> () => revoke_invitation;
    }
}
