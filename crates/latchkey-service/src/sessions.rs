//! Single sign-on sessions: starting, finding and ending them, and the back-channel logout
//! queue that ending them fills.

use std::time::Duration;

use latchkey_core::UnixTime;
use latchkey_core::crypto::TokenHash;
use latchkey_core::domain::{ClientId, SubjectId, TenantId};
use latchkey_core::records::{
    Actor, BrowserSession, DeliveryOutcome, DeliveryRecord, LogoutDelivery, SessionEnd, SessionInfo, SessionSelector,
    SessionsEnded,
};
use latchkey_store::StoreTx;

use crate::{Latchkey, ServiceResult, pass_through};

pub struct Sessions<'a>(pub(crate) &'a Latchkey);

impl Sessions<'_> {
    pass_through! {
        fn create(tenant: &TenantId, session: &BrowserSession, actor: &Actor) -> () => create_browser_session;
        /// The same user signed in again in this browser: the session takes the new cookie
        /// hash and authentication and keeps its `sid` and clients. False if it is gone.
        fn reauthenticate(tenant: &TenantId, old_id_hash: &TokenHash, session: &BrowserSession, actor: &Actor) -> bool
            => reauthenticate_browser_session;
        /// The live session whose cookie hashes to `id_hash`.
        fn by_cookie(tenant: &TenantId, id_hash: &TokenHash, now: UnixTime, idle: Duration) -> Option<BrowserSession>
            => browser_session;
        /// The live session with the public id `sid`.
        fn by_sid(tenant: &TenantId, sid: &str, now: UnixTime, idle: Duration) -> Option<BrowserSession>
            => browser_session_by_sid;
        fn touch(tenant: &TenantId, sid: &str, now: UnixTime) -> () => touch_browser_session;
        fn record_client(tenant: &TenantId, sid: &str, client: &ClientId, backchannel: bool, now: UnixTime) -> ()
            => record_session_client;
        /// A user's live sessions with their clients, newest first.
        fn of_user(tenant: &TenantId, sub: &SubjectId, now: UnixTime, idle: Duration) -> Vec<SessionInfo> => user_sessions;
        /// Claims up to `limit` due deliveries for `lease`, so another node does not send them meanwhile.
        fn claim_logout_deliveries(now: UnixTime, lease: Duration, limit: u32) -> Vec<LogoutDelivery>
            => claim_logout_deliveries;
        fn finish_logout_delivery(tenant: &TenantId, jti: &str, outcome: &DeliveryOutcome, now: UnixTime) -> ()
            => finish_logout_delivery;
        /// The deliveries queued for the sessions of a user, newest first.
        fn logout_deliveries(tenant: &TenantId, sub: &SubjectId) -> Vec<DeliveryRecord> => logout_deliveries;
    }

    /// Ends sessions and everything (`reason` is what the audit log and the metric
    /// `latchkey_sessions_ended_total` say) that goes with them, in one transaction: the sessions
    /// go, their clients' back-channel logout tokens are queued (any node's sender delivers
    /// them) and their refresh tokens are revoked (every one of the user's with
    /// `revoke_all_refresh_tokens`). Then this node stops accepting their access tokens and
    /// its sender wakes.
    pub async fn end(
        &self,
        tenant: &TenantId,
        which: &SessionSelector,
        reason: &'static str,
        revoke_all_refresh_tokens: bool,
        actor: &Actor,
    ) -> ServiceResult<SessionsEnded> {
        let how = self.ending(reason, revoke_all_refresh_tokens).await;
        let mut tx = self.0.store().transaction().await?;
        let ended = tx.end_browser_sessions(tenant, which, &how, actor).await?;
        tx.commit().await?;
        self.ended(&ended, &how);
        Ok(ended)
    }

    /// How sessions ending now end: revocations last as long as the longest access token.
    pub(crate) async fn ending(&self, reason: &'static str, revoke_all_refresh_tokens: bool) -> SessionEnd {
        let now = self.0.clock.now();
        SessionEnd {
            now,
            revoke_until: now.plus(self.0.tokens().longest_access_token_lifetime().await),
            revoke_all_refresh_tokens,
            reason,
        }
    }

    /// Ends sessions inside a transaction the caller commits (with the change that ends them).
    pub(crate) async fn end_in(
        &self,
        tx: &mut dyn StoreTx,
        tenant: &TenantId,
        sub: &SubjectId,
        except_sid: Option<String>,
        how: &SessionEnd,
        actor: &Actor,
    ) -> ServiceResult<SessionsEnded> {
        let which = SessionSelector::User { sub: sub.clone(), except_sid };
        Ok(tx.end_browser_sessions(tenant, &which, how, actor).await?)
    }

    /// What follows on this node once ended sessions are committed.
    pub(crate) fn ended(&self, ended: &SessionsEnded, how: &SessionEnd) {
        for grant in &ended.revoked_grants {
            self.0.revocations.add_local("grant", grant, how.revoke_until);
        }
        if !ended.sessions.is_empty() {
            metrics::counter!("latchkey_sessions_ended_total", "reason" => how.reason)
                .increment(ended.sessions.len() as u64);
            self.0.backchannel.notify_one();
        }
    }
}

impl Sessions<'_> {
    /// After a change of credentials on the security page: the user's other sessions end
    /// (their refresh tokens go with them; `offline_access` ones stay). A failure is logged:
    /// the change itself is already made.
    pub async fn end_others(&self, tenant: &TenantId, sub: &SubjectId, current_sid: &str, actor: &Actor) {
        let which = SessionSelector::User { sub: sub.clone(), except_sid: Some(current_sid.to_owned()) };
        if let Err(e) = self.end(tenant, &which, "credentials_changed", false, actor).await {
            tracing::error!(error = %e, "cannot end the user's other sessions");
        }
    }
}
