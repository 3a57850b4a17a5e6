//! `prober_probe_total` (upstream `pkg/kubelet/prober` `ProberResults`),
//! served on `/metrics/probes`: one counter per probe type, result,
//! container and pod, fed by the workers after each probe that ran
//! (probe errors are not counted, as upstream).

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

use super::{ProbeResult, ProbeType};
use crate::stats::prom::{Family, render};

/// (probe_type, result, container, pod, namespace, pod_uid).
type Key = (String, &'static str, String, String, String, String);

fn counters() -> &'static Mutex<BTreeMap<Key, u64>> {
    static COUNTERS: OnceLock<Mutex<BTreeMap<Key, u64>>> = OnceLock::new();
    COUNTERS.get_or_init(|| Mutex::new(BTreeMap::new()))
}

/// upstream's `result` label values.
fn result_label(r: ProbeResult) -> &'static str {
    match r {
        ProbeResult::Success => "successful",
        ProbeResult::Failure => "failed",
        ProbeResult::Unknown => "unknown",
    }
}

/// Counts one probe of `container` in pod `namespace/pod`.
pub fn record(
    probe_type: ProbeType,
    result: ProbeResult,
    container: &str,
    pod: &str,
    namespace: &str,
    pod_uid: &str,
) {
    let key = (
        probe_type.to_string(),
        result_label(result),
        container.to_string(),
        pod.to_string(),
        namespace.to_string(),
        pod_uid.to_string(),
    );
    *counters()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(key)
        .or_default() += 1;
}

/// Drops a worker's series when it stops (upstream deletes its label sets).
pub fn forget(probe_type: ProbeType, container: &str, pod_uid: &str) {
    let probe_type = probe_type.to_string();
    counters()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .retain(|k, _| !(k.0 == probe_type && k.2 == container && k.5 == pod_uid));
}

/// The `/metrics/probes` body.
pub fn render_probe_metrics() -> String {
    let mut f = Family::new(
        "prober_probe_total",
        "counter",
        "[ALPHA] Cumulative number of a liveness, readiness or startup probe for a container by result.",
    );
    for (k, v) in counters().lock().unwrap_or_else(|p| p.into_inner()).iter() {
        f.push(
            vec![
                ("probe_type", k.0.clone()),
                ("result", k.1.to_string()),
                ("container", k.2.clone()),
                ("pod", k.3.clone()),
                ("namespace", k.4.clone()),
                ("pod_uid", k.5.clone()),
            ],
            *v as f64,
            None,
        );
    }
    render(vec![f])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_result_and_forgets_pods() {
        let uid = "metrics-test-uid";
        record(
            ProbeType::Readiness,
            ProbeResult::Success,
            "c",
            "p",
            "ns",
            uid,
        );
        record(
            ProbeType::Readiness,
            ProbeResult::Success,
            "c",
            "p",
            "ns",
            uid,
        );
        record(
            ProbeType::Liveness,
            ProbeResult::Failure,
            "c",
            "p",
            "ns",
            uid,
        );
        let text = render_probe_metrics();
        assert!(text.starts_with("# HELP prober_probe_total [ALPHA] Cumulative number of a liveness, readiness or startup probe for a container by result.\n# TYPE prober_probe_total counter\n"), "{text}");
        assert!(text.contains("prober_probe_total{container=\"c\",namespace=\"ns\",pod=\"p\",pod_uid=\"metrics-test-uid\",probe_type=\"Readiness\",result=\"successful\"} 2\n"), "{text}");
        assert!(text.contains("prober_probe_total{container=\"c\",namespace=\"ns\",pod=\"p\",pod_uid=\"metrics-test-uid\",probe_type=\"Liveness\",result=\"failed\"} 1\n"), "{text}");
        forget(ProbeType::Liveness, "c", uid);
        let text = render_probe_metrics();
        assert!(!text.contains("Liveness"), "{text}");
        forget(ProbeType::Readiness, "c", uid);
        assert!(!render_probe_metrics().contains(uid));
    }
}
