//! Back-off between deletions of failed daemon pods on one node (upstream
//! `flowcontrol.NewBackOff(1s, 15m)` keyed by `failedPodsBackoffKey`), so
//! the controller does not hot-loop against a kubelet that rejects pods.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Upstream `failedPodsBackoff` initial delay.
pub const INITIAL: Duration = Duration::from_secs(1);
/// Upstream `failedPodsBackoff` cap.
pub const MAX: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, Default)]
pub struct Backoff {
    entries: HashMap<String, Entry>,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    delay: Duration,
    last_update: Instant,
}

impl Backoff {
    /// Upstream `IsInBackOffSinceUpdate`.
    pub fn in_backoff_since_update(&self, key: &str, now: Instant) -> bool {
        self.entries
            .get(key)
            .is_some_and(|e| now.saturating_duration_since(e.last_update) < e.delay)
    }

    /// Upstream `Get`: the current delay (zero for an unknown key).
    pub fn get(&self, key: &str) -> Duration {
        self.entries.get(key).map_or(Duration::ZERO, |e| e.delay)
    }

    /// Upstream `Next`: starts at [`INITIAL`], doubles up to [`MAX`]; an
    /// entry idle for twice the cap starts over.
    pub fn next(&mut self, key: &str, now: Instant) {
        let entry = self.entries.entry(key.to_string()).or_insert(Entry {
            delay: Duration::ZERO,
            last_update: now,
        });
        let expired = now.saturating_duration_since(entry.last_update) > 2 * MAX;
        entry.delay = if entry.delay.is_zero() || expired {
            INITIAL
        } else {
            (entry.delay * 2).min(MAX)
        };
        entry.last_update = now;
    }

    /// Upstream `GC`: forgets entries idle for twice the cap.
    pub fn gc(&mut self, now: Instant) {
        self.entries
            .retain(|_, e| now.saturating_duration_since(e.last_update) <= 2 * MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_expires() {
        let mut b = Backoff::default();
        let t0 = Instant::now();
        assert!(!b.in_backoff_since_update("k", t0));
        b.next("k", t0);
        assert_eq!(b.get("k"), INITIAL);
        assert!(b.in_backoff_since_update("k", t0));
        assert!(!b.in_backoff_since_update("k", t0 + INITIAL));
        b.next("k", t0 + INITIAL);
        assert_eq!(b.get("k"), 2 * INITIAL);
        for _ in 0..20 {
            b.next("k", t0 + INITIAL);
        }
        assert_eq!(b.get("k"), MAX);
        let later = t0 + INITIAL + 2 * MAX + Duration::from_secs(1);
        b.next("k", later);
        assert_eq!(b.get("k"), INITIAL);
        b.gc(later + 2 * MAX + Duration::from_secs(1));
        assert_eq!(b.get("k"), Duration::ZERO);
    }
}
