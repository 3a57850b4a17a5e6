//! Resource arithmetic the scheduler works in (upstream `framework.Resource` and
//! `resourcehelper.PodRequests`), in integer milli-CPU and bytes/units.

use std::collections::BTreeMap;

use component_base::quantity::ParsedQuantity;
use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

pub const CPU: &str = "cpu";
pub const MEMORY: &str = "memory";
pub const EPHEMERAL_STORAGE: &str = "ephemeral-storage";
pub const PODS: &str = "pods";

/// Scoring default for a container without a CPU request (upstream `DefaultMilliCPURequest`).
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
/// Scoring default for a container without a memory request (upstream `DefaultMemoryRequest`, 200Mi).
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// Aggregated resources of a node or pod.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resource {
    pub milli_cpu: i64,
    pub memory: i64,
    pub ephemeral_storage: i64,
    pub allowed_pod_number: i64,
    /// Extended, hugepages-* and attachable-volumes-* resources.
    pub scalar: BTreeMap<String, i64>,
}

/// Whether `name` is tracked as a scalar resource (upstream `IsScalarResourceName`).
pub fn is_scalar_resource_name(name: &str) -> bool {
    is_extended_resource_name(name)
        || name.starts_with("hugepages-")
        || name.starts_with("attachable-volumes-")
}

/// Extended resources are namespaced outside kubernetes.io (upstream `IsExtendedResourceName`).
pub fn is_extended_resource_name(name: &str) -> bool {
    let native = !name.contains('/') || name.contains("kubernetes.io/");
    !native && !name.starts_with("requests.")
}

/// Integer value the scheduler uses for a quantity: milli-units for CPU, rounded-up units otherwise.
/// Unparseable quantities count as zero (the apiserver validates them, so this only guards
/// against garbage in tests or from a misbehaving client).
pub fn quantity_to_int(name: &str, q: &Quantity) -> i64 {
    match ParsedQuantity::try_from(q) {
        Ok(p) if name == CPU => p.milli_value(),
        Ok(p) => p.value(),
        Err(err) => {
            tracing::debug!(resource = name, quantity = %q.0, %err, "ignoring unparseable quantity");
            0
        }
    }
}

impl Resource {
    pub fn add_named(&mut self, name: &str, v: i64) {
        match name {
            CPU => self.milli_cpu += v,
            MEMORY => self.memory += v,
            EPHEMERAL_STORAGE => self.ephemeral_storage += v,
            PODS => self.allowed_pod_number += v,
            other if is_scalar_resource_name(other) => {
                *self.scalar.entry(other.to_string()).or_insert(0) += v;
            }
            _ => {}
        }
    }

    fn max_named(&mut self, name: &str, v: i64) {
        match name {
            CPU => self.milli_cpu = self.milli_cpu.max(v),
            MEMORY => self.memory = self.memory.max(v),
            EPHEMERAL_STORAGE => self.ephemeral_storage = self.ephemeral_storage.max(v),
            PODS => self.allowed_pod_number = self.allowed_pod_number.max(v),
            other if is_scalar_resource_name(other) => {
                let e = self.scalar.entry(other.to_string()).or_insert(0);
                *e = (*e).max(v);
            }
            _ => {}
        }
    }

    /// Adds a `ResourceList` (node allocatable, overhead, ...).
    pub fn add_list(&mut self, list: &BTreeMap<String, Quantity>) {
        for (name, q) in list {
            self.add_named(name, quantity_to_int(name, q));
        }
    }

    pub fn from_list(list: Option<&BTreeMap<String, Quantity>>) -> Self {
        let mut r = Resource::default();
        if let Some(l) = list {
            r.add_list(l);
        }
        r
    }

    pub fn add(&mut self, other: &Resource) {
        self.milli_cpu += other.milli_cpu;
        self.memory += other.memory;
        self.ephemeral_storage += other.ephemeral_storage;
        self.allowed_pod_number += other.allowed_pod_number;
        for (k, v) in &other.scalar {
            *self.scalar.entry(k.clone()).or_insert(0) += v;
        }
    }

    pub fn sub(&mut self, other: &Resource) {
        self.milli_cpu -= other.milli_cpu;
        self.memory -= other.memory;
        self.ephemeral_storage -= other.ephemeral_storage;
        self.allowed_pod_number -= other.allowed_pod_number;
        for (k, v) in &other.scalar {
            *self.scalar.entry(k.clone()).or_insert(0) -= v;
        }
    }

    fn max_with(&mut self, other: &Resource) {
        self.milli_cpu = self.milli_cpu.max(other.milli_cpu);
        self.memory = self.memory.max(other.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(other.ephemeral_storage);
        for (k, v) in &other.scalar {
            self.max_named(k, *v);
        }
    }

    pub fn get(&self, name: &str) -> i64 {
        match name {
            CPU => self.milli_cpu,
            MEMORY => self.memory,
            EPHEMERAL_STORAGE => self.ephemeral_storage,
            PODS => self.allowed_pod_number,
            other => self.scalar.get(other).copied().unwrap_or(0),
        }
    }

    pub fn is_zero(&self) -> bool {
        self.milli_cpu == 0
            && self.memory == 0
            && self.ephemeral_storage == 0
            && self.scalar.is_empty()
    }
}

/// Requests of one container; with `non_missing` a missing CPU/memory request counts as the
/// scoring default (an explicit zero stays zero, as upstream).
fn container_requests(c: &Container, non_missing: bool) -> Resource {
    let mut r = Resource::default();
    let requests = c.resources.as_ref().and_then(|res| res.requests.as_ref());
    if let Some(reqs) = requests {
        r.add_list(reqs);
    }
    if non_missing {
        let has = |n: &str| requests.is_some_and(|m| m.contains_key(n));
        if !has(CPU) {
            r.milli_cpu = DEFAULT_MILLI_CPU_REQUEST;
        }
        if !has(MEMORY) {
            r.memory = DEFAULT_MEMORY_REQUEST;
        }
    }
    r
}

/// Effective pod requests (upstream `resourcehelper.PodRequests`): the larger of the sum of app
/// containers plus sidecars and, for each init container, itself plus the sidecars started before
/// it; pod-level requests win where set; pod overhead is added on top.
pub fn pod_requests(pod: &Pod, non_missing: bool) -> Resource {
    let mut reqs = Resource::default();
    let Some(spec) = pod.spec.as_ref() else {
        return reqs;
    };
    for c in &spec.containers {
        reqs.add(&container_requests(c, non_missing));
    }
    let mut sidecars = Resource::default();
    let mut init_max = Resource::default();
    for c in spec.init_containers.iter().flatten() {
        let own = container_requests(c, non_missing);
        if c.restart_policy.as_deref() == Some("Always") {
            reqs.add(&own);
            sidecars.add(&own);
            init_max.max_with(&sidecars);
        } else {
            let mut tmp = own;
            tmp.add(&sidecars);
            init_max.max_with(&tmp);
        }
    }
    reqs.max_with(&init_max);
    apply_pod_level_requests(spec, &mut reqs);
    if let Some(overhead) = spec.overhead.as_ref() {
        reqs.add_list(overhead);
    }
    reqs
}

/// Pod-level resources (PodLevelResources, on by default) replace the container aggregate for
/// the resources they name; only cpu, memory and hugepages are supported at pod level.
fn apply_pod_level_requests(spec: &k8s_openapi::api::core::v1::PodSpec, reqs: &mut Resource) {
    let Some(pod_reqs) = spec.resources.as_ref().and_then(|r| r.requests.as_ref()) else {
        return;
    };
    for (name, q) in pod_reqs {
        let v = quantity_to_int(name, q);
        match name.as_str() {
            CPU => reqs.milli_cpu = v,
            MEMORY => reqs.memory = v,
            n if n.starts_with("hugepages-") => {
                reqs.scalar.insert(n.to_string(), v);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{container, pod_with};

    #[test]
    fn pod_requests_table() {
        struct Case {
            name: &'static str,
            containers: Vec<Container>,
            init: Vec<Container>,
            non_missing: bool,
            want_cpu: i64,
            want_mem: i64,
        }
        let mut sidecar = container(&[("cpu", "1"), ("memory", "1Gi")]);
        sidecar.restart_policy = Some("Always".into());
        let gi = 1024 * 1024 * 1024;
        let cases = vec![
            Case {
                name: "sum of app containers",
                containers: vec![container(&[("cpu", "500m")]), container(&[("cpu", "1")])],
                init: vec![],
                non_missing: false,
                want_cpu: 1500,
                want_mem: 0,
            },
            Case {
                name: "init container larger than apps wins",
                containers: vec![container(&[("cpu", "1"), ("memory", "1Gi")])],
                init: vec![container(&[("cpu", "2"), ("memory", "3Gi")])],
                non_missing: false,
                want_cpu: 2000,
                want_mem: 3 * gi,
            },
            Case {
                name: "sidecar adds to apps and to later init containers",
                containers: vec![container(&[("cpu", "1")])],
                init: vec![sidecar.clone(), container(&[("cpu", "2500m")])],
                non_missing: false,
                want_cpu: 3500,
                want_mem: gi,
            },
            Case {
                name: "non-missing defaults for scoring",
                containers: vec![container(&[]), container(&[("cpu", "0")])],
                init: vec![],
                non_missing: true,
                want_cpu: 100,
                want_mem: 2 * DEFAULT_MEMORY_REQUEST,
            },
        ];
        for c in cases {
            let mut pod = pod_with(c.containers);
            if let Some(spec) = pod.spec.as_mut() {
                spec.init_containers = Some(c.init);
            }
            let r = pod_requests(&pod, c.non_missing);
            assert_eq!(r.milli_cpu, c.want_cpu, "{}", c.name);
            assert_eq!(r.memory, c.want_mem, "{}", c.name);
        }
    }

    #[test]
    fn overhead_is_added() {
        let mut pod = pod_with(vec![container(&[("cpu", "100m")])]);
        if let Some(spec) = pod.spec.as_mut() {
            spec.overhead = Some(BTreeMap::from([(
                "cpu".to_string(),
                Quantity("250m".into()),
            )]));
        }
        assert_eq!(pod_requests(&pod, false).milli_cpu, 350);
    }

    #[test]
    fn scalar_names() {
        assert!(is_scalar_resource_name("example.com/gpu"));
        assert!(is_scalar_resource_name("hugepages-2Mi"));
        assert!(!is_scalar_resource_name("kubernetes.io/foo"));
        assert!(!is_scalar_resource_name("cpu"));
    }
}
