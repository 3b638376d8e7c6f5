//! The raw Argon2id rate: the server's own password code (latchkey-core), the same
//! parameters, one verification after another on each of `threads` OS threads, each reusing
//! its working memory as the server does; no HTTP, no runtime.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use latchkey_core::crypto::PasswordPolicy;
use latchkey_core::crypto::password::Workspace;
use serde_json::{Value, json};

pub fn rate(policy: PasswordPolicy, threads: usize, seconds: f64) -> Result<Value, String> {
    let password = "bench-password-123";
    let hash = policy.hash(password).map_err(|e| format!("cannot hash: {e}"))?;
    if !policy.verify(password, &hash).map_err(|e| format!("cannot verify: {e}"))? {
        return Err("the hash does not verify".into());
    }
    let cpu_before = own_cpu_ticks();
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let handles: Vec<_> = (0..threads.max(1))
        .map(|_| {
            let (stop, done, hash) = (stop.clone(), done.clone(), hash.clone());
            std::thread::spawn(move || {
                let mut workspace = Workspace::default();
                while !stop.load(Ordering::Relaxed) {
                    if matches!(policy.verify_in(password, &hash, &mut workspace), Ok(true)) {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(seconds));
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().map_err(|_| "a hashing thread panicked")?;
    }
    // Verifications finished after the stop signal still count, over the time they took.
    let elapsed = started.elapsed().as_secs_f64();
    // CPU time is the fairer yardstick when other processes share the machine.
    let cpu_ticks = own_cpu_ticks().zip(cpu_before).map(|(after, before)| after.saturating_sub(before));
    let n = done.load(Ordering::Relaxed);
    Ok(json!({
        "threads": threads,
        "memory_kib": policy.memory_kib,
        "iterations": policy.iterations,
        "parallelism": policy.parallelism,
        "verifications": n,
        "seconds": elapsed,
        "rate": n as f64 / elapsed,
        "cpu_ticks": cpu_ticks,
    }))
}

/// This process's utime + stime in clock ticks (Linux).
fn own_cpu_ticks() -> Option<u64> {
    crate::pace::cpu_ticks(std::process::id())
}
