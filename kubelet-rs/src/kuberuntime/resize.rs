//! In-place pod resize (upstream `computePodResizeAction`, `doPodResizeAction` and the
//! status side of `convertContainerStatusResources`): the allocated resources are the
//! spec's (the apiserver's `resize` subresource wrote them), the actual ones are what the
//! runtime reports it applied. A difference is applied with `UpdateContainerResources`,
//! or by a restart where the container's `resizePolicy` asks for one.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::resources::{
    QUOTA_PERIOD, SHARES_PER_CPU, linux_container_resources, milli_cpu_to_quota,
    milli_cpu_to_shares,
};
use super::runtime_status::ContainerRecord;
use crate::cri::api::LinuxContainerResources;
use crate::resources::{milli_value, value};

pub const RESTART_CONTAINER: &str = "RestartContainer";

/// One running container whose resources must change.
#[derive(Clone, Debug, PartialEq)]
pub struct ResizeAction {
    pub container_id: String,
    pub name: String,
    /// Its `resizePolicy` for a changed resource is `RestartContainer`.
    pub restart: bool,
    /// What to hand to `UpdateContainerResources`.
    pub resources: LinuxContainerResources,
}

/// The container's `resizePolicy` for `resource`; `NotRequired` when unset.
fn restart_required(c: &Container, resource: &str) -> bool {
    c.resize_policy
        .iter()
        .flatten()
        .any(|p| p.resource_name == resource && p.restart_policy == RESTART_CONTAINER)
}

/// Whether the CPU (shares, quota) and memory (limit) the runtime applied differ from
/// the desired ones. A zero quota means no CFS limit on both sides.
fn differences(
    desired: &LinuxContainerResources,
    actual: &LinuxContainerResources,
) -> (bool, bool) {
    let cpu = desired.cpu_shares != actual.cpu_shares || desired.cpu_quota != actual.cpu_quota;
    let memory = desired.memory_limit_in_bytes != actual.memory_limit_in_bytes;
    (cpu, memory)
}

/// `computePodResizeAction` for one running container: `None` when the runtime already
/// runs it with its allocated resources (or does not report what it applied).
pub fn container_resize_action(
    pod: &Pod,
    c: &Container,
    record: &ContainerRecord,
    cpu_cfs_quota: bool,
) -> Option<ResizeAction> {
    let actual = record.resources.as_ref()?;
    let mut desired = linux_container_resources(pod, c, 0, cpu_cfs_quota);
    let (cpu, memory) = differences(&desired, actual);
    if !cpu && !memory {
        return None;
    }
    let restart = (cpu && restart_required(c, "cpu")) || (memory && restart_required(c, "memory"));
    // Keep what only the runtime knows (OOM score, cpuset, hugepages, unified).
    desired.oom_score_adj = actual.oom_score_adj;
    desired.cpuset_cpus = actual.cpuset_cpus.clone();
    desired.cpuset_mems = actual.cpuset_mems.clone();
    desired.hugepage_limits = actual.hugepage_limits.clone();
    desired.unified = actual.unified.clone();
    if !cpu_cfs_quota {
        desired.cpu_period = actual.cpu_period;
    }
    Some(ResizeAction {
        container_id: record.id.clone(),
        name: c.name.clone(),
        restart,
        resources: desired,
    })
}

/// `sharesToMilliCPU`: rounded up, so shares → milli → shares is stable.
fn shares_to_milli_cpu(shares: i64) -> i64 {
    if shares < super::resources::MIN_SHARES {
        return 0;
    }
    (shares * 1000 + SHARES_PER_CPU - 1) / SHARES_PER_CPU
}

/// `quotaToMilliCPU`.
fn quota_to_milli_cpu(quota: i64, period: i64) -> i64 {
    if quota <= 0 || period <= 0 {
        return 0;
    }
    quota * 1000 / period
}

fn milli_quantity(milli: i64) -> Quantity {
    if milli % 1000 == 0 {
        Quantity((milli / 1000).to_string())
    } else {
        Quantity(format!("{milli}m"))
    }
}

/// `convertContainerStatusResources`: `containerStatuses[].resources` from what the
/// runtime applied, falling back to the allocated (spec) value. An applied value that
/// maps to the same cgroup setting as the allocated one reports the allocated quantity,
/// so `20m` (20 shares) does not read back as `19m`.
pub fn status_resources(
    c: &Container,
    applied: Option<&LinuxContainerResources>,
) -> ResourceRequirements {
    let alloc = c.resources.clone().unwrap_or_default();
    let mut limits: BTreeMap<String, Quantity> = BTreeMap::new();
    let mut requests: BTreeMap<String, Quantity> = BTreeMap::new();
    if let Some(alloc_limits) = &alloc.limits {
        for (name, q) in alloc_limits {
            let reported = match (name.as_str(), applied) {
                ("cpu", Some(a)) if a.cpu_quota > 0 => {
                    let period = if a.cpu_period > 0 {
                        a.cpu_period
                    } else {
                        QUOTA_PERIOD
                    };
                    (milli_cpu_to_quota(milli_value(Some(q)), period) != a.cpu_quota)
                        .then(|| milli_quantity(quota_to_milli_cpu(a.cpu_quota, period)))
                }
                ("memory", Some(a)) if a.memory_limit_in_bytes > 0 => (value(Some(q))
                    != a.memory_limit_in_bytes)
                    .then(|| Quantity(a.memory_limit_in_bytes.to_string())),
                _ => None,
            };
            limits.insert(name.clone(), reported.unwrap_or_else(|| q.clone()));
        }
    }
    if let Some(alloc_requests) = &alloc.requests {
        for (name, q) in alloc_requests {
            let reported = match (name.as_str(), applied) {
                ("cpu", Some(a)) if a.cpu_shares > 0 => (milli_cpu_to_shares(milli_value(Some(q)))
                    != a.cpu_shares)
                    .then(|| milli_quantity(shares_to_milli_cpu(a.cpu_shares))),
                _ => None,
            };
            requests.insert(name.clone(), reported.unwrap_or_else(|| q.clone()));
        }
    }
    ResourceRequirements {
        limits: (!limits.is_empty()).then_some(limits),
        requests: (!requests.is_empty()).then_some(requests),
        claims: None,
    }
}

/// `allocatedResources`: the allocated requests.
pub fn allocated_resources(c: &Container) -> Option<BTreeMap<String, Quantity>> {
    c.resources
        .as_ref()
        .and_then(|r| r.requests.clone())
        .filter(|r| !r.is_empty())
}

/// Whether any running container still runs with resources other than its allocation
/// (the `PodResizeInProgress` condition).
pub fn resize_in_progress<'a>(
    pod: &Pod,
    running: impl Iterator<Item = (&'a Container, &'a ContainerRecord)>,
    cpu_cfs_quota: bool,
) -> bool {
    running
        .filter_map(|(c, r)| container_resize_action(pod, c, r, cpu_cfs_quota))
        .next()
        .is_some()
}
