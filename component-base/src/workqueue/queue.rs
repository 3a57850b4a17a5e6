//! The queue itself: FIFO + dirty/processing sets (client-go `queue.go`),
//! delayed adds (`delaying_queue.go`) and rate-limited adds
//! (`rate_limiting_queue.go`) behind one async handle.

use super::metrics::QueueMetrics;
use super::rate_limiter::{RateLimiter, default_controller_rate_limiter};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// A cloneable handle to a rate-limited work queue; clones share the queue.
pub struct RateLimitingQueue<T> {
    inner: Arc<Inner<T>>,
}

impl<T> Clone for RateLimitingQueue<T> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

struct Inner<T> {
    state: Mutex<State<T>>,
    /// Wakes `get` callers: one per newly queued item, all on shutdown.
    item_ready: Notify,
    /// Wakes `shut_down_with_drain` when the processing set empties.
    drained: Notify,
    limiter: Box<dyn RateLimiter<T>>,
    metrics: Option<QueueMetrics>,
}

struct State<T> {
    queue: VecDeque<T>,
    /// Items that need processing: queued, or re-added while processing.
    dirty: HashSet<T>,
    processing: HashSet<T>,
    /// Delayed adds ordered by ready time (the u64 keeps equal times FIFO).
    waiting: BTreeMap<(Instant, u64), T>,
    waiting_index: HashMap<T, (Instant, u64)>,
    next_seq: u64,
    shutting_down: bool,
    drain: bool,
    /// For the queue/work duration metrics.
    added_at: HashMap<T, Instant>,
    started_at: HashMap<T, Instant>,
}

impl<T> RateLimitingQueue<T>
where
    T: Clone + Eq + Hash + Send + 'static,
{
    /// A queue with upstream's `DefaultControllerRateLimiter`. A non-empty
    /// `name` publishes the workqueue metrics under that `name` label.
    pub fn new(name: &str) -> Self {
        Self::with_rate_limiter(name, default_controller_rate_limiter())
    }

    pub fn with_rate_limiter(name: &str, limiter: impl RateLimiter<T> + 'static) -> Self {
        let metrics = (!name.is_empty()).then(|| QueueMetrics::new(name));
        Self {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    queue: VecDeque::new(),
                    dirty: HashSet::new(),
                    processing: HashSet::new(),
                    waiting: BTreeMap::new(),
                    waiting_index: HashMap::new(),
                    next_seq: 0,
                    shutting_down: false,
                    drain: false,
                    added_at: HashMap::new(),
                    started_at: HashMap::new(),
                }),
                item_ready: Notify::new(),
                drained: Notify::new(),
                limiter: Box::new(limiter),
                metrics,
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State<T>> {
        // Every critical section leaves the state consistent before anything
        // that could panic, so a poisoned lock is still usable.
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues `item` unless it is already queued; an item being processed is
    /// re-queued when its worker calls [`Self::done`]. Ignored after shutdown.
    pub fn add(&self, item: T) {
        let mut st = self.state();
        if st.shutting_down {
            return;
        }
        self.add_locked(&mut st, item, Instant::now());
    }

    fn add_locked(&self, st: &mut State<T>, item: T, now: Instant) {
        if st.dirty.contains(&item) {
            return;
        }
        if let Some(m) = &self.inner.metrics {
            m.adds.inc();
            m.depth.inc();
        }
        st.added_at.entry(item.clone()).or_insert(now);
        st.dirty.insert(item.clone());
        if st.processing.contains(&item) {
            return;
        }
        st.queue.push_back(item);
        self.inner.item_ready.notify_one();
    }

    /// Adds `item` once `delay` has passed. If it is already waiting, the
    /// earlier of the two ready times is kept.
    pub fn add_after(&self, item: T, delay: Duration) {
        let mut st = self.state();
        if st.shutting_down {
            return;
        }
        // Like client-go, every delayed add counts as a retry.
        if let Some(m) = &self.inner.metrics {
            m.retries.inc();
        }
        let now = Instant::now();
        if delay.is_zero() {
            self.add_locked(&mut st, item, now);
            return;
        }
        let ready_at = now + delay;
        if let Some(&(existing, seq)) = st.waiting_index.get(&item) {
            if existing <= ready_at {
                return;
            }
            st.waiting.remove(&(existing, seq));
        }
        let key = (ready_at, st.next_seq);
        st.next_seq += 1;
        st.waiting.insert(key, item.clone());
        st.waiting_index.insert(item, key);
        // A sleeping `get` may be waiting for a later deadline.
        self.inner.item_ready.notify_one();
    }

    /// Adds `item` after the rate limiter's delay for it.
    pub fn add_rate_limited(&self, item: T) {
        let delay = self.inner.limiter.when(&item);
        self.add_after(item, delay);
    }

    /// Resets the rate limiter's history for `item` (call after success).
    pub fn forget(&self, item: &T) {
        self.inner.limiter.forget(item);
    }

    /// How many times `item` was rate-limited since it was last forgotten.
    pub fn num_requeues(&self, item: &T) -> u32 {
        self.inner.limiter.num_requeues(item)
    }

    /// Moves delayed items whose time has come into the queue; returns the
    /// next ready time still pending.
    fn promote_ready(&self, st: &mut State<T>, now: Instant) -> Option<Instant> {
        while let Some(entry) = st.waiting.first_entry() {
            if entry.key().0 > now {
                return Some(entry.key().0);
            }
            let item = entry.remove();
            st.waiting_index.remove(&item);
            self.add_locked(st, item, now);
        }
        None
    }

    /// Waits for the next item and marks it as processing. Returns `None`
    /// once the queue is shut down and nothing is left queued.
    pub async fn get(&self) -> Option<T> {
        loop {
            let notified = self.inner.item_ready.notified();
            tokio::pin!(notified);
            // Register before looking at the state so no wake-up is missed.
            notified.as_mut().enable();
            let next_ready = {
                let mut st = self.state();
                let now = Instant::now();
                let next_ready = if st.shutting_down {
                    None
                } else {
                    self.promote_ready(&mut st, now)
                };
                if let Some(item) = st.queue.pop_front() {
                    self.start_processing(&mut st, &item, now);
                    return Some(item);
                }
                if st.shutting_down {
                    return None;
                }
                next_ready
            };
            match next_ready {
                Some(at) => {
                    tokio::select! {
                        _ = &mut notified => {}
                        _ = tokio::time::sleep_until(at) => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    fn start_processing(&self, st: &mut State<T>, item: &T, now: Instant) {
        st.processing.insert(item.clone());
        st.dirty.remove(item);
        let added = st.added_at.remove(item);
        st.started_at.insert(item.clone(), now);
        if let Some(m) = &self.inner.metrics {
            m.depth.dec();
            if let Some(added) = added {
                m.queue_duration
                    .observe(now.saturating_duration_since(added).as_secs_f64());
            }
        }
    }

    /// Marks `item` as no longer processing; re-queues it if it was added
    /// again meanwhile.
    pub fn done(&self, item: &T) {
        let mut st = self.state();
        let now = Instant::now();
        if let Some(started) = st.started_at.remove(item)
            && let Some(m) = &self.inner.metrics
        {
            m.work_duration
                .observe(now.saturating_duration_since(started).as_secs_f64());
        }
        st.processing.remove(item);
        if st.dirty.contains(item) {
            st.queue.push_back(item.clone());
            self.inner.item_ready.notify_one();
        } else if st.processing.is_empty() {
            self.inner.drained.notify_waiters();
        }
    }

    /// Number of items queued and ready (not counting delayed ones).
    pub fn len(&self) -> usize {
        let mut st = self.state();
        if !st.shutting_down {
            self.promote_ready(&mut st, Instant::now());
        }
        st.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Ignores further adds and drops delayed ones; `get` returns the items
    /// still queued, then `None`.
    pub fn shut_down(&self) {
        let mut st = self.state();
        st.shutting_down = true;
        st.drain = false;
        st.waiting.clear();
        st.waiting_index.clear();
        self.inner.item_ready.notify_waiters();
        self.inner.drained.notify_waiters();
    }

    /// Like [`Self::shut_down`], then waits until every item handed out by
    /// `get` has been marked [`Self::done`] (a concurrent `shut_down` stops
    /// the wait).
    pub async fn shut_down_with_drain(&self) {
        {
            let mut st = self.state();
            st.shutting_down = true;
            st.drain = true;
            st.waiting.clear();
            st.waiting_index.clear();
        }
        self.inner.item_ready.notify_waiters();
        loop {
            let drained = self.inner.drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            {
                let st = self.state();
                if st.processing.is_empty() || !st.drain {
                    return;
                }
            }
            drained.await;
        }
    }

    pub fn shutting_down(&self) -> bool {
        self.state().shutting_down
    }
}
