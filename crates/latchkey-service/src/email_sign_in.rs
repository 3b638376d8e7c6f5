//! Sign-in by a link emailed to the account's verified address (`login.email_link`, off by
//! default), for accounts without a passkey.
//!
//! The link signs in **only the browser that asked for it**: asking keeps a random secret
//! in that browser (its ceremony cookie) and the link is bound to the secret's keyed hash,
//! so a link forwarded, intercepted or opened on another device signs nobody in, and nobody
//! can sign a victim's browser in to their own account by sending a link (login CSRF). The
//! answer to asking never depends on the account (limits keyed by the typed name and IP,
//! the lookup and the message in the background, as for recovery). Only a verified address
//! receives a link; locked and service accounts and accounts with a passkey get none. The
//! link works once, for 15 minutes, through its confirmation page's POST; an account with
//! an authenticator app (or codes by text) still gives its second step.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use latchkey_core::domain::{Email, TenantId};
use latchkey_core::records::{Actor, User};
use minijinja::context;
use serde::{Deserialize, Serialize};

use crate::message_limits::{Counted, Limited};
use crate::one_time_tokens::{self, mint, purpose};
use crate::{Latchkey, ServiceError, ServiceResult};

pub const LINK_LIFETIME: Duration = Duration::from_secs(15 * 60);
pub const LINK_PATH: &str = "/login/link";
/// Links per account per hour from one IP, and in all.
const PER_ACCOUNT_AND_IP: i64 = 3;
const PER_ACCOUNT: i64 = 10;

/// What a link is bound to: the asking browser's secret (its keyed hash) and the address.
#[derive(Serialize, Deserialize)]
struct Bound {
    browser: String,
    address: String,
}

pub struct EmailSignIn<'a>(pub(crate) &'a Latchkey);

/// Asks for a sign-in link for `typed` (a username or verified address) from the browser
/// holding `browser_secret`. Answers the same whether or not an account matches; the link
/// (if any) is sent in the background. `TooMany` past the limits of the name or the IP.
pub async fn request(
    services: &Arc<Latchkey>,
    tenant: &TenantId,
    typed: &str,
    browser_secret: &str,
    ip: IpAddr,
) -> Result<(), Limited> {
    let typed = typed.trim();
    if !services.email_sign_in().offered() || typed.is_empty() || typed.len() > 320 {
        return Ok(());
    }
    let limits = services.message_limits();
    limits.reserve(tenant, purpose::SIGN_IN_LINK, &[Counted::Recipient(typed), Counted::Ip(ip)]).await?;
    let browser = services.token_hasher.hash(purpose::SIGN_IN_LINK, browser_secret).as_str().to_owned();
    let (services, tenant, typed) = (services.clone(), tenant.clone(), typed.to_owned());
    tokio::spawn(async move {
        if let Err(e) = services.email_sign_in().send_link(&tenant, &typed, browser, ip).await {
            tracing::warn!(error = %e, "cannot send a sign-in link");
        }
    });
    Ok(())
}

impl EmailSignIn<'_> {
    /// Whether sign-in links are offered: `login.email_link` and `[mail]`.
    pub fn offered(&self) -> bool {
        self.0.config.login.email_link && self.0.outbox().mail_enabled()
    }

    /// The account `typed` names, if it may sign in by link: by username or its verified
    /// address; verified address, not locked, no service account, no passkey.
    async fn eligible(&self, tenant: &TenantId, typed: &str) -> ServiceResult<Option<(User, Email)>> {
        let user = self.0.users().named_for_messages(tenant, typed).await?;
        let Some((user, address)) =
            user.filter(|u| u.email_verified).and_then(|u| u.email.clone().map(|address| (u, address)))
        else {
            return Ok(None);
        };
        if !self.0.factors().passkeys(tenant, &user.sub).await?.is_empty() {
            return Ok(None);
        }
        Ok(Some((user, address)))
    }

    async fn send_link(&self, tenant: &TenantId, typed: &str, browser: String, ip: IpAddr) -> ServiceResult<()> {
        let services = self.0;
        let Some((user, address)) = self.eligible(tenant, typed).await? else { return Ok(()) };
        let per_ip = format!("{}:{}", user.sub, self.0.throttle_ip(ip));
        let keys = [(per_ip.as_str(), PER_ACCOUNT_AND_IP), (user.sub.as_str(), PER_ACCOUNT)];
        services.message_limits().reserve_keyed(tenant, purpose::SIGN_IN_LINK, &keys).await?;
        let bound = Bound { browser, address: address.as_str().to_owned() };
        let detail = serde_json::to_string(&bound).map_err(|e| ServiceError::Unavailable(e.to_string()))?;
        let minted = mint(services, purpose::SIGN_IN_LINK, &user.sub, &detail, LINK_LIFETIME);
        let values = context! {
            account => services.users().known_as(&user),
            link => one_time_tokens::link(services, LINK_PATH, &minted.token),
            minutes => LINK_LIFETIME.as_secs() / 60,
        };
        let email = services.outbox().render("sign_in_link", address.as_str(), values)?;
        let mut tx = services.store().transaction().await?;
        tx.create_one_time_token(tenant, &minted.stored).await?;
        tx.audit(tenant, &Actor::System, "sign_in.link_sent", user.sub.as_str(), serde_json::json!({})).await?;
        services
            .outbox()
            .queue_email(tx.as_mut(), tenant, "sign_in_link", &email, minted.stored.expires_at, &Actor::System)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The account a link signs in to, if it is live, was asked for by the browser holding
    /// `browser_secret`, and the account still may: without using it.
    pub async fn look(&self, tenant: &TenantId, token: &str, browser_secret: &str) -> ServiceResult<Option<User>> {
        let Some(found) = one_time_tokens::peek(self.0, tenant, purpose::SIGN_IN_LINK, token).await? else {
            return Ok(None);
        };
        if !self.bound_here(&found.detail, browser_secret) {
            return Ok(None);
        }
        let user = self.0.users().by_sub(tenant, &found.sub).await?;
        Ok(user.filter(|u| self.still_may(u, &found.detail)))
    }

    /// Uses the link in the browser holding `browser_secret`: the account to sign in.
    /// `NotFound` for a link that is unknown, used, expired, asked for by another browser,
    /// or whose account may no longer sign in by link (nothing is used then).
    pub async fn use_link(&self, tenant: &TenantId, token: &str, browser_secret: &str) -> ServiceResult<User> {
        let services = self.0;
        let gone = || ServiceError::NotFound("sign-in link".into());
        let user = self.look(tenant, token, browser_secret).await?.ok_or_else(gone)?;
        if !self.0.factors().passkeys(tenant, &user.sub).await?.is_empty() {
            return Err(gone());
        }
        let hash = one_time_tokens::hash_given(services, purpose::SIGN_IN_LINK, token).ok_or_else(gone)?;
        let mut tx = services.store().transaction().await?;
        tx.lock_user(tenant, &user.sub).await?;
        let used = tx
            .consume_one_time_token(tenant, &hash, purpose::SIGN_IN_LINK, services.clock.now())
            .await?
            .ok_or_else(gone)?;
        let now = tx.user(tenant, &user.sub).await?;
        if used.sub != user.sub || !self.still_may(&now, &used.detail) {
            return Err(gone());
        }
        tx.audit(
            tenant,
            &Actor::User(user.sub.to_string()),
            "sign_in.link_used",
            user.sub.as_str(),
            serde_json::json!({}),
        )
        .await?;
        tx.commit().await?;
        Ok(now)
    }

    fn bound_here(&self, detail: &str, browser_secret: &str) -> bool {
        let Ok(bound) = serde_json::from_str::<Bound>(detail) else { return false };
        let there = latchkey_core::crypto::TokenHash::from_stored(bound.browser);
        self.0.token_hasher.verify(purpose::SIGN_IN_LINK, browser_secret, &there)
    }

    /// Still not locked, and still holding the verified address the link went to.
    fn still_may(&self, user: &User, detail: &str) -> bool {
        let Ok(bound) = serde_json::from_str::<Bound>(detail) else { return false };
        !user.locked
            && !user.service_account
            && user.email_verified
            && user.email.as_ref().is_some_and(|e| e.as_str() == bound.address)
    }
}
