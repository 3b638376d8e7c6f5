//! Stopping a recovery that waits out its delay: by the link sent to every channel, by the
//! button on the security page, or by any sign-in to the account meanwhile.

use latchkey_core::domain::{SubjectId, TenantId};
use latchkey_core::records::{Actor, User};
use latchkey_store::StoreTx;

use super::{CANCEL_PURPOSE, DELAYED_PURPOSE, LINK_PURPOSE, Recovery, SESSION_PURPOSE};
use crate::{ServiceError, ServiceResult, one_time_tokens};

impl Recovery<'_> {
    /// Uses a cancel link: the waiting recovery of its account can no longer complete.
    /// `NotFound` for a link that is unknown, used or expired.
    pub async fn cancel(&self, tenant: &TenantId, token: &str) -> ServiceResult<User> {
        let services = self.0;
        let gone = || ServiceError::NotFound("cancel link".into());
        let hash = one_time_tokens::hash_given(services, CANCEL_PURPOSE, token).ok_or_else(gone)?;
        let now = services.clock.now();
        let found = services.store().peek_one_time_token(tenant, &hash, CANCEL_PURPOSE, now).await?.ok_or_else(gone)?;
        // The account's lock first, as completion takes it: the two never wait on each other.
        let mut tx = services.store().transaction().await?;
        tx.lock_user(tenant, &found.sub).await?;
        tx.consume_one_time_token(tenant, &hash, CANCEL_PURPOSE, now).await?.ok_or_else(gone)?;
        self.cancel_in(tx.as_mut(), tenant, &found.sub, "cancel_link").await?;
        let user = tx.user(tenant, &found.sub).await?;
        tx.commit().await?;
        Ok(user)
    }

    /// Cancels the account's waiting recovery (its owner pressed the button on the security
    /// page, or signed in during the delay). Returns whether one was waiting.
    pub async fn cancel_for(&self, tenant: &TenantId, sub: &SubjectId, why: &str) -> ServiceResult<bool> {
        if self.waiting_for(tenant, sub).await?.is_none() {
            return Ok(false);
        }
        let mut tx = self.0.store().transaction().await?;
        tx.lock_user(tenant, sub).await?;
        let cancelled = self.cancel_in(tx.as_mut(), tenant, sub, why).await?;
        tx.commit().await?;
        Ok(cancelled)
    }

    async fn cancel_in(
        &self,
        tx: &mut dyn StoreTx,
        tenant: &TenantId,
        sub: &SubjectId,
        why: &str,
    ) -> ServiceResult<bool> {
        let now = self.0.clock.now();
        let waiting = tx.retire_one_time_tokens(tenant, sub, DELAYED_PURPOSE, now).await?;
        for purpose in [CANCEL_PURPOSE, LINK_PURPOSE, SESSION_PURPOSE] {
            tx.retire_one_time_tokens(tenant, sub, purpose, now).await?;
        }
        let actor = Actor::User(sub.to_string());
        tx.audit(tenant, &actor, "recovery.cancelled", sub.as_str(), serde_json::json!({"by": why})).await?;
        Ok(waiting > 0)
    }

    /// Whether a cancel link is live, without using it.
    pub async fn look_cancel(&self, tenant: &TenantId, token: &str) -> ServiceResult<bool> {
        Ok(one_time_tokens::peek(self.0, tenant, CANCEL_PURPOSE, token).await?.is_some())
    }
}
