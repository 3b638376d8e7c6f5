//! Password hashing off the async runtime: Argon2id runs on the blocking pool, at most
//! `passwords.max_concurrent_hashes` at once, so a burst of logins never stalls other
//! requests or exhausts memory.

use std::sync::Arc;

use latchkey_core::crypto::{PasswordError, PasswordHash, PasswordPolicy};
use tokio::sync::Semaphore;

#[derive(Clone)]
pub struct PasswordHasher {
    policy: PasswordPolicy,
    permits: Arc<Semaphore>,
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
        Self { policy, permits: Arc::new(Semaphore::new(max_concurrent.max(1))) }
    }

    pub fn policy(&self) -> PasswordPolicy {
        self.policy
    }

    pub async fn hash(&self, password: String) -> Result<PasswordHash, HashingError> {
        let _permit = self.permits.acquire().await.map_err(|_| HashingError::Unavailable)?;
        let policy = self.policy;
        tokio::task::spawn_blocking(move || policy.hash(&password))
            .await
            .map_err(|_| HashingError::Unavailable)?
            .map_err(HashingError::from)
    }

    pub async fn verify(&self, password: String, stored: PasswordHash) -> Result<bool, HashingError> {
        let _permit = self.permits.acquire().await.map_err(|_| HashingError::Unavailable)?;
        let policy = self.policy;
        tokio::task::spawn_blocking(move || policy.verify(&password, &stored))
            .await
            .map_err(|_| HashingError::Unavailable)?
            .map_err(HashingError::from)
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
        assert!(matches!(hasher.hash(String::new()).await, Err(HashingError::Password(PasswordError::Empty))));
    }
}
