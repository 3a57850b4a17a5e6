//! Scheduler metrics with upstream names, registered in the process-wide registry.

use std::sync::{Arc, LazyLock};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

use crate::queue::PendingCounts;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AttemptLabels {
    pub result: &'static str,
    pub profile: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabels {
    pub queue: &'static str,
}

pub const RESULT_SCHEDULED: &str = "scheduled";
pub const RESULT_UNSCHEDULABLE: &str = "unschedulable";
pub const RESULT_ERROR: &str = "error";

type HistogramFamily = Family<AttemptLabels, Histogram, fn() -> Histogram>;

fn attempt_histogram() -> Histogram {
    // Upstream: ExponentialBuckets(0.001, 2, 15).
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

pub struct Metrics {
    pub schedule_attempts: Family<AttemptLabels, Counter>,
    pub attempt_duration: HistogramFamily,
    pub pending_pods: Family<QueueLabels, Gauge>,
}

static METRICS: LazyLock<Arc<Metrics>> = LazyLock::new(|| {
    let m = Arc::new(Metrics {
        schedule_attempts: Family::default(),
        attempt_duration: Family::new_with_constructor(attempt_histogram as fn() -> Histogram),
        pending_pods: Family::default(),
    });
    // prometheus-client appends `_total` to counters.
    component_base::metrics::register(
        "scheduler_schedule_attempts",
        "Number of attempts to schedule pods, by the result. 'unschedulable' means a pod could not be scheduled, while 'error' means an internal scheduler problem.",
        m.schedule_attempts.clone(),
    );
    component_base::metrics::register(
        "scheduler_scheduling_attempt_duration_seconds",
        "Scheduling attempt latency in seconds (scheduling algorithm + binding)",
        m.attempt_duration.clone(),
    );
    component_base::metrics::register(
        "scheduler_pending_pods",
        "Number of pending pods, by the queue type. 'active' means number of pods in activeQ; 'backoff' means number of pods in backoffQ; 'unschedulable' means number of pods in unschedulablePods that the scheduler attempted to schedule and failed; 'gated' is the number of unschedulable pods that the scheduler never attempted to schedule because they are gated.",
        m.pending_pods.clone(),
    );
    m
});

impl Metrics {
    pub fn global() -> Arc<Metrics> {
        METRICS.clone()
    }

    pub fn observe_attempt(&self, result: &'static str, profile: &str, seconds: f64) {
        let labels = AttemptLabels {
            result,
            profile: profile.to_string(),
        };
        self.schedule_attempts.get_or_create(&labels).inc();
        self.attempt_duration
            .get_or_create(&labels)
            .observe(seconds);
    }

    pub fn set_pending(&self, c: PendingCounts) {
        for (queue, v) in [
            ("active", c.active),
            ("backoff", c.backoff),
            ("unschedulable", c.unschedulable),
            ("gated", c.gated),
        ] {
            self.pending_pods
                .get_or_create(&QueueLabels { queue })
                .set(v as i64);
        }
    }
}
