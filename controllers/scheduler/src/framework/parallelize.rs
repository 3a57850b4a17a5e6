//! Bounded parallel loop over indices (upstream `parallelize.Parallelizer.Until`).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Upstream default `parallelism`.
pub const DEFAULT_PARALLELISM: usize = 16;

/// Below this many pieces the thread start-up costs more than it saves.
const MIN_PIECES_FOR_THREADS: usize = 64;

/// Runs `work(i)` for every `i in 0..pieces` on up to `parallelism` threads, stopping early
/// once `stop` is set. Work is handed out one index at a time, so a slow node never holds a
/// whole chunk hostage.
pub fn until<F>(parallelism: usize, pieces: usize, stop: &AtomicBool, work: F)
where
    F: Fn(usize) + Sync,
{
    let workers = parallelism
        .min(std::thread::available_parallelism().map_or(1, |n| n.get()))
        .min(pieces)
        .max(1);
    if workers == 1 || pieces < MIN_PIECES_FOR_THREADS {
        for i in 0..pieces {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            work(i);
        }
        return;
    }
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= pieces {
                        return;
                    }
                    work(i);
                }
            });
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn visits_every_index_once() {
        for pieces in [0, 1, 10, 1000] {
            let sum = AtomicU64::new(0);
            let stop = AtomicBool::new(false);
            until(16, pieces, &stop, |i| {
                sum.fetch_add(i as u64 + 1, Ordering::Relaxed);
            });
            let n = pieces as u64;
            assert_eq!(sum.load(Ordering::Relaxed), n * (n + 1) / 2);
        }
    }

    #[test]
    fn stops_early() {
        let count = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        until(4, 10_000, &stop, |_| {
            if count.fetch_add(1, Ordering::Relaxed) >= 10 {
                stop.store(true, Ordering::Relaxed);
            }
        });
        assert!(count.load(Ordering::Relaxed) < 10_000);
    }
}
