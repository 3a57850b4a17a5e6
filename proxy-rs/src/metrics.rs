//! kube-proxy's sync metrics under upstream names (`pkg/proxy/metrics`).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

#[derive(Debug, Clone, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct TrafficPolicyLabel {
    pub traffic_policy: String,
}

#[derive(Debug, Clone)]
pub struct ProxyMetrics {
    pub sync_proxy_rules_duration: Histogram,
    pub sync_full_proxy_rules_duration: Histogram,
    pub sync_partial_proxy_rules_duration: Histogram,
    pub sync_proxy_rules_last_timestamp: Gauge<f64, AtomicU64>,
    pub sync_proxy_rules_last_queued_timestamp: Gauge<f64, AtomicU64>,
    pub network_programming_duration: Histogram,
    pub nftables_sync_failures: Counter,
    pub nftables_cleanup_failures: Counter,
    pub no_local_endpoints: Family<TrafficPolicyLabel, Gauge>,
}

fn sync_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// Upstream's merged linear buckets: 0.25..0.5, 1..59, 60..115 by 5, 120..300 by 30.
fn network_programming_buckets() -> Histogram {
    let mut b = vec![0.25, 0.5];
    b.extend((1..=59).map(f64::from));
    b.extend((0..12).map(|i| 60.0 + 5.0 * f64::from(i)));
    b.extend((0..7).map(|i| 120.0 + 30.0 * f64::from(i)));
    Histogram::new(b)
}

impl Default for ProxyMetrics {
    fn default() -> Self {
        Self {
            sync_proxy_rules_duration: sync_buckets(),
            sync_full_proxy_rules_duration: sync_buckets(),
            sync_partial_proxy_rules_duration: sync_buckets(),
            sync_proxy_rules_last_timestamp: Gauge::default(),
            sync_proxy_rules_last_queued_timestamp: Gauge::default(),
            network_programming_duration: network_programming_buckets(),
            nftables_sync_failures: Counter::default(),
            nftables_cleanup_failures: Counter::default(),
            no_local_endpoints: Family::default(),
        }
    }
}

/// Calls `$($reg)+(name, help, metric)` for every metric, so the list of
/// names lives in one place whatever registry receives them.
macro_rules! each_metric {
    ($m:expr, $($reg:tt)+) => {{
        let m = $m;
        $($reg)+(
            "kubeproxy_sync_proxy_rules_duration_seconds",
            "SyncProxyRules latency in seconds",
            m.sync_proxy_rules_duration.clone(),
        );
        $($reg)+(
            "kubeproxy_sync_full_proxy_rules_duration_seconds",
            "SyncProxyRules latency in seconds for full resyncs",
            m.sync_full_proxy_rules_duration.clone(),
        );
        $($reg)+(
            "kubeproxy_sync_partial_proxy_rules_duration_seconds",
            "SyncProxyRules latency in seconds for partial resyncs",
            m.sync_partial_proxy_rules_duration.clone(),
        );
        $($reg)+(
            "kubeproxy_sync_proxy_rules_last_timestamp_seconds",
            "The last time proxy rules were successfully synced",
            m.sync_proxy_rules_last_timestamp.clone(),
        );
        $($reg)+(
            "kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds",
            "The last time a sync of proxy rules was queued",
            m.sync_proxy_rules_last_queued_timestamp.clone(),
        );
        $($reg)+(
            "kubeproxy_network_programming_duration_seconds",
            "In Cluster Network Programming Latency in seconds",
            m.network_programming_duration.clone(),
        );
        $($reg)+(
            "kubeproxy_sync_proxy_rules_nftables_sync_failures",
            "Number of nftables sync failures",
            m.nftables_sync_failures.clone(),
        );
        $($reg)+(
            "kubeproxy_sync_proxy_rules_nftables_cleanup_failures",
            "Number of nftables stale chain cleanup failures",
            m.nftables_cleanup_failures.clone(),
        );
        $($reg)+(
            "kubeproxy_sync_proxy_rules_no_local_endpoints_total",
            "Number of services with a Local traffic policy and no endpoints",
            m.no_local_endpoints.clone(),
        );
    }};
}

impl ProxyMetrics {
    /// Registers every metric in `registry` (counter names get `_total`
    /// from the encoder).
    pub fn register(&self, registry: &mut Registry) {
        each_metric!(self, registry.register);
    }

    /// The process-wide instance, registered once in component-base's
    /// global registry (what the binary's `/metrics` serves).
    pub fn global() -> ProxyMetrics {
        static GLOBAL: std::sync::OnceLock<ProxyMetrics> = std::sync::OnceLock::new();
        GLOBAL
            .get_or_init(|| {
                let m = ProxyMetrics::default();
                each_metric!(&m, component_base::metrics::register);
                m
            })
            .clone()
    }
}

pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::text::encode;

    #[test]
    fn exposes_upstream_names() {
        let m = ProxyMetrics::default();
        let mut registry = Registry::default();
        m.register(&mut registry);
        m.sync_proxy_rules_duration.observe(0.01);
        m.nftables_sync_failures.inc();
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        for name in [
            "kubeproxy_sync_proxy_rules_duration_seconds_bucket",
            "kubeproxy_sync_proxy_rules_last_timestamp_seconds",
            "kubeproxy_network_programming_duration_seconds_bucket",
            "kubeproxy_sync_proxy_rules_nftables_sync_failures_total 1",
        ] {
            assert!(text.contains(name), "{name} missing in:\n{text}");
        }
    }
}
