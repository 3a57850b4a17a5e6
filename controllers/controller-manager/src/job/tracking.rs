//! In-memory bookkeeping of the Job controller (upstream
//! `tracking_utils.go` `uidTrackingExpectations` and `backoff_utils.go`
//! `backoffStore`): finalizer removals not yet seen in the cache, and the
//! consecutive pod failures that delay re-creation.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};

use jiff::Timestamp;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Pod UIDs per job whose tracking-finalizer removal was sent but not yet
/// observed: those pods are not counted again.
#[derive(Default)]
pub struct FinalizerExpectations {
    inner: Mutex<HashMap<String, BTreeSet<String>>>,
}

impl FinalizerExpectations {
    pub fn expect_removed(&self, key: &str, uids: impl IntoIterator<Item = String>) {
        lock(&self.inner)
            .entry(key.to_string())
            .or_default()
            .extend(uids);
    }

    pub fn observed(&self, key: &str, uid: &str) {
        if let Some(set) = lock(&self.inner).get_mut(key) {
            set.remove(uid);
        }
    }

    pub fn expected(&self, key: &str) -> BTreeSet<String> {
        lock(&self.inner).get(key).cloned().unwrap_or_default()
    }

    pub fn delete(&self, key: &str) {
        lock(&self.inner).remove(key);
    }
}

/// Consecutive failures since the last success, per job.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BackoffRecord {
    pub failures_after_last_success: u32,
    pub last_failure: Option<Timestamp>,
    /// Failed pods already counted, so a retried sync does not count twice.
    counted: BTreeSet<String>,
}

#[derive(Default)]
pub struct BackoffStore {
    inner: Mutex<HashMap<String, BackoffRecord>>,
}

impl BackoffStore {
    /// Folds this sync's newly finished pods into the job's record and
    /// returns it: a success resets the count, each new failure adds one.
    pub fn update(
        &self,
        key: &str,
        new_succeeded: usize,
        new_failed: &[String],
        now: Timestamp,
    ) -> BackoffRecord {
        let mut all = lock(&self.inner);
        let rec = all.entry(key.to_string()).or_default();
        let fresh: Vec<&String> = new_failed
            .iter()
            .filter(|u| !rec.counted.contains(*u))
            .collect();
        if !fresh.is_empty() {
            rec.failures_after_last_success += fresh.len() as u32;
            rec.last_failure = Some(now);
            rec.counted.extend(fresh.into_iter().cloned());
        } else if new_succeeded > 0 {
            rec.failures_after_last_success = 0;
            rec.last_failure = None;
        }
        rec.clone()
    }

    pub fn remove(&self, key: &str) {
        lock(&self.inner).remove(key);
    }
}
