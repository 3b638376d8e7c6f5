//! Proving a phone number: a 6-digit code texted to it (10 minutes, 5 attempts), typed back
//! on the security page. The number becomes the account's `phone_number`, with
//! `phone_number_verified`, only then. Numbers are E.164, and only to the calling codes in
//! `sms.allowed_countries` (none until listed: SMS pumping); every text counts against the
//! daily caps of `[sms]`.
//!
//! Codes are stored like links: only a keyed hash, bound to the purpose and the account
//! (the hash covers the account, so two accounts' codes never meet), single-use.

use std::net::IpAddr;
use std::time::Duration;

use latchkey_core::domain::{SubjectId, TenantId};
use latchkey_core::records::{Actor, NewOneTimeToken, User};

use crate::sms::TextMessage;
use crate::{Latchkey, ServiceError, ServiceResult};

pub const PURPOSE: &str = crate::one_time_tokens::purpose::PHONE_VERIFICATION;
pub const CODE_LIFETIME: Duration = Duration::from_secs(600);
/// Wrong codes per account within [`CODE_LIFETIME`].
pub const ATTEMPTS: i64 = 5;

/// A phone number as typed (spaces, dashes, dots and parentheses allowed), in E.164, if it
/// is one and texts may go to its country.
pub fn parse_number(services: &Latchkey, raw: &str) -> ServiceResult<String> {
    let number: String = raw.chars().filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')')).collect();
    if raw.len() > 40 || !latchkey_config::e164(&number) {
        return Err(ServiceError::Invalid(
            "that is not a phone number in international form, such as +44 20 7946 0000".into(),
        ));
    }
    let sms = services.config.sms.as_ref().ok_or_else(|| ServiceError::Invalid(not_configured()))?;
    if !sms.allows(&number) {
        return Err(ServiceError::Invalid("texts cannot be sent to numbers in that country here".into()));
    }
    Ok(number)
}

fn not_configured() -> String {
    "text messages need SMS, and this server has none ([sms] in latchkey.toml)".into()
}

/// A random 6-digit code, uniformly drawn.
pub(crate) fn new_code() -> String {
    loop {
        let n = u32::from_be_bytes(latchkey_core::crypto::random::bytes::<4>());
        // The largest multiple of a million below 2^32: no digit more likely than another.
        if n < 4_294_000_000 {
            return format!("{:06}", n % 1_000_000);
        }
    }
}

/// The stored form of a code for `sub`.
pub(crate) fn code_hash(
    services: &Latchkey,
    purpose: &str,
    sub: &SubjectId,
    code: &str,
) -> latchkey_core::crypto::TokenHash {
    services.token_hasher.hash(purpose, &format!("{sub}:{code}"))
}

/// Whether `typed` could be a code at all (6 digits, spaces allowed).
pub(crate) fn typed_code(typed: &str) -> Option<String> {
    let code: String = typed.chars().filter(|c| !c.is_whitespace()).collect();
    (code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit())).then_some(code)
}

pub struct PhoneVerification<'a>(pub(crate) &'a Latchkey);

impl PhoneVerification<'_> {
    pub fn enabled(&self) -> bool {
        self.0.outbox().sms_enabled()
    }

    /// Texts a code for `number` (as typed) to it, for `user`; earlier codes stop working.
    pub async fn send_code(
        &self,
        tenant: &TenantId,
        user: &User,
        number: &str,
        ip: Option<IpAddr>,
    ) -> ServiceResult<String> {
        let services = self.0;
        if !self.enabled() {
            return Err(ServiceError::Invalid(not_configured()));
        }
        if user.service_account {
            return Err(ServiceError::Invalid("a service account has no phone".into()));
        }
        services.security_notices().may_change(tenant, &user.sub, &Actor::User(user.sub.to_string())).await?;
        let number = parse_number(services, number)?;
        services.message_limits().reserve_text(tenant, &number, Some(&user.sub), ip).await?;
        let code = new_code();
        let stored = NewOneTimeToken {
            hash: code_hash(services, PURPOSE, &user.sub, &code),
            purpose: PURPOSE.into(),
            sub: user.sub.clone(),
            detail: number.clone(),
            expires_at: services.clock.now().plus(CODE_LIFETIME),
        };
        let text = TextMessage {
            to: number.clone(),
            body: format!(
                "{code} is your code to confirm this number for {}. It expires in 10 minutes.",
                services.issuer
            ),
        };
        let actor = Actor::User(user.sub.to_string());
        let now = services.clock.now();
        let mut tx = services.store().transaction().await?;
        tx.lock_user(tenant, &user.sub).await?;
        tx.retire_one_time_tokens(tenant, &user.sub, PURPOSE, now).await?;
        tx.create_one_time_token(tenant, &stored).await?;
        services
            .outbox()
            .queue_text(tx.as_mut(), tenant, "phone_verification", &text, stored.expires_at, &actor)
            .await?;
        tx.commit().await?;
        Ok(number)
    }

    /// The number a code was sent to and not yet confirmed, if any.
    pub async fn pending(&self, tenant: &TenantId, user: &User) -> ServiceResult<Option<String>> {
        let now = self.0.clock.now();
        Ok(self.0.store().pending_one_time_token(tenant, &user.sub, PURPOSE, now).await?.map(|t| t.detail))
    }

    /// The code typed back: its number becomes the account's, verified. `Invalid` for a
    /// wrong, used or expired code (counted: [`ATTEMPTS`] per account per 10 minutes).
    pub async fn confirm(&self, tenant: &TenantId, user: &User, typed: &str) -> ServiceResult<String> {
        let services = self.0;
        let wrong = || ServiceError::Invalid("that code is not right, or it expired: ask for a new one".into());
        let key = format!("attempts:{}", user.sub);
        services.message_limits().reserve_keyed_within(tenant, PURPOSE, &[(&key, ATTEMPTS)], CODE_LIFETIME).await?;
        let code = typed_code(typed).ok_or_else(wrong)?;
        let hash = code_hash(services, PURPOSE, &user.sub, &code);
        let now = services.clock.now();
        let actor = Actor::User(user.sub.to_string());
        let notices = services.security_notices();
        let mut tx = services.store().transaction().await?;
        tx.lock_user(tenant, &user.sub).await?;
        let before = notices.may_change_in(tx.as_mut(), tenant, &user.sub, &actor).await?;
        let used = tx.consume_one_time_token(tenant, &hash, PURPOSE, now).await?.ok_or_else(wrong)?;
        tx.verify_phone(tenant, &user.sub, &used.detail, &actor).await?;
        let old = before.profile.phone_number.clone().filter(|_| before.profile.phone_number_verified);
        if old.as_deref() != Some(used.detail.as_str()) {
            let change = crate::security_notices::Change::PhoneChanged { old };
            notices.tell(tx.as_mut(), tenant, &before, &change, &actor).await?;
        }
        tx.commit().await?;
        services.caches.forget_user(&user.sub);
        Ok(used.detail)
    }
}
