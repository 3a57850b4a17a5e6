//! Resource lists with exact quantities (upstream `k8s.io/apiserver/pkg/quota/v1`
//! `Add`/`Mask`/`Equals`) and a pod's effective requests and limits (upstream
//! `component-helpers/resource.PodRequests`/`PodLimits` with the options the
//! quota evaluator passes, and `qos.GetPodQOS` for the BestEffort scope).

use std::collections::BTreeMap;

use component_base::quantity::{ParsedQuantity, Quantity, QuantityError};
use k8s_openapi::api::core::v1::{Container, ContainerStatus, Pod};

/// A resource list with parsed quantities, ordered by name.
pub type ResourceList = BTreeMap<String, ParsedQuantity>;

/// Parses an API resource list; quantities the apiserver validated always parse.
pub fn parse_list(
    list: Option<&BTreeMap<String, Quantity>>,
) -> Result<ResourceList, QuantityError> {
    list.into_iter()
        .flatten()
        .map(|(name, q)| Ok((name.clone(), ParsedQuantity::try_from(q)?)))
        .collect()
}

/// The API form of a resource list (canonical quantity strings).
pub fn to_api(list: &ResourceList) -> BTreeMap<String, Quantity> {
    list.iter()
        .map(|(name, q)| (name.clone(), q.to_quantity()))
        .collect()
}

/// Upstream `quota.Add`: the sum per name, names from either side.
pub fn add(into: &mut ResourceList, other: &ResourceList) {
    for (name, q) in other {
        match into.get_mut(name) {
            Some(have) => *have += q,
            None => {
                into.insert(name.clone(), q.clone());
            }
        }
    }
}

/// `into[name] = max(into[name], other[name])` for every name of `other`.
fn max_into(into: &mut ResourceList, other: &ResourceList) {
    for (name, q) in other {
        match into.get_mut(name) {
            Some(have) if *have >= *q => {}
            Some(have) => *have = q.clone(),
            None => {
                into.insert(name.clone(), q.clone());
            }
        }
    }
}

/// Upstream `quota.Equals`: same names, numerically equal quantities.
pub fn equals(a: &ResourceList, b: &ResourceList) -> bool {
    a.len() == b.len() && a.iter().all(|(name, q)| b.get(name) == Some(q))
}

const RESTART_ALWAYS: &str = "Always";
const SUPPORTED_POD_LEVEL: &[&str] = &["cpu", "memory"];
const HUGEPAGES_PREFIX: &str = "hugepages-";

fn is_supported_pod_level_resource(name: &str) -> bool {
    SUPPORTED_POD_LEVEL.contains(&name) || name.starts_with(HUGEPAGES_PREFIX)
}

fn is_sidecar(c: &Container) -> bool {
    c.restart_policy.as_deref() == Some(RESTART_ALWAYS)
}

/// Upstream `IsPodResizeInfeasible`.
fn resize_infeasible(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "PodResizePending"))
        .is_some_and(|c| c.reason.as_deref() == Some("Infeasible"))
}

/// Which side of a container's resources is being aggregated.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Requests,
    Limits,
}

struct PodView<'a> {
    pod: &'a Pod,
    statuses: BTreeMap<&'a str, &'a ContainerStatus>,
    infeasible: bool,
}

impl<'a> PodView<'a> {
    fn new(pod: &'a Pod) -> Self {
        let status = pod.status.as_ref();
        let statuses = status
            .and_then(|s| s.container_statuses.as_ref())
            .into_iter()
            .chain(status.and_then(|s| s.init_container_statuses.as_ref()))
            .flatten()
            .map(|cs| (cs.name.as_str(), cs))
            .collect();
        Self {
            pod,
            statuses,
            infeasible: resize_infeasible(pod),
        }
    }

    /// A container's effective requests or limits (upstream
    /// `determineEffectiveRequests`/`Limits` under in-place resize, which
    /// is GA): the spec, raised to what the kubelet actuated or allocated.
    fn effective(&self, c: &Container, side: Side) -> Result<ResourceList, QuantityError> {
        let res = c.resources.as_ref();
        let spec = parse_list(match side {
            Side::Requests => res.and_then(|r| r.requests.as_ref()),
            Side::Limits => res.and_then(|r| r.limits.as_ref()),
        })?;
        let Some(cs) = self.statuses.get(c.name.as_str()) else {
            return Ok(spec);
        };
        let Some(actuated) = cs.resources.as_ref() else {
            return Ok(spec);
        };
        let actuated = parse_list(match side {
            Side::Requests => actuated.requests.as_ref(),
            Side::Limits => actuated.limits.as_ref(),
        })?;
        let allocated = match side {
            Side::Requests => parse_list(cs.allocated_resources.as_ref())?,
            Side::Limits => ResourceList::new(),
        };
        if self.infeasible {
            let mut out = actuated;
            max_into(&mut out, &allocated);
            return Ok(out);
        }
        let mut out = spec;
        max_into(&mut out, &actuated);
        max_into(&mut out, &allocated);
        Ok(out)
    }

    /// Upstream `AggregateContainerRequests`/`Limits`: app containers and
    /// sidecars add up; each regular init container counts with the sidecars
    /// started before it; the pod needs the larger of the two.
    fn aggregate(&self, side: Side) -> Result<ResourceList, QuantityError> {
        let spec = self.pod.spec.as_ref();
        let mut total = ResourceList::new();
        for c in spec.map(|s| s.containers.as_slice()).unwrap_or_default() {
            add(&mut total, &self.effective(c, side)?);
        }
        let mut sidecars = ResourceList::new();
        let mut init_max = ResourceList::new();
        for c in spec
            .and_then(|s| s.init_containers.as_deref())
            .unwrap_or_default()
        {
            let own = if is_sidecar(c) {
                self.effective(c, side)?
            } else {
                parse_list(c.resources.as_ref().and_then(|r| match side {
                    Side::Requests => r.requests.as_ref(),
                    Side::Limits => r.limits.as_ref(),
                }))?
            };
            let step = if is_sidecar(c) {
                add(&mut total, &own);
                add(&mut sidecars, &own);
                sidecars.clone()
            } else {
                let mut step = own;
                add(&mut step, &sidecars);
                step
            };
            max_into(&mut init_max, &step);
        }
        max_into(&mut total, &init_max);
        Ok(total)
    }

    /// Pod-level resources (PodLevelResources, on by default) replace the
    /// aggregate for the resources they support.
    fn pod_level(&self, side: Side) -> Result<ResourceList, QuantityError> {
        let res = self.pod.spec.as_ref().and_then(|s| s.resources.as_ref());
        let list = parse_list(res.and_then(|r| match side {
            Side::Requests => r.requests.as_ref(),
            Side::Limits => r.limits.as_ref(),
        }))?;
        Ok(list
            .into_iter()
            .filter(|(name, _)| is_supported_pod_level_resource(name))
            .collect())
    }

    fn overhead(&self) -> Result<ResourceList, QuantityError> {
        parse_list(self.pod.spec.as_ref().and_then(|s| s.overhead.as_ref()))
    }
}

/// Upstream `PodRequests` (status resources and pod-level resources on,
/// overhead included).
pub fn pod_requests(pod: &Pod) -> Result<ResourceList, QuantityError> {
    let view = PodView::new(pod);
    let mut reqs = view.aggregate(Side::Requests)?;
    reqs.extend(view.pod_level(Side::Requests)?);
    add(&mut reqs, &view.overhead()?);
    Ok(reqs)
}

/// Upstream `PodLimits`: overhead is added only to limits that are set.
pub fn pod_limits(pod: &Pod) -> Result<ResourceList, QuantityError> {
    let view = PodView::new(pod);
    let mut limits = view.aggregate(Side::Limits)?;
    limits.extend(view.pod_level(Side::Limits)?);
    for (name, q) in view.overhead()? {
        if let Some(have) = limits.get_mut(&name).filter(|v| !v.is_zero()) {
            *have += &q;
        }
    }
    Ok(limits)
}

const QOS_RESOURCES: &[&str] = &["cpu", "memory"];

/// Upstream `qos.GetPodQOS(pod) == BestEffort`: the recorded class, else
/// no positive cpu/memory request or limit (pod-level resources, when
/// set, decide instead of the containers).
pub fn is_best_effort(pod: &Pod) -> bool {
    if let Some(class) = pod
        .status
        .as_ref()
        .and_then(|s| s.qos_class.as_deref())
        .filter(|c| !c.is_empty())
    {
        return class == "BestEffort";
    }
    let positive = |list: Option<&BTreeMap<String, Quantity>>| {
        list.into_iter().flatten().any(|(name, q)| {
            QOS_RESOURCES.contains(&name.as_str())
                && ParsedQuantity::try_from(q).is_ok_and(|q| q.sign() > 0)
        })
    };
    let Some(spec) = pod.spec.as_ref() else {
        return true;
    };
    if let Some(res) = spec.resources.as_ref() {
        return !positive(res.requests.as_ref()) && !positive(res.limits.as_ref());
    }
    !spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .filter_map(|c| c.resources.as_ref())
        .any(|r| positive(r.requests.as_ref()) || positive(r.limits.as_ref()))
}
