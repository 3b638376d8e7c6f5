//! Deleting what has expired, in bounded batches.
//!
//! One `DELETE … WHERE expires_at <= now` over a backlog of a million refresh tokens held
//! SQLite's single write lock for 37 s: every sign-in and refresh waited behind it, and
//! writes failed after the busy timeout. Here each batch deletes at most `Pace::batch_rows`
//! rows found through an index on the expiry column, in its own short transaction, and the
//! job pauses between batches, so a backlog of any size is worked off while requests wait
//! at most one batch.

use std::time::{Duration, Instant};

use latchkey_core::UnixTime;

use crate::{CleanupStore, StoreResult};

/// One kind of row that expires, and the moment that ends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Expired {
    /// Authorization requests waiting for sign-in or consent.
    AuthorizationRequests,
    AuthorizationCodes,
    RefreshTokens,
    /// Entries of the access-token revocation set whose tokens have expired anyway.
    Revocations,
    /// Sign-in failure counters untouched for a day.
    LoginFailures,
    /// Client assertion ids kept against replay (RFC 7523 §3).
    AssertionIds,
    /// Passkey challenges and half-finished sign-ins.
    Ceremonies,
    /// Browser sessions past their absolute end, with their lists of clients.
    EndedSessions,
    /// Browser sessions idle for the idle timeout, with their lists of clients.
    IdleSessions,
    /// Back-channel logout deliveries finished before the keeping period.
    FinishedDeliveries,
    /// Emailed links and texted codes past their expiry, used or not.
    OneTimeTokens,
    /// Responses kept for the admin API's `Idempotency-Key`, a day after the create.
    IdempotencyKeys,
}

impl Expired {
    /// Every kind, in the order the cleanup job works through them.
    pub const ALL: [Expired; 12] = [
        Expired::AuthorizationRequests,
        Expired::AuthorizationCodes,
        Expired::RefreshTokens,
        Expired::Revocations,
        Expired::LoginFailures,
        Expired::AssertionIds,
        Expired::Ceremonies,
        Expired::EndedSessions,
        Expired::IdleSessions,
        Expired::FinishedDeliveries,
        Expired::OneTimeTokens,
        Expired::IdempotencyKeys,
    ];

    /// Where rows of this kind live, the column whose value ends them (indexed, so that a
    /// batch is an index range scan in that column's order: tests/query_plans.rs), and any
    /// further condition. A row has expired when the column is at most the kind's cutoff.
    pub fn expiry(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Expired::AuthorizationRequests => ("authorization_requests", "expires_at", ""),
            Expired::AuthorizationCodes => ("authorization_codes", "expires_at", ""),
            // A rotated token stays (hashed) until its whole family has expired: presented
            // again meanwhile, it still gives the reuse away (RFC 9700 §4.14.2).
            Expired::RefreshTokens => ("refresh_tokens", "expires_at", REFRESH_FAMILY_ENDED),
            Expired::Revocations => ("revocations", "expires_at", ""),
            Expired::LoginFailures => ("login_failures", "window_start", ""),
            Expired::AssertionIds => ("assertion_jtis", "expires_at", ""),
            Expired::Ceremonies => ("auth_ceremonies", "expires_at", ""),
            Expired::EndedSessions => ("browser_sessions", "expires_at", ""),
            Expired::IdleSessions => ("browser_sessions", "last_active_at", ""),
            Expired::FinishedDeliveries => ("logout_deliveries", "finished_at", " AND status <> 'pending'"),
            Expired::OneTimeTokens => ("one_time_tokens", "expires_at", ""),
            Expired::IdempotencyKeys => ("admin_idempotency", "created_at", ""),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Expired::AuthorizationRequests => "authorization_requests",
            Expired::AuthorizationCodes => "authorization_codes",
            Expired::RefreshTokens => "refresh_tokens",
            Expired::Revocations => "revocations",
            Expired::LoginFailures => "login_failures",
            Expired::AssertionIds => "assertion_jtis",
            Expired::Ceremonies => "auth_ceremonies",
            Expired::EndedSessions => "ended_sessions",
            Expired::IdleSessions => "idle_sessions",
            Expired::FinishedDeliveries => "logout_deliveries",
            Expired::OneTimeTokens => "one_time_tokens",
            Expired::IdempotencyKeys => "idempotency_keys",
        }
    }
}

/// The condition that keeps an expired refresh token while a token of its family lives.
const REFRESH_FAMILY_ENDED: &str = " AND NOT EXISTS (SELECT 1 FROM refresh_tokens f
      WHERE f.family_id = refresh_tokens.family_id AND f.tenant_id = refresh_tokens.tenant_id AND f.expires_at > $1)";

/// How long the admin API keeps a create's response for its `Idempotency-Key`.
pub const IDEMPOTENCY_KEYS_KEPT: Duration = Duration::from_secs(86_400);

/// How long a failure counter is kept after its window started.
pub const LOGIN_FAILURES_KEPT: Duration = Duration::from_secs(86_400);

/// The moments that decide what has expired.
#[derive(Debug, Clone, Copy)]
pub struct Cutoffs {
    pub now: UnixTime,
    /// A session unused this long is over.
    pub session_idle: Duration,
    /// Logout deliveries finished at or before this are deleted.
    pub keep_finished_deliveries_until: UnixTime,
}

impl Cutoffs {
    /// The one value a kind's rows are compared with (`column <= value` deletes).
    pub fn cutoff(&self, kind: Expired) -> i64 {
        match kind {
            Expired::LoginFailures => self.now.minus(LOGIN_FAILURES_KEPT).secs(),
            Expired::IdleSessions => self.now.minus(self.session_idle).secs(),
            Expired::FinishedDeliveries => self.keep_finished_deliveries_until.secs(),
            Expired::IdempotencyKeys => self.now.minus(IDEMPOTENCY_KEYS_KEPT).secs(),
            _ => self.now.secs(),
        }
    }
}

/// How big each batch is and how long the job rests after one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pace {
    pub batch_rows: u32,
    /// The least pause between two batches; a batch that took longer is followed by a
    /// pause as long as it took, so the job never holds the database more than half the time.
    pub pause: Duration,
}

impl Pace {
    /// A thousand rows take a few milliseconds to delete (refresh tokens, with their six
    /// indexes: about 10 ms on SQLite on a 2-core VM). On SQLite, a write that finds the
    /// lock taken sleeps in SQLite's busy handler and looks again after 1, 2, 5, 10, 15, 20
    /// then 25 ms; a pause of 50 ms after each batch always lets such a waiter in, where
    /// a job that took the lock again at once could starve it. PostgreSQL's deletes block no
    /// insert (row locks): the pause there only spreads the I/O.
    pub fn for_backend(backend: &str) -> Self {
        match backend {
            "sqlite" => Self { batch_rows: 1_000, pause: Duration::from_millis(50) },
            _ => Self { batch_rows: 1_000, pause: Duration::from_millis(10) },
        }
    }
}

/// One batch: what it deleted and how long its transaction took.
#[derive(Debug, Clone, Copy)]
pub struct Batch {
    pub kind: Expired,
    pub rows: u64,
    pub took: Duration,
}

/// What one cleanup run did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub batches: Vec<Batch>,
}

impl Report {
    pub fn rows(&self) -> u64 {
        self.batches.iter().map(|b| b.rows).sum()
    }

    pub fn rows_of(&self, kind: Expired) -> u64 {
        self.batches.iter().filter(|b| b.kind == kind).map(|b| b.rows).sum()
    }

    pub fn longest_batch(&self) -> Duration {
        self.batches.iter().map(|b| b.took).max().unwrap_or_default()
    }

    /// The batch duration that `q` (0..=1) of the batches did not exceed.
    pub fn batch_quantile(&self, q: f64) -> Duration {
        let mut took: Vec<Duration> = self.batches.iter().map(|b| b.took).collect();
        took.sort_unstable();
        let Some(last) = took.len().checked_sub(1) else { return Duration::ZERO };
        // Nearest rank; the casts stay within 0..=last.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
        let rank = ((q.clamp(0.0, 1.0) * last as f64).ceil() as usize).min(last);
        took[rank]
    }
}

/// Deletes every row of `kinds` that has expired at `cutoffs`, batch by batch, until a
/// batch finds nothing to delete.
pub async fn delete_expired<S: CleanupStore + ?Sized>(
    store: &S,
    cutoffs: &Cutoffs,
    kinds: &[Expired],
    pace: Pace,
) -> StoreResult<Report> {
    let mut report = Report::default();
    for &kind in kinds {
        loop {
            let started = Instant::now();
            let rows = store.delete_expired_batch(kind, cutoffs, pace.batch_rows).await?;
            let took = started.elapsed();
            report.batches.push(Batch { kind, rows, took });
            // Not `rows < batch_rows`: on PostgreSQL a batch skips rows a request holds
            // locked, and those are usually free by the next batch.
            if rows == 0 {
                break;
            }
            tokio::time::sleep(pace.pause.max(took)).await;
        }
    }
    Ok(report)
}
