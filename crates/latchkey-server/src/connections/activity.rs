//! Whether a connection is doing anything: requests in progress, and since when none is.
//!
//! hyper has no idle timeout for server connections (HTTP/1.1 nor HTTP/2), and hyper-util's
//! automatic protocol detection waits for a first byte without any timeout; this is the
//! bookkeeping for the one timer per connection that closes such connections.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

pub struct Activity {
    state: Mutex<State>,
}

struct State {
    in_flight: usize,
    /// When the last request ended (or the connection opened).
    idle_since: Instant,
    served_any: bool,
}

/// What the connection's timer should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Nothing is due before this instant.
    CheckAt(Instant),
    /// No request started within `header_timeout` of the connection opening.
    FirstRequestLate,
    /// No request in progress for `idle_timeout`.
    Idle,
}

/// A request in progress; dropping it (response sent, or request abandoned) ends it.
pub struct Busy(Arc<Activity>);

impl Activity {
    pub fn new() -> Arc<Self> {
        Arc::new(Self { state: Mutex::new(State { in_flight: 0, idle_since: Instant::now(), served_any: false }) })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // Every update is whole under the lock: a poisoned state is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn begin(self: &Arc<Self>) -> Busy {
        let mut s = self.state();
        s.in_flight += 1;
        s.served_any = true;
        Busy(self.clone())
    }

    /// A connection must start its first request within `header_timeout`, and is idle
    /// once no request has been in progress for `idle_timeout`.
    ///
    /// Checks are at most `idle_timeout` apart: a connection that becomes idle at `t` is
    /// looked at again by `t + idle_timeout`, exactly when it is due, without a wake-up for
    /// every request that ends.
    pub fn due(&self, now: Instant, header_timeout: Duration, idle_timeout: Duration) -> Due {
        let s = self.state();
        let next = now + idle_timeout;
        if s.in_flight > 0 {
            return Due::CheckAt(next);
        }
        let (limit, due) =
            if s.served_any { (idle_timeout, Due::Idle) } else { (header_timeout, Due::FirstRequestLate) };
        let at = s.idle_since + limit;
        if at <= now { due } else { Due::CheckAt(at.min(next)) }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let mut s = self.0.state();
        s.in_flight = s.in_flight.saturating_sub(1);
        if s.in_flight == 0 {
            s.idle_since = Instant::now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADERS: Duration = Duration::from_secs(10);
    const IDLE: Duration = Duration::from_secs(60);

    #[test]
    fn a_request_that_ends_early_is_looked_at_again_when_it_becomes_idle() {
        let a = Activity::new();
        let opened = Instant::now();
        // A header timeout longer than the idle timeout: the first check comes at the idle one.
        let short_idle = Duration::from_secs(1);
        assert!(matches!(a.due(opened, IDLE, short_idle), Due::CheckAt(at) if at <= opened + short_idle));
        drop(a.begin());
        let ended = Instant::now();
        assert_eq!(a.due(ended + short_idle, IDLE, short_idle), Due::Idle);
    }

    #[test]
    fn a_connection_without_a_request_is_late_after_the_header_timeout() {
        let a = Activity::new();
        let opened = Instant::now();
        assert!(matches!(a.due(opened, HEADERS, IDLE), Due::CheckAt(at) if at <= opened + HEADERS));
        assert_eq!(a.due(opened + HEADERS, HEADERS, IDLE), Due::FirstRequestLate);
    }

    #[test]
    fn idleness_counts_from_the_end_of_the_last_request() {
        let a = Activity::new();
        let busy = a.begin();
        let second = a.begin();
        let later = Instant::now() + Duration::from_secs(100);
        assert_eq!(a.due(later, HEADERS, IDLE), Due::CheckAt(later + IDLE), "busy connections are never idle");
        drop(busy);
        assert!(matches!(a.due(later, HEADERS, IDLE), Due::CheckAt(_)), "one request is still in progress");
        drop(second);
        let ended = Instant::now();
        assert!(matches!(a.due(ended, HEADERS, IDLE), Due::CheckAt(at) if at > ended));
        assert_eq!(a.due(ended + IDLE, HEADERS, IDLE), Due::Idle);
    }
}
