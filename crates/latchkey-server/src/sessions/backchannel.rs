//! Back-Channel Logout 1.0 delivery: logout tokens queued in the database (in the same
//! transaction that ended the session) are POSTed as `logout_token` by every node's sender.
//! A delivery is claimed for a lease before it is sent, so two nodes do not send it at
//! once; a node that dies mid-send leaves it to be retried when the lease runs out. Failed
//! attempts are retried with exponential backoff up to `logout.backchannel_max_attempts`.
//! Every POST goes through the outbound guard (`crate::outbound`): a URI it refuses (a
//! private address, plain http not opened in `outbound.allow`) is never sent and never
//! retried; one whose destination's circuit is open waits for the cool-down.

use std::time::Duration;

use latchkey_core::records::{DeliveryOutcome, LogoutDelivery};
use tokio::task::{JoinHandle, JoinSet};

use crate::state::AppState;
use latchkey_config::LogoutConfig;
use latchkey_service::keys::MintError;
use latchkey_service::outbound::{OutboundError, Purpose, Request};

/// Deliveries claimed per round.
const BATCH: u32 = 32;

/// Runs the sender: on a wake-up (a session ended on this node) or every poll interval.
pub fn spawn(state: AppState) -> JoinHandle<()> {
    tokio::spawn(async move {
        let config = &state.config.logout;
        loop {
            tokio::select! {
                () = state.backchannel.notified() => {}
                () = tokio::time::sleep(config.backchannel_poll_interval) => {}
            }
            deliver_due(&state).await;
        }
    })
}

/// Sends every delivery that is due, a batch at a time, the batch in parallel.
pub async fn deliver_due(state: &AppState) {
    let config = &state.config.logout;
    let lease = config.backchannel_timeout * 2 + Duration::from_secs(5);
    loop {
        let batch = match state.services.sessions().claim_logout_deliveries(state.clock.now(), lease, BATCH).await {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the back-channel logout queue");
                return;
            }
        };
        if batch.is_empty() {
            return;
        }
        let mut sends = JoinSet::new();
        for delivery in batch {
            let state = state.clone();
            sends.spawn(async move { deliver(&state, delivery).await });
        }
        while sends.join_next().await.is_some() {}
    }
}

async fn deliver(state: &AppState, d: LogoutDelivery) {
    let now = state.clock.now();
    let outcome = match send(state, &d).await {
        Ok(()) => DeliveryOutcome::Delivered,
        Err(Failure::Permanent(error)) => DeliveryOutcome::Failed { error },
        Err(Failure::Transient(error)) => next_step(&state.config.logout, d.attempts, now, error, Duration::ZERO),
        Err(Failure::Later(error, wait)) => next_step(&state.config.logout, d.attempts, now, error, wait),
    };
    let label = match &outcome {
        DeliveryOutcome::Delivered => "delivered",
        DeliveryOutcome::Retry { .. } => "retried",
        DeliveryOutcome::Failed { .. } => "failed",
    };
    metrics::counter!("latchkey_backchannel_logout_total", "outcome" => label).increment(1);
    match &outcome {
        DeliveryOutcome::Failed { error } => {
            tracing::warn!(client_id = %d.client_id, jti = %d.jti, %error, "back-channel logout given up");
        }
        DeliveryOutcome::Retry { error, .. } => {
            tracing::info!(client_id = %d.client_id, jti = %d.jti, %error, "back-channel logout will be retried");
        }
        DeliveryOutcome::Delivered => {}
    }
    if let Err(e) =
        state.services.sessions().finish_logout_delivery(&d.tenant, &d.jti, &outcome, state.clock.now()).await
    {
        tracing::error!(error = %e, jti = %d.jti, "cannot record a back-channel logout delivery");
    }
}

enum Failure {
    /// Worth another attempt (the relying party was down or said no).
    Transient(String),
    /// Worth another attempt, but not before this long (the destination's circuit is open).
    Later(String, Duration),
    /// Never going to work (the client is gone or no longer wants logout tokens, or the
    /// outbound guard refuses its URI).
    Permanent(String),
}

async fn send(state: &AppState, d: &LogoutDelivery) -> Result<(), Failure> {
    let client = match state.caches.client(&d.client_id).await {
        Ok(Some(c)) => c,
        Ok(None) => return Err(Failure::Permanent("the client no longer exists".into())),
        Err(e) => return Err(Failure::Transient(format!("cannot load the client: {e}"))),
    };
    let Some(uri) = client.session_policy.backchannel_logout_uri.clone() else {
        return Err(Failure::Permanent("the client no longer has a backchannel_logout_uri".into()));
    };
    let token = mint_logout_token(state, &client, &d.jti, d.sub.as_str(), &d.sid)
        .map_err(|e| Failure::Transient(format!("cannot sign the logout token: {e}")))?;
    let request = Request::post_form(uri.as_str(), &[("logout_token", &token)])
        .header("cache-control", "no-store")
        .timeout(state.config.logout.backchannel_timeout);
    let response = state.outbound.send(Purpose::BackchannelLogout, request).await.map_err(|e| match e {
        OutboundError::Refused(refusal) => Failure::Permanent(format!("not sent: {refusal}")),
        OutboundError::CircuitOpen { retry_after, .. } => Failure::Later(e.to_string(), retry_after),
        e => Failure::Transient(format!("POST failed: {e}")),
    })?;
    // §2.8: 200 on success; some frameworks answer an empty 200 with 204. A redirect is
    // not followed (the guard never does), so it is a failure like any other status.
    match response.status() {
        200 | 204 => Ok(()),
        status => Err(Failure::Transient(format!("the relying party answered {status}"))),
    }
}

/// Retry after `base * 2^attempts` (capped, and at least `at_least`), or give up after the
/// last attempt.
fn next_step(
    config: &LogoutConfig,
    attempts_before: i64,
    now: latchkey_core::UnixTime,
    error: String,
    at_least: Duration,
) -> DeliveryOutcome {
    let attempts = attempts_before.saturating_add(1);
    if attempts >= i64::from(config.backchannel_max_attempts) {
        return DeliveryOutcome::Failed { error };
    }
    let factor = 2u32.saturating_pow(u32::try_from(attempts_before).unwrap_or(u32::MAX).min(31));
    let wait = config.backchannel_retry_base.saturating_mul(factor).min(config.backchannel_retry_max).max(at_least);
    DeliveryOutcome::Retry { at: now.plus(wait), error }
}

/// Back-Channel Logout 1.0 §2.4: the event a logout token carries.
pub const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// How long a logout token is valid: long enough for clock skew, short against replay.
const LOGOUT_TOKEN_LIFETIME: i64 = 120;

/// A logout token (Back-Channel Logout 1.0 §2.4): `typ: logout+jwt`, signed like the
/// client's ID tokens, with `sub` and `sid` and never a `nonce`.
pub fn mint_logout_token(
    state: &AppState,
    client: &latchkey_core::records::Client,
    jti: &str,
    sub: &str,
    sid: &str,
) -> Result<String, MintError> {
    let alg = client.id_token_signed_response_alg;
    let key = state.keys.active(alg).ok_or(MintError::NoKey(alg))?;
    let now = state.clock.now().secs();
    let claims = serde_json::json!({
        "iss": state.issuer.as_ref(),
        "aud": client.client_id.as_str(),
        "iat": now,
        "exp": now + LOGOUT_TOKEN_LIFETIME,
        "jti": jti,
        "sub": sub,
        "sid": sid,
        "events": { BACKCHANNEL_LOGOUT_EVENT: {} },
    });
    key.sign_jwt("logout+jwt", &claims).map_err(|e| MintError::Sign(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use latchkey_core::UnixTime;

    #[test]
    fn retries_back_off_exponentially_and_give_up_at_the_limit() {
        let config = LogoutConfig {
            backchannel_retry_base: Duration::from_secs(2),
            backchannel_retry_max: Duration::from_secs(10),
            backchannel_max_attempts: 5,
            ..LogoutConfig::default()
        };
        let now = UnixTime::from_secs(1_000);
        let at = |attempts| match next_step(&config, attempts, now, "x".into(), Duration::ZERO) {
            DeliveryOutcome::Retry { at, .. } => Some(at.secs() - 1_000),
            _ => None,
        };
        assert_eq!([at(0), at(1), at(2), at(3)], [Some(2), Some(4), Some(8), Some(10)]);
        assert_eq!(at(4), None, "the fifth failed attempt is the last");
        assert!(
            matches!(next_step(&config, 4, now, "boom".into(), Duration::ZERO), DeliveryOutcome::Failed { error } if error == "boom")
        );
        // An open circuit pushes the retry past its cool-down.
        let later = next_step(&config, 0, now, "open".into(), Duration::from_secs(30));
        assert!(matches!(later, DeliveryOutcome::Retry { at, .. } if at.secs() - 1_000 == 30));
    }
}
