//! Erasing a person (GDPR Art. 17), by themselves or by an operator: the account and
//! everything tied to it in one transaction — sessions (each client told by back-channel
//! logout), tokens (refresh tokens deleted, access tokens refused by every client that got
//! one), consents and their history, factors, linked identities, API keys, invitations it
//! used, messages still queued for it, throttle entries — and the key its audit entries are
//! sealed under, so the log keeps its chain and loses their content. The receipt says what
//! kinds of data went, when and by whom, and contains none of it.

use latchkey_core::domain::{SubjectId, TenantId};
use latchkey_core::records::{Actor, ErasureReceipt, ErasureRequest};
use latchkey_store::AccountRetention;

use crate::{Latchkey, ServiceResult};

pub struct Erasure<'a>(pub(crate) &'a Latchkey);

impl Erasure<'_> {
    /// Erases `sub`. An operator may not erase themselves or the last administrator (the
    /// admin rules every removal meets). `NotFound` when there is no such user.
    pub async fn erase(&self, tenant: &TenantId, sub: &SubjectId, actor: &Actor) -> ServiceResult<ErasureReceipt> {
        let receipt = self.erase_if(tenant, sub, None, actor).await?;
        receipt.ok_or_else(|| crate::ServiceError::Unavailable("the erasure was left".into()))
    }

    /// Erases `sub` if `rule` (a retention rule) still applies once the person's row is
    /// held; `None` when it no longer does (they signed in, or verified their address).
    pub(crate) async fn erase_if(
        &self,
        tenant: &TenantId,
        sub: &SubjectId,
        rule: Option<AccountRetention>,
        actor: &Actor,
    ) -> ServiceResult<Option<ErasureReceipt>> {
        let self_service = matches!(actor, Actor::User(s) if s == sub.as_str());
        if !self_service {
            crate::admin::Admin::may_remove(sub, actor)?;
        }
        let now = self.0.clock.now();
        let code = self.0.config.tokens.authorization_code_lifetime;
        let revoke_until = now.plus(self.0.tokens().longest_access_token_lifetime().await.max(code));
        let sessions = self.0.sessions();
        let how = sessions.ending("user_deleted", true).await;
        let mut tx = self.0.store().transaction().await?;
        // The person's lock first: nothing queues a message for them or withdraws a consent
        // of theirs meanwhile.
        tx.lock_user(tenant, sub).await?;
        if let Some(rule) = rule
            && !tx.account_retention_applies(tenant, sub, rule).await?
        {
            return Ok(None);
        }
        let user = tx.user(tenant, sub).await?;
        let outbox = self.0.outbox();
        let mut recipient_hashes: Vec<String> = user.email.iter().map(|e| outbox.recipient_hash(e.as_str())).collect();
        recipient_hashes.extend(user.profile.phone_number.iter().map(|p| outbox.recipient_hash(p)));
        let admins_before = tx.active_admins(tenant).await?;
        let ended = sessions.end_in(tx.as_mut(), tenant, sub, None, &how, actor).await?;
        let request = ErasureRequest {
            receipt_id: latchkey_core::crypto::random::identifier::<16>(),
            at: now,
            revoke_until,
            recipient_hashes,
            session_clients: ended.sessions.iter().flat_map(|s| s.clients.iter().map(ToString::to_string)).collect(),
        };
        let (mut receipt, clients) = tx.erase_user(tenant, sub, &request, actor).await?;
        // Dropped without a commit when refused: nothing changes.
        crate::admin::Admin::check_admins_kept(&admins_before, &tx.active_admins(tenant).await?, actor)?;
        tx.commit().await?;
        receipt.removed.insert("sessions".into(), u64::try_from(ended.sessions.len()).unwrap_or(u64::MAX));
        self.0.caches.forget_user(sub);
        sessions.ended(&ended, &how);
        // This node refuses the person's access tokens at once; others at their next poll.
        for client in &clients {
            self.0.revocations.add_local_withdrawal(client, sub.as_str(), now, revoke_until);
        }
        metrics::counter!("latchkey_erasures_total").increment(1);
        Ok(Some(receipt))
    }
}
