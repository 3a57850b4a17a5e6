//! The proxier health state behind `:10256/healthz` and `/livez` (upstream
//! `pkg/proxy/healthcheck/proxier_health.go`). The binary owns the HTTP
//! server; it asks [`ProxierHealth::healthz`] / [`ProxierHealth::livez`]
//! for the status code and body.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Node;

/// Taint the cluster autoscaler puts on nodes it is about to delete.
pub const TO_BE_DELETED_TAINT: &str = "ToBeDeletedByClusterAutoscaler";

#[derive(Debug)]
struct Inner {
    last_updated: Option<Timestamp>,
    oldest_pending_queued: Option<Timestamp>,
    node_eligible: bool,
}

/// Cheap to clone; all clones share one state.
#[derive(Debug, Clone)]
pub struct ProxierHealth {
    inner: Arc<Mutex<Inner>>,
    timeout: Duration,
}

/// Status code and JSON body for one health request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthResponse {
    pub status: u16,
    pub body: String,
}

impl ProxierHealth {
    /// `timeout` is how long a queued change may wait for a successful sync
    /// before the proxy reports unhealthy; upstream passes 2 × syncPeriod.
    pub fn new(timeout: Duration) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                last_updated: None,
                oldest_pending_queued: None,
                node_eligible: true,
            })),
            timeout,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this trivial lock cannot leave it inconsistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A change arrived that the backend does not reflect yet.
    pub fn queued_update(&self) {
        self.queued_update_at(Timestamp::now());
    }

    pub fn queued_update_at(&self, now: Timestamp) {
        let mut g = self.lock();
        g.oldest_pending_queued.get_or_insert(now);
    }

    /// The backend was synced successfully.
    pub fn updated(&self) {
        self.updated_at(Timestamp::now());
    }

    pub fn updated_at(&self, now: Timestamp) {
        let mut g = self.lock();
        g.oldest_pending_queued = None;
        g.last_updated = Some(now);
    }

    /// Node is eligible unless being deleted or tainted for deletion.
    pub fn sync_node(&self, node: &Node) {
        let deleting = node.metadata.deletion_timestamp.is_some();
        let tainted = node
            .spec
            .as_ref()
            .and_then(|s| s.taints.as_ref())
            .is_some_and(|t| t.iter().any(|t| t.key == TO_BE_DELETED_TAINT));
        self.lock().node_eligible = !deleting && !tainted;
    }

    fn state(&self, now: Timestamp) -> (bool, Option<Timestamp>, bool) {
        let g = self.lock();
        let healthy = match g.oldest_pending_queued {
            None => true,
            Some(q) => now.duration_since(q).unsigned_abs() < self.timeout,
        };
        (healthy, g.last_updated, g.node_eligible)
    }

    pub fn is_healthy(&self) -> bool {
        self.state(Timestamp::now()).0
    }

    pub fn healthz(&self) -> HealthResponse {
        self.healthz_at(Timestamp::now())
    }

    pub fn healthz_at(&self, now: Timestamp) -> HealthResponse {
        let (healthy, last, eligible) = self.state(now);
        let healthy = healthy && eligible;
        // Healthy responses report "now" as lastUpdated, as upstream does
        // for compatibility with older releases.
        let last = if healthy { Some(now) } else { last };
        HealthResponse {
            status: if healthy { 200 } else { 503 },
            body: format!(
                r#"{{"lastUpdated": "{}","currentTime": "{}", "nodeEligible": {eligible}}}"#,
                go_time(last),
                go_time(Some(now))
            ),
        }
    }

    pub fn livez(&self) -> HealthResponse {
        self.livez_at(Timestamp::now())
    }

    pub fn livez_at(&self, now: Timestamp) -> HealthResponse {
        let (healthy, last, _) = self.state(now);
        let last = if healthy { Some(now) } else { last };
        HealthResponse {
            status: if healthy { 200 } else { 503 },
            body: format!(
                r#"{{"lastUpdated": "{}","currentTime": "{}"}}"#,
                go_time(last),
                go_time(Some(now))
            ),
        }
    }
}

/// Go's `time.Time.String()` in UTC (without the monotonic-clock suffix):
/// `2006-01-02 15:04:05.999999999 +0000 UTC`; the zero time for `None`.
fn go_time(t: Option<Timestamp>) -> String {
    let Some(t) = t else {
        return "0001-01-01 00:00:00 +0000 UTC".to_string();
    };
    let secs = t.strftime("%Y-%m-%d %H:%M:%S").to_string();
    let nanos = t.subsec_nanosecond();
    if nanos == 0 {
        format!("{secs} +0000 UTC")
    } else {
        let frac = format!("{nanos:09}");
        format!("{secs}.{} +0000 UTC", frac.trim_end_matches('0'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn healthy_until_a_queued_update_is_late() {
        let h = ProxierHealth::new(Duration::from_secs(60));
        let t0 = ts("2026-01-01T00:00:00Z");
        assert_eq!(h.healthz_at(t0).status, 200);
        h.queued_update_at(t0);
        assert_eq!(h.healthz_at(ts("2026-01-01T00:00:59Z")).status, 200);
        let late = h.healthz_at(ts("2026-01-01T00:01:00Z"));
        assert_eq!(late.status, 503);
        assert_eq!(
            late.body,
            r#"{"lastUpdated": "0001-01-01 00:00:00 +0000 UTC","currentTime": "2026-01-01 00:01:00 +0000 UTC", "nodeEligible": true}"#
        );
        assert_eq!(h.livez_at(ts("2026-01-01T00:01:00Z")).status, 503);
        h.updated_at(ts("2026-01-01T00:01:01.5Z"));
        let ok = h.healthz_at(ts("2026-01-01T00:01:02.25Z"));
        assert_eq!(ok.status, 200);
        assert_eq!(
            ok.body,
            r#"{"lastUpdated": "2026-01-01 00:01:02.25 +0000 UTC","currentTime": "2026-01-01 00:01:02.25 +0000 UTC", "nodeEligible": true}"#
        );
    }

    #[test]
    fn second_queued_update_keeps_the_oldest() {
        let h = ProxierHealth::new(Duration::from_secs(60));
        h.queued_update_at(ts("2026-01-01T00:00:00Z"));
        h.queued_update_at(ts("2026-01-01T00:00:50Z"));
        assert_eq!(h.livez_at(ts("2026-01-01T00:01:10Z")).status, 503);
    }

    #[test]
    fn tainted_node_fails_healthz_but_not_livez() {
        let h = ProxierHealth::new(Duration::from_secs(60));
        let node: Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "n1"},
            "spec": {"taints": [{"key": TO_BE_DELETED_TAINT, "effect": "NoSchedule"}]}
        }))
        .unwrap();
        h.sync_node(&node);
        let now = ts("2026-01-01T00:00:00Z");
        let r = h.healthz_at(now);
        assert_eq!(r.status, 503);
        assert!(r.body.ends_with(r#""nodeEligible": false}"#));
        assert_eq!(h.livez_at(now).status, 200);
    }
}
