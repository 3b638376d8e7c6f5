//! Ways to sign in beyond a password: passkeys, an authenticator app (TOTP), recovery
//! codes; the ceremonies that register and use them; and passkey sign-up.

use latchkey_core::UnixTime;
use latchkey_core::crypto::{TokenHash, TotpSecret, recovery_code};
use latchkey_core::domain::{SubjectId, TenantId};
use latchkey_core::records::{Actor, NewAccount, NewPasskey, PasskeyUse, StoredPasskey, TotpFactor, User};

use crate::security_notices::Change;
use crate::{Latchkey, ServiceError, ServiceResult, pass_through};

pub struct Factors<'a>(pub(crate) &'a Latchkey);

impl Factors<'_> {
    pass_through! {
        /// Creates a user with their first passkey and recovery codes, using up the invitation; all or nothing.
        fn create_account(tenant: &TenantId, account: NewAccount, actor: &Actor) -> User => create_account;
        /// The user's WebAuthn user handle, set to `candidate` if they have none yet.
        fn webauthn_user_id(tenant: &TenantId, sub: &SubjectId, candidate: &str) -> String => webauthn_user_id;
        fn passkeys(tenant: &TenantId, sub: &SubjectId) -> Vec<StoredPasskey> => passkeys;
        fn passkey(tenant: &TenantId, credential_id: &str) -> Option<StoredPasskey> => passkey;
        /// Records a sign-in with a passkey; `false` when the counter did not grow (nothing changes).
        fn record_passkey_use(tenant: &TenantId, used: PasskeyUse) -> bool => record_passkey_use;
        /// Starts (or restarts) an unconfirmed TOTP enrolment; `Conflict` if one is confirmed.
        fn start_totp(tenant: &TenantId, sub: &SubjectId, secret_sealed: &str) -> () => start_totp;
        fn totp(tenant: &TenantId, sub: &SubjectId) -> Option<TotpFactor> => totp;
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
        /// A ceremony's state, left in place.
        fn peek_ceremony(tenant: &TenantId, id_hash: &TokenHash, purpose: &str, now: UnixTime) -> Option<String>
            => peek_ceremony;
        /// Takes a ceremony's state out (single use).
        fn take_ceremony(tenant: &TenantId, id_hash: &TokenHash, purpose: &str, now: UnixTime) -> Option<String>
            => take_ceremony;
    }

    /// Renames a passkey (not while the account's changes are blocked).
    pub async fn rename_passkey(
        &self,
        tenant: &TenantId,
        sub: &SubjectId,
        credential_id: &str,
        name: &str,
        actor: &Actor,
    ) -> ServiceResult<()> {
        self.0.security_notices().may_change(tenant, sub, actor).await?;
        Ok(self.0.store().rename_passkey(tenant, sub, credential_id, name, actor).await?)
    }

    /// Adds a passkey; its owner is told when they added it themselves
    /// ([`crate::security_notices`]), and cannot while their account's changes are blocked.
    pub async fn add_passkey(
        &self,
        tenant: &TenantId,
        sub: &SubjectId,
        passkey: NewPasskey,
        actor: &Actor,
    ) -> ServiceResult<()> {
        let notices = self.0.security_notices();
        let mut tx = self.0.store().transaction().await?;
        tx.lock_user(tenant, sub).await?;
        let user = notices.may_change_in(tx.as_mut(), tenant, sub, actor).await?;
        tx.add_passkey(tenant, sub, &passkey, actor).await?;
        notices.tell(tx.as_mut(), tenant, &user, &Change::PasskeyAdded(passkey.name.clone()), actor).await?;
        tx.commit().await?;
        Ok(())
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
        let sessions = self.0.sessions();
        let notices = self.0.security_notices();
        let how = sessions.ending("credentials_changed", false).await;
        let mut tx = self.0.store().transaction().await?;
        tx.lock_user(tenant, sub).await?;
        let user = notices.may_change_in(tx.as_mut(), tenant, sub, actor).await?;
        tx.remove_totp(tenant, sub, actor).await?;
        notices.tell(tx.as_mut(), tenant, &user, &Change::AppRemoved, actor).await?;
        sessions.commit_ending_others(tx, &how, (tenant, sub, current_sid), actor).await
    }

    /// Removes a passkey, unless it is the user's last way to sign in (`Invalid`; with
    /// passwords turned off, a password does not count); the user's other sessions end in
    /// the same transaction.
    pub async fn remove_passkey(
        &self,
        tenant: &TenantId,
        sub: &SubjectId,
        credential_id: &str,
        current_sid: &str,
        actor: &Actor,
    ) -> crate::ServiceResult<()> {
        let sessions = self.0.sessions();
        let notices = self.0.security_notices();
        let how = sessions.ending("credentials_changed", false).await;
        let name = self.passkeys(tenant, sub).await?.into_iter().find(|p| p.credential_id == credential_id);
        let name = name.map(|p| p.name).unwrap_or_default();
        let mut tx = self.0.store().transaction().await?;
        let methods = tx.sign_in_methods(tenant, sub).await?;
        let user = notices.may_change_in(tx.as_mut(), tenant, sub, actor).await?;
        tx.delete_passkey(tenant, sub, credential_id, actor).await?;
        if methods.passkeys <= 1 && self.0.federation().usable_links(&methods) == 0 {
            // With passwords turned off, a password is no way in: the last passkey stays.
            if !self.0.config.login.passwords {
                return Err(ServiceError::Invalid("the last passkey is the only way to sign in".into()));
            }
            if !methods.password {
                return Err(ServiceError::Invalid(
                    "this is your last way to sign in: add another passkey or a password first".into(),
                ));
            }
        }
        notices.tell(tx.as_mut(), tenant, &user, &Change::PasskeyRemoved(name), actor).await?;
        sessions.commit_ending_others(tx, &how, (tenant, sub, current_sid), actor).await
    }
}

/// How a code for an authenticator app being set up was taken.
#[derive(Debug, PartialEq, Eq)]
pub enum TotpConfirmation {
    Confirmed,
    /// Not a code of the secret now (or its step was used): nothing changes.
    WrongCode,
    /// The user has no enrolment waiting for confirmation (none, or one confirmed already).
    NothingPending,
}

/// The authenticator app's secret is sealed under the master key, bound to its user.
fn totp_aad(sub: &SubjectId) -> Vec<u8> {
    format!("totp:{sub}").into_bytes()
}

impl Factors<'_> {
    fn seal_totp(&self, sub: &SubjectId, secret: &TotpSecret) -> String {
        hex::encode(self.0.master_key.seal(secret.as_bytes(), &totp_aad(sub)))
    }

    fn open_totp(&self, sub: &SubjectId, sealed: &str) -> ServiceResult<TotpSecret> {
        let opened = hex::decode(sealed).ok().and_then(|bytes| self.0.master_key.open(&bytes, &totp_aad(sub)).ok());
        opened.map(TotpSecret::from_bytes).ok_or_else(|| {
            tracing::error!(%sub, "cannot open a TOTP secret (wrong master key?)");
            ServiceError::Unavailable("cannot open the TOTP secret".into())
        })
    }

    /// Starts (or restarts) setting up an authenticator app with a fresh secret;
    /// `Conflict` if the user has a confirmed one.
    pub async fn begin_totp(&self, tenant: &TenantId, sub: &SubjectId) -> ServiceResult<()> {
        self.0.security_notices().may_change(tenant, sub, &Actor::User(sub.to_string())).await?;
        let sealed = self.seal_totp(sub, &TotpSecret::generate());
        self.start_totp(tenant, sub, &sealed).await
    }

    /// The secret of the user's authenticator app waiting for confirmation, to show them;
    /// `None` if none is waiting.
    pub async fn pending_totp(&self, tenant: &TenantId, sub: &SubjectId) -> ServiceResult<Option<TotpSecret>> {
        match self.totp(tenant, sub).await? {
            Some(factor) if !factor.confirmed => Ok(Some(self.open_totp(sub, &factor.secret_sealed)?)),
            _ => Ok(None),
        }
    }

    /// Confirms the authenticator app being set up with a code from it: only then does it
    /// count as a factor.
    pub async fn confirm_totp_code(
        &self,
        tenant: &TenantId,
        sub: &SubjectId,
        code: &str,
        actor: &Actor,
    ) -> ServiceResult<TotpConfirmation> {
        let Some(secret) = self.pending_totp(tenant, sub).await? else {
            return Ok(TotpConfirmation::NothingPending);
        };
        let Some(step) = secret.check(code, self.now_secs()) else { return Ok(TotpConfirmation::WrongCode) };
        let notices = self.0.security_notices();
        let mut tx = self.0.store().transaction().await?;
        tx.lock_user(tenant, sub).await?;
        let user = notices.may_change_in(tx.as_mut(), tenant, sub, actor).await?;
        if !tx.confirm_totp(tenant, sub, step, actor).await? {
            return Ok(TotpConfirmation::WrongCode);
        }
        notices.tell(tx.as_mut(), tenant, &user, &Change::AppAdded, actor).await?;
        tx.commit().await?;
        Ok(TotpConfirmation::Confirmed)
    }

    /// Whether `code` is right for the user's confirmed authenticator app; a right code's
    /// time step is used up (a code works once). Any failure to check counts as wrong.
    pub async fn check_totp(&self, tenant: &TenantId, sub: &SubjectId, code: &str) -> bool {
        let Ok(Some(factor)) = self.totp(tenant, sub).await else { return false };
        if !factor.confirmed {
            return false;
        }
        let Ok(secret) = self.open_totp(sub, &factor.secret_sealed) else { return false };
        match secret.check(code, self.now_secs()) {
            Some(step) => self.use_totp_step(tenant, sub, step).await.unwrap_or(false),
            None => false,
        }
    }

    fn now_secs(&self) -> u64 {
        u64::try_from(self.0.clock.now().secs()).unwrap_or(0)
    }

    /// Fresh recovery codes, to show once, and the keyed hashes to store.
    pub fn generate_recovery_codes(&self) -> (Vec<String>, Vec<TokenHash>) {
        let codes = recovery_code::generate();
        let hashes = codes.iter().map(|c| self.0.token_hasher.hash(recovery_code::PURPOSE, c)).collect();
        (codes, hashes)
    }

    /// Replaces every recovery code of the user with fresh ones (the old ones stop
    /// working) and returns them, to show once.
    pub async fn regenerate_recovery_codes(
        &self,
        tenant: &TenantId,
        sub: &SubjectId,
        actor: &Actor,
    ) -> ServiceResult<Vec<String>> {
        let (codes, hashes) = self.generate_recovery_codes();
        let notices = self.0.security_notices();
        let mut tx = self.0.store().transaction().await?;
        tx.lock_user(tenant, sub).await?;
        let user = notices.may_change_in(tx.as_mut(), tenant, sub, actor).await?;
        tx.replace_recovery_codes(tenant, sub, &hashes, actor).await?;
        notices.tell(tx.as_mut(), tenant, &user, &Change::RecoveryCodesReplaced, actor).await?;
        tx.commit().await?;
        Ok(codes)
    }

    /// Uses up the recovery code the user typed (spaces, dashes and case do not matter);
    /// `false` if it is not an unused code of theirs, or cannot be checked.
    pub async fn redeem_recovery_code(&self, tenant: &TenantId, sub: &SubjectId, typed: &str) -> bool {
        let Some(code) = recovery_code::normalize(typed) else { return false };
        let hash = self.0.token_hasher.hash(recovery_code::PURPOSE, &code);
        self.use_recovery_code(tenant, sub, &hash, &Actor::User(sub.to_string())).await.unwrap_or(false)
    }
}

/// What a user has set up beyond a password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecondFactors {
    pub passkeys: usize,
    /// A confirmed authenticator app.
    pub totp: bool,
    /// A code by text to this (verified) number, where offered
    /// ([`crate::sms_second_factor`]: never beside a passkey or an app).
    pub sms: Option<String>,
}

impl SecondFactors {
    pub fn any(&self) -> bool {
        self.passkeys > 0 || self.totp || self.sms.is_some()
    }
}

impl Factors<'_> {
    /// What the user has set up beyond a password (none, when it cannot be read).
    pub async fn second_factors(&self, tenant: &TenantId, sub: &SubjectId) -> SecondFactors {
        let passkeys = self.passkeys(tenant, sub).await.map(|p| p.len()).unwrap_or(0);
        let totp = matches!(self.totp(tenant, sub).await, Ok(Some(t)) if t.confirmed);
        let sms = self.0.sms_second_factor().number_for(tenant, sub).await.ok().flatten();
        SecondFactors { passkeys, totp, sms }
    }

    /// Whether a sign-in proved by `factors` must still give a second factor: a user with a
    /// password and a second factor (a passkey or an authenticator app) must use both.
    pub async fn second_factor_needed(
        &self,
        tenant: &TenantId,
        sub: &SubjectId,
        factors: &latchkey_core::domain::Factors,
    ) -> bool {
        use latchkey_core::domain::Factor;
        matches!(factors.as_slice(), [Factor::Password] | [Factor::EmailLink] | [Factor::Federated])
            && self.second_factors(tenant, sub).await.any()
    }
}
