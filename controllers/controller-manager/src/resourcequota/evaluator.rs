//! Quota evaluators (upstream `pkg/quota/v1/evaluator/core` and
//! `apiserver/pkg/quota/v1/generic`): which quota resource names an
//! evaluator answers for, what one object uses, and whether it matches a
//! quota's scopes. Pure: objects in, resource lists out.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use component_base::quantity::{Format, ParsedQuantity, QuantityError};
use component_base::selectors::validation::qualified_name_errors;
use component_base::selectors::{Operator, Requirement};
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, Pod, PodAffinityTerm, ScopedResourceSelectorRequirement, Service,
};

use super::resources::{self, ResourceList};

/// A group and resource (upstream `schema.GroupResource`); the core group is `""`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupResource {
    pub group: String,
    pub resource: String,
}

impl GroupResource {
    pub fn new(group: &str, resource: &str) -> Self {
        Self {
            group: group.to_string(),
            resource: resource.to_string(),
        }
    }

    /// Upstream `ObjectCountQuotaResourceNameFor`: `count/<resource>` in the
    /// core group, `count/<resource>.<group>` elsewhere.
    pub fn count_name(&self) -> String {
        if self.group.is_empty() {
            format!("count/{}", self.resource)
        } else {
            format!("count/{}.{}", self.resource, self.group)
        }
    }
}

/// Upstream `legacyObjectCountAliases`: object counts that also answer to
/// their pre-`count/` name.
pub const LEGACY_ALIASES: &[(&str, &str)] = &[
    ("configmaps", "configmaps"),
    ("resourcequotas", "resourcequotas"),
    ("replicationcontrollers", "replicationcontrollers"),
    ("secrets", "secrets"),
];

/// The group-resources with their own evaluator (read from typed caches);
/// every other quotable resource is counted by a generic monitor.
pub const TYPED: &[&str] = &["pods", "services", "persistentvolumeclaims"];

const POD_RESOURCES: &[&str] = &[
    "count/pods",
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "pods",
];
const POD_RESOURCE_PREFIXES: &[&str] = &["hugepages-", "requests.hugepages-"];
const SERVICE_RESOURCES: &[&str] = &[
    "count/services",
    "services",
    "services.nodeports",
    "services.loadbalancers",
];
const PVC_RESOURCES: &[&str] = &["persistentvolumeclaims", "requests.storage"];
const STORAGE_CLASS_SUFFIX: &str = ".storageclass.storage.k8s.io/";
const REQUESTS_PREFIX: &str = "requests.";

/// One evaluator of the controller's registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Evaluator {
    Pods,
    Services,
    PersistentVolumeClaims,
    /// Upstream `objectCountEvaluator`: every stored object counts one.
    ObjectCount {
        resource: GroupResource,
        alias: Option<&'static str>,
    },
}

impl Evaluator {
    /// The object-count evaluator for a discovered resource.
    pub fn object_count(resource: GroupResource) -> Self {
        let alias = if resource.group.is_empty() {
            LEGACY_ALIASES
                .iter()
                .find(|(r, _)| *r == resource.resource)
                .map(|(_, alias)| *alias)
        } else {
            None
        };
        Evaluator::ObjectCount { resource, alias }
    }

    pub fn group_resource(&self) -> GroupResource {
        match self {
            Evaluator::Pods => GroupResource::new("", "pods"),
            Evaluator::Services => GroupResource::new("", "services"),
            Evaluator::PersistentVolumeClaims => GroupResource::new("", "persistentvolumeclaims"),
            Evaluator::ObjectCount { resource, .. } => resource.clone(),
        }
    }

    /// Upstream `MatchingResources`: the names of `input` this evaluator computes.
    pub fn matching_resources<'a>(&self, input: impl IntoIterator<Item = &'a str>) -> Vec<String> {
        input
            .into_iter()
            .filter(|name| self.matches_resource(name))
            .map(str::to_string)
            .collect()
    }

    fn matches_resource(&self, name: &str) -> bool {
        match self {
            Evaluator::Pods => {
                POD_RESOURCES.contains(&name)
                    || POD_RESOURCE_PREFIXES.iter().any(|p| name.starts_with(p))
                    || is_extended_resource_name_for_quota(name)
            }
            Evaluator::Services => SERVICE_RESOURCES.contains(&name),
            Evaluator::PersistentVolumeClaims => {
                name == "count/persistentvolumeclaims"
                    || PVC_RESOURCES.contains(&name)
                    || PVC_RESOURCES
                        .iter()
                        .any(|r| name.ends_with(&format!("{STORAGE_CLASS_SUFFIX}{r}")))
            }
            Evaluator::ObjectCount { resource, alias } => {
                name == resource.count_name() || Some(name) == *alias
            }
        }
    }
}

/// Upstream `helper.IsNativeResource`: unprefixed or in `kubernetes.io/`.
fn is_native_resource(name: &str) -> bool {
    !name.contains('/') || name.contains("kubernetes.io/")
}

/// Upstream `isExtendedResourceNameForQuota`: `requests.<extended>`.
fn is_extended_resource_name_for_quota(name: &str) -> bool {
    !is_native_resource(name) && name.starts_with(REQUESTS_PREFIX)
}

/// Upstream `helper.IsExtendedResourceName`: not native, not `requests.`,
/// and `requests.<name>` is a qualified name.
fn is_extended_resource_name(name: &str) -> bool {
    if is_native_resource(name) || name.starts_with(REQUESTS_PREFIX) {
        return false;
    }
    qualified_name_errors(&format!("{REQUESTS_PREFIX}{name}")).is_empty()
}

fn one() -> ParsedQuantity {
    ParsedQuantity::new(1, Format::DecimalSI)
}

fn count(n: usize) -> ParsedQuantity {
    ParsedQuantity::new(i64::try_from(n).unwrap_or(i64::MAX), Format::DecimalSI)
}

/// Upstream `QuotaV1Pod`: terminal pods, and pods past their deletion grace
/// period, are not charged compute resources.
pub fn quota_v1_pod(pod: &Pod, now: SystemTime) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if matches!(phase, Some("Failed") | Some("Succeeded")) {
        return false;
    }
    if let (Some(ts), Some(grace)) = (
        pod.metadata.deletion_timestamp.as_ref(),
        pod.metadata.deletion_grace_period_seconds,
    ) {
        let deleted_at = SystemTime::from(ts.0);
        let grace = Duration::from_secs(u64::try_from(grace.max(0)).unwrap_or(0));
        if now > deleted_at + grace {
            return false;
        }
    }
    true
}

/// Upstream `podComputeUsageHelper`.
fn pod_compute_usage(requests: &ResourceList, limits: &ResourceList) -> ResourceList {
    let mut out = ResourceList::new();
    out.insert("pods".into(), one());
    for (res, (plain, req, lim)) in [
        ("cpu", ("cpu", "requests.cpu", "limits.cpu")),
        ("memory", ("memory", "requests.memory", "limits.memory")),
        (
            "ephemeral-storage",
            (
                "ephemeral-storage",
                "requests.ephemeral-storage",
                "limits.ephemeral-storage",
            ),
        ),
    ] {
        if let Some(q) = requests.get(res) {
            out.insert(plain.into(), q.clone());
            out.insert(req.into(), q.clone());
        }
        if let Some(q) = limits.get(res) {
            out.insert(lim.into(), q.clone());
        }
    }
    for (name, q) in requests {
        if name.starts_with("hugepages-") {
            out.insert(name.clone(), q.clone());
            out.insert(format!("{REQUESTS_PREFIX}{name}"), q.clone());
        }
        if is_extended_resource_name(name) {
            out.insert(format!("{REQUESTS_PREFIX}{name}"), q.clone());
        }
    }
    out
}

/// Upstream `PodUsageFunc`: `count/pods` always; the rest only while the
/// pod is charged ([`quota_v1_pod`]).
pub fn pod_usage(pod: &Pod, now: SystemTime) -> Result<ResourceList, QuantityError> {
    let mut out = ResourceList::from([("count/pods".to_string(), one())]);
    if !quota_v1_pod(pod, now) {
        return Ok(out);
    }
    let requests = resources::pod_requests(pod)?;
    let limits = resources::pod_limits(pod)?;
    resources::add(&mut out, &pod_compute_usage(&requests, &limits));
    Ok(out)
}

/// Upstream `GetQuotaServiceType`: the types quota tracks separately.
pub fn quota_service_type(svc: &Service) -> &str {
    let t = svc
        .spec
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        .unwrap_or_default();
    if matches!(t, "NodePort" | "LoadBalancer") {
        t
    } else {
        ""
    }
}

/// Upstream service `Usage`: node ports counted by intent (all ports unless
/// a load balancer suppresses node port allocation).
pub fn service_usage(svc: &Service) -> ResourceList {
    let spec = svc.spec.as_ref();
    let ports = spec.and_then(|s| s.ports.as_ref());
    let port_count = ports.map_or(0, Vec::len);
    let mut out = ResourceList::from([
        ("count/services".to_string(), one()),
        ("services".to_string(), one()),
        ("services.loadbalancers".to_string(), ParsedQuantity::zero()),
        ("services.nodeports".to_string(), ParsedQuantity::zero()),
    ]);
    match quota_service_type(svc) {
        "NodePort" => {
            out.insert("services.nodeports".into(), count(port_count));
        }
        "LoadBalancer" => {
            let node_ports =
                if spec.and_then(|s| s.allocate_load_balancer_node_ports) == Some(false) {
                    ports
                        .into_iter()
                        .flatten()
                        .filter(|p| p.node_port.unwrap_or(0) != 0)
                        .count()
                } else {
                    port_count
                };
            out.insert("services.nodeports".into(), count(node_ports));
            out.insert("services.loadbalancers".into(), one());
        }
        _ => {}
    }
    out
}

/// Upstream `storagehelpers.GetPersistentVolumeClaimClass`: the beta
/// annotation wins over `spec.storageClassName`.
pub fn pvc_storage_class(pvc: &PersistentVolumeClaim) -> &str {
    if let Some(class) = pvc
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("volume.beta.kubernetes.io/storage-class"))
    {
        return class;
    }
    pvc.spec
        .as_ref()
        .and_then(|s| s.storage_class_name.as_deref())
        .unwrap_or_default()
}

/// Rounds up to whole bytes (upstream issue 94313).
fn round_up_bytes(q: &ParsedQuantity) -> ParsedQuantity {
    let mut q = q.clone();
    q.round_up(0);
    q
}

/// Upstream `getStorageUsage`: the request, raised to what was allocated.
fn pvc_storage_usage(pvc: &PersistentVolumeClaim) -> Result<Option<ParsedQuantity>, QuantityError> {
    let requests = resources::parse_list(
        pvc.spec
            .as_ref()
            .and_then(|s| s.resources.as_ref())
            .and_then(|r| r.requests.as_ref()),
    )?;
    let Some(request) = requests.get("storage").map(round_up_bytes) else {
        return Ok(None);
    };
    let allocated = resources::parse_list(
        pvc.status
            .as_ref()
            .and_then(|s| s.allocated_resources.as_ref()),
    )?;
    Ok(Some(match allocated.get("storage") {
        Some(a) if *a > request => round_up_bytes(a),
        _ => request,
    }))
}

/// Upstream PVC `Usage`.
pub fn pvc_usage(pvc: &PersistentVolumeClaim) -> Result<ResourceList, QuantityError> {
    let mut out = ResourceList::from([
        ("persistentvolumeclaims".to_string(), one()),
        ("count/persistentvolumeclaims".to_string(), one()),
    ]);
    let class = pvc_storage_class(pvc);
    if !class.is_empty() {
        out.insert(
            format!("{class}{STORAGE_CLASS_SUFFIX}persistentvolumeclaims"),
            one(),
        );
    }
    if let Some(storage) = pvc_storage_usage(pvc)? {
        if !class.is_empty() {
            out.insert(
                format!("{class}{STORAGE_CLASS_SUFFIX}requests.storage"),
                storage.clone(),
            );
        }
        out.insert("requests.storage".into(), storage);
    }
    Ok(out)
}

/// Upstream `getReferencedVolumeAttributesClassNames`.
pub fn pvc_volume_attributes_classes(pvc: &PersistentVolumeClaim) -> BTreeSet<String> {
    let spec = pvc
        .spec
        .as_ref()
        .and_then(|s| s.volume_attributes_class_name.clone());
    let status = pvc.status.as_ref();
    let current = status.and_then(|s| s.current_volume_attributes_class_name.clone());
    let target = status
        .and_then(|s| s.modify_volume_status.as_ref())
        .and_then(|m| m.target_volume_attributes_class_name.clone());
    [spec, current, target]
        .into_iter()
        .flatten()
        .filter(|n| !n.is_empty())
        .collect()
}

/// Upstream `RequiresQuotaReplenish` (the PVC update filter): allocated
/// storage or referenced attribute classes changed.
pub fn pvc_requires_replenish(new: &PersistentVolumeClaim, old: &PersistentVolumeClaim) -> bool {
    let allocated = |p: &PersistentVolumeClaim| {
        p.status
            .as_ref()
            .and_then(|s| s.allocated_resources.as_ref())
            .and_then(|a| a.get("storage"))
            .and_then(|q| ParsedQuantity::try_from(q).ok())
    };
    allocated(new) != allocated(old)
        || pvc_volume_attributes_classes(new) != pvc_volume_attributes_classes(old)
}

/// A scope or scope-selector expression that cannot be evaluated.
#[derive(Debug, thiserror::Error)]
#[error("failed to parse and convert selector: {0}")]
pub struct ScopeError(String);

/// Upstream `ScopedResourceSelectorRequirementsAsSelector` applied to one
/// label set: the scope name is the key.
fn selector_matches(
    sel: &ScopedResourceSelectorRequirement,
    labels: &std::collections::BTreeMap<String, String>,
) -> Result<bool, ScopeError> {
    let op = match sel.operator.as_str() {
        "In" => Operator::In,
        "NotIn" => Operator::NotIn,
        "Exists" => Operator::Exists,
        "DoesNotExist" => Operator::DoesNotExist,
        other => {
            return Err(ScopeError(format!(
                "{other:?} is not a valid pod selector operator"
            )));
        }
    };
    let values = match op {
        Operator::Exists | Operator::DoesNotExist => Vec::new(),
        _ => sel.values.clone().unwrap_or_default(),
    };
    let req = Requirement::new(sel.scope_name.clone(), op, values)
        .map_err(|e| ScopeError(e.to_string()))?;
    Ok(req.matches(labels))
}

fn is_terminating(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.active_deadline_seconds)
        .is_some_and(|d| d >= 0)
}

fn cross_namespace_term(t: &PodAffinityTerm) -> bool {
    t.namespaces.as_ref().is_some_and(|n| !n.is_empty()) || t.namespace_selector.is_some()
}

/// Upstream `usesCrossNamespacePodAffinity`.
fn uses_cross_namespace_pod_affinity(pod: &Pod) -> bool {
    let Some(affinity) = pod.spec.as_ref().and_then(|s| s.affinity.as_ref()) else {
        return false;
    };
    let terms =
        |req: Option<&Vec<PodAffinityTerm>>,
         pref: Option<&Vec<k8s_openapi::api::core::v1::WeightedPodAffinityTerm>>| {
            req.into_iter().flatten().any(cross_namespace_term)
                || pref
                    .into_iter()
                    .flatten()
                    .any(|w| cross_namespace_term(&w.pod_affinity_term))
        };
    let aff = affinity.pod_affinity.as_ref().is_some_and(|a| {
        terms(
            a.required_during_scheduling_ignored_during_execution
                .as_ref(),
            a.preferred_during_scheduling_ignored_during_execution
                .as_ref(),
        )
    });
    let anti = affinity.pod_anti_affinity.as_ref().is_some_and(|a| {
        terms(
            a.required_during_scheduling_ignored_during_execution
                .as_ref(),
            a.preferred_during_scheduling_ignored_during_execution
                .as_ref(),
        )
    });
    aff || anti
}

/// Upstream `podMatchesScopeFunc`.
pub fn pod_matches_scope(
    sel: &ScopedResourceSelectorRequirement,
    pod: &Pod,
) -> Result<bool, ScopeError> {
    Ok(match sel.scope_name.as_str() {
        "Terminating" => is_terminating(pod),
        "NotTerminating" => !is_terminating(pod),
        "BestEffort" => resources::is_best_effort(pod),
        "NotBestEffort" => !resources::is_best_effort(pod),
        "PriorityClass" => {
            let class = pod
                .spec
                .as_ref()
                .and_then(|s| s.priority_class_name.as_deref())
                .unwrap_or_default();
            if sel.operator == "Exists" {
                !class.is_empty()
            } else {
                let mut labels = std::collections::BTreeMap::new();
                if !class.is_empty() {
                    labels.insert("PriorityClass".to_string(), class.to_string());
                }
                selector_matches(sel, &labels)?
            }
        }
        "CrossNamespacePodAffinity" => uses_cross_namespace_pod_affinity(pod),
        _ => false,
    })
}

/// Upstream `pvcMatchesScopeFunc` (VolumeAttributesClass is GA).
pub fn pvc_matches_scope(
    sel: &ScopedResourceSelectorRequirement,
    pvc: &PersistentVolumeClaim,
) -> Result<bool, ScopeError> {
    if sel.scope_name != "VolumeAttributesClass" {
        return Ok(false);
    }
    let names = pvc_volume_attributes_classes(pvc);
    if sel.operator == "Exists" {
        return Ok(!names.is_empty());
    }
    if names.is_empty() {
        return selector_matches(sel, &std::collections::BTreeMap::new());
    }
    for name in names {
        let labels =
            std::collections::BTreeMap::from([("VolumeAttributesClass".to_string(), name)]);
        if selector_matches(sel, &labels)? {
            return Ok(true);
        }
    }
    Ok(false)
}
