//! A circuit breaker per destination (`scheme://host:port`): after `failures` consecutive
//! failures, requests to it fail at once for `cool_down`, so a relying party that is down
//! does not tie up a connection and a timeout per request. When the cool-down is over, one
//! request goes through as a trial: success closes the circuit, failure opens it again.
//! Kept per node, in memory: each node learns on its own that a destination is down.
//! Written by hand: the crates that offer breakers wrap a whole tower service and cannot
//! key them by a destination that is only known per request.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// More tracked destinations than this and the ones without an open circuit are forgotten.
/// Destinations come from registered clients and configuration, so this is a backstop.
const MAX_TRACKED: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct State {
    failures: u32,
    /// Set while the circuit is open: requests before this instant fail at once.
    open_until: Option<Instant>,
}

#[derive(Debug)]
pub struct Breakers {
    failures: u32,
    cool_down: Duration,
    states: Mutex<HashMap<String, State>>,
}

/// What recording an outcome did to the circuit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    None,
    Opened,
    Closed,
}

impl Breakers {
    pub fn new(failures: u32, cool_down: Duration) -> Self {
        Self { failures: failures.max(1), cool_down, states: Mutex::new(HashMap::new()) }
    }

    /// May a request to `destination` go out now? `Err` carries how long the circuit stays
    /// open. After the cool-down one caller is let through as the trial; the circuit stays
    /// open for everyone else for another cool-down, or until the trial succeeds.
    pub fn admit(&self, destination: &str, now: Instant) -> Result<(), Duration> {
        let Ok(mut states) = self.states.lock() else { return Ok(()) };
        let Some(state) = states.get_mut(destination) else { return Ok(()) };
        match state.open_until {
            Some(until) if now < until => Err(until - now),
            Some(_) => {
                state.open_until = Some(now + self.cool_down);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Whether the circuit of `destination` is open now, without taking the trial.
    pub fn admit_check(&self, destination: &str, now: Instant) -> bool {
        let Ok(states) = self.states.lock() else { return false };
        states.get(destination).and_then(|s| s.open_until).is_some_and(|until| now < until)
    }

    /// Records how a request that was let through ended.
    pub fn record(&self, destination: &str, succeeded: bool, now: Instant) -> Transition {
        let Ok(mut states) = self.states.lock() else { return Transition::None };
        if succeeded {
            let was_open = states.remove(destination).is_some_and(|s| s.open_until.is_some());
            return if was_open { Transition::Closed } else { Transition::None };
        }
        if states.len() >= MAX_TRACKED && !states.contains_key(destination) {
            states.retain(|_, s| s.open_until.is_some());
        }
        let state = states.entry(destination.to_owned()).or_insert(State { failures: 0, open_until: None });
        state.failures = state.failures.saturating_add(1);
        let was_open = state.open_until.is_some();
        if state.failures >= self.failures {
            state.open_until = Some(now + self.cool_down);
        }
        if was_open {
            Transition::None
        } else if state.open_until.is_some() {
            Transition::Opened
        } else {
            Transition::None
        }
    }

    /// Destinations whose circuit is open now.
    pub fn open_count(&self) -> usize {
        self.states.lock().map(|s| s.values().filter(|s| s.open_until.is_some()).count()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_circuit_opens_after_consecutive_failures_and_lets_one_trial_through_after_the_cool_down() {
        let b = Breakers::new(3, Duration::from_secs(30));
        let t0 = Instant::now();
        let rp = "https://rp.example:443";
        for _ in 0..2 {
            assert_eq!(b.admit(rp, t0), Ok(()));
            assert_eq!(b.record(rp, false, t0), Transition::None);
        }
        assert_eq!(b.admit(rp, t0), Ok(()));
        assert_eq!(b.record(rp, false, t0), Transition::Opened, "the third failure in a row opens it");
        assert_eq!(b.open_count(), 1);
        assert_eq!(b.admit(rp, t0 + Duration::from_secs(10)), Err(Duration::from_secs(20)));
        assert_eq!(b.admit("https://other.example:443", t0), Ok(()), "per destination");

        let later = t0 + Duration::from_secs(31);
        assert_eq!(b.admit(rp, later), Ok(()), "the trial");
        assert!(b.admit(rp, later).is_err(), "one trial at a time");
        assert_eq!(b.record(rp, false, later), Transition::None, "a failed trial keeps it open");
        assert!(b.admit(rp, later + Duration::from_secs(29)).is_err());

        let much_later = later + Duration::from_secs(31);
        assert_eq!(b.admit(rp, much_later), Ok(()));
        assert_eq!(b.record(rp, true, much_later), Transition::Closed);
        assert_eq!(b.open_count(), 0);
        assert_eq!(b.admit(rp, much_later), Ok(()));
    }

    #[test]
    fn a_success_resets_the_count_of_failures() {
        let b = Breakers::new(2, Duration::from_secs(30));
        let t = Instant::now();
        let rp = "https://rp.example:443";
        b.record(rp, false, t);
        b.record(rp, true, t);
        assert_eq!(b.record(rp, false, t), Transition::None, "not consecutive");
        assert_eq!(b.record(rp, false, t), Transition::Opened);
    }
}
