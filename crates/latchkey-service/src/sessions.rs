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

/// `last_active_at` is written at most this often per session, not on every request.
pub const TOUCH_EVERY: Duration = Duration::from_secs(60);

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

    /// After a change of credentials made in `tx`: ends the user's sessions but
    /// `current_sid` in the same transaction, commits, and sets off what follows.
    pub(crate) async fn commit_ending_others(
        &self,
        mut tx: Box<dyn StoreTx>,
        how: &SessionEnd,
        (tenant, sub, current_sid): (&TenantId, &SubjectId, &str),
        actor: &Actor,
    ) -> ServiceResult<()> {
        let ended = self.end_in(tx.as_mut(), tenant, sub, Some(current_sid.to_owned()), how, actor).await?;
        tx.commit().await?;
        self.ended(&ended, how);
        Ok(())
    }

    /// What follows on this node once ended sessions are committed.
    pub(crate) fn ended(&self, ended: &SessionsEnded, how: &SessionEnd) {
        for grant in &ended.revoked_grants {
            self.0.revocations.add_local("grant", grant, how.revoke_until);
        }
        // The store revoked them until each session's own end; no session outlives this.
        let sessions = &self.0.config.sessions;
        let longest = how.now.plus(sessions.lifetime.max(sessions.remember_me_lifetime));
        for session in &ended.sessions {
            self.0.revocations.add_local("session", &session.sid, longest);
        }
        if !ended.sessions.is_empty() {
            metrics::counter!("latchkey_sessions_ended_total", "reason" => how.reason)
                .increment(ended.sessions.len() as u64);
            self.0.backchannel.notify_one();
        }
    }
}

impl Sessions<'_> {
    /// Records that `session` was used at `now`: written at most every [`TOUCH_EVERY`].
    pub(crate) async fn record_activity(
        &self,
        tenant: &TenantId,
        session: &BrowserSession,
        now: UnixTime,
    ) -> ServiceResult<()> {
        if now.since(session.last_active_at) >= TOUCH_EVERY {
            self.touch(tenant, &session.sid, now).await?;
        }
        Ok(())
    }
}

/// The purpose a session cookie's secret is hashed under.
const SESSION_PURPOSE: &str = "browser_session";

/// What a successful sign-in establishes.
pub struct SignedIn {
    pub sub: SubjectId,
    pub amr: Vec<String>,
    pub acr: String,
    /// The user asked to stay signed in (honoured only when `sessions.remember_me_lifetime`
    /// is not zero).
    pub remember: bool,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    /// When the person proved who they are, if not now: an upstream provider's `auth_time`
    /// (a provider session from earlier is not a sign-in now). A time in the future counts
    /// as now.
    pub authenticated_at: Option<UnixTime>,
}

/// A session a sign-in started or renewed, and the secret its browser keeps (the store
/// keeps only its keyed hash).
pub struct Started {
    pub session: BrowserSession,
    pub secret: String,
    pub lifetime: Duration,
}

impl Sessions<'_> {
    /// The live session whose browser holds `secret`: not expired, not idle, and its user
    /// still exists and is not locked. Records the activity (at most every [`TOUCH_EVERY`]).
    /// A failure to read is logged and counts as no session.
    pub async fn live(&self, tenant: &TenantId, secret: &str) -> Option<BrowserSession> {
        let services = self.0;
        let hash = services.token_hasher.hash(SESSION_PURPOSE, secret);
        let now = services.clock.now();
        let session = match self.by_cookie(tenant, &hash, now, services.config.sessions.idle_timeout).await {
            Ok(s) => s?,
            Err(e) => {
                tracing::error!(error = %e, "cannot read session");
                return None;
            }
        };
        match services.caches.user(&session.sub).await {
            Ok(Some(user)) if !user.locked => {}
            _ => return None,
        }
        if let Err(e) = self.record_activity(tenant, &session, now).await {
            tracing::warn!(error = %e, "cannot record session activity");
        }
        Some(session)
    }

    /// Establishes a sign-in in the browser that holds `previous` (its session cookie, if
    /// any). The secret is new at every sign-in. The same user signing in again (a forced
    /// re-authentication, a step-up) keeps the session's `sid` and clients; anyone else's
    /// sign-in ends the session the browser had (its clients hear of it) and starts a new one.
    pub async fn start(
        &self,
        tenant: &TenantId,
        previous: Option<&str>,
        signed_in: SignedIn,
    ) -> ServiceResult<Started> {
        let services = self.0;
        let actor = Actor::User(signed_in.sub.to_string());
        let current = match previous {
            Some(secret) => self.live(tenant, secret).await,
            None => None,
        };
        let now = services.clock.now();
        let config = &services.config.sessions;
        let remember = signed_in.remember && !config.remember_me_lifetime.is_zero();
        let lifetime = if remember { config.remember_me_lifetime } else { config.lifetime };
        let secret = latchkey_core::crypto::random::token_string::<32>();
        let mut session = BrowserSession {
            id_hash: services.token_hasher.hash(SESSION_PURPOSE, &secret),
            sid: latchkey_core::crypto::random::identifier::<16>(),
            sub: signed_in.sub,
            auth_time: signed_in.authenticated_at.filter(|t| *t < now).unwrap_or(now),
            amr: signed_in.amr,
            acr: signed_in.acr,
            created_at: now,
            expires_at: now.plus(lifetime),
            last_active_at: now,
            remember,
            user_agent: signed_in.user_agent.as_deref().and_then(|ua| self.0.config.privacy.user_agent.keep(ua)),
            ip: signed_in.ip.as_deref().and_then(|ip| self.0.config.privacy.ip.keep(ip)),
        };
        let reauthenticated = match current.filter(|p| p.sub == session.sub) {
            Some(p) => {
                session.sid = p.sid.clone();
                session.created_at = p.created_at;
                self.reauthenticate(tenant, &p.id_hash, &session, &actor).await?
            }
            None => false,
        };
        if !reauthenticated {
            session.sid = latchkey_core::crypto::random::identifier::<16>();
            session.created_at = now;
            if let Some(secret) = previous {
                self.end_browser(tenant, secret, "replaced", &actor).await;
            }
            self.create(tenant, &session, &actor).await?;
        }
        // Whoever signs in has a factor that is not lost: a recovery waiting out its delay
        // (someone said every factor was lost) is cancelled.
        match services.recovery().cancel_for(tenant, &session.sub, "signed_in").await {
            Ok(true) => tracing::info!(sub = %session.sub, "a waiting recovery was cancelled by a sign-in"),
            Ok(false) => {}
            Err(e) => tracing::error!(error = %e, "cannot check for a waiting recovery at sign-in"),
        }
        Ok(Started { session, secret, lifetime })
    }

    /// Ends the session of the browser that holds `secret`, if it has one. A failure is
    /// logged: the browser forgets its cookie either way.
    pub async fn end_browser(
        &self,
        tenant: &TenantId,
        secret: &str,
        reason: &'static str,
        actor: &Actor,
    ) -> SessionsEnded {
        let which = SessionSelector::IdHash(self.0.token_hasher.hash(SESSION_PURPOSE, secret));
        match self.end(tenant, &which, reason, false, actor).await {
            Ok(ended) => ended,
            Err(e) => {
                tracing::error!(error = %e, "cannot end session");
                SessionsEnded::default()
            }
        }
    }
}
