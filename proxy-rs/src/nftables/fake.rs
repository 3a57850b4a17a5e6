//! Test doubles for the proxier's kernel edges (upstream's `knftables.Fake`
//! and `conntrack.FakeInterface`): they record what a sync asked for.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};

use super::exec::{Listing, NftError, NftExecutor};
use crate::conntrack::{Cleaner, Deletion};

/// What the fake nft has seen; shared with the test through [`FakeNft`] clones.
#[derive(Debug, Default)]
pub struct NftRecord {
    /// Every script applied, successful or not, in order.
    pub scripts: Vec<String>,
    /// When set, the next `apply` fails with this stderr.
    pub fail_next: Option<String>,
    /// What `list(Chains)` answers.
    pub chains: BTreeSet<String>,
}

#[derive(Debug, Clone, Default)]
pub struct FakeNft(Arc<Mutex<NftRecord>>);

impl FakeNft {
    pub fn record(&self) -> MutexGuard<'_, NftRecord> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl NftExecutor for FakeNft {
    async fn apply(&mut self, script: &str) -> Result<(), NftError> {
        let mut record = self.record();
        record.scripts.push(script.to_string());
        match record.fail_next.take() {
            Some(stderr) => Err(NftError::Failed {
                code: Some(1),
                stderr,
            }),
            None => Ok(()),
        }
    }

    async fn list(&mut self, what: Listing) -> Result<BTreeSet<String>, NftError> {
        Ok(match what {
            Listing::Chains => self.record().chains.clone(),
            Listing::Sets => BTreeSet::new(),
        })
    }
}

/// Records every conntrack deletion asked for.
#[derive(Debug, Clone, Default)]
pub struct FakeConntrack(Arc<Mutex<Vec<Deletion>>>);

impl FakeConntrack {
    pub fn deletions(&self) -> Vec<Deletion> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Cleaner for FakeConntrack {
    async fn execute(&mut self, deletions: &BTreeSet<Deletion>) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(deletions.iter().cloned());
    }
}
