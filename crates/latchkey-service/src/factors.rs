//! Ways to sign in beyond a password: passkeys, an authenticator app (TOTP), recovery
//! codes; the ceremonies that register and use them; and passkey sign-up.

use latchkey_core::UnixTime;
use latchkey_core::crypto::TokenHash;
use latchkey_core::domain::{SubjectId, TenantId};
use latchkey_core::records::{Actor, NewAccount, NewPasskey, PasskeyUse, StoredPasskey, TotpFactor, User};

use crate::{Latchkey, pass_through};

pub struct Factors<'a>(pub(crate) &'a Latchkey);

impl Factors<'_> {
    pass_through! {
        /// Creates a user with their first passkey and recovery codes, using up the invitation; all or nothing.
        fn create_account(tenant: &TenantId, account: NewAccount, actor: &Actor) -> User => create_account;
        /// The user's WebAuthn user handle, set to `candidate` if they have none yet.
        fn webauthn_user_id(tenant: &TenantId, sub: &SubjectId, candidate: &str) -> String => webauthn_user_id;
        fn passkeys(tenant: &TenantId, sub: &SubjectId) -> Vec<StoredPasskey> => passkeys;
        fn passkey(tenant: &TenantId, credential_id: &str) -> Option<StoredPasskey> => passkey;
        fn add_passkey(tenant: &TenantId, sub: &SubjectId, passkey: NewPasskey, actor: &Actor) -> () => add_passkey;
        /// Records a sign-in with a passkey; `false` when the counter did not grow (nothing changes).
        fn record_passkey_use(tenant: &TenantId, used: PasskeyUse) -> bool => record_passkey_use;
        fn rename_passkey(tenant: &TenantId, sub: &SubjectId, credential_id: &str, name: &str, actor: &Actor) -> ()
            => rename_passkey;
        /// Starts (or restarts) an unconfirmed TOTP enrolment; `Conflict` if one is confirmed.
        fn start_totp(tenant: &TenantId, sub: &SubjectId, secret_sealed: &str) -> () => start_totp;
        fn totp(tenant: &TenantId, sub: &SubjectId) -> Option<TotpFactor> => totp;
        /// Confirms the enrolment with the step of a correct code.
        fn confirm_totp(tenant: &TenantId, sub: &SubjectId, step: u64, actor: &Actor) -> bool => confirm_totp;
        /// Uses a step of a confirmed factor; `false` if it (or a later one) was used already.
        fn use_totp_step(tenant: &TenantId, sub: &SubjectId, step: u64) -> bool => use_totp_step;
        /// Replaces every recovery code of the user (the old ones stop working).
        fn replace_recovery_codes(tenant: &TenantId, sub: &SubjectId, hashes: &[TokenHash], actor: &Actor) -> ()
            => replace_recovery_codes;
        /// Uses up one recovery code; `false` if it is not an unused code of this user.
        fn use_recovery_code(tenant: &TenantId, sub: &SubjectId, hash: &TokenHash, actor: &Actor) -> bool
            => use_recovery_code;
        fn recovery_codes_left(tenant: &TenantId, sub: &SubjectId) -> u32 => recovery_codes_left;
        /// Keeps the state of a ceremony (a WebAuthn challenge, a half-finished sign-in).
        fn put_ceremony(tenant: &TenantId, id_hash: &TokenHash, purpose: &str, state: &str, expires_at: UnixTime) -> ()
            => put_ceremony;
        /// Takes a ceremony's state out (single use).
        fn take_ceremony(tenant: &TenantId, id_hash: &TokenHash, purpose: &str, now: UnixTime) -> Option<String>
            => take_ceremony;
    }

    /// Removes the authenticator app; the user's other sessions end (whoever signed in
    /// elsewhere with it is out).
    pub async fn remove_totp(
        &self,
        tenant: &TenantId,
        sub: &SubjectId,
        current_sid: &str,
        actor: &Actor,
    ) -> crate::ServiceResult<()> {
        self.0.store().remove_totp(tenant, sub, actor).await?;
        self.0.sessions().end_others(tenant, sub, current_sid, actor).await;
        Ok(())
    }

    /// Removes a passkey, unless it is the user's last way to sign in (`Invalid`; with
    /// passwords turned off, a password does not count); the
    /// user's other sessions end.
    pub async fn remove_passkey(
        &self,
        tenant: &TenantId,
        sub: &SubjectId,
        credential_id: &str,
        current_sid: &str,
        actor: &Actor,
    ) -> crate::ServiceResult<()> {
        // With passwords turned off, a password is no way in: the last passkey stays.
        if !self.0.config.login.passwords && self.passkeys(tenant, sub).await?.len() <= 1 {
            return Err(crate::ServiceError::Invalid("the last passkey is the only way to sign in".into()));
        }
        self.0.store().remove_passkey(tenant, sub, credential_id, actor).await?;
        self.0.sessions().end_others(tenant, sub, current_sid, actor).await;
        Ok(())
    }
}
