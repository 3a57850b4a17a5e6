//! `usageNanoCores`: the CPU rate between this sample and the previous one
//! of the same cgroup or container (what cAdvisor's housekeeping and the CRI
//! stats provider's cache give upstream).

use std::collections::HashMap;

/// Samples closer than this to the baseline reuse the last rate, so that two
/// scrapes in quick succession do not report noise from a tiny window.
pub const MIN_WINDOW_NS: i64 = 1_000_000_000;

#[derive(Debug, Clone, Copy)]
struct Baseline {
    time_ns: i64,
    usage_ns: u64,
    rate: Option<u64>,
}

/// The previous cumulative sample (and the rate it gave) per key.
#[derive(Debug, Default)]
pub struct CpuRates {
    last: HashMap<String, Baseline>,
}

/// Nano-cores between two samples; `None` when time did not advance or the
/// counter went backwards (a new cgroup under the same key).
pub fn nano_cores(prev: (i64, u64), now: (i64, u64)) -> Option<u64> {
    let (t0, u0) = prev;
    let (t1, u1) = now;
    let dt = t1.checked_sub(t0).filter(|d| *d > 0)?;
    let du = u1.checked_sub(u0)?;
    let rate = u128::from(du) * 1_000_000_000 / dt as u128;
    u64::try_from(rate).ok()
}

impl CpuRates {
    /// Records `usage_ns` at `time_ns` for `key`, returning the rate since the
    /// previous sample (none on the first). Within [`MIN_WINDOW_NS`] of the
    /// baseline the previous rate is returned and the baseline kept.
    pub fn observe(&mut self, key: &str, time_ns: i64, usage_ns: u64) -> Option<u64> {
        let new = |rate| Baseline {
            time_ns,
            usage_ns,
            rate,
        };
        match self.last.get(key).copied() {
            Some(b)
                if time_ns >= b.time_ns
                    && time_ns - b.time_ns < MIN_WINDOW_NS
                    && usage_ns >= b.usage_ns =>
            {
                b.rate
            }
            Some(b) => {
                let rate = nano_cores((b.time_ns, b.usage_ns), (time_ns, usage_ns));
                self.last.insert(key.to_string(), new(rate));
                rate
            }
            None => {
                self.last.insert(key.to_string(), new(None));
                None
            }
        }
    }

    /// Forgets keys not seen in the latest pass (deleted pods and containers).
    pub fn retain(&mut self, live: &std::collections::HashSet<String>) {
        self.last.retain(|k, _| live.contains(k));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_between_samples() {
        // Half a core: 0.5 s of CPU over 1 s.
        assert_eq!(
            nano_cores((0, 0), (1_000_000_000, 500_000_000)),
            Some(500_000_000)
        );
        assert_eq!(nano_cores((5, 10), (5, 20)), None);
        assert_eq!(nano_cores((0, 20), (10, 10)), None);
    }

    #[test]
    fn tracker_keeps_previous_sample_per_key() {
        let mut r = CpuRates::default();
        assert_eq!(r.observe("a", 0, 0), None);
        assert_eq!(r.observe("b", 0, 100), None);
        assert_eq!(
            r.observe("a", 2_000_000_000, 1_000_000_000),
            Some(500_000_000)
        );
        // A scrape right after keeps the baseline and the last rate.
        assert_eq!(
            r.observe("a", 2_100_000_000, 1_090_000_000),
            Some(500_000_000)
        );
        assert_eq!(
            r.observe("a", 3_000_000_000, 3_000_000_000),
            Some(2_000_000_000)
        );
        // A counter reset (new cgroup under the key) starts over.
        assert_eq!(r.observe("a", 4_000_000_000, 10), None);
        assert_eq!(
            r.observe("a", 5_000_000_000, 1_000_000_010),
            Some(1_000_000_000)
        );
        let live = ["a".to_string()].into_iter().collect();
        r.retain(&live);
        assert_eq!(r.observe("b", 1_000_000_000, 200), None);
    }
}
