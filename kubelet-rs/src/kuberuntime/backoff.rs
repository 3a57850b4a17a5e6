//! Per-key exponential back-off (upstream `flowcontrol.Backoff`), used for crash loops
//! (10s doubling to 5m) and image pulls.

use std::collections::HashMap;
use std::time::Duration;

use jiff::Timestamp;

pub const CRASH_LOOP_INITIAL: Duration = Duration::from_secs(10);
pub const CRASH_LOOP_MAX: Duration = Duration::from_secs(300);

#[derive(Clone, Debug)]
struct Entry {
    backoff: Duration,
    last_update: Timestamp,
}

#[derive(Clone, Debug)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    entries: HashMap<String, Entry>,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            entries: HashMap::new(),
        }
    }

    pub fn crash_loop() -> Self {
        Self::new(CRASH_LOOP_INITIAL, CRASH_LOOP_MAX)
    }

    /// Current delay for `key` (zero if none).
    pub fn get(&self, key: &str) -> Duration {
        self.entries.get(key).map_or(Duration::ZERO, |e| e.backoff)
    }

    fn expired(&self, event: Timestamp, last: Timestamp) -> bool {
        let since = event.duration_since(last);
        since.as_secs_f64() > (self.max * 2).as_secs_f64()
    }

    /// Records an event at `event`: first delay, or double the previous one.
    pub fn next(&mut self, key: &str, event: Timestamp) {
        let expired = self
            .entries
            .get(key)
            .is_none_or(|e| self.expired(event, e.last_update));
        let backoff = if expired {
            self.initial
        } else {
            self.entries
                .get(key)
                .map_or(self.initial, |e| (e.backoff * 2).min(self.max))
        };
        self.entries.insert(
            key.to_string(),
            Entry {
                backoff,
                last_update: event,
            },
        );
    }

    /// Whether `now` is still inside the back-off window that started at `event`.
    pub fn is_in_backoff_since(&self, key: &str, event: Timestamp, now: Timestamp) -> bool {
        let Some(e) = self.entries.get(key) else {
            return false;
        };
        if self.expired(now, e.last_update) {
            return false;
        }
        now.duration_since(event).as_secs_f64() < e.backoff.as_secs_f64()
    }

    pub fn forget(&mut self, key_prefix: &str) {
        self.entries.retain(|k, _| !k.starts_with(key_prefix));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_max_and_resets() {
        let mut b = Backoff::crash_loop();
        let t = |s: i64| Timestamp::from_second(1_000_000 + s).expect("ts");
        assert!(!b.is_in_backoff_since("k", t(0), t(0)));
        b.next("k", t(0));
        assert_eq!(b.get("k"), Duration::from_secs(10));
        assert!(b.is_in_backoff_since("k", t(0), t(5)));
        assert!(!b.is_in_backoff_since("k", t(0), t(11)));
        for i in 1..10 {
            b.next("k", t(i * 20));
        }
        assert_eq!(b.get("k"), CRASH_LOOP_MAX);
        // Quiet for more than twice the max: start over.
        b.next("k", t(10_000));
        assert_eq!(b.get("k"), CRASH_LOOP_INITIAL);
    }
}
