//! The DaemonSet controller's pure decisions (upstream
//! `daemon_controller.go` `NodeShouldRunDaemonPod`, `podsShouldBeOnNode`,
//! `manage`, `updateDaemonSetStatus`, and `update.go` `rollingUpdate`):
//! nodes, pods and the current hash in, pods to create/delete and status
//! numbers out.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use component_base::selectors::nodeaffinity::RequiredNodeAffinity;
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::ResourceExt;

use super::backoff::Backoff;
use super::util::{
    BudgetError, add_daemon_tolerations, find_untolerated_taint, is_pod_updated, surge_count,
    unavailable_count,
};
use super::{FAILED_DAEMON_POD_REASON, SUCCEEDED_DAEMON_POD_REASON};
use crate::controller_utils::{is_pod_available, is_pod_ready, pod_phase};
use crate::events::EventSpec;
use crate::history::CONTROLLER_REVISION_HASH_LABEL;

/// Daemon pods grouped by the node they run on or are pinned to.
pub type NodeToPods<'a> = BTreeMap<String, Vec<&'a Pod>>;

fn min_ready_seconds(ds: &DaemonSet) -> i32 {
    ds.spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0)
}

/// Upstream `NewPod`: the pod the DaemonSet would run on `node`, with the
/// daemon tolerations, for the scheduling predicates.
pub fn new_pod(ds: &DaemonSet, node: &str) -> Pod {
    let template = ds.spec.as_ref().map(|s| &s.template);
    let mut spec = template.and_then(|t| t.spec.clone()).unwrap_or_default();
    spec.node_name = Some(node.into());
    add_daemon_tolerations(&mut spec);
    let mut metadata = template
        .and_then(|t| t.metadata.clone())
        .unwrap_or_default();
    metadata.namespace = ds.metadata.namespace.clone();
    Pod {
        metadata,
        spec: Some(spec),
        status: None,
    }
}

/// Upstream `NodeShouldRunDaemonPod`: (`shouldRun`, `shouldContinueRunning`).
/// A pod runs where its node name, node selector/affinity and NoSchedule /
/// NoExecute taints allow; a running pod stays unless a NoExecute taint
/// evicts it.
pub fn node_should_run(node: &Node, ds: &DaemonSet) -> (bool, bool) {
    let node_name = node.name_any();
    let template_node = ds
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or_default();
    if !(template_node.is_empty() || template_node == node_name) {
        return (false, false);
    }
    let pod = new_pod(ds, &node_name);
    // Parse errors do not fit, as upstream ignores them "for compatibility".
    if !RequiredNodeAffinity::from_pod(&pod)
        .matches(node)
        .unwrap_or(false)
    {
        return (false, false);
    }
    let taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or_default();
    let tolerations = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or_default();
    let blocking = find_untolerated_taint(taints, tolerations, |t| {
        t.effect == "NoExecute" || t.effect == "NoSchedule"
    });
    if blocking.is_none() {
        return (true, true);
    }
    let evicting = find_untolerated_taint(taints, tolerations, |t| t.effect == "NoExecute");
    (false, evicting.is_none())
}

/// Upstream `podByCreationTimestampAndPhase`: scheduled pods first, then
/// oldest, then by name.
pub fn sort_by_creation_and_phase(pods: &mut [&Pod]) {
    let scheduled = |p: &Pod| {
        p.spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| !n.is_empty())
    };
    pods.sort_by(|a, b| {
        scheduled(b)
            .cmp(&scheduled(a))
            .then_with(|| {
                let t = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
                t(a).cmp(&t(b))
            })
            .then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
}

/// What `manage` should do, plus the events and requeue it asks for.
#[derive(Debug, Default, PartialEq)]
pub struct ManagePlan {
    pub nodes_needing_pods: Vec<String>,
    pub pods_to_delete: Vec<String>,
    pub events: Vec<EventSpec>,
    /// A failed pod is waiting out its deletion back-off.
    pub requeue_after: Option<Duration>,
}

/// Upstream `failedPodsBackoffKey`.
pub fn failed_pods_backoff_key(ds: &DaemonSet, node: &str) -> String {
    let generation = ds
        .status
        .as_ref()
        .and_then(|s| s.observed_generation)
        .unwrap_or(0);
    format!(
        "{}/{}/{}",
        ds.metadata.uid.as_deref().unwrap_or_default(),
        generation,
        node
    )
}

/// Upstream `podsShouldBeOnNode` for one node, adding to `plan`.
#[allow(clippy::too_many_arguments)]
fn pods_should_be_on_node(
    plan: &mut ManagePlan,
    node: &Node,
    node_to_pods: &NodeToPods<'_>,
    ds: &DaemonSet,
    hash: &str,
    backoff: &mut Backoff,
    clock: Instant,
    now: Timestamp,
) {
    let node_name = node.name_any();
    let (should_run, should_continue) = node_should_run(node, ds);
    let daemon_pods = node_to_pods.get(&node_name);
    if should_run && daemon_pods.is_none() {
        plan.nodes_needing_pods.push(node_name);
        return;
    }
    let daemon_pods = daemon_pods.map(Vec::as_slice).unwrap_or_default();
    if !should_continue {
        plan.pods_to_delete.extend(
            daemon_pods
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .map(|p| p.name_any()),
        );
        return;
    }
    let mut running: Vec<&Pod> = Vec::new();
    for pod in daemon_pods {
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        match pod_phase(pod) {
            "Failed" => {
                let key = failed_pods_backoff_key(ds, &node_name);
                if backoff.in_backoff_since_update(&key, clock) {
                    let delay = backoff.get(&key);
                    plan.requeue_after = Some(plan.requeue_after.map_or(delay, |d| d.min(delay)));
                    continue;
                }
                backoff.next(&key, clock);
                let msg = format!(
                    "Found failed daemon pod {}/{} on node {}, will try to kill it",
                    pod.namespace().unwrap_or_default(),
                    pod.name_any(),
                    node_name
                );
                plan.events
                    .push(EventSpec::warning(FAILED_DAEMON_POD_REASON, msg));
                plan.pods_to_delete.push(pod.name_any());
            }
            "Succeeded" => {
                let msg = format!(
                    "Found succeeded daemon pod {}/{} on node {}, will try to delete it",
                    pod.namespace().unwrap_or_default(),
                    pod.name_any(),
                    node_name
                );
                plan.events
                    .push(EventSpec::normal(SUCCEEDED_DAEMON_POD_REASON, msg));
                plan.pods_to_delete.push(pod.name_any());
            }
            _ => running.push(*pod),
        }
    }
    sort_by_creation_and_phase(&mut running);
    if !super::util::allows_surge(ds) {
        // Without surge one pod per node: keep the oldest.
        plan.pods_to_delete
            .extend(running.iter().skip(1).map(|p| p.name_any()));
        return;
    }
    if running.len() <= 1 {
        if running.is_empty() && should_run {
            plan.nodes_needing_pods.push(node_name);
        }
        return;
    }
    // With surge: keep the oldest new pod and the oldest old pod; the old
    // one goes once it is not ready or the new one is available.
    let mut oldest_new: Option<&Pod> = None;
    let mut oldest_old: Option<&Pod> = None;
    for pod in running {
        let is_new = pod
            .labels()
            .get(CONTROLLER_REVISION_HASH_LABEL)
            .is_some_and(|h| h == hash);
        let slot = if is_new {
            &mut oldest_new
        } else {
            &mut oldest_old
        };
        if slot.is_none() {
            *slot = Some(pod);
        } else {
            plan.pods_to_delete.push(pod.name_any());
        }
    }
    if let (Some(new), Some(old)) = (oldest_new, oldest_old)
        && (!is_pod_ready(old) || is_pod_available(new, min_ready_seconds(ds), now))
    {
        plan.pods_to_delete.push(old.name_any());
    }
}

/// Upstream `manage` (its decision half): which nodes need a daemon pod
/// and which pods must go, including pending pods pinned to nodes that no
/// longer exist (`getUnscheduledPodsWithoutNode`).
pub fn manage(
    ds: &DaemonSet,
    nodes: &[&Node],
    node_to_pods: &NodeToPods<'_>,
    hash: &str,
    backoff: &mut Backoff,
    clock: Instant,
    now: Timestamp,
) -> ManagePlan {
    let mut plan = ManagePlan::default();
    for node in nodes {
        pods_should_be_on_node(&mut plan, node, node_to_pods, ds, hash, backoff, clock, now);
    }
    for (node, pods) in node_to_pods {
        if nodes
            .iter()
            .any(|n| n.metadata.name.as_deref() == Some(node.as_str()))
        {
            continue;
        }
        plan.pods_to_delete.extend(
            pods.iter()
                .filter(|p| {
                    p.spec
                        .as_ref()
                        .and_then(|s| s.node_name.as_deref())
                        .is_none_or(str::is_empty)
                })
                .map(|p| p.name_any()),
        );
    }
    plan
}

/// Upstream `findUpdatedPodsOnNode`: the node's one new and one old live
/// pod; `None` when there are several of either (manage prunes first).
fn updated_pods_on_node<'a>(
    pods: &[&'a Pod],
    hash: &str,
) -> Option<(Option<&'a Pod>, Option<&'a Pod>)> {
    let (mut new, mut old) = (None, None);
    for pod in pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
    {
        let slot = if is_pod_updated(pod, hash) {
            &mut new
        } else {
            &mut old
        };
        if slot.is_some() {
            return None;
        }
        *slot = Some(*pod);
    }
    Some((new, old))
}

/// Upstream `updatedDesiredNodeCounts`: (maxSurge, maxUnavailable,
/// desiredNumberScheduled); every node that should run a pod gets an entry
/// in `node_to_pods`.
fn desired_node_counts(
    ds: &DaemonSet,
    nodes: &[&Node],
    node_to_pods: &mut NodeToPods<'_>,
) -> Result<(i32, i32, i32), BudgetError> {
    let mut desired = 0;
    for node in nodes {
        if node_should_run(node, ds).0 {
            desired += 1;
            node_to_pods.entry(node.name_any()).or_default();
        }
    }
    let mut max_unavailable = unavailable_count(ds, desired)?;
    let max_surge = surge_count(ds, desired)?;
    // An impossible configuration falls back to one unavailable.
    if desired > 0 && max_unavailable == 0 && max_surge == 0 {
        max_unavailable = 1;
    }
    Ok((max_surge, max_unavailable, desired))
}

/// The rolling update's writes: pods to delete and nodes to surge onto.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RollingPlan {
    pub pods_to_delete: Vec<String>,
    pub nodes_needing_pods: Vec<String>,
}

/// Upstream `rollingUpdate`: without surge, delete old pods while staying
/// within maxUnavailable (manage recreates them); with surge, create new
/// pods next to old ones within maxSurge and delete an old pod once its
/// replacement is available.
pub fn rolling_update(
    ds: &DaemonSet,
    nodes: &[&Node],
    node_to_pods: &NodeToPods<'_>,
    hash: &str,
    now: Timestamp,
) -> Result<RollingPlan, BudgetError> {
    let mut node_to_pods = node_to_pods.clone();
    let (max_surge, max_unavailable, desired) = desired_node_counts(ds, nodes, &mut node_to_pods)?;
    let min_ready = min_ready_seconds(ds);
    let available = |p: &Pod| is_pod_available(p, min_ready, now);
    let mut plan = RollingPlan::default();

    if max_surge == 0 {
        let mut num_unavailable = 0;
        let mut replacements = Vec::new();
        let mut candidates = Vec::new();
        for pods in node_to_pods.values() {
            match updated_pods_on_node(pods, hash) {
                None | Some((None, None)) | Some((Some(_), Some(_))) => num_unavailable += 1,
                Some((Some(new), None)) => {
                    if !available(new) {
                        num_unavailable += 1;
                    }
                }
                Some((None, Some(old))) => {
                    if !available(old) {
                        replacements.push(old.name_any());
                    } else if num_unavailable < max_unavailable {
                        candidates.push(old.name_any());
                    }
                }
            }
        }
        let remaining = (max_unavailable - num_unavailable).max(0) as usize;
        plan.pods_to_delete = replacements;
        plan.pods_to_delete
            .extend(candidates.into_iter().take(remaining));
        return Ok(plan);
    }

    let node_by_name = |name: &str| {
        nodes
            .iter()
            .find(|n| n.metadata.name.as_deref() == Some(name))
    };
    let should_run_on = |name: &str| node_by_name(name).is_some_and(|n| node_should_run(n, ds).0);
    let mut should_not_run = Vec::new();
    let mut candidate_nodes = Vec::new();
    let mut allowed_nodes = Vec::new();
    let mut num_surge = 0;
    let mut num_available = 0;
    for (node, pods) in &node_to_pods {
        let Some((new, old)) = updated_pods_on_node(pods, hash) else {
            num_surge += 1;
            continue;
        };
        if let Some(p) = old.or(new)
            && available(p)
        {
            num_available += 1;
        }
        match (new, old) {
            (_, None) => {}
            (None, Some(old)) => {
                if !available(old) {
                    if should_run_on(node) {
                        allowed_nodes.push(node.clone());
                    } else {
                        plan.pods_to_delete.push(old.name_any());
                    }
                } else if !should_run_on(node) {
                    should_not_run.push(old);
                } else if num_surge < max_surge {
                    candidate_nodes.push(node.clone());
                }
            }
            (Some(new), Some(old)) => {
                if available(new) {
                    plan.pods_to_delete.push(old.name_any());
                } else {
                    num_surge += 1;
                }
            }
        }
    }
    // Pods on nodes that no longer qualify go only once enough pods
    // elsewhere are available (surge promises full availability).
    let deletable = (num_available - desired).max(0) as usize;
    plan.pods_to_delete.extend(
        should_not_run
            .iter()
            .take(deletable)
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .map(|p| p.name_any()),
    );
    let remaining = (max_surge - num_surge).max(0) as usize;
    plan.nodes_needing_pods = allowed_nodes;
    plan.nodes_needing_pods
        .extend(candidate_nodes.into_iter().take(remaining));
    Ok(plan)
}

/// The status numbers upstream `updateDaemonSetStatus` computes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StatusCounts {
    pub desired_number_scheduled: i32,
    pub current_number_scheduled: i32,
    pub number_misscheduled: i32,
    pub number_ready: i32,
    pub updated_number_scheduled: i32,
    pub number_available: i32,
    pub number_unavailable: i32,
}

/// Upstream `updateDaemonSetStatus`: per eligible node, its oldest pod
/// decides ready/available/updated; pods on ineligible nodes are
/// misscheduled.
pub fn calculate_status(
    ds: &DaemonSet,
    nodes: &[&Node],
    node_to_pods: &NodeToPods<'_>,
    hash: &str,
    now: Timestamp,
) -> StatusCounts {
    let mut c = StatusCounts::default();
    let min_ready = min_ready_seconds(ds);
    for node in nodes {
        let (should_run, _) = node_should_run(node, ds);
        let pods = node_to_pods
            .get(node.metadata.name.as_deref().unwrap_or_default())
            .filter(|p| !p.is_empty());
        match (should_run, pods) {
            (true, None) => c.desired_number_scheduled += 1,
            (true, Some(pods)) => {
                c.desired_number_scheduled += 1;
                c.current_number_scheduled += 1;
                let mut pods = pods.clone();
                sort_by_creation_and_phase(&mut pods);
                let pod = pods[0];
                if is_pod_ready(pod) {
                    c.number_ready += 1;
                    if is_pod_available(pod, min_ready, now) {
                        c.number_available += 1;
                    }
                }
                if is_pod_updated(pod, hash) {
                    c.updated_number_scheduled += 1;
                }
            }
            (false, Some(_)) => c.number_misscheduled += 1,
            (false, None) => {}
        }
    }
    c.number_unavailable = c.desired_number_scheduled - c.number_available;
    c
}

/// Whether `counts` (and observedGeneration) differ from what the object
/// says (upstream `storeDaemonSetStatus`'s early return).
pub fn status_changed(ds: &DaemonSet, counts: &StatusCounts) -> bool {
    let status = ds.status.clone().unwrap_or_default();
    let current = StatusCounts {
        desired_number_scheduled: status.desired_number_scheduled,
        current_number_scheduled: status.current_number_scheduled,
        number_misscheduled: status.number_misscheduled,
        number_ready: status.number_ready,
        updated_number_scheduled: status.updated_number_scheduled.unwrap_or(0),
        number_available: status.number_available.unwrap_or(0),
        number_unavailable: status.number_unavailable.unwrap_or(0),
    };
    current != *counts
        || status.observed_generation.unwrap_or(0) < ds.metadata.generation.unwrap_or(0)
}
