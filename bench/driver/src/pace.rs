//! Runs many workers against the server, either as fast as they can (closed loop, to find the
//! saturation rate) or at a fixed total rate (open loop, for latency).
//!
//! At a fixed rate each of the `n` workers owns a schedule of `rate / n` operations per
//! second, like wrk2's per-connection schedule. When a worker is still busy with an earlier
//! operation at the time the next one was *meant* to start, that operation's latency is
//! measured from the intended time, not from when the worker got round to it: when the
//! server falls behind, the wait shows in the latency instead of silently lowering the rate
//! (coordinated omission). When the worker was idle and waiting, the latency runs from the
//! actual start: tokio's timer wakes up to a millisecond late, and that lag is the driver's,
//! not the server's. The service time (from the actual start) is reported beside it.

use std::future::Future;
use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;

/// One simulated client: a connection and whatever state its operations carry.
pub trait Worker: Send + 'static {
    /// One operation (a request, or a whole flow); an error is counted, never fatal.
    fn run(&mut self) -> impl Future<Output = Result<(), String>> + Send;
}

#[derive(Clone, Copy, Debug)]
pub enum Pace {
    /// Every worker starts its next operation as soon as the last one ends.
    Closed,
    /// Operations start on a fixed schedule of this many per second in total.
    Fixed(f64),
}

#[derive(Clone, Copy, Debug)]
pub struct Plan {
    pub pace: Pace,
    pub warmup: Duration,
    pub measure: Duration,
    /// The server process, whose CPU time over the measured window is reported.
    pub server_pid: Option<u32>,
}

#[derive(Default)]
struct Tally {
    /// Latency from the intended start (closed loop: the actual start), microseconds.
    latencies: Vec<u64>,
    /// Latency from the actual start, microseconds.
    service: Vec<u64>,
    errors: u64,
    messages: Vec<String>,
}

pub struct Outcome {
    pub pace: Pace,
    /// Server CPU time (user + system) over the measured window, in clock ticks.
    pub server_cpu_ticks: Option<u64>,
    pub seconds: f64,
    pub ok: u64,
    pub errors: u64,
    pub first_errors: Vec<String>,
    latencies: Vec<u64>,
    service: Vec<u64>,
}

impl Outcome {
    pub fn to_json(&self, unit: &str) -> serde_json::Value {
        let total = self.ok + self.errors;
        let rate = if self.seconds > 0.0 { total as f64 / self.seconds } else { 0.0 };
        let ms = |v: &[u64], q: f64| percentile(v, q).map(|us| us as f64 / 1000.0);
        json!({
            "pace": match self.pace { Pace::Closed => json!("closed"), Pace::Fixed(r) => json!(r) },
            "unit": unit,
            "seconds": self.seconds,
            "operations": total,
            "ok": self.ok,
            "errors": self.errors,
            "first_errors": self.first_errors,
            "rate": rate,
            "p50_ms": ms(&self.latencies, 0.50),
            "p90_ms": ms(&self.latencies, 0.90),
            "p99_ms": ms(&self.latencies, 0.99),
            "max_ms": ms(&self.latencies, 1.0),
            "service_p50_ms": ms(&self.service, 0.50),
            "service_p99_ms": ms(&self.service, 0.99),
            "server_cpu_ticks": self.server_cpu_ticks,
        })
    }
}

/// `values` must be sorted; `q` in 0..=1.
fn percentile(values: &[u64], q: f64) -> Option<u64> {
    if values.is_empty() {
        return None;
    }
    let rank = ((values.len() as f64) * q).ceil() as usize;
    values.get(rank.saturating_sub(1).min(values.len() - 1)).copied()
}

/// utime + stime of a process from `/proc/PID/stat` (Linux), in clock ticks.
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the command name's closing parenthesis, utime and stime are fields 12 and 13.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(user + system)
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Runs the workers through warm-up and measurement; only operations meant to start inside
/// the measured window count.
pub async fn drive<W: Worker>(workers: Vec<W>, plan: Plan) -> Outcome {
    let n = workers.len().max(1);
    let start = Instant::now() + Duration::from_millis(20);
    let measure_from = start + plan.warmup;
    let end = measure_from + plan.measure;
    let cpu = plan.server_pid.map(|pid| {
        tokio::spawn(async move {
            tokio::time::sleep_until(measure_from).await;
            let before = cpu_ticks(pid);
            tokio::time::sleep_until(end).await;
            Some(cpu_ticks(pid)?.saturating_sub(before?))
        })
    });
    let mut tasks = Vec::with_capacity(n);
    for (i, mut worker) in workers.into_iter().enumerate() {
        let pace = plan.pace;
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            let interval = match pace {
                Pace::Fixed(rate) if rate > 0.0 => Some(Duration::from_secs_f64(n as f64 / rate)),
                _ => None,
            };
            // Spread the workers' schedules evenly over one interval.
            let mut intended = match interval {
                Some(iv) => start + iv.mul_f64(i as f64 / n as f64),
                None => start,
            };
            loop {
                // Whether the worker waits for its slot (else it is behind schedule).
                let idle = Instant::now() < intended;
                match interval {
                    Some(_) => tokio::time::sleep_until(intended).await,
                    None => {
                        tokio::time::sleep_until(start).await;
                        intended = Instant::now();
                    }
                }
                if intended >= end {
                    break;
                }
                let began = Instant::now();
                let result = worker.run().await;
                let done = Instant::now();
                let origin = if idle { began } else { intended };
                if intended >= measure_from {
                    match result {
                        Ok(()) => {
                            tally.latencies.push(micros(done - origin));
                            tally.service.push(micros(done - began));
                        }
                        Err(e) => {
                            tally.errors += 1;
                            if tally.messages.len() < 3 {
                                tally.messages.push(e);
                            }
                        }
                    }
                }
                if let Some(iv) = interval {
                    intended += iv;
                }
            }
            tally
        }));
    }
    let mut all = Tally::default();
    for task in tasks {
        match task.await {
            Ok(t) => {
                all.latencies.extend(t.latencies);
                all.service.extend(t.service);
                all.errors += t.errors;
                if all.messages.len() < 5 {
                    all.messages.extend(t.messages);
                }
            }
            Err(e) => {
                all.errors += 1;
                all.messages.push(format!("worker failed: {e}"));
            }
        }
    }
    let server_cpu_ticks = match cpu {
        Some(task) => task.await.ok().flatten(),
        None => None,
    };
    all.latencies.sort_unstable();
    all.service.sort_unstable();
    all.messages.truncate(5);
    Outcome {
        pace: plan.pace,
        server_cpu_ticks,
        seconds: plan.measure.as_secs_f64(),
        ok: all.latencies.len() as u64,
        errors: all.errors,
        first_errors: all.messages,
        latencies: all.latencies,
        service: all.service,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.5), Some(50));
        assert_eq!(percentile(&v, 0.99), Some(99));
        assert_eq!(percentile(&v, 1.0), Some(100));
        assert_eq!(percentile(&[], 0.5), None);
    }

    struct Sleeper(Duration);

    impl Worker for Sleeper {
        async fn run(&mut self) -> Result<(), String> {
            tokio::time::sleep(self.0).await;
            Ok(())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_server_shows_as_latency_not_as_a_lower_rate() {
        // One worker, 100 operations per second, each taking 20 ms: the schedule falls
        // further behind with every operation, and the latency says so.
        let plan = Plan {
            pace: Pace::Fixed(100.0),
            warmup: Duration::ZERO,
            measure: Duration::from_secs(1),
            server_pid: None,
        };
        let outcome = drive(vec![Sleeper(Duration::from_millis(20))], plan).await;
        assert_eq!(outcome.ok, 100, "every scheduled operation runs");
        assert!(percentile(&outcome.latencies, 1.0).unwrap_or(0) > 900_000, "the last one waited ~1 s");
        assert!(percentile(&outcome.service, 1.0).unwrap_or(0) < 30_000, "each took ~20 ms");
    }
}
