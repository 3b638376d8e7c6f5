//! Personal data at rest: rotating the data key and sealing what is not sealed under the
//! current one. Rows written in clear before encryption existed (and rows under an older
//! generation) are sealed by the background job a batch at a time, so a server keeps
//! serving while it works; `latchkey keys rotate-data-key` begins a new generation and
//! works through the rows itself.

use std::collections::BTreeMap;
use std::time::Duration;

use latchkey_core::records::Actor;
use serde::Serialize;

use crate::{Latchkey, ServiceResult};

/// How often each node reads the data-key generation again and the job seals a batch.
pub const RESEAL_EVERY: Duration = Duration::from_secs(10);

/// Rows per table and transaction: short enough that a sign-in waiting on SQLite's write
/// lock does not notice.
pub const RESEAL_BATCH: u32 = 200;

/// What a run sealed.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ResealOutcome {
    /// The generation every value is now sealed under, or being sealed under.
    pub generation: u32,
    /// Rows sealed, by table.
    pub sealed: BTreeMap<String, u64>,
    /// Rows that do not open (sealed under another master key, or altered), by table.
    pub unreadable: BTreeMap<String, u64>,
    /// Rows still in clear or under an older generation (the unreadable among them).
    pub remaining: u64,
}

pub struct DataKeys<'a>(pub(crate) &'a Latchkey);

impl DataKeys<'_> {
    /// Begins a new data-key generation and re-seals every row under it, a batch per
    /// transaction. Rows a running server writes under the old one in the seconds before
    /// it reads the new generation are re-sealed by its own job.
    pub async fn rotate(&self, actor: &Actor) -> ServiceResult<ResealOutcome> {
        let store = self.0.store();
        let generation = store.start_data_key_generation(actor).await?;
        let mut outcome = ResealOutcome { generation, ..Default::default() };
        self.reseal_until_done(&mut outcome).await?;
        Ok(outcome)
    }

    /// Seals what is in clear or under an older generation (the job's work, done now).
    pub async fn reseal(&self) -> ServiceResult<ResealOutcome> {
        let mut outcome = ResealOutcome::default();
        self.reseal_until_done(&mut outcome).await?;
        Ok(outcome)
    }

    async fn reseal_until_done(&self, outcome: &mut ResealOutcome) -> ServiceResult<()> {
        let store = self.0.store();
        loop {
            let pass = store.reseal_personal_data(RESEAL_BATCH).await?;
            outcome.generation = pass.generation;
            outcome.unreadable = pass.unreadable;
            if pass.sealed.is_empty() {
                break;
            }
            for (table, n) in pass.sealed {
                *outcome.sealed.entry(table).or_default() += n;
            }
        }
        outcome.remaining = store.personal_data_to_reseal().await?;
        Ok(())
    }
}

/// One run of the background job: a few batches, then back to sleep, so a large database
/// is sealed over minutes without holding the store.
pub(crate) async fn reseal_some(store: &dyn latchkey_store::Store) -> latchkey_store::StoreResult<u64> {
    let mut sealed = 0;
    for _ in 0..10 {
        let pass = store.reseal_personal_data(RESEAL_BATCH).await?;
        let n: u64 = pass.sealed.values().sum();
        sealed += n;
        if !pass.unreadable.is_empty() {
            tracing::error!(
                unreadable = ?pass.unreadable,
                "rows of personal data do not open: sealed under another master key, or altered; they are left as they are"
            );
        }
        if n == 0 {
            break;
        }
    }
    Ok(sealed)
}
