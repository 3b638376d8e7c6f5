//! Account recovery by a link to the account's verified email address, for someone who lost
//! every way to sign in.
//!
//! 1. **Request**: a username or email address. The answer, and its timing, never depend on
//!    whether it names an account: the limits counted before answering are keyed by the
//!    typed value and the client IP only, and everything that depends on the account (the
//!    lookup, its own limit, the link) happens after the answer, in the background. Only a
//!    verified address is ever written to; locked and service accounts get nothing.
//! 2. **Link** (15 minutes, single use, used only by its confirmation page's POST): opens a
//!    [`RecoverySession`] in that browser. It can do one thing: add a new passkey.
//! 3. **Another factor**: if the account also has an authenticator app or more than one
//!    passkey, the link alone is not enough. The user gives the app's code, or says it is
//!    lost: then recovery completes only after `recovery.delay`, and a message to the
//!    verified address says so, with a link that cancels it.
//! 4. **Completion**, in one transaction: the new passkey, new recovery codes (shown once),
//!    every session ended and every refresh token revoked, and a message that it happened.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use latchkey_core::UnixTime;
use latchkey_core::domain::{Email, SubjectId, TenantId, Username};
use latchkey_core::records::{Actor, NewPasskey, SessionSelector, User};
use minijinja::context;
use serde::{Deserialize, Serialize};

use crate::message_limits::{Counted, Limited};
use crate::one_time_tokens::{self, mint};
use crate::sign_in::{Account, Admission, Guess};
use crate::{Latchkey, ServiceError, ServiceResult};

pub const LINK_PURPOSE: &str = "recovery_link";
pub const LINK_LIFETIME: Duration = Duration::from_secs(15 * 60);
pub const LINK_PATH: &str = "/recover/link";
/// A recovery waiting out the delay; its detail is when it may complete.
const DELAYED_PURPOSE: &str = "recovery_delayed";
const CANCEL_PURPOSE: &str = "recovery_cancel";
pub const CANCEL_PATH: &str = "/recover/cancel";
/// How long a recovery session lasts once its link is used (or its delay is over).
pub const SESSION_LIFETIME: Duration = Duration::from_secs(15 * 60);
/// How long after its delay a waiting recovery may still be completed.
const READY_FOR: Duration = Duration::from_secs(86_400);

/// What the link proved, and what is still missing. Kept server-side, bound to the browser
/// that used the link; the server never lets a browser write it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoverySession {
    pub sub: SubjectId,
    pub proof: Proof,
    /// Until when this state may be used (secs).
    pub expires_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Proof {
    /// The link is enough: the account has nothing else.
    LinkIsEnough,
    /// The account has an authenticator app: its code, or "lost".
    AppCodeNeeded,
    /// The account has more than one passkey: sign in with one, or "lost".
    OtherPasskeyLost,
    /// The second factor was given.
    Given,
    /// Said lost: the recovery may complete from `ready_at` (secs), if not cancelled.
    Waiting { ready_at: i64, token_hash: String },
}

impl RecoverySession {
    /// When a session ends (secs), for the server to keep its state that long.
    pub fn expires(&self) -> UnixTime {
        UnixTime::from_secs(self.expires_at)
    }
}

/// Why a recovery step was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum RecoveryRefusal {
    /// The link is unknown, used or expired; or the session is over.
    Gone,
    /// A code was wrong (counted).
    WrongCode,
    /// Too many attempts or messages lately.
    TooMany,
    /// The step does not fit the session (a passkey before the second factor, a code where
    /// none is asked for, completing before the delay is over).
    NotNow,
    /// The recovery was cancelled (from the link sent to every channel).
    Cancelled,
    Unavailable(String),
}

impl From<ServiceError> for RecoveryRefusal {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::NotFound(_) => RecoveryRefusal::Gone,
            other => RecoveryRefusal::Unavailable(other.to_string()),
        }
    }
}

impl From<latchkey_store::StoreError> for RecoveryRefusal {
    fn from(e: latchkey_store::StoreError) -> Self {
        ServiceError::from(e).into()
    }
}

impl From<Limited> for RecoveryRefusal {
    fn from(l: Limited) -> Self {
        match l {
            Limited::TooMany => RecoveryRefusal::TooMany,
            Limited::Unavailable => RecoveryRefusal::Unavailable("the message limits cannot be reached".into()),
        }
    }
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
        if let Err(e) = services.recovery().send_link(&tenant, &typed).await {
            tracing::warn!(error = %e, "cannot send a recovery link");
        }
    });
    Ok(())
}

impl Recovery<'_> {
    /// Whether recovery by email is offered here (`recovery.email` and `[mail]`).
    pub fn offered(&self) -> bool {
        self.0.config.recovery.email && self.0.outbox().mail_enabled()
    }

    /// The account `typed` names, if it may be recovered by email: by username, or by its
    /// verified address; never a locked or service account, never an unverified address.
    async fn recoverable(&self, tenant: &TenantId, typed: &str) -> ServiceResult<Option<(User, Email)>> {
        let users = self.0.users();
        // An address names the account only if it is that account's verified address.
        let (user, typed_address) = if typed.contains('@') {
            match Email::parse(typed) {
                Ok(address) => (users.by_email(tenant, &address).await?, Some(address)),
                Err(_) => (None, None),
            }
        } else {
            match Username::parse(typed) {
                Ok(name) => (users.by_username(tenant, &name).await?, None),
                Err(_) => (None, None),
            }
        };
        Ok(user.filter(|u| u.email_verified && !u.locked && !u.service_account).and_then(|u| {
            let address = u.email.clone()?;
            typed_address.is_none_or(|typed| typed == address).then_some((u, address))
        }))
    }

    async fn send_link(&self, tenant: &TenantId, typed: &str) -> ServiceResult<()> {
        let Some((user, address)) = self.recoverable(tenant, typed).await? else { return Ok(()) };
        let services = self.0;
        services.message_limits().reserve(tenant, LINK_PURPOSE, &[Counted::Account(&user.sub)]).await?;
        let minted = mint(services, LINK_PURPOSE, &user.sub, "", LINK_LIFETIME);
        let values = context! {
            name => display_name(&user),
            link => one_time_tokens::link(services, LINK_PATH, &minted.token),
            minutes => LINK_LIFETIME.as_secs() / 60,
        };
        let email = services.outbox().render("recovery_link", address.as_str(), values)?;
        let actor = Actor::System;
        let mut tx = services.store().transaction().await?;
        // One link at a time: a parallel send waits, then retires this one.
        tx.lock_user(tenant, &user.sub).await?;
        tx.retire_one_time_tokens(tenant, &user.sub, LINK_PURPOSE, services.clock.now()).await?;
        tx.create_one_time_token(tenant, &minted.stored).await?;
        services
            .outbox()
            .queue_email(tx.as_mut(), tenant, "recovery_link", &email, minted.stored.expires_at, &actor)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Whose account a link recovers, without using it.
    pub async fn look(&self, tenant: &TenantId, token: &str) -> ServiceResult<Option<User>> {
        let Some(found) = one_time_tokens::peek(self.0, tenant, LINK_PURPOSE, token).await? else { return Ok(None) };
        Ok(self.0.users().by_sub(tenant, &found.sub).await?.filter(|u| !u.locked))
    }

    /// Uses the link: a recovery session for this browser, and what it still needs.
    pub async fn begin(&self, tenant: &TenantId, token: &str) -> Result<RecoverySession, RecoveryRefusal> {
        let services = self.0;
        let hash = one_time_tokens::hash_given(services, LINK_PURPOSE, token).ok_or(RecoveryRefusal::Gone)?;
        let now = services.clock.now();
        let mut tx = services.store().transaction().await?;
        let used = tx.consume_one_time_token(tenant, &hash, LINK_PURPOSE, now).await?.ok_or(RecoveryRefusal::Gone)?;
        let user = tx.user(tenant, &used.sub).await?;
        if user.locked {
            return Err(RecoveryRefusal::Gone);
        }
        let methods = tx.sign_in_methods(tenant, &user.sub).await?;
        let actor = Actor::User(user.sub.to_string());
        tx.audit(tenant, &actor, "recovery.started", user.sub.as_str(), serde_json::json!({"via": "email"})).await?;
        tx.commit().await?;
        let totp = services.factors().totp(tenant, &user.sub).await?.is_some_and(|t| t.confirmed);
        let proof = if totp {
            Proof::AppCodeNeeded
        } else if methods.passkeys > 1 {
            Proof::OtherPasskeyLost
        } else {
            Proof::LinkIsEnough
        };
        Ok(RecoverySession { sub: user.sub, proof, expires_at: now.plus(SESSION_LIFETIME).secs() })
    }

    fn live(&self, session: &RecoverySession) -> Result<(), RecoveryRefusal> {
        if self.0.clock.now().secs() >= session.expires_at { Err(RecoveryRefusal::Gone) } else { Ok(()) }
    }

    /// The authenticator app's code, as the second proof (counted like a sign-in's).
    pub async fn give_app_code(
        &self,
        tenant: &TenantId,
        session: &RecoverySession,
        code: &str,
        ip: IpAddr,
    ) -> Result<RecoverySession, RecoveryRefusal> {
        self.live(session)?;
        if session.proof != Proof::AppCodeNeeded {
            return Err(RecoveryRefusal::NotNow);
        }
        let sign_in = self.0.sign_in();
        let attempt = match sign_in.reserve(tenant, Guess::SecondFactor, Account::Known(&session.sub), ip).await {
            Admission::Allowed(a) => a,
            Admission::Refused => return Err(RecoveryRefusal::TooMany),
            Admission::Unavailable => return Err(RecoveryRefusal::Unavailable("the attempt counters".into())),
        };
        if !self.0.factors().check_totp(tenant, &session.sub, code).await {
            attempt.failed();
            return Err(RecoveryRefusal::WrongCode);
        }
        sign_in.succeeded(tenant, attempt).await;
        Ok(RecoverySession { proof: Proof::Given, ..session.clone() })
    }

    /// The user says the other factor is lost too: the recovery may complete after
    /// `recovery.delay`, and the verified address is told, with a link that cancels it.
    pub async fn declare_lost(
        &self,
        tenant: &TenantId,
        session: &RecoverySession,
    ) -> Result<RecoverySession, RecoveryRefusal> {
        self.live(session)?;
        if !matches!(session.proof, Proof::AppCodeNeeded | Proof::OtherPasskeyLost) {
            return Err(RecoveryRefusal::NotNow);
        }
        let services = self.0;
        let now = services.clock.now();
        let delay = services.config.recovery.delay;
        let ready_at = now.plus(delay);
        let until = ready_at.plus(READY_FOR);
        let lifetime = delay + READY_FOR;
        let user = services.users().by_sub(tenant, &session.sub).await?.ok_or(RecoveryRefusal::Gone)?;
        let waiting = mint(services, DELAYED_PURPOSE, &user.sub, &ready_at.secs().to_string(), lifetime);
        let cancel = mint(services, CANCEL_PURPOSE, &user.sub, "", lifetime);
        let actor = Actor::User(user.sub.to_string());
        let mut tx = services.store().transaction().await?;
        // One link at a time: a parallel send waits, then retires this one.
        tx.lock_user(tenant, &user.sub).await?;
        tx.retire_one_time_tokens(tenant, &user.sub, DELAYED_PURPOSE, now).await?;
        tx.retire_one_time_tokens(tenant, &user.sub, CANCEL_PURPOSE, now).await?;
        tx.create_one_time_token(tenant, &waiting.stored).await?;
        tx.create_one_time_token(tenant, &cancel.stored).await?;
        if let Some(address) = user.email.as_ref().filter(|_| user.email_verified) {
            let values = context! {
                name => display_name(&user),
                ready_at => ready_at.to_rfc3339(),
                hours => delay.as_secs().div_ceil(3_600),
                cancel_link => one_time_tokens::link(services, CANCEL_PATH, &cancel.token),
            };
            let email = services.outbox().render("recovery_pending", address.as_str(), values)?;
            services.outbox().queue_email(tx.as_mut(), tenant, "recovery_pending", &email, until, &actor).await?;
        }
        let details = serde_json::json!({"ready_at": ready_at.secs()});
        tx.audit(tenant, &actor, "recovery.delayed", user.sub.as_str(), details).await?;
        tx.commit().await?;
        Ok(RecoverySession {
            proof: Proof::Waiting { ready_at: ready_at.secs(), token_hash: waiting.stored.hash.as_str().to_owned() },
            expires_at: until.secs(),
            ..session.clone()
        })
    }

    /// Where a waiting recovery stands: `Ok` when it may complete now, `NotNow` while the
    /// delay runs, `Cancelled` if it was cancelled.
    pub async fn waiting_state(&self, tenant: &TenantId, session: &RecoverySession) -> Result<(), RecoveryRefusal> {
        self.live(session)?;
        let Proof::Waiting { ready_at, token_hash } = &session.proof else { return Ok(()) };
        let hash = latchkey_core::crypto::TokenHash::from_stored(token_hash.clone());
        let now = self.0.clock.now();
        if self.0.store().peek_one_time_token(tenant, &hash, DELAYED_PURPOSE, now).await?.is_none() {
            return Err(RecoveryRefusal::Cancelled);
        }
        if now.secs() < *ready_at { Err(RecoveryRefusal::NotNow) } else { Ok(()) }
    }

    /// Whether the session may add its passkey now.
    pub async fn may_complete(&self, tenant: &TenantId, session: &RecoverySession) -> Result<(), RecoveryRefusal> {
        self.live(session)?;
        match &session.proof {
            Proof::LinkIsEnough | Proof::Given => Ok(()),
            Proof::Waiting { .. } => self.waiting_state(tenant, session).await,
            Proof::AppCodeNeeded | Proof::OtherPasskeyLost => Err(RecoveryRefusal::NotNow),
        }
    }

    /// Completes the recovery with a new passkey, in one transaction: the passkey, new
    /// recovery codes, every session ended and refresh token revoked, the message that it
    /// happened. Returns the recovery codes, to show once.
    pub async fn complete(
        &self,
        tenant: &TenantId,
        session: &RecoverySession,
        passkey: NewPasskey,
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
        if let Proof::Waiting { token_hash, .. } = &session.proof {
            let hash = latchkey_core::crypto::TokenHash::from_stored(token_hash.clone());
            if tx.consume_one_time_token(tenant, &hash, DELAYED_PURPOSE, now).await?.is_none() {
                return Err(RecoveryRefusal::Cancelled);
            }
            tx.retire_one_time_tokens(tenant, sub, CANCEL_PURPOSE, now).await?;
        }
        let user = tx.user(tenant, sub).await?;
        if user.locked {
            return Err(RecoveryRefusal::Gone);
        }
        tx.add_passkey(tenant, sub, &passkey, &actor).await.map_err(|e| match e {
            latchkey_store::StoreError::Conflict(_) => RecoveryRefusal::NotNow,
            other => other.into(),
        })?;
        tx.replace_recovery_codes(tenant, sub, &hashes, &actor).await?;
        let which = SessionSelector::User { sub: sub.clone(), except_sid: None };
        let ended = tx.end_browser_sessions(tenant, &which, &how, &actor).await?;
        if let Some(address) = user.email.as_ref().filter(|_| user.email_verified) {
            let values = context! { name => display_name(&user), passkey => passkey.name.as_str() };
            let email = services.outbox().render("recovery_completed", address.as_str(), values)?;
            let expires = now.plus(Duration::from_secs(7 * 86_400));
            services.outbox().queue_email(tx.as_mut(), tenant, "recovery_completed", &email, expires, &actor).await?;
        }
        let details = serde_json::json!({"via": "email", "sessions_ended": ended.sessions.len()});
        tx.audit(tenant, &actor, "recovery.completed", sub.as_str(), details).await?;
        tx.commit().await?;
        sessions.ended(&ended, &how);
        services.caches.forget_user(sub);
        metrics::counter!("latchkey_recoveries_total", "via" => "email").increment(1);
        Ok(codes)
    }

    /// Uses a cancel link: the waiting recovery of its account can no longer complete.
    /// `NotFound` for a link that is unknown, used or expired.
    pub async fn cancel(&self, tenant: &TenantId, token: &str) -> ServiceResult<User> {
        let services = self.0;
        let gone = || ServiceError::NotFound("cancel link".into());
        let hash = one_time_tokens::hash_given(services, CANCEL_PURPOSE, token).ok_or_else(gone)?;
        let now = services.clock.now();
        let mut tx = services.store().transaction().await?;
        let used = tx.consume_one_time_token(tenant, &hash, CANCEL_PURPOSE, now).await?.ok_or_else(gone)?;
        tx.retire_one_time_tokens(tenant, &used.sub, DELAYED_PURPOSE, now).await?;
        tx.retire_one_time_tokens(tenant, &used.sub, LINK_PURPOSE, now).await?;
        let user = tx.user(tenant, &used.sub).await?;
        let actor = Actor::User(user.sub.to_string());
        tx.audit(tenant, &actor, "recovery.cancelled", user.sub.as_str(), serde_json::json!({})).await?;
        tx.commit().await?;
        Ok(user)
    }

    /// Whether a cancel link is live, without using it.
    pub async fn look_cancel(&self, tenant: &TenantId, token: &str) -> ServiceResult<bool> {
        Ok(one_time_tokens::peek(self.0, tenant, CANCEL_PURPOSE, token).await?.is_some())
    }
}

fn display_name(user: &User) -> &str {
    user.name.as_ref().map_or(user.username.as_str(), |n| n.as_str())
}
