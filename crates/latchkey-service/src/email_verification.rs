//! Proving an email address: a link sent to it at sign-up, when the address changes (from
//! the account page or by an operator), or on request. `email_verified` becomes true only
//! through that link, or an operator's explicit setting.
//!
//! The link carries a single-use token bound to this purpose, the account and the address
//! it was sent to, valid for [`LINK_LIFETIME`]; a newer link replaces older ones. A user who
//! changes their address keeps the old one until the new one is confirmed: the new address
//! waits in the token, and confirming it replaces the old one (whose owner is told). An
//! unverified address reserves nothing: whoever verifies an address first holds it.

use std::net::IpAddr;
use std::time::Duration;

use latchkey_core::domain::{Email, SubjectId, TenantId};
use latchkey_core::records::{Actor, User, UserPatch};
use minijinja::context;

use crate::message_limits::Counted;
use crate::one_time_tokens::{self, mint};
use crate::security_notices::Change;
use crate::{Latchkey, ServiceError, ServiceResult};

pub const PURPOSE: &str = one_time_tokens::purpose::EMAIL_VERIFICATION;
pub const LINK_LIFETIME: Duration = Duration::from_secs(3_600);
/// Where the link points, under the public URL.
pub const PATH: &str = "/email/verify";

/// What a change of address from the account page did.
#[derive(Debug, PartialEq, Eq)]
pub enum AddressChange {
    /// A link went to the new address; the old one stays until it is confirmed.
    LinkSent,
    /// Without mail nothing can be verified: the new address replaced the old one,
    /// unverified.
    Replaced,
    /// The address is the one the account already has, verified.
    Unchanged,
}

pub struct EmailVerification<'a>(pub(crate) &'a Latchkey);

impl EmailVerification<'_> {
    /// Sends a verification link for `address` to it, for `user`, counted against the
    /// account, the address and `ip` (when a person asked from the web). Earlier links of
    /// the user stop working.
    pub async fn send_link(
        &self,
        tenant: &TenantId,
        user: &User,
        address: &Email,
        ip: Option<IpAddr>,
        actor: &Actor,
    ) -> ServiceResult<()> {
        let services = self.0;
        if !services.outbox().mail_enabled() {
            return Err(ServiceError::Invalid(
                "email verification needs mail, and this server has none ([mail] in latchkey.toml)".into(),
            ));
        }
        if user.service_account {
            return Err(ServiceError::Invalid("a service account has no email address to verify".into()));
        }
        if user.email_verified && user.email.as_ref() == Some(address) {
            return Err(ServiceError::Invalid(format!("{address} is verified already")));
        }
        let mut counted = vec![Counted::Account(&user.sub), Counted::Recipient(address.as_str())];
        counted.extend(ip.map(Counted::Ip));
        services.message_limits().reserve(tenant, PURPOSE, &counted).await?;

        let minted = mint(services, PURPOSE, &user.sub, address.as_str(), LINK_LIFETIME);
        // The account by the name its owner knows it by, never a display name (anyone can
        // sign up with any address and any display name).
        let values = context! {
            account => services.users().known_as(user),
            address => address.as_str(),
            link => one_time_tokens::link(services, PATH, &minted.token),
            minutes => LINK_LIFETIME.as_secs() / 60,
        };
        let email = services.outbox().render("verify_email", address.as_str(), values)?;
        let now = services.clock.now();
        let mut tx = services.store().transaction().await?;
        // One link at a time: a parallel send waits, then retires this one.
        tx.lock_user(tenant, &user.sub).await?;
        tx.retire_one_time_tokens(tenant, &user.sub, PURPOSE, now).await?;
        tx.create_one_time_token(tenant, &minted.stored).await?;
        services
            .outbox()
            .queue_email(tx.as_mut(), tenant, "verify_email", &email, minted.stored.expires_at, actor)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// After an operator gave `user` an address (a new user, a changed address): the link
    /// to verify it, when mail is configured and the operator did not mark it verified.
    /// Returns whether a link was sent.
    pub async fn after_operator_change(&self, tenant: &TenantId, user: &User, actor: &Actor) -> ServiceResult<bool> {
        match &user.email {
            Some(address) if !user.email_verified && self.0.outbox().mail_enabled() && !user.service_account => {
                self.send_link(tenant, user, address, None, actor).await?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// The user changes their own address (from the account page, after a recent sign-in).
    pub async fn change_address(
        &self,
        tenant: &TenantId,
        user: &User,
        address: Email,
        ip: IpAddr,
        actor: &Actor,
    ) -> ServiceResult<AddressChange> {
        self.0.security_notices().may_change(tenant, &user.sub, actor).await?;
        if user.email.as_ref() == Some(&address) && user.email_verified {
            return Ok(AddressChange::Unchanged);
        }
        if !self.0.outbox().mail_enabled() {
            let patch = UserPatch { email: Some(Some(address)), ..UserPatch::default() };
            self.0.users().update(tenant, &user.sub, patch, actor).await?;
            return Ok(AddressChange::Replaced);
        }
        self.send_link(tenant, user, &address, Some(ip), actor).await?;
        Ok(AddressChange::LinkSent)
    }

    /// The address a link was sent to and not yet confirmed, if any.
    pub async fn pending(&self, tenant: &TenantId, user: &User) -> ServiceResult<Option<Email>> {
        let now = self.0.clock.now();
        let pending = self.0.store().pending_one_time_token(tenant, &user.sub, PURPOSE, now).await?;
        Ok(pending.and_then(|t| Email::parse(&t.detail).ok()))
    }

    /// What a link is for, without using it: its account and address, or `None` for a link
    /// that is unknown, used or expired.
    pub async fn look(&self, tenant: &TenantId, token: &str) -> ServiceResult<Option<(User, Email)>> {
        let Some(found) = one_time_tokens::peek(self.0, tenant, PURPOSE, token).await? else { return Ok(None) };
        let Some(user) = self.0.users().by_sub(tenant, &found.sub).await? else { return Ok(None) };
        Ok(Email::parse(&found.detail).ok().map(|address| (user, address)))
    }

    /// Uses the link, for the account `signed_in` (the browser confirming must be signed in
    /// as the account the link was sent for: nobody can have their address verified for
    /// someone else's account by being sent a link): its address becomes the account's,
    /// verified; a different verified address it replaces is told. `NotFound` for a link
    /// that is unknown, used or expired; `Invalid` for another account's link; `Conflict`
    /// if another account verified the address meanwhile (the link stays unused either way).
    pub async fn confirm(&self, tenant: &TenantId, token: &str, signed_in: &SubjectId) -> ServiceResult<(User, Email)> {
        let services = self.0;
        let gone = || ServiceError::NotFound("verification link".into());
        let hash = one_time_tokens::hash_given(services, PURPOSE, token).ok_or_else(gone)?;
        let now = services.clock.now();
        let mut tx = services.store().transaction().await?;
        tx.lock_user(tenant, signed_in).await?;
        let used = tx.consume_one_time_token(tenant, &hash, PURPOSE, now).await?.ok_or_else(gone)?;
        if used.sub != *signed_in {
            return Err(ServiceError::Invalid("this link is for another account".into()));
        }
        let address = Email::parse(&used.detail).map_err(|_| gone())?;
        let actor = Actor::User(used.sub.to_string());
        let user = services.security_notices().may_change_in(tx.as_mut(), tenant, &used.sub, &actor).await?;
        let replaced = user.email.as_ref().filter(|old| user.email_verified && **old != address).cloned();
        tx.verify_email(tenant, &user.sub, &address, &actor).await?;
        let change = match replaced {
            Some(old) => Some(Change::EmailChanged { old: old.as_str().to_owned(), new: address.as_str().to_owned() }),
            None if !user.email_verified => Some(Change::EmailAdded { new: address.as_str().to_owned() }),
            None => None,
        };
        if let Some(change) = change {
            services.security_notices().tell(tx.as_mut(), tenant, &user, &change, &actor).await?;
        }
        tx.commit().await?;
        services.caches.forget_user(&user.sub);
        Ok((user, address))
    }
}
