//! `/metrics/resource` (upstream `pkg/kubelet/metrics/collectors/
//! resource_metrics.go`): node, pod and container CPU and working set from
//! the CPU-and-memory summary, each sample stamped with its stats time;
//! `resource_scrape_error` says whether the summary could be built.

use super::prom::{Family, render};
use super::types::{ContainerStats, CpuStats, MemoryStats, PodStats, Summary, Time};

const NS_PER_SEC: f64 = 1e9;

fn cpu_seconds(cpu: &Option<CpuStats>) -> Option<(f64, Option<i64>)> {
    let cpu = cpu.as_ref()?;
    let ns = cpu.usage_core_nano_seconds?;
    Some((ns as f64 / NS_PER_SEC, cpu.time.millis()))
}

fn working_set(mem: &Option<MemoryStats>) -> Option<(f64, Option<i64>)> {
    let mem = mem.as_ref()?;
    let ws = mem.working_set_bytes?;
    Some((ws as f64, mem.time.millis()))
}

fn start_time(t: &Time) -> Option<(f64, Option<i64>)> {
    let secs = t.seconds_f64().filter(|s| *s > 0.0)?;
    Some((secs, t.millis()))
}

fn container_labels(pod: &PodStats, c: &ContainerStats) -> Vec<(&'static str, String)> {
    vec![
        ("container", c.name.clone()),
        ("pod", pod.pod_ref.name.clone()),
        ("namespace", pod.pod_ref.namespace.clone()),
    ]
}

fn pod_labels(pod: &PodStats) -> Vec<(&'static str, String)> {
    vec![
        ("pod", pod.pod_ref.name.clone()),
        ("namespace", pod.pod_ref.namespace.clone()),
    ]
}

/// The endpoint's text for a summary, or for a failed one (`Err`).
pub fn render_resource_metrics<E>(summary: Result<&Summary, E>) -> String {
    let mut node_cpu = Family::new(
        "node_cpu_usage_seconds_total",
        "counter",
        "[STABLE] Cumulative cpu time consumed by the node in core-seconds",
    );
    let mut node_mem = Family::new(
        "node_memory_working_set_bytes",
        "gauge",
        "[STABLE] Current working set of the node in bytes",
    );
    let mut c_cpu = Family::new(
        "container_cpu_usage_seconds_total",
        "counter",
        "[STABLE] Cumulative cpu time consumed by the container in core-seconds",
    );
    let mut c_mem = Family::new(
        "container_memory_working_set_bytes",
        "gauge",
        "[STABLE] Current working set of the container in bytes",
    );
    let mut c_start = Family::new(
        "container_start_time_seconds",
        "gauge",
        "[STABLE] Start time of the container since unix epoch in seconds",
    );
    let mut p_cpu = Family::new(
        "pod_cpu_usage_seconds_total",
        "counter",
        "[STABLE] Cumulative cpu time consumed by the pod in core-seconds",
    );
    let mut p_mem = Family::new(
        "pod_memory_working_set_bytes",
        "gauge",
        "[STABLE] Current working set of the pod in bytes",
    );
    let mut scrape = Family::new(
        "resource_scrape_error",
        "gauge",
        "[STABLE] 1 if there was an error while getting container metrics, 0 otherwise",
    );
    match summary {
        Err(_) => scrape.push(vec![], 1.0, None),
        Ok(s) => {
            scrape.push(vec![], 0.0, None);
            if let Some((v, ts)) = cpu_seconds(&s.node.cpu) {
                node_cpu.push(vec![], v, ts);
            }
            if let Some((v, ts)) = working_set(&s.node.memory) {
                node_mem.push(vec![], v, ts);
            }
            for pod in &s.pods {
                for c in &pod.containers {
                    if let Some((v, ts)) = start_time(&c.start_time) {
                        c_start.push(container_labels(pod, c), v, ts);
                    }
                    if let Some((v, ts)) = cpu_seconds(&c.cpu) {
                        c_cpu.push(container_labels(pod, c), v, ts);
                    }
                    if let Some((v, ts)) = working_set(&c.memory) {
                        c_mem.push(container_labels(pod, c), v, ts);
                    }
                }
                if let Some((v, ts)) = cpu_seconds(&pod.cpu) {
                    p_cpu.push(pod_labels(pod), v, ts);
                }
                if let Some((v, ts)) = working_set(&pod.memory) {
                    p_mem.push(pod_labels(pod), v, ts);
                }
            }
        }
    }
    render(vec![
        node_cpu, node_mem, c_cpu, c_mem, c_start, p_cpu, p_mem, scrape,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::types::{NodeStats, PodReference};

    fn t(ms: i64) -> Time {
        Time::at(jiff::Timestamp::from_millisecond(ms).unwrap())
    }

    #[test]
    fn renders_upstreams_series() {
        let summary = Summary {
            node: NodeStats {
                node_name: "n".into(),
                cpu: Some(CpuStats {
                    time: t(1_624_396_278_302),
                    usage_nano_cores: Some(1),
                    usage_core_nano_seconds: Some(357_303_600_000),
                }),
                memory: Some(MemoryStats {
                    time: t(1_624_396_278_302),
                    working_set_bytes: Some(1_000_000_000),
                    ..MemoryStats::default()
                }),
                ..NodeStats::default()
            },
            pods: vec![PodStats {
                pod_ref: PodReference {
                    name: "web".into(),
                    namespace: "default".into(),
                    uid: "u".into(),
                },
                start_time: t(1_624_396_200_000),
                containers: vec![ContainerStats {
                    name: "nginx".into(),
                    start_time: t(1_624_396_201_500),
                    cpu: Some(CpuStats {
                        time: t(1_624_396_278_000),
                        usage_nano_cores: None,
                        usage_core_nano_seconds: Some(500_000_000),
                    }),
                    memory: Some(MemoryStats {
                        time: t(1_624_396_278_000),
                        working_set_bytes: Some(4096),
                        ..MemoryStats::default()
                    }),
                    ..ContainerStats::default()
                }],
                cpu: Some(CpuStats {
                    time: t(1_624_396_278_001),
                    usage_nano_cores: None,
                    usage_core_nano_seconds: Some(600_000_000),
                }),
                memory: None,
                ..PodStats::default()
            }],
        };
        let text = render_resource_metrics::<()>(Ok(&summary));
        let expected = "\
# HELP container_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the container in core-seconds
# TYPE container_cpu_usage_seconds_total counter
container_cpu_usage_seconds_total{container=\"nginx\",namespace=\"default\",pod=\"web\"} 0.5 1624396278000
# HELP container_memory_working_set_bytes [STABLE] Current working set of the container in bytes
# TYPE container_memory_working_set_bytes gauge
container_memory_working_set_bytes{container=\"nginx\",namespace=\"default\",pod=\"web\"} 4096 1624396278000
# HELP container_start_time_seconds [STABLE] Start time of the container since unix epoch in seconds
# TYPE container_start_time_seconds gauge
container_start_time_seconds{container=\"nginx\",namespace=\"default\",pod=\"web\"} 1.6243962015e+09 1624396201500
# HELP node_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the node in core-seconds
# TYPE node_cpu_usage_seconds_total counter
node_cpu_usage_seconds_total 357.3036 1624396278302
# HELP node_memory_working_set_bytes [STABLE] Current working set of the node in bytes
# TYPE node_memory_working_set_bytes gauge
node_memory_working_set_bytes 1e+09 1624396278302
# HELP pod_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the pod in core-seconds
# TYPE pod_cpu_usage_seconds_total counter
pod_cpu_usage_seconds_total{namespace=\"default\",pod=\"web\"} 0.6 1624396278001
# HELP resource_scrape_error [STABLE] 1 if there was an error while getting container metrics, 0 otherwise
# TYPE resource_scrape_error gauge
resource_scrape_error 0
";
        assert_eq!(text, expected);
    }

    #[test]
    fn failed_summary_is_a_scrape_error() {
        let text = render_resource_metrics::<&str>(Err("boom"));
        assert!(text.ends_with("resource_scrape_error 1\n"), "{text}");
        assert!(!text.contains("node_cpu"));
    }
}
