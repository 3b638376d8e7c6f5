//! A code texted to the account's verified phone as the second step of a password sign-in
//! (`login.sms_second_factor`, off by default; `amr` `sms`).
//!
//! Text messages are the weakest second factor: a number can be moved to another SIM by
//! someone who talks a carrier into it (SIM swap), and texts can be read off a locked
//! phone's screen. So a code is offered only to an account whose other factors are a
//! password and recovery codes: where a passkey or an authenticator app is set up, the page
//! never offers the weaker way round it. A code works once, for 10 minutes; a new one
//! replaces older ones, and only for the number it went to; wrong codes count like any
//! second step's. Texts count per account ([`SENT_PER_ACCOUNT`], [`SENT_PER_DAY`]), not
//! against `[sms].daily_limits`, which anyone can use up with recovery requests.

use std::net::IpAddr;
use std::time::Duration;

use latchkey_core::domain::{SubjectId, TenantId};
use latchkey_core::records::{Actor, NewOneTimeToken};

use crate::phone_verification::{code_hash, new_code, typed_code};
use crate::sms::TextMessage;
use crate::{Latchkey, ServiceError, ServiceResult};

pub const PURPOSE: &str = crate::one_time_tokens::purpose::SIGN_IN_CODE;
pub const CODE_LIFETIME: Duration = Duration::from_secs(600);
/// Codes texted per account per 10 minutes.
pub const SENT_PER_ACCOUNT: i64 = 3;
/// Codes texted per account per day.
pub const SENT_PER_DAY: i64 = 10;

pub struct SmsSecondFactor<'a>(pub(crate) &'a Latchkey);

/// What a texted code is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    SignIn,
    Recovery,
}

impl Step {
    fn as_str(self) -> &'static str {
        match self {
            Step::SignIn => "sign_in",
            Step::Recovery => "recovery",
        }
    }
}

impl SmsSecondFactor<'_> {
    /// Whether codes by text are a second factor here: `login.sms_second_factor` and `[sms]`.
    pub fn enabled(&self) -> bool {
        self.0.config.login.sms_second_factor && self.0.outbox().sms_enabled()
    }

    /// The number a code would go to, if the account may use one: enabled here, a verified
    /// number texts may go to, and no passkey or authenticator app (never offered as a way
    /// round a stronger factor).
    pub async fn number_for(&self, tenant: &TenantId, sub: &SubjectId) -> ServiceResult<Option<String>> {
        if !self.enabled() {
            return Ok(None);
        }
        let Some(user) = self.0.users().by_sub(tenant, sub).await? else { return Ok(None) };
        let number = user.profile.phone_number.filter(|_| user.profile.phone_number_verified);
        let Some(number) = number.filter(|n| self.0.config.sms.as_ref().is_some_and(|c| c.allows(n))) else {
            return Ok(None);
        };
        let factors = self.0.factors();
        let stronger = !factors.passkeys(tenant, sub).await?.is_empty()
            || factors.totp(tenant, sub).await?.is_some_and(|t| t.confirmed);
        Ok((!stronger).then_some(number))
    }

    /// Texts a sign-in code to the account's number; older codes stop working. `Invalid`
    /// where no code may be sent, `TooMany` past the limits.
    /// `step` says what the code is for (`Step::SignIn`, or the second proof of a recovery):
    /// each has its own budget, so using one up never blocks the other.
    pub async fn send(&self, tenant: &TenantId, sub: &SubjectId, ip: IpAddr, step: Step) -> ServiceResult<String> {
        let services = self.0;
        let number = self
            .number_for(tenant, sub)
            .await?
            .ok_or_else(|| ServiceError::Invalid("codes by text message are not offered for this account".into()))?;
        // A budget of its own, not [sms].daily_limits: those can be used up by anyone
        // (recovery requests need no sign-in) and must not keep the owner out. Per account
        // (per step), and per IP and in all with the daily caps' numbers, against SMS pumping
        // through many accounts.
        let limits = services.message_limits();
        let step = step.as_str();
        let key = format!("{step}:sent:{sub}");
        let day = format!("{step}:sent-day:{sub}");
        let ip_key = format!("ip:{}", self.0.throttle_ip(ip));
        let caps = services.config.sms.as_ref().map(|c| c.daily_limits.clone()).unwrap_or_default();
        limits.reserve_keyed_within(tenant, PURPOSE, &[(&key, SENT_PER_ACCOUNT)], CODE_LIFETIME).await?;
        let daily =
            [(day.as_str(), SENT_PER_DAY), (ip_key.as_str(), i64::from(caps.per_ip)), ("all", i64::from(caps.total))];
        limits.reserve_keyed_within(tenant, PURPOSE, &daily, Duration::from_secs(86_400)).await?;
        let code = new_code();
        let now = services.clock.now();
        let stored = NewOneTimeToken {
            hash: code_hash(services, PURPOSE, sub, &code),
            purpose: PURPOSE.into(),
            sub: sub.clone(),
            detail: number.clone(),
            expires_at: now.plus(CODE_LIFETIME),
        };
        let text = TextMessage {
            to: number.clone(),
            body: format!(
                "{code} is your code to sign in to {}. It expires in 10 minutes. Never give it to anyone.",
                services.issuer
            ),
        };
        let mut tx = services.store().transaction().await?;
        tx.lock_user(tenant, sub).await?;
        tx.retire_one_time_tokens(tenant, sub, PURPOSE, now).await?;
        tx.create_one_time_token(tenant, &stored).await?;
        tx.audit(tenant, &Actor::System, "sign_in.code_sent", sub.as_str(), serde_json::json!({"via": "sms"})).await?;
        services.outbox().queue_text(tx.as_mut(), tenant, PURPOSE, &text, stored.expires_at, &Actor::System).await?;
        tx.commit().await?;
        Ok(number)
    }

    /// Whether `typed` is the account's live code (used up if so); any failure to check
    /// counts as wrong. The caller counts the attempt, as for any second step.
    pub async fn check(&self, tenant: &TenantId, sub: &SubjectId, typed: &str) -> bool {
        let services = self.0;
        let Some(code) = typed_code(typed) else { return false };
        let Ok(Some(number)) = self.number_for(tenant, sub).await else { return false };
        let hash = code_hash(services, PURPOSE, sub, &code);
        let now = services.clock.now();
        let Ok(mut tx) = services.store().transaction().await else { return false };
        let Ok(Some(used)) = tx.consume_one_time_token(tenant, &hash, PURPOSE, now).await else { return false };
        // The code works only for the number it went to (not after a change of number).
        used.sub == *sub && used.detail == number && tx.commit().await.is_ok()
    }
}

/// A number shown on a page without giving it away: its calling code's first digits and
/// its last two (`+44 ••• ••23`).
pub fn masked(number: &str) -> String {
    let digits: Vec<char> = number.chars().filter(char::is_ascii_digit).collect();
    let (head, tail) =
        (digits.iter().take(2).collect::<String>(), digits.iter().rev().take(2).rev().collect::<String>());
    format!("+{head} ••• ••{tail}")
}
