//! Upstream's workqueue metrics (`workqueue_depth`, `workqueue_adds_total`,
//! `workqueue_retries_total`, `workqueue_queue_duration_seconds`,
//! `workqueue_work_duration_seconds`), one series per queue `name`.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use std::sync::OnceLock;

type NameLabel = Vec<(String, String)>;

/// client-go uses `ExponentialBuckets(10e-9, 10, 10)`: 10ns .. 10s.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(10e-9, 10.0, 10))
}

struct Families {
    depth: Family<NameLabel, Gauge>,
    adds: Family<NameLabel, Counter>,
    retries: Family<NameLabel, Counter>,
    queue_duration: Family<NameLabel, Histogram, fn() -> Histogram>,
    work_duration: Family<NameLabel, Histogram, fn() -> Histogram>,
}

/// Process-wide families, registered once so every queue shares the series
/// names and differs only by its `name` label.
fn families() -> &'static Families {
    static FAMILIES: OnceLock<Families> = OnceLock::new();
    FAMILIES.get_or_init(|| {
        let f = Families {
            depth: Family::default(),
            adds: Family::default(),
            retries: Family::default(),
            queue_duration: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            work_duration: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
        };
        register(&f);
        f
    })
}

fn register(f: &Families) {
    use crate::metrics::register;
    // prometheus-client appends `_total` to counter names itself.
    register(
        "workqueue_depth",
        "Current depth of workqueue",
        f.depth.clone(),
    );
    register(
        "workqueue_adds",
        "Total number of adds handled by workqueue",
        f.adds.clone(),
    );
    register(
        "workqueue_retries",
        "Total number of retries handled by workqueue",
        f.retries.clone(),
    );
    register(
        "workqueue_queue_duration_seconds",
        "How long in seconds an item stays in workqueue before being requested.",
        f.queue_duration.clone(),
    );
    register(
        "workqueue_work_duration_seconds",
        "How long in seconds processing an item from workqueue takes.",
        f.work_duration.clone(),
    );
}

/// The series of one named queue.
pub(super) struct QueueMetrics {
    pub depth: Gauge,
    pub adds: Counter,
    pub retries: Counter,
    pub queue_duration: Histogram,
    pub work_duration: Histogram,
}

impl QueueMetrics {
    pub fn new(name: &str) -> Self {
        let f = families();
        let label = vec![("name".to_string(), name.to_string())];
        Self {
            depth: f.depth.get_or_create(&label).clone(),
            adds: f.adds.get_or_create(&label).clone(),
            retries: f.retries.get_or_create(&label).clone(),
            queue_duration: f.queue_duration.get_or_create(&label).clone(),
            work_duration: f.work_duration.get_or_create(&label).clone(),
        }
    }
}
