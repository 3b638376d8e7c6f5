//! Users: accounts, their passwords and their state. Locking, deleting and a password
//! change end sessions and revoke tokens in the same transaction as the change itself, so
//! no crash can leave a locked user signed in.

use latchkey_core::domain::{Email, NewPassword, SubjectId, TenantId, Username};
use latchkey_core::records::{Actor, ImportOutcome, NewUser, User, UserPatch, UserQuery};

use crate::security_notices::Change;
use crate::{Latchkey, ServiceError, ServiceResult, pass_through};

pub struct Users<'a>(pub(crate) &'a Latchkey);

/// Who changes a password, which decides what else ends with the old one.
#[derive(Debug, Clone)]
pub enum PasswordChange {
    /// The user, from their signed-in session `current_sid`: that session stays, the
    /// others end (`sessions.end_other_sessions_on_password_change`).
    BySelf { current_sid: String },
    /// An operator: every session ends and every refresh token is revoked
    /// (`sessions.end_other_sessions_on_password_change`).
    ByOperator,
}

/// A change to a user's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateChange {
    Lock,
    Unlock,
    Delete,
}

impl Users<'_> {
    pass_through! {
        fn by_sub(tenant: &TenantId, sub: &SubjectId) -> Option<User> => user_by_sub;
        fn by_username(tenant: &TenantId, username: &Username) -> Option<User> => user_by_username;
        fn by_email(tenant: &TenantId, email: &Email) -> Option<User> => user_by_email;
        fn by_webauthn_id(tenant: &TenantId, id: &str) -> Option<User> => user_by_webauthn_id;
        fn list(tenant: &TenantId) -> Vec<User> => list_users;
        /// One page of users by username, filtered (the admin API's list and search).
        fn search(tenant: &TenantId, query: &UserQuery) -> Vec<User> => search_users;
        /// Creates a user; a taken username or email, or a `sub` that is a client's id, is `Conflict`.
        fn create(tenant: &TenantId, user: NewUser, actor: &Actor) -> User => create_user;
        fn update(tenant: &TenantId, sub: &SubjectId, patch: UserPatch, actor: &Actor) -> User => update_user;
        /// Replaces the hash `old` by `new` (the same password at today's parameters) unless
        /// the password changed meanwhile. Returns whether it was replaced.
        fn upgrade_password_hash(tenant: &TenantId, sub: &SubjectId, old: &str, new: &str) -> bool => upgrade_password_hash;
        /// Many users in one transaction, all or none (`user import`).
        fn import(tenant: &TenantId, users: &[NewUser], actor: &Actor) -> ImportOutcome => import_users;
    }

    /// What the user knows themselves by: their username, or with `identifier = "email"`
    /// (where the username is generated and never shown) their email address.
    pub fn known_as(&self, user: &User) -> String {
        match (&user.email, self.0.config.registration.identifier) {
            (Some(email), latchkey_config::Identifier::Email) => email.to_string(),
            _ => user.username.to_string(),
        }
    }

    /// A user named by subject id or by username (a username may look like a subject id:
    /// both are tried).
    pub async fn find(&self, tenant: &TenantId, given: &str) -> ServiceResult<User> {
        if let Ok(sub) = SubjectId::parse(given)
            && let Some(user) = self.by_sub(tenant, &sub).await?
        {
            return Ok(user);
        }
        if let Ok(name) = Username::parse(given)
            && let Some(user) = self.by_username(tenant, &name).await?
        {
            return Ok(user);
        }
        Err(ServiceError::NotFound(format!("user `{given}` (give a username or subject id)")))
    }

    /// The account a person typed to be sent something (a recovery link or code, a sign-in
    /// link): by username, or by an email address only if it is that account's **verified**
    /// address (an unverified address names nobody). Locked and service accounts are left
    /// out; what it may be sent is the caller's to check.
    pub async fn named_for_messages(&self, tenant: &TenantId, typed: &str) -> ServiceResult<Option<User>> {
        let user = if typed.contains('@') {
            match Email::parse(typed) {
                Ok(address) => self.by_email(tenant, &address).await?.filter(|u| {
                    u.email_verified && u.email.as_ref().map(Email::normalized) == Some(address.normalized())
                }),
                Err(_) => None,
            }
        } else {
            match Username::parse(typed) {
                Ok(name) => self.by_username(tenant, &name).await?,
                Err(_) => None,
            }
        };
        Ok(user.filter(|u| !u.locked && !u.service_account))
    }

    /// Sets a password (hashed with Argon2id at today's parameters). Returns how many
    /// sessions ended with the old one.
    pub async fn set_password(
        &self,
        tenant: &TenantId,
        sub: &SubjectId,
        password: NewPassword,
        change: PasswordChange,
        actor: &Actor,
    ) -> ServiceResult<usize> {
        let notices = self.0.security_notices();
        notices.may_change(tenant, sub, actor).await?;
        if self.0.store().user_by_sub(tenant, sub).await?.is_some_and(|u| u.service_account) {
            // The account's kind, not the request, is in the way: a conflict with its state.
            return Err(ServiceError::Conflict(
                "a service account never signs in: give it an API key (`latchkey api-key create`) instead of a password"
                    .into(),
            ));
        }
        let hash = self.0.passwords.hash(password.into_string()).await.map_err(|e| match e {
            crate::passwords::HashingError::Password(e) => ServiceError::Invalid(e.to_string()),
            other => ServiceError::Unavailable(other.to_string()),
        })?;
        let end_sessions = self.0.config.sessions.end_other_sessions_on_password_change;
        let (except_sid, reason, revoke_all) = match change {
            PasswordChange::BySelf { current_sid } => (Some(current_sid), "credentials_changed", false),
            PasswordChange::ByOperator => (None, "password_changed", true),
        };
        let sessions = self.0.sessions();
        let how = sessions.ending(reason, revoke_all).await;
        let mut tx = self.0.store().transaction().await?;
        tx.lock_user(tenant, sub).await?;
        let user = notices.may_change_in(tx.as_mut(), tenant, sub, actor).await?;
        tx.set_password_hash(tenant, sub, Some(hash.as_str().to_owned()), actor).await?;
        notices.tell(tx.as_mut(), tenant, &user, &Change::PasswordSet, actor).await?;
        if !end_sessions {
            tx.commit().await?;
            return Ok(0);
        }
        let ended = sessions.end_in(tx.as_mut(), tenant, sub, except_sid, &how, actor).await?;
        tx.commit().await?;
        sessions.ended(&ended, &how);
        Ok(ended.sessions.len())
    }

    /// Removes the password, unless the user has no passkey (`Invalid`: it would be their
    /// last way to sign in); the user's other sessions end in the same transaction.
    pub async fn remove_password(
        &self,
        tenant: &TenantId,
        sub: &SubjectId,
        current_sid: &str,
        actor: &Actor,
    ) -> ServiceResult<()> {
        let sessions = self.0.sessions();
        let how = sessions.ending("credentials_changed", false).await;
        let mut tx = self.0.store().transaction().await?;
        let methods = tx.sign_in_methods(tenant, sub).await?;
        if !methods.password {
            return Err(ServiceError::Invalid("there is no password to remove".into()));
        }
        if methods.passkeys == 0 && self.0.federation().usable_links(&methods) == 0 {
            return Err(ServiceError::Invalid("the password is your last way to sign in: add a passkey first".into()));
        }
        let notices = self.0.security_notices();
        let user = notices.may_change_in(tx.as_mut(), tenant, sub, actor).await?;
        tx.set_password_hash(tenant, sub, None, actor).await?;
        notices.tell(tx.as_mut(), tenant, &user, &Change::PasswordRemoved, actor).await?;
        sessions.commit_ending_others(tx, &how, (tenant, sub, current_sid), actor).await
    }

    /// Locks, unlocks or deletes a user. Locking and deleting sign the user out everywhere
    /// and revoke every refresh token, in the same transaction (back-channel logouts are
    /// queued with it). Returns how many sessions ended.
    pub async fn change_state(
        &self,
        tenant: &TenantId,
        sub: &SubjectId,
        change: StateChange,
        actor: &Actor,
    ) -> ServiceResult<usize> {
        if change != StateChange::Unlock {
            crate::admin::Admin::may_remove(sub, actor)?;
        }
        let reason = match change {
            StateChange::Lock => "user_locked",
            // Deleting a user erases them: everything tied to the account goes.
            StateChange::Delete => {
                let receipt = self.0.erasure().erase(tenant, sub, actor).await?;
                return Ok(receipt.removed.get("sessions").map_or(0, |n| usize::try_from(*n).unwrap_or(usize::MAX)));
            }
            StateChange::Unlock => {
                // Nothing ends with an unlock: no revocation lifetime to work out. It also
                // lifts a block on changes ("this wasn't me"): the operator vouches for it.
                let mut tx = self.0.store().transaction().await?;
                tx.lock_user(tenant, sub).await?;
                tx.set_user_locked(tenant, sub, false, actor).await?;
                if tx.user(tenant, sub).await?.changes_blocked_at.is_some() {
                    tx.block_changes(tenant, sub, None, actor).await?;
                }
                tx.commit().await?;
                self.0.caches.forget_user(sub);
                return Ok(0);
            }
        };
        Ok(self.lock_if(tenant, sub, reason, None, actor).await?.unwrap_or(0))
    }

    /// Locks `sub` (signed out everywhere, refresh tokens revoked) if `rule` (a retention
    /// rule) still applies once their row is held; `None` when it no longer does.
    pub(crate) async fn lock_if(
        &self,
        tenant: &TenantId,
        sub: &SubjectId,
        reason: &'static str,
        rule: Option<latchkey_store::AccountRetention>,
        actor: &Actor,
    ) -> ServiceResult<Option<usize>> {
        let sessions = self.0.sessions();
        let how = sessions.ending(reason, true).await;
        let mut tx = self.0.store().transaction().await?;
        if let Some(rule) = rule {
            tx.lock_user(tenant, sub).await?;
            if !tx.account_retention_applies(tenant, sub, rule).await? {
                return Ok(None);
            }
        }
        let admins_before = tx.active_admins(tenant).await?;
        tx.set_user_locked(tenant, sub, true, actor).await?;
        let ended = sessions.end_in(tx.as_mut(), tenant, sub, None, &how, actor).await?;
        // Dropped without a commit when refused: nothing changes.
        crate::admin::Admin::check_admins_kept(&admins_before, &tx.active_admins(tenant).await?, actor)?;
        tx.commit().await?;
        // This node stops honouring the user's API keys at once; others within the change bound.
        self.0.caches.forget_user(sub);
        sessions.ended(&ended, &how);
        Ok(Some(ended.sessions.len()))
    }

    /// An operator's last resort for someone who lost every factor: removes their passkeys,
    /// authenticator app and recovery codes, and ends their sessions. Returns how many
    /// passkeys went and how many sessions ended.
    pub async fn reset_sign_in_factors(
        &self,
        tenant: &TenantId,
        sub: &SubjectId,
        actor: &Actor,
    ) -> ServiceResult<(u64, usize)> {
        let passkeys = self.0.store().reset_sign_in_factors(tenant, sub, actor).await?;
        let which = latchkey_core::records::SessionSelector::User { sub: sub.clone(), except_sid: None };
        let ended = self.0.sessions().end(tenant, &which, "credentials_changed", true, actor).await?;
        Ok((passkeys, ended.sessions.len()))
    }
}
