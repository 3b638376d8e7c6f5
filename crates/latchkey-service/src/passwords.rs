//! Password hashing off the async runtime: Argon2id runs on `passwords.max_concurrent_hashes`
//! threads of its own, so a burst of logins never stalls other requests or exhausts memory.
//!
//! Each hashing thread keeps one working memory (`memory_kib`) for its whole life, so the
//! memory password hashing holds is bounded by `max_concurrent_hashes × memory_kib`, and no
//! sign-in pays for a fresh allocation.
//!
//! The threads take their work from a queue that always holds the next job when sign-ins
//! are waiting: a thread that finishes a hash starts the next one at once, without a round
//! trip through the async runtime. (With the hashes run by `spawn_blocking` under a
//! semaphore, each hash's permit went back only once a runtime worker had polled the
//! finished task, and the next hash started only after another worker had polled the next
//! waiter: under a queue of sign-ins the two cores of the benchmark machine sat idle 6–8 %
//! of the time between hashes.)

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use latchkey_core::crypto::password::Workspace;
use latchkey_core::crypto::{PasswordError, PasswordHash, PasswordPolicy, random};
use latchkey_core::domain::{MAX_PASSWORD_BYTES, MIN_PASSWORD_CHARS, PasswordRuleError};
use tokio::sync::{OnceCell, Semaphore, oneshot};

/// Work for a hashing thread; it answers through the job's own channel.
type Job = Box<dyn FnOnce(&mut Workspace) + Send>;

#[derive(Clone)]
pub struct PasswordHasher {
    policy: PasswordPolicy,
    /// Jobs queued or running: twice the threads, so a finished thread finds the next job
    /// already queued. Further callers wait here, asynchronously.
    slots: Arc<Semaphore>,
    queue: mpsc::Sender<Job>,
    /// Working memories allocated so far (one per thread that has hashed).
    workspaces: Arc<AtomicUsize>,
    /// Verifications and hashes run so far (counted on the hashing thread, as each starts).
    verifications: Arc<AtomicU64>,
    hashes: Arc<AtomicU64>,
    /// The hash of a password nobody has, made once on a hashing thread: checked against
    /// when an account does not exist or has no password, so the answer costs the same.
    dummy: Arc<OnceCell<PasswordHash>>,
}

#[derive(Debug, thiserror::Error)]
pub enum HashingError {
    #[error(transparent)]
    Password(#[from] PasswordError),
    #[error("the password hashing threads are not running")]
    Unavailable,
}

impl PasswordHasher {
    /// Starts `threads` hashing threads (at least one); they end when the last clone of
    /// the hasher is dropped.
    pub fn new(policy: PasswordPolicy, threads: usize) -> Self {
        let threads = threads.max(1);
        let (queue, jobs) = mpsc::channel::<Job>();
        let jobs = Arc::new(Mutex::new(jobs));
        let workspaces = Arc::new(AtomicUsize::new(0));
        for i in 0..threads {
            let (jobs, workspaces) = (jobs.clone(), workspaces.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("latchkey-hash-{i}"))
                .spawn(move || hashing_thread(&jobs, &workspaces));
            if let Err(e) = spawned {
                // Fewer threads only means fewer hashes at once; none at all shows as
                // `Unavailable` on the first hash.
                tracing::error!(error = %e, "could not start a password hashing thread");
            }
        }
        Self {
            policy,
            slots: Arc::new(Semaphore::new(threads * 2)),
            queue,
            workspaces,
            verifications: Arc::default(),
            hashes: Arc::default(),
            dummy: Arc::default(),
        }
    }

    /// Runs `f` on a hashing thread, with that thread's working memory.
    async fn on_hashing_thread<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Workspace) -> T + Send + 'static,
    ) -> Result<T, HashingError> {
        let slot = self.slots.clone().acquire_owned().await.map_err(|_| HashingError::Unavailable)?;
        let (answer, result) = oneshot::channel();
        let job: Job = Box::new(move |workspace| {
            let outcome = f(workspace);
            // The slot is free before the caller hears: whoever it wakes finds it free.
            drop(slot);
            // The caller may have gone away (client disconnected); nothing to tell then.
            let _ = answer.send(outcome);
        });
        self.queue.send(job).map_err(|_| HashingError::Unavailable)?;
        result.await.map_err(|_| HashingError::Unavailable)
    }

    pub fn policy(&self) -> PasswordPolicy {
        self.policy
    }

    pub async fn hash(&self, password: String) -> Result<PasswordHash, HashingError> {
        let (policy, hashes) = (self.policy, self.hashes.clone());
        self.on_hashing_thread(move |ws| {
            hashes.fetch_add(1, Ordering::Relaxed);
            policy.hash_in(&password, ws)
        })
        .await?
        .map_err(HashingError::from)
    }

    pub async fn verify(&self, password: String, stored: PasswordHash) -> Result<bool, HashingError> {
        let (policy, verifications) = (self.policy, self.verifications.clone());
        self.on_hashing_thread(move |ws| {
            verifications.fetch_add(1, Ordering::Relaxed);
            policy.verify_in(&password, &stored, ws)
        })
        .await?
        .map_err(HashingError::from)
    }

    /// Verifies `password` against `stored`, or, when there is nothing to verify against
    /// (no such account, no password), against a dummy hash and answers `false`: both take
    /// one verification on a hashing thread, so the answer does not tell them apart (no
    /// user enumeration by timing).
    pub async fn verify_or_pretend(
        &self,
        password: String,
        stored: Option<PasswordHash>,
    ) -> Result<bool, HashingError> {
        match stored {
            Some(stored) => self.verify(password, stored).await,
            None => {
                let dummy = self.dummy.get_or_try_init(|| self.hash(random::token_string::<16>())).await?;
                self.verify(password, dummy.clone()).await.map(|_| false)
            }
        }
    }

    /// How many working memories exist: never more than the threads. Exposed for tests.
    pub fn workspaces(&self) -> usize {
        self.workspaces.load(Ordering::Relaxed)
    }

    /// How many verifications have run (real and dummy). Exposed for tests, which count
    /// what reached the hash rather than the answers.
    pub fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }
}

/// What a person is told when a password they typed breaks the rule
/// ([`latchkey_core::domain::NewPassword`]): one sentence, the same on every page.
pub fn explain(problem: PasswordRuleError) -> String {
    match problem {
        PasswordRuleError::Empty => "Enter your password.".to_owned(),
        PasswordRuleError::TooShort => format!("A password needs at least {MIN_PASSWORD_CHARS} characters."),
        PasswordRuleError::TooLong => format!(
            "A password may have at most {MAX_PASSWORD_BYTES} bytes; letters with accents and other scripts take 2 to 4 bytes each, so this one is too long."
        ),
    }
}

/// One hashing thread: takes jobs until every sender is gone. A job that panics loses
/// only its own answer (the caller sees `Unavailable`); the thread goes on.
fn hashing_thread(jobs: &Mutex<mpsc::Receiver<Job>>, workspaces: &AtomicUsize) {
    let mut workspace: Option<Workspace> = None;
    loop {
        // The lock is held only while waiting for a job, never while hashing.
        let next = match jobs.lock() {
            Ok(receiver) => receiver.recv(),
            Err(_) => return,
        };
        let Ok(job) = next else { return };
        let ws = workspace.get_or_insert_with(|| {
            workspaces.fetch_add(1, Ordering::Relaxed);
            Workspace::default()
        });
        // A panicking job drops its slot and its answer channel while unwinding.
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(ws))).is_err() {
            tracing::error!("a password hashing job panicked");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHEAP: PasswordPolicy = PasswordPolicy { memory_kib: 64, iterations: 1, parallelism: 1 };

    #[tokio::test(flavor = "current_thread")]
    async fn hashing_runs_off_the_runtime_thread_and_verifies() {
        let hasher = PasswordHasher::new(CHEAP, 1);
        // On a current-thread runtime, a ticking task only makes progress if hashing
        // does not block the one runtime thread.
        let ticker = tokio::spawn(async {
            let mut n = 0u32;
            for _ in 0..5 {
                tokio::task::yield_now().await;
                n += 1;
            }
            n
        });
        let hash = hasher.hash("pw".into()).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ticker.await.unwrap_or(0), 5);
        assert!(hasher.verify("pw".into(), hash.clone()).await.unwrap_or(false));
        assert!(!hasher.verify("nope".into(), hash).await.unwrap_or(true));
        assert_eq!(hasher.workspaces(), 1, "one working memory, reused");
        assert!(matches!(hasher.hash(String::new()).await, Err(HashingError::Password(PasswordError::Empty))));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_hashes_at_once_share_the_threads_working_memory() {
        let hasher = PasswordHasher::new(CHEAP, 2);
        let stored = hasher.hash("pw".into()).await.unwrap_or_else(|e| panic!("{e}"));
        let mut checks = tokio::task::JoinSet::new();
        for i in 0..40 {
            let (hasher, stored) = (hasher.clone(), stored.clone());
            let password = if i % 2 == 0 { "pw" } else { "wrong" };
            checks.spawn(async move { (i, hasher.verify(password.into(), stored).await) });
        }
        let mut answered = 0;
        while let Some(done) = checks.join_next().await {
            let (i, result) = done.unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(result.ok(), Some(i % 2 == 0), "verification {i}");
            answered += 1;
        }
        assert_eq!(answered, 40);
        let made = hasher.workspaces();
        assert!((1..=2).contains(&made), "at most one working memory per thread, {made} made");
        assert_eq!(hasher.slots.available_permits(), 4, "every queue slot is returned");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_dummy_hash_for_unknown_accounts_is_made_on_a_hashing_thread_once() {
        let hasher = PasswordHasher::new(CHEAP, 1);
        assert_eq!(hasher.verify_or_pretend("guess".into(), None).await.ok(), Some(false), "never a match");
        // Counted inside the jobs the hashing threads run: a hash made anywhere else (on a
        // runtime worker, blocking it) is not counted.
        assert_eq!(hasher.hashes.load(Ordering::Relaxed), 1, "the dummy hash was made on a hashing thread");
        assert_eq!(hasher.verifications(), 1, "and checked once, as a real account's hash is");
        assert_eq!(hasher.verify_or_pretend("guess".into(), None).await.ok(), Some(false));
        assert_eq!(hasher.hashes.load(Ordering::Relaxed), 1, "made once, then kept");
        assert_eq!(hasher.verifications(), 2);
        let real = hasher.hash("pw".into()).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(hasher.verify_or_pretend("pw".into(), Some(real)).await.ok(), Some(true));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_job_that_panics_loses_only_its_own_answer() {
        let hasher = PasswordHasher::new(CHEAP, 1);
        let lost = hasher.on_hashing_thread(|_| -> u8 { panic!("a failing job") }).await;
        assert!(matches!(lost, Err(HashingError::Unavailable)));
        let hash = hasher.hash("pw".into()).await.unwrap_or_else(|e| panic!("{e}"));
        assert!(hasher.verify("pw".into(), hash).await.unwrap_or(false), "the thread goes on");
    }
}
