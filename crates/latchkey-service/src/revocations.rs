//! The revocation set: ids of revoked access tokens (`jti`), grants (`gid`), ended
//! browser sessions (`session`, for their forward-auth cookies) and revoked API keys
//! (`api_key`), kept in the
//! database and mirrored in memory on every node. Each node polls for new entries every
//! `POLL` (the staleness bound, ≤ 1 s); revocations made on this node apply at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use latchkey_core::{Clock, UnixTime};
use latchkey_store::Store;

pub const POLL: Duration = Duration::from_millis(500);

/// How far back each poll reads again. On PostgreSQL a revocation's `seq` is drawn when it
/// is written, not when its transaction commits: one that commits after a higher `seq` was
/// already read is still found if it commits within this.
const LOOKBACK: Duration = Duration::from_secs(10);

#[derive(Default)]
pub struct Revocations {
    /// `jti:<id>` or `grant:<id>` → until when the entry matters.
    entries: RwLock<HashMap<String, i64>>,
    /// Withdrawn consents: `<client_id> <sub>` → (until when the entry matters, the time at
    /// or before which the client's access tokens for the user were issued to be refused).
    withdrawn: RwLock<HashMap<String, (i64, i64)>>,
    last_seq: AtomicI64,
    /// The highest `seq` read by each recent poll, and when (oldest first).
    polls: std::sync::Mutex<std::collections::VecDeque<(std::time::Instant, i64)>>,
}

impl Revocations {
    pub fn is_revoked(&self, jti: &str, grant_id: Option<&str>) -> bool {
        let Ok(map) = self.entries.read() else { return true };
        map.contains_key(&format!("jti:{jti}")) || grant_id.is_some_and(|g| map.contains_key(&format!("grant:{g}")))
    }

    /// Whether the user `sub` withdrew their consent to `client_id` after an access token
    /// issued at `iat` was issued to the client.
    pub fn is_consent_withdrawn(&self, client_id: &str, sub: &str, iat: i64) -> bool {
        let Ok(map) = self.withdrawn.read() else { return true };
        // Most of the time nothing is withdrawn: no key is built.
        !map.is_empty() && map.get(&consent_key(client_id, sub)).is_some_and(|(_, before)| iat <= *before)
    }

    /// Records a consent withdrawn on this node, before the poll would see it.
    pub fn add_local_withdrawal(&self, client_id: &str, sub: &str, issued_before: UnixTime, until: UnixTime) {
        if let Ok(mut map) = self.withdrawn.write() {
            Self::note_withdrawal(&mut map, consent_key(client_id, sub), issued_before.secs(), until.secs());
        }
    }

    fn note_withdrawal(map: &mut HashMap<String, (i64, i64)>, key: String, before: i64, until: i64) {
        let entry = map.entry(key).or_insert((until, before));
        *entry = (entry.0.max(until), entry.1.max(before));
    }

    /// Whether the browser session `sid` has ended (its forward-auth cookies no longer count).
    pub fn is_session_ended(&self, sid: &str) -> bool {
        self.contains("session", sid)
    }

    /// Whether the API key with this id was revoked.
    pub fn is_api_key_revoked(&self, key_id: &str) -> bool {
        self.contains("api_key", key_id)
    }

    fn contains(&self, kind: &str, value: &str) -> bool {
        let Ok(map) = self.entries.read() else { return true };
        map.contains_key(&format!("{kind}:{value}"))
    }

    /// Records a revocation made on this node, before the poll would see it.
    pub fn add_local(&self, kind: &str, value: &str, until: UnixTime) {
        if let Ok(mut map) = self.entries.write() {
            map.insert(format!("{kind}:{value}"), until.secs());
        }
    }

    pub async fn refresh(&self, store: &dyn Store, now: UnixTime) -> Result<(), latchkey_store::StoreError> {
        let new = store.revocations_after(self.watermark(), now).await?;
        if let Ok(mut map) = self.entries.write() {
            for r in new.iter().filter(|r| r.issued_before.is_none()) {
                map.insert(format!("{}:{}", r.kind, r.value), r.expires_at.secs());
            }
            map.retain(|_, until| *until > now.secs());
        }
        if let Ok(mut map) = self.withdrawn.write() {
            for r in &new {
                if let (Some(before), "consent") = (r.issued_before, r.kind.as_str()) {
                    Self::note_withdrawal(&mut map, r.value.clone(), before.secs(), r.expires_at.secs());
                }
            }
            map.retain(|_, (until, _)| *until > now.secs());
        }
        let highest = new.last().map_or(0, |r| r.seq).max(self.last_seq.load(Ordering::SeqCst));
        self.last_seq.store(highest, Ordering::SeqCst);
        self.note_poll(highest);
        Ok(())
    }

    /// Where a poll starts: the highest `seq` read by a poll at least [`LOOKBACK`] ago.
    fn watermark(&self) -> i64 {
        let Ok(polls) = self.polls.lock() else { return 0 };
        let Some(cutoff) = std::time::Instant::now().checked_sub(LOOKBACK) else { return 0 };
        polls.iter().rev().find(|(at, _)| *at <= cutoff).map_or(0, |(_, seq)| *seq)
    }

    /// Remembers a poll; forgets those older than the newest one past [`LOOKBACK`].
    fn note_poll(&self, seq: i64) {
        let Ok(mut polls) = self.polls.lock() else { return };
        let now = std::time::Instant::now();
        polls.push_back((now, seq));
        if let Some(cutoff) = now.checked_sub(LOOKBACK) {
            while polls.len() >= 2 && polls[1].0 <= cutoff {
                polls.pop_front();
            }
        }
    }
}

/// How a withdrawn consent is named in the revocation set (as the store writes it).
fn consent_key(client_id: &str, sub: &str) -> String {
    format!("{client_id} {sub}")
}

pub fn spawn_poller(revocations: Arc<Revocations>, store: Arc<dyn Store>, clock: Clock) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = revocations.refresh(store.as_ref(), clock.now()).await {
                tracing::warn!(error = %e, "cannot refresh the revocation set");
            }
        }
    })
}
