//! Password hashing off the async runtime: Argon2id runs on the blocking pool, at most
//! `passwords.max_concurrent_hashes` at once, so a burst of logins never stalls other
//! requests or exhausts memory.
//!
//! The hashes reuse their working memory (`memory_kib` each): at most one workspace per
//! permit ever exists, so the memory password hashing holds is bounded by
//! `max_concurrent_hashes × memory_kib`, and no sign-in pays for a fresh allocation.

use std::sync::{Arc, Mutex};

use latchkey_core::crypto::password::Workspace;
use latchkey_core::crypto::{PasswordError, PasswordHash, PasswordPolicy};
use tokio::sync::Semaphore;

#[derive(Clone)]
pub struct PasswordHasher {
    policy: PasswordPolicy,
    permits: Arc<Semaphore>,
    /// Idle workspaces; a hash takes one (or makes one) and puts it back.
    workspaces: Arc<Mutex<Vec<Workspace>>>,
}

#[derive(Debug, thiserror::Error)]
pub enum HashingError {
    #[error(transparent)]
    Password(#[from] PasswordError),
    #[error("the password hashing pool is shut down")]
    Unavailable,
}

impl PasswordHasher {
    pub fn new(policy: PasswordPolicy, max_concurrent: usize) -> Self {
        Self {
            policy,
            permits: Arc::new(Semaphore::new(max_concurrent.max(1))),
            workspaces: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Runs `f` on the blocking pool with an idle workspace, under a permit.
    async fn with_workspace<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Workspace) -> T + Send + 'static,
    ) -> Result<T, HashingError> {
        let _permit = self.permits.acquire().await.map_err(|_| HashingError::Unavailable)?;
        let pool = self.workspaces.clone();
        tokio::task::spawn_blocking(move || {
            let mut workspace = pool.lock().ok().and_then(|mut p| p.pop()).unwrap_or_default();
            let result = f(&mut workspace);
            if let Ok(mut p) = pool.lock() {
                p.push(workspace);
            }
            result
        })
        .await
        .map_err(|_| HashingError::Unavailable)
    }

    pub fn policy(&self) -> PasswordPolicy {
        self.policy
    }

    pub async fn hash(&self, password: String) -> Result<PasswordHash, HashingError> {
        let policy = self.policy;
        self.with_workspace(move |ws| policy.hash_in(&password, ws)).await?.map_err(HashingError::from)
    }

    pub async fn verify(&self, password: String, stored: PasswordHash) -> Result<bool, HashingError> {
        let policy = self.policy;
        self.with_workspace(move |ws| policy.verify_in(&password, &stored, ws)).await?.map_err(HashingError::from)
    }

    /// Hashes in flight or waiting right now cannot exceed the bound; exposed for tests.
    pub fn available_permits(&self) -> usize {
        self.permits.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn hashing_runs_off_the_runtime_thread_and_verifies() {
        let hasher = PasswordHasher::new(PasswordPolicy { memory_kib: 64, iterations: 1, parallelism: 1 }, 1);
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
        assert_eq!(hasher.available_permits(), 1, "permits are returned");
        assert_eq!(hasher.workspaces.lock().map(|p| p.len()).unwrap_or(0), 1, "one workspace, reused");
        assert!(matches!(hasher.hash(String::new()).await, Err(HashingError::Password(PasswordError::Empty))));
    }
}
