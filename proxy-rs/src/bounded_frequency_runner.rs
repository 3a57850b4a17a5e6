//! Sync pacing (upstream `pkg/util/async.BoundedFrequencyRunner`): change-driven
//! syncs are rate limited to one per `minSyncPeriod` with a small burst,
//! and a sync happens at least every `syncPeriod` (as a full resync).

use std::time::Duration;

use tokio::time::Instant;

/// Token bucket: `burst` syncs may run back to back, then one per `interval`.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    interval: Duration,
    burst: u32,
    tokens: f64,
    last_refill: Instant,
}

impl RateLimiter {
    pub fn new(interval: Duration, burst: u32, now: Instant) -> Self {
        Self {
            interval,
            burst: burst.max(1),
            tokens: f64::from(burst.max(1)),
            last_refill: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        if self.interval.is_zero() {
            self.tokens = f64::from(self.burst);
            return;
        }
        let elapsed = now
            .saturating_duration_since(self.last_refill)
            .as_secs_f64();
        self.tokens =
            (self.tokens + elapsed / self.interval.as_secs_f64()).min(f64::from(self.burst));
        self.last_refill = now;
    }

    /// When the next sync may start (`now` if a token is available).
    pub fn next_allowed(&mut self, now: Instant) -> Instant {
        self.refill(now);
        if self.tokens >= 1.0 {
            now
        } else {
            now + self.interval.mul_f64(1.0 - self.tokens)
        }
    }

    /// Consumes a token for a sync starting at `now`.
    pub fn take(&mut self, now: Instant) {
        self.refill(now);
        self.tokens = (self.tokens - 1.0).max(0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_burst_then_paces() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::new(Duration::from_secs(1), 2, t0);
        assert_eq!(rl.next_allowed(t0), t0);
        rl.take(t0);
        assert_eq!(rl.next_allowed(t0), t0);
        rl.take(t0);
        let next = rl.next_allowed(t0);
        assert_eq!(next, t0 + Duration::from_secs(1));
        let half = t0 + Duration::from_millis(500);
        assert_eq!(rl.next_allowed(half), t0 + Duration::from_secs(1));
        rl.take(next);
        assert_eq!(rl.next_allowed(next), next + Duration::from_secs(1));
    }

    #[test]
    fn zero_interval_never_waits() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::new(Duration::ZERO, 2, t0);
        for _ in 0..5 {
            rl.take(t0);
            assert_eq!(rl.next_allowed(t0), t0);
        }
    }
}
