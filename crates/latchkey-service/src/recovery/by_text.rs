//! Recovery by a code texted to the account's verified phone number (`recovery.sms`): the
//! same recovery session and rules as a link by email.
//!
//! Guessing is bounded three ways. What the answer shows is counted only by the typed name
//! and the client IP ([`CODE_ATTEMPTS`] and four times that per 10 minutes), the same for
//! every name, so the limits never tell whether a name is an account. Behind that, every
//! try counts against the account itself, silently and before any code is looked at: after [`CODE_ATTEMPTS`] within a
//! code's lifetime, or [`WRONG_PER_DAY`] in a day, under whatever names and from whatever
//! addresses, every code of the account stops working and a new one must be asked for. A
//! wrong code and a name that is no account take the same path (a keyed hash, one look-up,
//! one count), so neither the answer nor its timing tells them apart.

use std::net::IpAddr;
use std::time::Duration;

use latchkey_core::domain::{SubjectId, TenantId};
use latchkey_core::records::{Actor, NewOneTimeToken, User};

use super::{CODE_PURPOSE, Recovery, RecoveryRefusal, RecoverySession, Via, verified_phone};
use crate::ServiceResult;
use crate::message_limits::Limited;
use crate::phone_verification::{code_hash, new_code, typed_code};

pub const CODE_LIFETIME: Duration = Duration::from_secs(600);
/// Wrong codes per typed name (and, silently, per account) within [`CODE_LIFETIME`].
pub const CODE_ATTEMPTS: i64 = 5;
/// Wrong codes per account per day, under any name, before its codes stop working.
pub const WRONG_PER_DAY: i64 = 20;
/// Recovery texts per account asked for from one IP (an IPv4 address or IPv6 /64) per day:
/// one address alone cannot use up the number's daily cap.
const SENT_PER_ACCOUNT_AND_IP: i64 = 2;
const DAY: Duration = Duration::from_secs(86_400);

impl Recovery<'_> {
    /// The account `typed` names for a recovery by text message (whether it has a verified
    /// phone is checked later, the same way for every name).
    async fn named(&self, tenant: &TenantId, typed: &str) -> ServiceResult<Option<User>> {
        self.0.users().named_for_messages(tenant, typed).await
    }

    pub(super) async fn send_code(&self, tenant: &TenantId, typed: &str, ip: IpAddr) -> ServiceResult<()> {
        let services = self.0;
        let Some(user) = self.named(tenant, typed).await? else { return Ok(()) };
        let Some(number) = verified_phone(&user).map(str::to_owned) else { return Ok(()) };
        if !services.config.sms.as_ref().is_some_and(|c| c.allows(&number)) {
            return Ok(());
        }
        let limits = services.message_limits();
        let per_ip = format!("sent:{}:{}", user.sub, self.0.throttle_ip(ip));
        limits.reserve_keyed_within(tenant, CODE_PURPOSE, &[(&per_ip, SENT_PER_ACCOUNT_AND_IP)], DAY).await?;
        limits.reserve_text(tenant, &number, Some(&user.sub), Some(ip)).await?;
        let code = new_code();
        let stored = NewOneTimeToken {
            hash: code_hash(services, CODE_PURPOSE, &user.sub, &code),
            purpose: CODE_PURPOSE.into(),
            sub: user.sub.clone(),
            detail: number.clone(),
            expires_at: services.clock.now().plus(CODE_LIFETIME),
        };
        let text = crate::sms::TextMessage {
            to: number,
            body: format!(
                "{code} is your code to recover your account at {}. It expires in 10 minutes. Never give it to anyone.",
                services.issuer
            ),
        };
        let mut tx = services.store().transaction().await?;
        tx.create_one_time_token(tenant, &stored).await?;
        tx.audit(tenant, &Actor::System, "recovery.code_sent", user.sub.as_str(), serde_json::json!({"via": "sms"}))
            .await?;
        services
            .outbox()
            .queue_text(tx.as_mut(), tenant, "recovery_code", &text, stored.expires_at, &Actor::System)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The code texted for `typed` (a username or verified address): a recovery session,
    /// like a link's. Every name gets the same answers: a wrong code and a name that is no
    /// account (or has no verified phone) are both `WrongCode`, counted the same way.
    pub async fn begin_with_code(
        &self,
        tenant: &TenantId,
        typed: &str,
        code: &str,
        ip: IpAddr,
    ) -> Result<RecoverySession, RecoveryRefusal> {
        let services = self.0;
        if !self.offered_sms() {
            return Err(RecoveryRefusal::NotNow);
        }
        let typed = typed.trim();
        if typed.is_empty() || typed.len() > 320 {
            return Err(RecoveryRefusal::WrongCode);
        }
        let name = services.token_hasher.hash("message_recipient", &typed.to_lowercase());
        let name_key = format!("code:typed:{}", name.as_str());
        let ip_key = format!("code:ip:{}", self.0.throttle_ip(ip));
        let keys = [(name_key.as_str(), CODE_ATTEMPTS), (ip_key.as_str(), CODE_ATTEMPTS * 4)];
        services.message_limits().reserve_keyed_within(tenant, CODE_PURPOSE, &keys, CODE_LIFETIME).await?;

        let user = self.named(tenant, typed).await?;
        // A name that is no account is hashed and looked up under a stand-in account of its
        // own, which never holds a code: the same work as a wrong code.
        let sub = match &user {
            Some(u) => u.sub.clone(),
            None => SubjectId::parse(&format!("nobody:{}", name.as_str())).map_err(|_| RecoveryRefusal::WrongCode)?,
        };
        // Every try counts against the account before any code is looked at, so parallel
        // tries under its several names cannot pass the limit.
        if !self.count_try(tenant, &sub).await? {
            return Err(RecoveryRefusal::WrongCode);
        }
        let code = typed_code(code).unwrap_or_default();
        let hash = code_hash(services, CODE_PURPOSE, &sub, &code);
        let now = services.clock.now();
        let found = services.store().peek_one_time_token(tenant, &hash, CODE_PURPOSE, now).await?;
        match (user, found) {
            (Some(user), Some(found)) if found.sub == user.sub && !code.is_empty() => {
                match self.open(tenant, &user.sub, &hash, Via::Sms).await {
                    Err(RecoveryRefusal::Gone) => Err(RecoveryRefusal::WrongCode),
                    other => other,
                }
            }
            _ => Err(RecoveryRefusal::WrongCode),
        }
    }

    /// Counts a try against the account (or a name's stand-in): past the limits, every code
    /// of the account stops working and `false` comes back. The answer never shows this.
    async fn count_try(&self, tenant: &TenantId, sub: &SubjectId) -> Result<bool, RecoveryRefusal> {
        let limits = self.0.message_limits();
        let short = format!("wrong:{sub}");
        let day = format!("wrong-day:{sub}");
        let within = limits.reserve_keyed_within(tenant, CODE_PURPOSE, &[(&short, CODE_ATTEMPTS)], CODE_LIFETIME).await;
        let daily = limits.reserve_keyed_within(tenant, CODE_PURPOSE, &[(&day, WRONG_PER_DAY)], DAY).await;
        match (within, daily) {
            (Err(Limited::Unavailable), _) | (_, Err(Limited::Unavailable)) => {
                Err(RecoveryRefusal::Unavailable("the attempt counters".into()))
            }
            (Ok(()), Ok(())) => Ok(true),
            _ => {
                let now = self.0.clock.now();
                let mut tx = self.0.store().transaction().await?;
                let retired = tx.retire_one_time_tokens(tenant, sub, CODE_PURPOSE, now).await?;
                if retired > 0 {
                    let details = serde_json::json!({"codes": retired});
                    tx.audit(tenant, &Actor::System, "recovery.codes_retired", sub.as_str(), details).await?;
                }
                tx.commit().await?;
                Ok(false)
            }
        }
    }
}
