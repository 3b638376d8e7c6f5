//! The one clock every expiry decision reads (codes, tokens, sessions, keys, throttles).
//!
//! Tests and the end-to-end suite move it forward instead of sleeping.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch, the unit of every stored timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnixTime(i64);

impl UnixTime {
    pub const fn from_secs(secs: i64) -> Self {
        Self(secs)
    }

    pub const fn secs(self) -> i64 {
        self.0
    }

    pub fn plus(self, d: Duration) -> Self {
        Self(self.0.saturating_add(i64::try_from(d.as_secs()).unwrap_or(i64::MAX)))
    }

    pub fn minus(self, d: Duration) -> Self {
        Self(self.0.saturating_sub(i64::try_from(d.as_secs()).unwrap_or(i64::MAX)))
    }

    /// Time elapsed from `earlier` to `self`, zero when `earlier` is in the future.
    pub fn since(self, earlier: UnixTime) -> Duration {
        Duration::from_secs(u64::try_from(self.0 - earlier.0).unwrap_or(0))
    }

    /// RFC 3339 form in UTC, for people reading CLI output and logs.
    pub fn to_rfc3339(self) -> String {
        time::OffsetDateTime::from_unix_timestamp(self.0)
            .ok()
            .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
            .unwrap_or_else(|| self.0.to_string())
    }
}

impl fmt::Display for UnixTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

/// A cheaply cloneable clock. Every clone shares the same offset, so advancing one advances
/// all of them (the server state, background jobs and the test that drives them).
#[derive(Clone)]
pub struct Clock {
    inner: Arc<ClockInner>,
}

struct ClockInner {
    /// `None` follows the system time; `Some` is a frozen clock (tests).
    frozen_at_ms: Option<AtomicI64>,
    offset_ms: AtomicI64,
}

impl Clock {
    /// The real time (plus any offset a test-clock build applies).
    pub fn system() -> Self {
        Self { inner: Arc::new(ClockInner { frozen_at_ms: None, offset_ms: AtomicI64::new(0) }) }
    }

    /// A clock that stands still at `at` until it is advanced.
    pub fn frozen(at: UnixTime) -> Self {
        Self {
            inner: Arc::new(ClockInner {
                frozen_at_ms: Some(AtomicI64::new(at.secs() * 1000)),
                offset_ms: AtomicI64::new(0),
            }),
        }
    }

    pub fn now(&self) -> UnixTime {
        UnixTime(self.now_millis().div_euclid(1000))
    }

    pub fn now_millis(&self) -> i64 {
        let base = match &self.inner.frozen_at_ms {
            Some(ms) => ms.load(Ordering::SeqCst),
            None => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
                .unwrap_or(0),
        };
        base + self.inner.offset_ms.load(Ordering::SeqCst)
    }

    /// Moves this clock (and every clone of it) forward.
    pub fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.inner.offset_ms.fetch_add(ms, Ordering::SeqCst);
    }

    /// How far this clock has been moved away from its base.
    pub fn offset(&self) -> Duration {
        Duration::from_millis(u64::try_from(self.inner.offset_ms.load(Ordering::SeqCst)).unwrap_or(0))
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Clock").field("now", &self.now()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advancing_a_clone_moves_every_clone() {
        let clock = Clock::frozen(UnixTime::from_secs(1_000));
        let other = clock.clone();
        other.advance(Duration::from_secs(90));
        assert_eq!(clock.now(), UnixTime::from_secs(1_090));
        assert_eq!(clock.offset(), Duration::from_secs(90));
    }

    #[test]
    fn system_clock_follows_real_time() {
        let clock = Clock::system();
        let real = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let diff = clock.now().secs() - i64::try_from(real).unwrap_or(0);
        assert!(diff.abs() <= 2, "system clock is off by {diff}s");
    }

    #[test]
    fn unix_time_arithmetic_saturates_and_formats() {
        let t = UnixTime::from_secs(0);
        assert_eq!(t.plus(Duration::from_secs(60)).secs(), 60);
        assert_eq!(t.since(UnixTime::from_secs(10)), Duration::ZERO);
        assert_eq!(t.to_rfc3339(), "1970-01-01T00:00:00Z");
    }
}
