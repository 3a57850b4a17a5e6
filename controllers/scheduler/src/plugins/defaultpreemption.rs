//! DefaultPreemption (PostFilter): when no node fits, find a node where evicting lower-priority
//! pods lets the pod fit, nominate it and hand the victims to the scheduler for eviction
//! (upstream `defaultpreemption` + `framework/preemption`). PodDisruptionBudgets are not
//! consulted yet: every victim counts as non-violating.

use std::cmp::Ordering;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;

use super::names;
use crate::framework::{
    Code, CycleState, FitError, NodeInfo, NodeToStatus, Plugin, PluginsRunner, PostFilterPlugin,
    PostFilterResult, Status,
};
use crate::pod::priority as pod_priority;

pub const REASON_NOT_HELPFUL: &str = "Preemption is not helpful for scheduling";
pub const REASON_NO_VICTIMS: &str = "No preemption victims found for incoming pod";
pub const REASON_POLICY_NEVER: &str = "not eligible due to preemptionPolicy=Never.";
pub const REASON_TERMINATING_ON_NOMINATED: &str =
    "not eligible due to a terminating pod on the nominated node.";
/// Condition reason upstream puts on victims before deleting them.
pub const DISRUPTION_REASON: &str = "PreemptionByScheduler";

const MIN_CANDIDATE_NODES_PERCENTAGE: usize = 10;
const MIN_CANDIDATE_NODES_ABSOLUTE: usize = 100;

/// DefaultPreemptionArgs (defaults 10% / 100 nodes, as upstream).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DefaultPreemption {
    min_candidate_nodes_percentage: usize,
    min_candidate_nodes_absolute: usize,
}

impl Default for DefaultPreemption {
    fn default() -> Self {
        DefaultPreemption {
            min_candidate_nodes_percentage: MIN_CANDIDATE_NODES_PERCENTAGE,
            min_candidate_nodes_absolute: MIN_CANDIDATE_NODES_ABSOLUTE,
        }
    }
}

impl DefaultPreemption {
    pub fn from_args(args: Option<&serde_json::Value>) -> Result<Self, crate::Error> {
        let a: DefaultPreemption = match args {
            Some(v) if !v.is_null() => serde_json::from_value(v.clone())
                .map_err(|e| crate::Error::InvalidConfig(format!("DefaultPreemptionArgs: {e}")))?,
            _ => DefaultPreemption::default(),
        };
        if a.min_candidate_nodes_percentage > 100 {
            return Err(crate::Error::InvalidConfig(
                "DefaultPreemptionArgs.minCandidateNodesPercentage: not in valid range [0, 100]"
                    .into(),
            ));
        }
        if a.min_candidate_nodes_percentage == 0 && a.min_candidate_nodes_absolute == 0 {
            return Err(crate::Error::InvalidConfig(
                "DefaultPreemptionArgs: minCandidateNodesPercentage and minCandidateNodesAbsolute cannot both be zero".into(),
            ));
        }
        Ok(a)
    }
}

struct Candidate {
    node: String,
    /// Highest priority first.
    victims: Vec<Arc<Pod>>,
}

fn start_time(p: &Pod) -> Option<jiff::Timestamp> {
    p.status.as_ref()?.start_time.as_ref().map(|t| t.0)
}

/// Upstream `MoreImportantPod`: higher priority, then earlier start (unknown = now).
fn more_important(a: &Pod, b: &Pod) -> Ordering {
    let now = jiff::Timestamp::now();
    pod_priority(b).cmp(&pod_priority(a)).then_with(|| {
        start_time(a)
            .unwrap_or(now)
            .cmp(&start_time(b).unwrap_or(now))
    })
}

fn terminating_by_preemption(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_some()
        && p.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .any(|c| {
                c.type_ == "DisruptionTarget"
                    && c.status == "True"
                    && c.reason.as_deref() == Some(DISRUPTION_REASON)
            })
}

/// Upstream `PodEligibleToPreemptOthers`.
fn eligibility(
    pod: &Pod,
    statuses: &NodeToStatus,
    nodes: &[Arc<NodeInfo>],
) -> Result<(), &'static str> {
    if pod
        .spec
        .as_ref()
        .and_then(|s| s.preemption_policy.as_deref())
        == Some("Never")
    {
        return Err(REASON_POLICY_NEVER);
    }
    let nominated = pod
        .status
        .as_ref()
        .and_then(|s| s.nominated_node_name.as_deref())
        .unwrap_or_default();
    if nominated.is_empty() || statuses.get(nominated).code() == Code::UnschedulableAndUnresolvable
    {
        return Ok(());
    }
    let prio = pod_priority(pod);
    let blocked = nodes.iter().filter(|n| n.name() == nominated).any(|n| {
        n.pods
            .iter()
            .any(|p| pod_priority(&p.pod) < prio && terminating_by_preemption(&p.pod))
    });
    if blocked {
        Err(REASON_TERMINATING_ON_NOMINATED)
    } else {
        Ok(())
    }
}

/// Upstream `SelectVictimsOnNode` (without PDBs): remove every lower-priority pod, check the
/// pod fits, then reprieve victims from the most important down while it still fits.
fn select_victims(
    fw: &dyn PluginsRunner,
    state: &CycleState,
    pod: &Pod,
    node: &NodeInfo,
) -> Result<Vec<Arc<Pod>>, Status> {
    let prio = pod_priority(pod);
    let mut ni = node.clone();
    let mut potential: Vec<Arc<Pod>> = node
        .pods
        .iter()
        .filter(|p| pod_priority(&p.pod) < prio)
        .map(|p| p.pod.clone())
        .collect();
    if potential.is_empty() {
        return Err(Status::unresolvable(REASON_NO_VICTIMS));
    }
    for v in &potential {
        ni.remove_pod(crate::pod::uid(v));
    }
    let s = fw.run_filter(state, pod, &ni);
    if !s.is_success() {
        return Err(s);
    }
    potential.sort_by(|a, b| more_important(a, b));
    let mut victims = Vec::new();
    for v in potential {
        ni.add_pod(v.clone());
        if !fw.run_filter(state, pod, &ni).is_success() {
            ni.remove_pod(crate::pod::uid(&v));
            victims.push(v);
        }
    }
    Ok(victims)
}

/// Upstream `pickOneNodeForPreemption` (PDB criterion is moot without PDBs).
fn pick_one(candidates: &[Candidate]) -> Option<&Candidate> {
    let highest = |c: &Candidate| c.victims.first().map_or(i32::MIN, |v| pod_priority(v));
    let sum = |c: &Candidate| -> i64 {
        c.victims
            .iter()
            .map(|v| i64::from(pod_priority(v)) + i64::from(i32::MAX) + 1)
            .sum()
    };
    // Earliest start among the highest-priority victims; later is better.
    let earliest = |c: &Candidate| {
        let top = highest(c);
        c.victims
            .iter()
            .filter(|v| pod_priority(v) == top)
            .filter_map(|v| start_time(v))
            .min()
    };
    candidates.iter().min_by(|a, b| {
        highest(a)
            .cmp(&highest(b))
            .then_with(|| sum(a).cmp(&sum(b)))
            .then_with(|| a.victims.len().cmp(&b.victims.len()))
            .then_with(|| earliest(b).cmp(&earliest(a)))
    })
}

impl Plugin for DefaultPreemption {
    fn name(&self) -> &'static str {
        names::DEFAULT_PREEMPTION
    }
    fn as_post_filter(&self) -> Option<&dyn PostFilterPlugin> {
        Some(self)
    }
}

impl DefaultPreemption {
    fn preempt(
        &self,
        state: &CycleState,
        pod: &Pod,
        statuses: &NodeToStatus,
        nodes: &[Arc<NodeInfo>],
        fw: &dyn PluginsRunner,
    ) -> (Option<PostFilterResult>, Status) {
        if let Err(msg) = eligibility(pod, statuses, nodes) {
            return (None, Status::unschedulable(msg));
        }
        let mut out = NodeToStatus::default();
        let potential: Vec<&Arc<NodeInfo>> = nodes
            .iter()
            .filter(|n| {
                let unresolvable =
                    statuses.get(n.name()).code() == Code::UnschedulableAndUnresolvable;
                if unresolvable {
                    out.explicit.insert(
                        n.name().to_string(),
                        Status::unresolvable(REASON_NOT_HELPFUL),
                    );
                }
                !unresolvable
            })
            .collect();
        let mut candidates = Vec::new();
        if !potential.is_empty() {
            let n = potential.len();
            let wanted = (n * self.min_candidate_nodes_percentage / 100)
                .max(self.min_candidate_nodes_absolute)
                .clamp(1, n);
            let offset = rand::random_range(0..n);
            for i in 0..n {
                let ni = potential[(offset + i) % n];
                match select_victims(fw, state, pod, ni) {
                    Ok(victims) => {
                        candidates.push(Candidate {
                            node: ni.name().to_string(),
                            victims,
                        });
                        if candidates.len() >= wanted {
                            break;
                        }
                    }
                    Err(s) => {
                        out.explicit.insert(ni.name().to_string(), s);
                    }
                }
            }
        }
        let Some(best) = pick_one(&candidates) else {
            let fit = FitError {
                num_all_nodes: nodes.len(),
                diagnosis: crate::framework::Diagnosis {
                    node_to_status: out,
                    ..Default::default()
                },
            };
            // Clear any stale nomination, like upstream.
            let result = PostFilterResult {
                nominated_node_name: None,
                victims: Vec::new(),
            };
            return (Some(result), Status::unschedulable(fit.to_string()));
        };
        let result = PostFilterResult {
            nominated_node_name: Some(best.node.clone()),
            victims: best.victims.clone(),
        };
        (Some(result), Status::success())
    }
}

impl PostFilterPlugin for DefaultPreemption {
    fn post_filter(
        &self,
        state: &CycleState,
        pod: &Pod,
        statuses: &NodeToStatus,
        nodes: &[Arc<NodeInfo>],
        fw: &dyn PluginsRunner,
    ) -> (Option<PostFilterResult>, Status) {
        let (result, s) = self.preempt(state, pod, statuses, nodes, fw);
        if s.is_success() || s.reasons().is_empty() {
            return (result, s);
        }
        (
            result,
            Status::new(s.code(), format!("preemption: {}", s.message())),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SchedulerConfig;
    use crate::framework::{Framework, Handle};
    use crate::plugins::registry;
    use crate::testing::{container, node, pod_named, with_priority};

    fn framework() -> Framework {
        let cfg = SchedulerConfig::default();
        match Framework::new(&cfg.profiles[0], &registry::in_tree(), &Handle::default()) {
            Ok(fw) => fw,
            Err(e) => panic!("{e}"),
        }
    }

    fn running(name: &str, prio: i32) -> Arc<Pod> {
        let mut p = with_priority(pod_named(name, vec![container(&[("cpu", "1")])]), prio);
        p.spec.get_or_insert_with(Default::default).node_name = Some("n".into());
        Arc::new(p)
    }

    fn names(v: &[Arc<Pod>]) -> Vec<String> {
        v.iter().filter_map(|p| p.metadata.name.clone()).collect()
    }

    #[test]
    fn victims_are_the_least_important_pods_needed() {
        let fw = framework();
        let mut ni = NodeInfo::new(Arc::new(node("n", "4", "8Gi", "110")));
        for (n, prio) in [("a", 1), ("b", 5), ("c", 10), ("d", 200)] {
            ni.add_pod(running(n, prio));
        }
        let preemptor = with_priority(pod_named("p", vec![container(&[("cpu", "2")])]), 100);
        let mut state = CycleState::new();
        let _ = fw.run_pre_filter(&mut state, &preemptor, &[]);
        let victims = select_victims(&fw, &state, &preemptor, &ni);
        assert_eq!(
            victims.map(|v| names(&v)),
            Ok(vec!["b".to_string(), "a".to_string()])
        );

        let low = pod_named("q", vec![container(&[("cpu", "2")])]);
        let r = select_victims(&fw, &state, &low, &ni).map(|v| names(&v));
        assert_eq!(
            r.map_err(|s| s.message()),
            Err(REASON_NO_VICTIMS.to_string())
        );
    }

    /// InterPodAffinity's PreFilter counted the running pods; filtering the node without the
    /// victims (and with reprieved ones back) must see the change (upstream RemovePod/AddPod).
    #[test]
    fn anti_affinity_victim_is_the_matching_pod() {
        let fw = framework();
        let mut ni = NodeInfo::new(Arc::new(node("n", "4", "8Gi", "110")));
        let mut web = (*running("a", 1)).clone();
        web.metadata.labels = Some([("app".to_string(), "web".to_string())].into());
        ni.add_pod(Arc::new(web));
        ni.add_pod(running("b", 1));
        let mut preemptor = with_priority(pod_named("p", vec![container(&[("cpu", "1")])]), 100);
        let anti: k8s_openapi::api::core::v1::Affinity = match serde_json::from_value(
            serde_json::json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname"}
            ]}}),
        ) {
            Ok(a) => a,
            Err(e) => panic!("{e}"),
        };
        preemptor.spec.get_or_insert_with(Default::default).affinity = Some(anti);
        let nodes = [Arc::new(ni)];
        let mut state = CycleState::new();
        let _ = fw.run_pre_filter(&mut state, &preemptor, &nodes);
        assert!(!fw.run_filter(&state, &preemptor, &nodes[0]).is_success());
        let victims = select_victims(&fw, &state, &preemptor, &nodes[0]);
        assert_eq!(victims.map(|v| names(&v)), Ok(vec!["a".to_string()]));
    }

    #[test]
    fn args_are_validated() {
        let a = DefaultPreemption::from_args(Some(
            &serde_json::json!({"minCandidateNodesAbsolute": 5}),
        ));
        assert_eq!(
            a.ok().map(|a| (
                a.min_candidate_nodes_percentage,
                a.min_candidate_nodes_absolute
            )),
            Some((10, 5))
        );
        let bad =
            serde_json::json!({"minCandidateNodesPercentage": 0, "minCandidateNodesAbsolute": 0});
        assert!(DefaultPreemption::from_args(Some(&bad)).is_err());
    }

    #[test]
    fn pick_prefers_lowest_highest_priority_then_fewest() {
        let c = |node: &str, prios: &[i32]| Candidate {
            node: node.into(),
            victims: prios.iter().map(|p| running("v", *p)).collect(),
        };
        let cands = [c("x", &[5]), c("y", &[1, 1]), c("z", &[1, 1, 1])];
        assert_eq!(pick_one(&cands).map(|c| c.node.as_str()), Some("y"));
        assert!(pick_one(&[]).is_none());
    }

    #[test]
    fn unresolvable_nodes_are_not_helpful() {
        let fw = framework();
        let ni = Arc::new(NodeInfo::new(Arc::new(node("n", "1", "1Gi", "110"))));
        let pod = with_priority(pod_named("p", vec![container(&[("cpu", "2")])]), 10);
        let mut statuses = NodeToStatus::default();
        statuses
            .explicit
            .insert("n".into(), Status::unresolvable("Insufficient cpu"));
        let (result, s) = DefaultPreemption::default().post_filter(
            &CycleState::new(),
            &pod,
            &statuses,
            &[ni],
            &fw,
        );
        assert_eq!(
            s.message(),
            "preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
        );
        assert_eq!(result.and_then(|r| r.nominated_node_name), None);
    }
}
