//! Container resources → CRI `LinuxContainerResources` (upstream
//! `generateLinuxContainerResources` / `calculateLinuxResources`).

use k8s_openapi::api::core::v1::{Container, Pod};

use crate::cri::api::LinuxContainerResources;
use crate::qos::container_oom_score_adjust;
use crate::resources::{get, milli_value, value};

pub const MIN_SHARES: i64 = 2;
pub const MAX_SHARES: i64 = 262_144;
pub const SHARES_PER_CPU: i64 = 1024;
pub const QUOTA_PERIOD: i64 = 100_000;
pub const MIN_QUOTA_PERIOD: i64 = 1000;

/// `MilliCPUToShares`.
pub fn milli_cpu_to_shares(milli: i64) -> i64 {
    if milli == 0 {
        return MIN_SHARES;
    }
    (milli * SHARES_PER_CPU / 1000).clamp(MIN_SHARES, MAX_SHARES)
}

/// `milliCPUToQuota`: 0 (unlimited) without a limit.
pub fn milli_cpu_to_quota(milli: i64, period: i64) -> i64 {
    if milli == 0 {
        return 0;
    }
    (milli * period / 1000).max(MIN_QUOTA_PERIOD)
}

pub fn linux_container_resources(
    pod: &Pod,
    container: &Container,
    memory_capacity: i64,
    cpu_cfs_quota: bool,
) -> LinuxContainerResources {
    let res = container.resources.as_ref();
    let requests = res.and_then(|r| r.requests.as_ref());
    let limits = res.and_then(|r| r.limits.as_ref());
    let mut cpu_request = milli_value(get(requests, "cpu"));
    let cpu_limit = milli_value(get(limits, "cpu"));
    // The API defaults requests to limits; repeat it for objects that predate that.
    if cpu_request == 0 && cpu_limit != 0 {
        cpu_request = cpu_limit;
    }
    let mut out = LinuxContainerResources {
        cpu_shares: milli_cpu_to_shares(cpu_request),
        memory_limit_in_bytes: value(get(limits, "memory")),
        oom_score_adj: container_oom_score_adjust(pod, container, memory_capacity),
        ..Default::default()
    };
    if cpu_cfs_quota {
        out.cpu_period = QUOTA_PERIOD;
        out.cpu_quota = milli_cpu_to_quota(cpu_limit, QUOTA_PERIOD);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodSpec, ResourceRequirements};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use std::collections::BTreeMap;

    #[test]
    fn cpu_conversions() {
        assert_eq!(milli_cpu_to_shares(0), 2);
        assert_eq!(milli_cpu_to_shares(1), 2);
        assert_eq!(milli_cpu_to_shares(100), 102);
        assert_eq!(milli_cpu_to_shares(1000), 1024);
        assert_eq!(milli_cpu_to_shares(1_000_000), MAX_SHARES);
        assert_eq!(milli_cpu_to_quota(0, 100_000), 0);
        assert_eq!(milli_cpu_to_quota(5, 100_000), 1000);
        assert_eq!(milli_cpu_to_quota(250, 100_000), 25_000);
    }

    #[test]
    fn container_resources() {
        let q = |v: &str| Quantity(v.into());
        let c = Container {
            name: "c".into(),
            resources: Some(ResourceRequirements {
                limits: Some(BTreeMap::from([
                    ("cpu".to_string(), q("500m")),
                    ("memory".to_string(), q("128Mi")),
                ])),
                ..Default::default()
            }),
            ..Default::default()
        };
        let pod = Pod {
            spec: Some(PodSpec {
                containers: vec![c.clone()],
                ..Default::default()
            }),
            ..Default::default()
        };
        let r = linux_container_resources(&pod, &c, 8 << 30, true);
        assert_eq!(r.cpu_shares, 512);
        assert_eq!(r.cpu_quota, 50_000);
        assert_eq!(r.cpu_period, 100_000);
        assert_eq!(r.memory_limit_in_bytes, 128 << 20);
        // limits only → Burstable by stored spec; request 0 → score 999
        assert_eq!(r.oom_score_adj, 999);
    }
}
