//! Account recovery by a link to the account's verified email address, for someone who lost
//! every way to sign in.
//!
//! 1. **Request**: a username or email address. The answer, and its timing, never depend on
//!    whether it names an account: the limits counted before answering are keyed by the
//!    typed value and the client IP only, and everything that depends on the account (the
//!    lookup, its own limits, the link) happens after the answer, in the background. Only a
//!    verified address is ever written to; locked and service accounts get nothing. Links
//!    live side by side (a request never retires another's link), so nobody can keep a
//!    victim's link from working by asking again.
//! 2. **Link** (15 minutes, single use, used only by its confirmation page's POST): opens a
//!    [`RecoverySession`] in that browser, bound to the address the link went to. It can do
//!    one thing: add a new passkey, once.
//! 3. **Another factor**: if the account also has an authenticator app or more than one
//!    passkey, the link alone is not enough. The user gives the app's code, or says it is
//!    lost: then recovery completes only after `recovery.delay`, the verified address is told
//!    with a link that cancels it, the security page shows it with a button that cancels it,
//!    and any sign-in to the account during the delay cancels it (whoever signs in has a
//!    factor that is not lost).
//! 4. **Completion**, in one transaction: the new passkey, new recovery codes (shown once),
//!    every session ended and every refresh token revoked, and a message that it happened.
//!
//! Every step re-checks that the account is not locked and still has the verified address
//! the link went to: a changed or unverified address ends what it started.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use latchkey_core::UnixTime;
use latchkey_core::domain::{Email, SubjectId, TenantId};
use latchkey_core::records::{Actor, NewPasskey, SessionSelector, User};
use latchkey_store::StoreTx;
use minijinja::context;
use serde::{Deserialize, Serialize};

use crate::message_limits::Counted;
use crate::one_time_tokens::{self, mint};
use crate::{Latchkey, ServiceResult};

mod by_text;
mod cancel;
mod refusal;
mod second_proof;
pub use by_text::{CODE_ATTEMPTS, CODE_LIFETIME, WRONG_PER_DAY};
pub use refusal::RecoveryRefusal;

pub const LINK_PURPOSE: &str = one_time_tokens::purpose::RECOVERY_LINK;
pub const LINK_LIFETIME: Duration = Duration::from_secs(15 * 60);
pub const LINK_PATH: &str = "/recover/link";
/// A code texted to the account's verified phone number (`recovery.sms`): [`by_text`].
const CODE_PURPOSE: &str = one_time_tokens::purpose::RECOVERY_CODE;
/// A recovery waiting out the delay; its detail is when it may complete.
const DELAYED_PURPOSE: &str = one_time_tokens::purpose::RECOVERY_DELAYED;
const CANCEL_PURPOSE: &str = one_time_tokens::purpose::RECOVERY_CANCEL;
/// A recovery session's single completion.
const SESSION_PURPOSE: &str = one_time_tokens::purpose::RECOVERY_SESSION;
pub const CANCEL_PATH: &str = "/recover/cancel";
/// How long a recovery session lasts once its link is used (or its delay is over).
pub const SESSION_LIFETIME: Duration = Duration::from_secs(15 * 60);
/// How long after its delay a waiting recovery may still be completed.
const READY_FOR: Duration = Duration::from_secs(86_400);
/// Recovery links per account per hour from one IP (an IPv4 address or IPv6 /64), and in all.
const PER_ACCOUNT_AND_IP: i64 = 5;
const PER_ACCOUNT: i64 = 20;

/// What the link proved, and what is still missing. Kept server-side, bound to the browser
/// that used the link; the server never lets a browser write it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoverySession {
    pub sub: SubjectId,
    /// How the user proved the account: a link by email, a code by text message.
    pub via: Via,
    /// The verified address (or phone number) the link (or code) went to: the account must
    /// still have it.
    pub address: String,
    pub proof: Proof,
    /// Until when this state may be used (secs).
    pub expires_at: i64,
    /// The hash of the single-use token its completion uses up.
    completion: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Via {
    Email,
    Sms,
}

impl Via {
    fn purpose(self) -> &'static str {
        match self {
            Via::Email => LINK_PURPOSE,
            Via::Sms => CODE_PURPOSE,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Via::Email => "email",
            Via::Sms => "sms",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Proof {
    /// The link is enough: the account has nothing else.
    LinkIsEnough,
    /// The account has an authenticator app: its code, or "lost".
    AppCodeNeeded,
    /// The account's second step is a code by text (`login.sms_second_factor`): that code,
    /// or "lost".
    TextCodeNeeded,
    /// The account has more than one passkey: sign in with one, or "lost".
    OtherPasskeyLost,
    /// The second factor was given.
    Given,
    /// Said lost: the recovery may complete from `ready_at` (secs), unless cancelled.
    Waiting { ready_at: i64 },
}

impl RecoverySession {
    pub fn expires(&self) -> UnixTime {
        UnixTime::from_secs(self.expires_at)
    }
}

/// What a completed recovery gives its owner to sign in with.
enum WayIn {
    Passkey(NewPasskey),
    /// A password hash (PHC string), where passwords are on.
    Password(String),
}

pub struct Recovery<'a>(pub(crate) &'a Latchkey);

/// Asks for a recovery link for `typed` (a username or email address) from `ip`. Answers
/// the same whether or not an account matches; the link (if any) is sent in the background.
pub async fn request(
    services: &Arc<Latchkey>,
    tenant: &TenantId,
    typed: &str,
    ip: IpAddr,
) -> Result<(), RecoveryRefusal> {
    if !services.recovery().offered() {
        return Err(RecoveryRefusal::NotNow);
    }
    let typed = typed.trim();
    if typed.is_empty() || typed.len() > 320 {
        return Err(RecoveryRefusal::Gone);
    }
    services.message_limits().reserve(tenant, LINK_PURPOSE, &[Counted::Recipient(typed), Counted::Ip(ip)]).await?;
    let (services, tenant, typed) = (services.clone(), tenant.clone(), typed.to_owned());
    tokio::spawn(async move {
        let recovery = services.recovery();
        if recovery.offered_email()
            && let Err(e) = recovery.send_link(&tenant, &typed, ip).await
        {
            tracing::warn!(error = %e, "cannot send a recovery link");
        }
        if recovery.offered_sms()
            && let Err(e) = recovery.send_code(&tenant, &typed, ip).await
        {
            tracing::warn!(error = %e, "cannot text a recovery code");
        }
    });
    Ok(())
}

/// The account still as the recovery found it: not locked, the same verified address (or
/// phone number).
fn still_recoverable(user: &User, via: Via, address: &str) -> Result<(), RecoveryRefusal> {
    let same = match via {
        Via::Email => user.email_verified && user.email.as_ref().is_some_and(|e| e.as_str() == address),
        Via::Sms => verified_phone(user) == Some(address),
    };
    if user.locked || user.service_account || !same { Err(RecoveryRefusal::Gone) } else { Ok(()) }
}

/// The account's phone number, if verified.
fn verified_phone(user: &User) -> Option<&str> {
    user.profile.phone_number.as_deref().filter(|_| user.profile.phone_number_verified)
}

impl Recovery<'_> {
    /// Whether recovery is offered here: by email (`recovery.email` and `[mail]`) or by text
    /// message (`recovery.sms` and `[sms]`).
    pub fn offered(&self) -> bool {
        self.offered_email() || self.offered_sms()
    }

    pub fn offered_email(&self) -> bool {
        self.0.config.recovery.email && self.0.outbox().mail_enabled()
    }

    pub fn offered_sms(&self) -> bool {
        self.0.config.recovery.sms && self.0.outbox().sms_enabled()
    }

    /// The account `typed` names, if it may be recovered by email: by username, or by its
    /// verified address; never a locked or service account, never an unverified address.
    async fn recoverable(&self, tenant: &TenantId, typed: &str) -> ServiceResult<Option<(User, Email)>> {
        let user = self.0.users().named_for_messages(tenant, typed).await?;
        Ok(user.filter(|u| u.email_verified).and_then(|u| u.email.clone().map(|address| (u, address))))
    }

    async fn send_link(&self, tenant: &TenantId, typed: &str, ip: IpAddr) -> ServiceResult<()> {
        let Some((user, address)) = self.recoverable(tenant, typed).await? else { return Ok(()) };
        let services = self.0;
        // Per account: from one IP a few, in all more; so one address cannot use up what
        // the owner needs, and many together cannot flood the owner's mailbox.
        let limits = services.message_limits();
        let per_ip = format!("{}:{}", user.sub, self.0.throttle_ip(ip));
        limits
            .reserve_keyed(tenant, LINK_PURPOSE, &[(&per_ip, PER_ACCOUNT_AND_IP), (user.sub.as_str(), PER_ACCOUNT)])
            .await?;
        let minted = mint(services, LINK_PURPOSE, &user.sub, address.as_str(), LINK_LIFETIME);
        let values = context! {
            account => services.users().known_as(&user),
            link => one_time_tokens::link(services, LINK_PATH, &minted.token),
            minutes => LINK_LIFETIME.as_secs() / 60,
        };
        let email = services.outbox().render("recovery_link", address.as_str(), values)?;
        let mut tx = services.store().transaction().await?;
        tx.create_one_time_token(tenant, &minted.stored).await?;
        let details = serde_json::json!({"via": "email"});
        tx.audit(tenant, &Actor::System, "recovery.link_sent", user.sub.as_str(), details).await?;
        services
            .outbox()
            .queue_email(tx.as_mut(), tenant, "recovery_link", &email, minted.stored.expires_at, &Actor::System)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Whose account a link recovers, without using it.
    pub async fn look(&self, tenant: &TenantId, token: &str) -> ServiceResult<Option<User>> {
        let Some(found) = one_time_tokens::peek(self.0, tenant, LINK_PURPOSE, token).await? else { return Ok(None) };
        let user = self.0.users().by_sub(tenant, &found.sub).await?;
        Ok(user.filter(|u| still_recoverable(u, Via::Email, &found.detail).is_ok()))
    }

    /// Uses the link: a recovery session for this browser, and what it still needs. A
    /// recovery of the account already waiting out its delay goes on where it stands.
    pub async fn begin(&self, tenant: &TenantId, token: &str) -> Result<RecoverySession, RecoveryRefusal> {
        let services = self.0;
        let hash = one_time_tokens::hash_given(services, LINK_PURPOSE, token).ok_or(RecoveryRefusal::Gone)?;
        let found = services.store().peek_one_time_token(tenant, &hash, LINK_PURPOSE, services.clock.now()).await?;
        let sub = found.ok_or(RecoveryRefusal::Gone)?.sub;
        self.open(tenant, &sub, &hash, Via::Email).await
    }

    /// Uses the link or code `hash` (of `sub`) and opens the recovery session.
    async fn open(
        &self,
        tenant: &TenantId,
        sub: &SubjectId,
        hash: &latchkey_core::crypto::TokenHash,
        via: Via,
    ) -> Result<RecoverySession, RecoveryRefusal> {
        let services = self.0;
        let now = services.clock.now();
        // Read before anything is used, so that a failure leaves the link usable.
        let totp = services.factors().totp(tenant, sub).await?.is_some_and(|t| t.confirmed);
        // Codes by text as the account's second step: a link by email does not bypass them.
        let texted = via == Via::Email && services.sms_second_factor().number_for(tenant, sub).await?.is_some();
        let waiting = self.waiting_for(tenant, sub).await?;

        let mut tx = services.store().transaction().await?;
        tx.lock_user(tenant, sub).await?;
        let used = tx.consume_one_time_token(tenant, hash, via.purpose(), now).await?.ok_or(RecoveryRefusal::Gone)?;
        if used.sub != *sub {
            return Err(RecoveryRefusal::Gone);
        }
        let user = tx.user(tenant, sub).await?;
        still_recoverable(&user, via, &used.detail)?;
        let methods = tx.sign_in_methods(tenant, sub).await?;
        let delay = services.config.recovery.delay;
        let completion = mint(services, SESSION_PURPOSE, sub, "", delay + READY_FOR + SESSION_LIFETIME);
        tx.create_one_time_token(tenant, &completion.stored).await?;
        let actor = Actor::User(sub.to_string());
        tx.audit(tenant, &actor, "recovery.started", sub.as_str(), serde_json::json!({"via": via.as_str()})).await?;
        tx.commit().await?;

        let (proof, expires) = match waiting {
            Some(ready_at) => (Proof::Waiting { ready_at: ready_at.secs() }, ready_at.plus(READY_FOR)),
            None if totp => (Proof::AppCodeNeeded, now.plus(SESSION_LIFETIME)),
            None if texted => (Proof::TextCodeNeeded, now.plus(SESSION_LIFETIME)),
            None if methods.passkeys > 1 => (Proof::OtherPasskeyLost, now.plus(SESSION_LIFETIME)),
            None => (Proof::LinkIsEnough, now.plus(SESSION_LIFETIME)),
        };
        Ok(RecoverySession {
            sub: user.sub,
            via,
            address: used.detail,
            proof,
            expires_at: expires.secs(),
            completion: completion.stored.hash.as_str().to_owned(),
        })
    }

    fn live(&self, session: &RecoverySession) -> Result<(), RecoveryRefusal> {
        if self.0.clock.now().secs() >= session.expires_at { Err(RecoveryRefusal::Gone) } else { Ok(()) }
    }

    /// The user says the other factor is lost too: the recovery may complete after
    /// `recovery.delay`, and the verified address is told, with a link that cancels it. A
    /// recovery already waiting goes on where it stands (saying "lost" again restarts
    /// nothing).
    pub async fn declare_lost(
        &self,
        tenant: &TenantId,
        session: &RecoverySession,
    ) -> Result<RecoverySession, RecoveryRefusal> {
        self.live(session)?;
        if !matches!(session.proof, Proof::AppCodeNeeded | Proof::TextCodeNeeded | Proof::OtherPasskeyLost) {
            return Err(RecoveryRefusal::NotNow);
        }
        let services = self.0;
        let now = services.clock.now();
        let delay = services.config.recovery.delay;
        let mut tx = services.store().transaction().await?;
        tx.lock_user(tenant, &session.sub).await?;
        let user = tx.user(tenant, &session.sub).await?;
        still_recoverable(&user, session.via, &session.address)?;
        let ready_at = match self.waiting_for(tenant, &user.sub).await? {
            Some(ready_at) => ready_at,
            None => {
                let ready_at = now.plus(delay);
                self.start_waiting(tx.as_mut(), tenant, &user, ready_at).await?;
                ready_at
            }
        };
        tx.commit().await?;
        Ok(RecoverySession {
            proof: Proof::Waiting { ready_at: ready_at.secs() },
            expires_at: ready_at.plus(READY_FOR).secs(),
            ..session.clone()
        })
    }

    async fn start_waiting(
        &self,
        tx: &mut dyn StoreTx,
        tenant: &TenantId,
        user: &User,
        ready_at: UnixTime,
    ) -> Result<(), RecoveryRefusal> {
        let services = self.0;
        let delay = services.config.recovery.delay;
        let until = ready_at.plus(READY_FOR);
        let waiting = mint(services, DELAYED_PURPOSE, &user.sub, &ready_at.secs().to_string(), delay + READY_FOR);
        let cancel = mint(services, CANCEL_PURPOSE, &user.sub, "", delay + READY_FOR);
        let actor = Actor::User(user.sub.to_string());
        tx.create_one_time_token(tenant, &waiting.stored).await?;
        tx.create_one_time_token(tenant, &cancel.stored).await?;
        let cancel_link = one_time_tokens::link(services, CANCEL_PATH, &cancel.token);
        let values = context! {
            account => services.users().known_as(user),
            ready_at => ready_at.to_rfc3339(),
            hours => delay.as_secs().div_ceil(3_600),
            cancel_link => cancel_link.as_str(),
        };
        let text = format!(
            "Someone is recovering your account at {} and said your other factors are lost. Not you? Stop it: {cancel_link}",
            services.issuer
        );
        let told = self.notify(tx, tenant, user, ("recovery_pending", values), &text, until).await?;
        if told == 0 {
            // Nobody could be told: the delay would protect nothing.
            return Err(RecoveryRefusal::Gone);
        }
        let details = serde_json::json!({"ready_at": ready_at.secs()});
        tx.audit(tenant, &actor, "recovery.delayed", user.sub.as_str(), details).await?;
        Ok(())
    }

    /// When the account's waiting recovery may complete, if one waits.
    pub async fn waiting_for(&self, tenant: &TenantId, sub: &SubjectId) -> ServiceResult<Option<UnixTime>> {
        let now = self.0.clock.now();
        let pending = self.0.store().pending_one_time_token(tenant, sub, DELAYED_PURPOSE, now).await?;
        Ok(pending.and_then(|t| t.detail.parse::<i64>().ok()).map(UnixTime::from_secs))
    }

    /// Whether the session may add its passkey now: `NotNow` while a second proof is
    /// missing or the delay runs, `Cancelled` if the waiting recovery was cancelled.
    pub async fn may_complete(&self, tenant: &TenantId, session: &RecoverySession) -> Result<(), RecoveryRefusal> {
        self.live(session)?;
        match &session.proof {
            Proof::LinkIsEnough | Proof::Given => Ok(()),
            Proof::AppCodeNeeded | Proof::TextCodeNeeded | Proof::OtherPasskeyLost => Err(RecoveryRefusal::NotNow),
            Proof::Waiting { .. } => match self.waiting_for(tenant, &session.sub).await? {
                None => Err(RecoveryRefusal::Cancelled),
                Some(ready_at) if self.0.clock.now() < ready_at => Err(RecoveryRefusal::NotNow),
                Some(_) => Ok(()),
            },
        }
    }

    /// Completes the recovery with a new passkey, once, in one transaction: the passkey,
    /// new recovery codes, every session ended and refresh token revoked, the message that
    /// it happened. Returns the recovery codes, to show once.
    pub async fn complete(
        &self,
        tenant: &TenantId,
        session: &RecoverySession,
        passkey: NewPasskey,
    ) -> Result<Vec<String>, RecoveryRefusal> {
        self.finish(tenant, session, WayIn::Passkey(passkey)).await
    }

    /// [`Self::complete`] with a new password instead of a passkey, where passwords are on
    /// (`login.passwords`). `Invalid` password rules come back as [`RecoveryRefusal::Password`].
    pub async fn complete_with_password(
        &self,
        tenant: &TenantId,
        session: &RecoverySession,
        password: latchkey_core::domain::NewPassword,
    ) -> Result<Vec<String>, RecoveryRefusal> {
        if !self.0.config.login.passwords {
            return Err(RecoveryRefusal::NotNow);
        }
        self.may_complete(tenant, session).await?;
        let hash = self.0.passwords.hash(password.into_string()).await.map_err(|e| match e {
            crate::passwords::HashingError::Password(e) => RecoveryRefusal::Password(e.to_string()),
            other => RecoveryRefusal::Unavailable(other.to_string()),
        })?;
        self.finish(tenant, session, WayIn::Password(hash.as_str().to_owned())).await
    }

    async fn finish(
        &self,
        tenant: &TenantId,
        session: &RecoverySession,
        way: WayIn,
    ) -> Result<Vec<String>, RecoveryRefusal> {
        self.may_complete(tenant, session).await?;
        let services = self.0;
        let now = services.clock.now();
        let sub = &session.sub;
        let actor = Actor::User(sub.to_string());
        let (codes, hashes) = services.factors().generate_recovery_codes();
        let sessions = services.sessions();
        let how = sessions.ending("account_recovered", true).await;
        let mut tx = services.store().transaction().await?;
        tx.lock_user(tenant, sub).await?;
        let completion = latchkey_core::crypto::TokenHash::from_stored(session.completion.clone());
        if tx.consume_one_time_token(tenant, &completion, SESSION_PURPOSE, now).await?.is_none() {
            return Err(RecoveryRefusal::Gone);
        }
        if matches!(session.proof, Proof::Waiting { .. }) {
            if tx.consume_pending_one_time_token(tenant, sub, DELAYED_PURPOSE, now).await?.is_none() {
                return Err(RecoveryRefusal::Cancelled);
            }
            tx.retire_one_time_tokens(tenant, sub, CANCEL_PURPOSE, now).await?;
        }
        let user = tx.user(tenant, sub).await?;
        still_recoverable(&user, session.via, &session.address)?;
        let added = match &way {
            WayIn::Passkey(passkey) => {
                tx.add_passkey(tenant, sub, passkey, &actor).await.map_err(|e| match e {
                    latchkey_store::StoreError::Conflict(_) => RecoveryRefusal::NotNow,
                    other => other.into(),
                })?;
                format!("a new passkey (\"{}\")", passkey.name)
            }
            WayIn::Password(hash) => {
                tx.set_password_hash(tenant, sub, Some(hash.clone()), &actor).await?;
                "a new password".to_owned()
            }
        };
        tx.replace_recovery_codes(tenant, sub, &hashes, &actor).await?;
        if user.changes_blocked_at.is_some() {
            // Recovering is how the owner lifts a block they set with "this wasn't me".
            tx.block_changes(tenant, sub, None, &actor).await?;
        }
        let which = SessionSelector::User { sub: sub.clone(), except_sid: None };
        let ended = tx.end_browser_sessions(tenant, &which, &how, &actor).await?;
        let passkey = match &way {
            WayIn::Passkey(p) => p.name.as_str(),
            WayIn::Password(_) => "",
        };
        let values = context! { account => services.users().known_as(&user), passkey, added };
        let text = format!(
            "Your account at {} was recovered: {added} was set and every session signed out. Not you? Contact its operators at once.",
            services.issuer
        );
        let expires = now.plus(Duration::from_secs(7 * 86_400));
        self.notify(tx.as_mut(), tenant, &user, ("recovery_completed", values), &text, expires).await?;
        let details = serde_json::json!({"via": session.via.as_str(), "sessions_ended": ended.sessions.len()});
        tx.audit(tenant, &actor, "recovery.completed", sub.as_str(), details).await?;
        tx.commit().await?;
        sessions.ended(&ended, &how);
        services.caches.forget_user(sub);
        metrics::counter!("latchkey_recoveries_total", "via" => session.via.as_str()).increment(1);
        Ok(codes)
    }

    /// Tells every channel the account has (its verified address, its verified phone
    /// number) about a recovery, inside `tx`. Returns how many were told.
    async fn notify(
        &self,
        tx: &mut dyn StoreTx,
        tenant: &TenantId,
        user: &User,
        (kind, values): (&str, minijinja::Value),
        text: &str,
        expires: UnixTime,
    ) -> Result<usize, RecoveryRefusal> {
        let services = self.0;
        let actor = Actor::User(user.sub.to_string());
        let mut told = 0;
        if let Some(address) = user.email.as_ref().filter(|_| user.email_verified)
            && services.outbox().mail_enabled()
        {
            let email = services.outbox().render(kind, address.as_str(), values)?;
            services.outbox().queue_email(tx, tenant, kind, &email, expires, &actor).await?;
            told += 1;
        }
        if let Some(number) = verified_phone(user)
            && services.config.sms.as_ref().is_some_and(|c| c.allows(number))
        {
            // Not counted against the daily caps, which must not let anyone silence the
            // owner: a verified number of the account, told once per recovery step.
            let message = crate::sms::TextMessage { to: number.to_owned(), body: text.to_owned() };
            services.outbox().queue_text(tx, tenant, kind, &message, expires, &actor).await?;
            told += 1;
        }
        Ok(told)
    }
}
