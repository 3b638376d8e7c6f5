//! Security notices: the owner of an account hears of every change to how it is signed in
//! to, made from the account itself (a passkey or authenticator app added or removed, the
//! password set, changed or removed, new recovery codes, the email address or phone number
//! changed), by email to the verified address, or by text where only a verified phone is
//! known; a changed address or number is told at the old one too. Recoveries are told by
//! [`crate::recovery`] itself. Changes an operator makes are in the audit log instead: the
//! owner did not act, and nobody took their account.
//!
//! Each notice carries a **"this wasn't me"** link (7 days, single use, through a
//! confirmation page's POST). Using it, in one transaction: every session of the account
//! ends and every refresh token is revoked; what was added since the notice's change is
//! taken away (passkeys, sign-in providers linked, an authenticator app, a password set since then) and the recovery
//! codes are withdrawn (whoever made the change may have seen new ones); and the account is
//! **blocked from changes** until its owner recovers it (`/recover`): whoever signs in can
//! change nothing, so someone who still holds a way in cannot add another.

use std::time::Duration;

use latchkey_core::UnixTime;
use latchkey_core::domain::{SubjectId, TenantId};
use latchkey_core::records::{Actor, User};
use latchkey_store::StoreTx;
use minijinja::context;

use crate::message_limits::Counted;
use crate::one_time_tokens::{self, mint, purpose};
use crate::{Latchkey, ServiceError, ServiceResult};

pub const NOT_ME_PURPOSE: &str = one_time_tokens::purpose::NOT_ME;
pub const NOT_ME_PATH: &str = "/security/not-me";
pub const NOT_ME_LIFETIME: Duration = Duration::from_secs(7 * 86_400);

/// A change to how an account is signed in to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    PasskeyAdded(String),
    PasskeyRemoved(String),
    AppAdded,
    AppRemoved,
    PasswordSet,
    PasswordRemoved,
    RecoveryCodesReplaced,
    /// The phone number; the old verified one (if any) is told too.
    PhoneChanged {
        old: Option<String>,
    },
    /// The email address; the old verified one is told instead of the new.
    EmailChanged {
        old: String,
        new: String,
    },
    /// An address verified where none was: told to the verified phone, if any.
    EmailAdded {
        new: String,
    },
    /// An account at an upstream identity provider was linked (its display name).
    ProviderLinked(String),
    ProviderUnlinked(String),
    /// A sign-in from a browser the account had not signed in from (`login.notify_new_device`).
    NewDeviceSignIn {
        device: String,
    },
}

impl Change {
    /// What happened, as a sentence for the owner.
    pub fn what(&self) -> String {
        match self {
            Change::PasskeyAdded(name) => format!("A passkey ({name}) was added"),
            Change::PasskeyRemoved(name) => format!("A passkey ({name}) was removed"),
            Change::AppAdded => "An authenticator app was set up".into(),
            Change::AppRemoved => "The authenticator app was removed".into(),
            Change::PasswordSet => "The password was set or changed".into(),
            Change::PasswordRemoved => "The password was removed".into(),
            Change::RecoveryCodesReplaced => "New recovery codes were made (the old ones stopped working)".into(),
            Change::PhoneChanged { .. } => "The phone number was changed".into(),
            Change::EmailChanged { old, new } => format!("The email address was changed from {old} to {new}"),
            Change::EmailAdded { new } => format!("The email address {new} was added"),
            Change::ProviderLinked(name) => format!("Sign-in with {name} was linked to your account"),
            Change::ProviderUnlinked(name) => format!("Sign-in with {name} was unlinked from your account"),
            Change::NewDeviceSignIn { device } => format!("Someone signed in from a new device, {device}"),
        }
    }

    /// A stable name, for the audit log and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Change::PasskeyAdded(_) => "passkey_added",
            Change::PasskeyRemoved(_) => "passkey_removed",
            Change::AppAdded => "app_added",
            Change::AppRemoved => "app_removed",
            Change::PasswordSet => "password_set",
            Change::PasswordRemoved => "password_removed",
            Change::RecoveryCodesReplaced => "recovery_codes_replaced",
            Change::PhoneChanged { .. } => "phone_changed",
            Change::EmailChanged { .. } => "email_changed",
            Change::EmailAdded { .. } => "email_added",
            Change::ProviderLinked(_) => "provider_linked",
            Change::ProviderUnlinked(_) => "provider_unlinked",
            Change::NewDeviceSignIn { .. } => "new_device_sign_in",
        }
    }

    /// Changes told whatever the hourly limit: a way in added, the password set, a contact
    /// changed (what a recovery would use).
    fn always_told(&self) -> bool {
        !matches!(
            self,
            Change::PasskeyRemoved(_)
                | Change::AppRemoved
                | Change::PasswordRemoved
                | Change::RecoveryCodesReplaced
                | Change::ProviderUnlinked(_)
                | Change::NewDeviceSignIn { .. }
        )
    }
}

/// What "this wasn't me" did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Disowned {
    pub sessions_ended: usize,
    pub passkeys_removed: usize,
    /// Upstream accounts linked since the change, unlinked.
    pub identities_unlinked: usize,
    pub app_removed: bool,
    pub password_removed: bool,
    /// The address (number) was not the verified one from before the change: unverified.
    pub email_unverified: bool,
    pub phone_unverified: bool,
}

/// The message for an account whose changes are blocked.
pub fn blocked_message() -> String {
    "changes to this account are blocked: a change was reported as not made by its owner. Recover the account \
     (\"Can't sign in?\" on the sign-in page), or ask the people who run this server, to change it again"
        .into()
}

pub struct SecurityNotices<'a>(pub(crate) &'a Latchkey);

impl SecurityNotices<'_> {
    /// Whether the owner is told of changes here: mail or SMS is configured.
    pub fn enabled(&self) -> bool {
        let outbox = self.0.outbox();
        outbox.mail_enabled() || outbox.sms_enabled()
    }

    /// `Invalid` if `actor` is the account's owner and its changes are blocked. Operators
    /// are never blocked (they act through the CLI or the admin API, not a session someone
    /// may have stolen).
    pub async fn may_change(&self, tenant: &TenantId, sub: &SubjectId, actor: &Actor) -> ServiceResult<()> {
        if !is_owner(sub, actor) {
            return Ok(());
        }
        match self.0.users().by_sub(tenant, sub).await? {
            Some(user) if user.changes_blocked_at.is_some() => Err(ServiceError::Invalid(blocked_message())),
            _ => Ok(()),
        }
    }

    /// [`Self::may_change`] inside the change's transaction (after `lock_user`).
    pub async fn may_change_in(
        &self,
        tx: &mut dyn StoreTx,
        tenant: &TenantId,
        sub: &SubjectId,
        actor: &Actor,
    ) -> ServiceResult<User> {
        let user = tx.user(tenant, sub).await?;
        if is_owner(sub, actor) && user.changes_blocked_at.is_some() {
            return Err(ServiceError::Invalid(blocked_message()));
        }
        Ok(user)
    }

    /// Tells the owner of `user` about `change`, inside the change's transaction, if the
    /// change was made from the account itself. A notice over the account's hourly limit is
    /// left out: the link of an earlier one covers every change since.
    pub async fn tell(
        &self,
        tx: &mut dyn StoreTx,
        tenant: &TenantId,
        user: &User,
        change: &Change,
        actor: &Actor,
    ) -> ServiceResult<bool> {
        let services = self.0;
        if !is_owner(&user.sub, actor) || !self.enabled() {
            return Ok(false);
        }
        let outbox = services.outbox();
        let verified_email = user.email.as_ref().filter(|_| user.email_verified).map(|e| e.as_str().to_owned());
        let verified_phone = user
            .profile
            .phone_number
            .clone()
            .filter(|_| user.profile.phone_number_verified)
            .filter(|n| self.texts_to(n));
        let (to_email, mut to_phone) = match change {
            Change::EmailChanged { old, .. } => (Some(old.clone()), None),
            Change::EmailAdded { .. } => (None, None),
            _ => (verified_email.clone(), None),
        };
        let to_email = to_email.filter(|_| outbox.mail_enabled());
        if to_email.is_none() {
            to_phone = verified_phone;
        }
        if let Change::PhoneChanged { old: Some(old) } = change
            && self.texts_to(old)
        {
            to_phone = Some(old.clone());
        }
        if to_email.is_none() && to_phone.is_none() {
            return Ok(false);
        }
        // Removals and new recovery codes are limited per hour (an earlier notice's link
        // covers every change since); a way in added or a contact changed is always told.
        if !change.always_told() {
            let limits = services.message_limits();
            if limits.reserve_in(tx, tenant, "security_notice", &[Counted::Account(&user.sub)]).await.is_err() {
                tracing::info!(sub = %user.sub, change = change.kind(), "security notice left out: an earlier one covers it");
                return Ok(false);
            }
        }
        let now = services.clock.now();
        // A second early, so that what the change itself stored (in the same second or the
        // one before) counts as added since it.
        let before = Before {
            at: now.secs() - 1,
            email: verified_email.clone(),
            phone: user.profile.phone_number.clone().filter(|_| user.profile.phone_number_verified),
        };
        let detail = serde_json::to_string(&before).map_err(|e| ServiceError::Unavailable(e.to_string()))?;
        let minted = mint(services, NOT_ME_PURPOSE, &user.sub, &detail, NOT_ME_LIFETIME);
        tx.create_one_time_token(tenant, &minted.stored).await?;
        let link = one_time_tokens::link(services, NOT_ME_PATH, &minted.token);
        let account = services.users().known_as(user);
        let expires = minted.stored.expires_at;
        let kind = "security_notice";
        if let Some(to) = &to_email {
            let values = context! {
                account => account.as_str(), what => change.what(), when => now.to_rfc3339(), link => link.as_str(),
                days => NOT_ME_LIFETIME.as_secs() / 86_400,
            };
            let email = outbox.render(kind, to, values)?;
            outbox.queue_email(tx, tenant, kind, &email, expires, actor).await?;
        }
        // Not counted against [sms].daily_limits: the caps must not let anyone silence the
        // owner (a verified number of the account; bounded by the hourly limit above).
        if let Some(to) = &to_phone {
            let body = format!("{}: {} on your account {account}. Not you? {link}", services.issuer, change.what());
            let text = crate::sms::TextMessage { to: to.clone(), body };
            outbox.queue_text(tx, tenant, kind, &text, expires, actor).await?;
        }
        let details =
            serde_json::json!({"change": change.kind(), "email": to_email.is_some(), "text": to_phone.is_some()});
        tx.audit(tenant, actor, "security.notice_sent", user.sub.as_str(), details).await?;
        Ok(true)
    }

    fn texts_to(&self, number: &str) -> bool {
        self.0.outbox().sms_enabled() && self.0.config.sms.as_ref().is_some_and(|c| c.allows(number))
    }

    /// A sign-in finished in the browser holding `device` (its long-lived device secret).
    /// With `login.notify_new_device`, a browser the account never signed in from is told to
    /// the owner and remembered (a year); a known one says nothing. `described` names it
    /// for a person (its user agent).
    pub async fn signed_in_on(
        &self,
        tenant: &TenantId,
        user: &User,
        device: &str,
        described: &str,
    ) -> ServiceResult<()> {
        let services = self.0;
        if !services.config.login.notify_new_device {
            return Ok(());
        }
        let known = self.known_device(user, device);
        let now = services.clock.now();
        if services.store().peek_one_time_token(tenant, &known.hash, purpose::KNOWN_DEVICE, now).await?.is_some() {
            return Ok(());
        }
        let actor = Actor::User(user.sub.to_string());
        let change = Change::NewDeviceSignIn { device: browser_label(described) };
        let mut tx = services.store().transaction().await?;
        // Remembered only once its owner was told: a notice left out by the hourly limit
        // is tried again at the next sign-in from it.
        if self.tell(tx.as_mut(), tenant, user, &change, &actor).await? {
            tx.create_one_time_token(tenant, &known).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Remembers the browser holding `device` as known to the account without telling
    /// anyone (the browser the account was created in).
    pub async fn remember_device(&self, tenant: &TenantId, user: &User, device: &str) -> ServiceResult<()> {
        if !self.0.config.login.notify_new_device {
            return Ok(());
        }
        let mut tx = self.0.store().transaction().await?;
        tx.create_one_time_token(tenant, &self.known_device(user, device)).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The record of a known browser: the keyed hash of the account and the browser's
    /// secret, kept a year.
    fn known_device(&self, user: &User, device: &str) -> latchkey_core::records::NewOneTimeToken {
        let services = self.0;
        latchkey_core::records::NewOneTimeToken {
            hash: services.token_hasher.hash(purpose::KNOWN_DEVICE, &format!("{}:{device}", user.sub)),
            purpose: purpose::KNOWN_DEVICE.into(),
            sub: user.sub.clone(),
            detail: String::new(),
            expires_at: services.clock.now().plus(Duration::from_secs(365 * 86_400)),
        }
    }

    /// The account a "this wasn't me" link is about, without using it.
    pub async fn look(&self, tenant: &TenantId, token: &str) -> ServiceResult<Option<User>> {
        let Some(found) = one_time_tokens::peek(self.0, tenant, NOT_ME_PURPOSE, token).await? else {
            return Ok(None);
        };
        self.0.users().by_sub(tenant, &found.sub).await
    }

    /// Uses a "this wasn't me" link (see the module's documentation). `NotFound` for a link
    /// that is unknown, used or expired.
    pub async fn disown(&self, tenant: &TenantId, token: &str) -> ServiceResult<(User, Disowned)> {
        let services = self.0;
        let gone = || ServiceError::NotFound("link".into());
        let hash = one_time_tokens::hash_given(services, NOT_ME_PURPOSE, token).ok_or_else(gone)?;
        let now = services.clock.now();
        let found = services.store().peek_one_time_token(tenant, &hash, NOT_ME_PURPOSE, now).await?.ok_or_else(gone)?;
        let sub = found.sub;
        let before: Before = serde_json::from_str(&found.detail).map_err(|_| gone())?;
        let since = UnixTime::from_secs(before.at);
        let sessions = services.sessions();
        let how = sessions.ending("change_disowned", true).await;
        let actor = Actor::User(sub.to_string());

        let mut tx = services.store().transaction().await?;
        tx.lock_user(tenant, &sub).await?;
        tx.consume_one_time_token(tenant, &hash, NOT_ME_PURPOSE, now).await?.ok_or_else(gone)?;
        // Read under the account's lock: nothing can be added meanwhile.
        let factors = services.factors();
        let passkeys = factors.passkeys(tenant, &sub).await?;
        let app = factors.totp(tenant, &sub).await?;
        let identities = services.federation().identities(tenant, &sub).await?;
        let user = tx.user(tenant, &sub).await?;
        let mut done = Disowned::default();
        for passkey in passkeys.iter().filter(|p| p.created_at >= since) {
            tx.delete_passkey(tenant, &sub, &passkey.credential_id, &actor).await?;
            done.passkeys_removed += 1;
        }
        for identity in identities.iter().filter(|i| i.linked_at >= since) {
            tx.unlink_identity(tenant, &sub, &identity.provider, &actor).await?;
            done.identities_unlinked += 1;
        }
        if app.is_some_and(|a| a.created_at >= since) {
            tx.remove_totp(tenant, &sub, &actor).await?;
            done.app_removed = true;
        }
        // Whoever made the change signed in: the password is theirs to know too.
        if user.has_password {
            tx.set_password_hash(tenant, &sub, None, &actor).await?;
            done.password_removed = true;
        }
        tx.replace_recovery_codes(tenant, &sub, &[], &actor).await?;
        (done.email_unverified, done.phone_unverified) =
            self.distrust_changed_contacts(tx.as_mut(), tenant, &user, &before, &actor).await?;
        let ended = sessions.end_in(tx.as_mut(), tenant, &sub, None, &how, &actor).await?;
        done.sessions_ended = ended.sessions.len();
        // Nothing started before this goes on: links and codes sent, a waiting recovery.
        for purpose in one_time_tokens::purpose::ALL {
            tx.retire_one_time_tokens(tenant, &sub, purpose, now).await?;
        }
        if user.changes_blocked_at.is_none() {
            tx.block_changes(tenant, &sub, Some(now), &actor).await?;
        }
        let details = serde_json::json!({
            "change_at": since.secs(),
            "sessions_ended": done.sessions_ended,
            "passkeys_removed": done.passkeys_removed,
            "identities_unlinked": done.identities_unlinked,
            "app_removed": done.app_removed,
            "password_removed": done.password_removed,
            "email_unverified": done.email_unverified,
            "phone_unverified": done.phone_unverified,
        });
        tx.audit(tenant, &actor, "security.change_disowned", sub.as_str(), details).await?;
        tx.commit().await?;
        sessions.ended(&ended, &how);
        services.caches.forget_user(&sub);
        metrics::counter!("latchkey_changes_disowned_total").increment(1);
        Ok((user, done))
    }

    /// Leaves unverified the address and number that are not the verified ones the account
    /// had before the change: what the change put there is no longer trusted, so a recovery
    /// never goes to it. Nothing old is verified again: the notice went to the old contact,
    /// and whoever reads it (a mailbox the owner left, a recycled number) must not get the
    /// account back through it. An operator restores the owner's contact.
    async fn distrust_changed_contacts(
        &self,
        tx: &mut dyn StoreTx,
        tenant: &TenantId,
        user: &User,
        before: &Before,
        actor: &Actor,
    ) -> ServiceResult<(bool, bool)> {
        let email_now = user.email.as_ref().filter(|_| user.email_verified).map(|e| e.as_str().to_owned());
        let phone_now = user.profile.phone_number.clone().filter(|_| user.profile.phone_number_verified);
        let email = email_now.is_some() && email_now != before.email;
        let phone = phone_now.is_some() && phone_now != before.phone;
        if email || phone {
            tx.unverify_contacts(tenant, &user.sub, email, phone, actor).await?;
        }
        Ok((email, phone))
    }
}

/// What a notice's link remembers: when the change was made (a second early) and the
/// verified address and number the account had before it.
#[derive(serde::Serialize, serde::Deserialize)]
struct Before {
    at: i64,
    email: Option<String>,
    phone: Option<String>,
}

/// What a browser calls itself (its user agent), cut to a short, plain label in quotes:
/// it is the sender's word, so it must not read like a message of ours.
fn browser_label(described: &str) -> String {
    let plain: String = described
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, ' ' | '.' | '/' | ';' | '(' | ')' | '_' | '-' | ','))
        .take(60)
        .collect();
    match plain.trim() {
        "" => "a browser that gave no name".to_owned(),
        label => format!("a browser that calls itself \"{label}\""),
    }
}

fn is_owner(sub: &SubjectId, actor: &Actor) -> bool {
    matches!(actor, Actor::User(who) if who == sub.as_str())
}
