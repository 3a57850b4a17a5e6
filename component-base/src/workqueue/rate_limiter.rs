//! Rate limiters deciding how long an item waits before it is re-queued
//! (client-go `workqueue/default_rate_limiters.go`).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;
use tokio::time::Instant;

/// Decides the delay of `add_rate_limited` and keeps per-item failure history.
pub trait RateLimiter<T>: Send + Sync {
    /// How long `item` should wait; records one more failure for it.
    fn when(&self, item: &T) -> Duration;
    /// Stops tracking `item` (resets its backoff).
    fn forget(&self, item: &T);
    /// How many times `item` has been rate-limited since the last `forget`.
    fn num_requeues(&self, item: &T) -> u32;
}

/// Locks a mutex even if a panicking thread poisoned it; the guarded maps stay
/// consistent because every critical section is a single map operation.
fn lock<V>(m: &Mutex<V>) -> MutexGuard<'_, V> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `base * 2^failures`, capped at `max` (client-go `ItemExponentialFailureRateLimiter`).
pub struct ItemExponentialFailureRateLimiter<T> {
    base: Duration,
    max: Duration,
    failures: Mutex<HashMap<T, u32>>,
}

impl<T: Eq + Hash + Clone> ItemExponentialFailureRateLimiter<T> {
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max,
            failures: Mutex::new(HashMap::new()),
        }
    }
}

/// The delay after `exp` previous failures; saturates instead of overflowing.
fn exponential_delay(base: Duration, max: Duration, exp: u32) -> Duration {
    let backoff = base.as_secs_f64() * 2f64.powi(i32::try_from(exp).unwrap_or(i32::MAX));
    if !backoff.is_finite() || backoff >= max.as_secs_f64() {
        return max;
    }
    Duration::from_secs_f64(backoff)
}

impl<T: Eq + Hash + Clone + Send> RateLimiter<T> for ItemExponentialFailureRateLimiter<T> {
    fn when(&self, item: &T) -> Duration {
        let mut failures = lock(&self.failures);
        let exp = failures.entry(item.clone()).or_insert(0);
        let delay = exponential_delay(self.base, self.max, *exp);
        *exp = exp.saturating_add(1);
        delay
    }

    fn forget(&self, item: &T) {
        lock(&self.failures).remove(item);
    }

    fn num_requeues(&self, item: &T) -> u32 {
        lock(&self.failures).get(item).copied().unwrap_or(0)
    }
}

/// An overall token bucket (`qps` refill, `burst` capacity) shared by all
/// items, with golang.org/x/time/rate `Reserve().Delay()` semantics: every
/// call takes a token, going into debt when the bucket is empty, so bursts
/// beyond capacity are spread out at `qps`.
pub struct BucketRateLimiter {
    qps: f64,
    burst: f64,
    bucket: Mutex<Bucket>,
}

struct Bucket {
    tokens: f64,
    last: Option<Instant>,
}

impl BucketRateLimiter {
    pub fn new(qps: f64, burst: u32) -> Self {
        Self {
            qps,
            burst: f64::from(burst),
            bucket: Mutex::new(Bucket {
                tokens: f64::from(burst),
                last: None,
            }),
        }
    }

    fn reserve(&self, now: Instant) -> Duration {
        let mut b = lock(&self.bucket);
        let elapsed = b
            .last
            .map_or(Duration::ZERO, |last| now.saturating_duration_since(last));
        b.tokens = (b.tokens + elapsed.as_secs_f64() * self.qps).min(self.burst);
        b.last = Some(now);
        b.tokens -= 1.0;
        if b.tokens >= 0.0 || self.qps <= 0.0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64(-b.tokens / self.qps)
    }
}

impl<T> RateLimiter<T> for BucketRateLimiter {
    fn when(&self, _item: &T) -> Duration {
        self.reserve(Instant::now())
    }

    fn forget(&self, _item: &T) {}

    fn num_requeues(&self, _item: &T) -> u32 {
        0
    }
}

/// The worst (longest) delay of several limiters; every limiter is consulted
/// so each keeps its own history (client-go `MaxOfRateLimiter`).
pub struct MaxOfRateLimiter<T> {
    limiters: Vec<Box<dyn RateLimiter<T>>>,
}

impl<T> MaxOfRateLimiter<T> {
    pub fn new(limiters: Vec<Box<dyn RateLimiter<T>>>) -> Self {
        Self { limiters }
    }
}

impl<T> RateLimiter<T> for MaxOfRateLimiter<T> {
    fn when(&self, item: &T) -> Duration {
        self.limiters
            .iter()
            .map(|l| l.when(item))
            .max()
            .unwrap_or(Duration::ZERO)
    }

    fn forget(&self, item: &T) {
        for l in &self.limiters {
            l.forget(item);
        }
    }

    fn num_requeues(&self, item: &T) -> u32 {
        self.limiters
            .iter()
            .map(|l| l.num_requeues(item))
            .max()
            .unwrap_or(0)
    }
}

/// client-go `DefaultControllerRateLimiter`: per-item exponential backoff from
/// 5ms to 1000s, and an overall 10 qps / 100 burst token bucket.
pub fn default_controller_rate_limiter<T>() -> MaxOfRateLimiter<T>
where
    T: Eq + Hash + Clone + Send + 'static,
{
    MaxOfRateLimiter::new(vec![
        Box::new(ItemExponentialFailureRateLimiter::new(
            Duration::from_millis(5),
            Duration::from_secs(1000),
        )),
        Box::new(BucketRateLimiter::new(10.0, 100)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_delay_table() {
        let base = Duration::from_millis(5);
        let max = Duration::from_secs(1000);
        let cases = [
            (0, Duration::from_millis(5)),
            (1, Duration::from_millis(10)),
            (2, Duration::from_millis(20)),
            (10, Duration::from_millis(5120)),
            // 5ms * 2^17 = 655.36s, 2^18 would exceed 1000s.
            (17, Duration::from_millis(655_360)),
            (18, max),
            (1000, max),
            (u32::MAX, max),
        ];
        for (exp, want) in cases {
            assert_eq!(exponential_delay(base, max, exp), want, "exp={exp}");
        }
    }

    #[test]
    fn exponential_limiter_counts_and_forgets_per_item() {
        let l = ItemExponentialFailureRateLimiter::new(
            Duration::from_millis(1),
            Duration::from_secs(1),
        );
        assert_eq!(l.when(&"a"), Duration::from_millis(1));
        assert_eq!(l.when(&"a"), Duration::from_millis(2));
        assert_eq!(l.when(&"a"), Duration::from_millis(4));
        assert_eq!(l.when(&"b"), Duration::from_millis(1));
        assert_eq!(l.num_requeues(&"a"), 3);
        assert_eq!(l.num_requeues(&"b"), 1);
        l.forget(&"a");
        assert_eq!(l.num_requeues(&"a"), 0);
        assert_eq!(l.when(&"a"), Duration::from_millis(1));
    }

    #[tokio::test(start_paused = true)]
    async fn bucket_allows_burst_then_spreads_at_qps() {
        let l = BucketRateLimiter::new(10.0, 3);
        for _ in 0..3 {
            assert_eq!(RateLimiter::<u8>::when(&l, &0), Duration::ZERO);
        }
        // Tokens go into debt: 1, 2, 3 tokens short at 10 qps.
        let d1 = RateLimiter::<u8>::when(&l, &0);
        let d2 = RateLimiter::<u8>::when(&l, &0);
        assert!((d1.as_secs_f64() - 0.1).abs() < 1e-9, "{d1:?}");
        assert!((d2.as_secs_f64() - 0.2).abs() < 1e-9, "{d2:?}");
        // One second refills 10 tokens but the bucket holds at most 3, after
        // paying back the debt of 2.
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(RateLimiter::<u8>::when(&l, &0), Duration::ZERO);
        assert_eq!(RateLimiter::<u8>::when(&l, &0), Duration::ZERO);
        assert_eq!(RateLimiter::<u8>::when(&l, &0), Duration::ZERO);
        let d = RateLimiter::<u8>::when(&l, &0);
        assert!((d.as_secs_f64() - 0.1).abs() < 1e-9, "{d:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn default_controller_limiter_takes_the_max() {
        let l = default_controller_rate_limiter::<&str>();
        // The first 100 calls fit in the bucket: only the per-item backoff counts.
        assert_eq!(l.when(&"x"), Duration::from_millis(5));
        assert_eq!(l.when(&"x"), Duration::from_millis(10));
        for i in 0..98 {
            let want = exponential_delay(Duration::from_millis(5), Duration::from_secs(1000), i);
            assert_eq!(l.when(&"other"), want, "call {i}");
        }
        // The bucket is empty now: a fresh item waits 100ms (1 token at 10 qps)
        // rather than its own 5ms.
        let d = l.when(&"fresh");
        assert!((d.as_secs_f64() - 0.1).abs() < 1e-9, "{d:?}");
        assert_eq!(l.num_requeues(&"x"), 2);
        l.forget(&"x");
        assert_eq!(l.num_requeues(&"x"), 0);
    }
}
