//! The pure part of one scheduling attempt: find feasible nodes, score them, pick one
//! (upstream `schedule_one.go` `schedulePod` / `findNodesThatFitPod` / `prioritizeNodes` /
//! `selectHost`).

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use k8s_openapi::api::core::v1::Pod;

use crate::cache::snapshot::Snapshot;
use crate::framework::parallelize;
use crate::framework::{CycleState, Diagnosis, FitError, Framework, NodeInfo, NodeScore, Status};

/// Upstream `minFeasibleNodesToFind`.
pub const MIN_FEASIBLE_NODES_TO_FIND: usize = 100;
/// Upstream `minFeasibleNodesPercentageToFind`.
pub const MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND: i64 = 5;

pub const ERR_NO_NODES_AVAILABLE: &str = "no nodes available to schedule pods";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleResult {
    pub suggested_host: String,
    pub evaluated_nodes: usize,
    pub feasible_nodes: usize,
}

#[derive(Debug)]
pub enum ScheduleError {
    NoNodesAvailable,
    /// No node fits; the message is the FailedScheduling text.
    Fit(Box<FitError>),
    /// A plugin failed in an unexpected way.
    Internal(Status),
}

impl std::fmt::Display for ScheduleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScheduleError::NoNodesAvailable => f.write_str(ERR_NO_NODES_AVAILABLE),
            ScheduleError::Fit(e) => e.fmt(f),
            ScheduleError::Internal(s) => s.fmt(f),
        }
    }
}

/// How many feasible nodes to look for before stopping (upstream `numFeasibleNodesToFind`).
pub fn num_feasible_nodes_to_find(percentage: i32, num_all_nodes: usize) -> usize {
    if num_all_nodes < MIN_FEASIBLE_NODES_TO_FIND {
        return num_all_nodes;
    }
    let mut pct = i64::from(percentage);
    if pct == 0 {
        pct = (50 - num_all_nodes as i64 / 125).max(MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND);
    }
    let n = (num_all_nodes as i64 * pct / 100) as usize;
    n.max(MIN_FEASIBLE_NODES_TO_FIND)
}

/// Round-robin state carried across attempts.
#[derive(Debug)]
pub struct Algorithm {
    pub next_start_node_index: usize,
    /// Global `percentageOfNodesToScore`; a profile value overrides it.
    pub percentage_of_nodes_to_score: i32,
    pub parallelism: usize,
}

impl Algorithm {
    pub fn new(percentage_of_nodes_to_score: i32, parallelism: usize) -> Self {
        Algorithm {
            next_start_node_index: 0,
            percentage_of_nodes_to_score,
            parallelism: parallelism.max(1),
        }
    }

    pub fn schedule_pod(
        &mut self,
        fw: &Framework,
        state: &mut CycleState,
        pod: &Pod,
        snapshot: &Snapshot,
    ) -> Result<ScheduleResult, ScheduleError> {
        if snapshot.num_nodes() == 0 {
            return Err(ScheduleError::NoNodesAvailable);
        }
        let (feasible, diagnosis) = self.find_nodes_that_fit(fw, state, pod, snapshot)?;
        let explicit = diagnosis.node_to_status.explicit.len();
        match feasible.len() {
            0 => Err(ScheduleError::Fit(Box::new(FitError {
                num_all_nodes: snapshot.num_nodes(),
                diagnosis,
            }))),
            1 => Ok(ScheduleResult {
                suggested_host: feasible[0].name().to_string(),
                evaluated_nodes: 1 + explicit,
                feasible_nodes: 1,
            }),
            n => {
                let scores = prioritize_nodes(fw, state, pod, &feasible)?;
                let host = select_host(&scores)
                    .ok_or_else(|| ScheduleError::Internal(Status::error("empty priority list")))?;
                Ok(ScheduleResult {
                    suggested_host: host.to_string(),
                    evaluated_nodes: n + explicit,
                    feasible_nodes: n,
                })
            }
        }
    }

    /// Upstream `findNodesThatFitPod` (without nominated-node fast path and extenders).
    pub fn find_nodes_that_fit(
        &mut self,
        fw: &Framework,
        state: &mut CycleState,
        pod: &Pod,
        snapshot: &Snapshot,
    ) -> Result<(Vec<Arc<NodeInfo>>, Diagnosis), ScheduleError> {
        let all = snapshot.list();
        let mut diagnosis = Diagnosis::default();
        let (pre_res, s, plugins) = fw.run_pre_filter(state, pod, all);
        diagnosis.unschedulable_plugins = plugins.clone();
        if !s.is_success() {
            if !s.is_rejected() {
                return Err(ScheduleError::Internal(s));
            }
            diagnosis.pre_filter_msg = s.message();
            diagnosis.add_plugin_status(&s);
            diagnosis.node_to_status.absent_nodes_status = s;
            return Ok((Vec::new(), diagnosis));
        }
        let subset: Vec<Arc<NodeInfo>>;
        let nodes: &[Arc<NodeInfo>] = match &pre_res.node_names {
            None => all,
            Some(names) => {
                let mut v: Vec<Arc<NodeInfo>> = names
                    .iter()
                    .filter_map(|n| snapshot.get(n).cloned())
                    .collect();
                v.sort_by(|a, b| a.name().cmp(b.name()));
                subset = v;
                let list: Vec<&str> = plugins.iter().copied().collect();
                diagnosis.node_to_status.absent_nodes_status = Status::unresolvable(format!(
                    "node(s) didn't satisfy plugin(s) [{}]",
                    list.join(" ")
                ));
                &subset
            }
        };
        let feasible =
            self.find_nodes_that_pass_filters(fw, state, pod, &mut diagnosis, nodes, snapshot)?;
        let processed = feasible.len() + diagnosis.node_to_status.explicit.len();
        if !all.is_empty() {
            self.next_start_node_index = (self.next_start_node_index + processed) % all.len();
        }
        Ok((feasible, diagnosis))
    }

    fn find_nodes_that_pass_filters(
        &self,
        fw: &Framework,
        state: &CycleState,
        pod: &Pod,
        diagnosis: &mut Diagnosis,
        nodes: &[Arc<NodeInfo>],
        snapshot: &Snapshot,
    ) -> Result<Vec<Arc<NodeInfo>>, ScheduleError> {
        let n = nodes.len();
        if n == 0 {
            return Ok(Vec::new());
        }
        let pct = fw
            .percentage_of_nodes_to_score()
            .unwrap_or(self.percentage_of_nodes_to_score);
        let to_find = num_feasible_nodes_to_find(pct, n);
        let start = self.next_start_node_index % n;
        if !fw.has_filter_plugins() {
            return Ok((0..to_find)
                .map(|i| nodes[(start + i) % n].clone())
                .collect());
        }
        let found = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        let feasible: Mutex<Vec<(usize, Arc<NodeInfo>)>> = Mutex::new(Vec::with_capacity(to_find));
        let failed: Mutex<Vec<(usize, Status)>> = Mutex::new(Vec::new());
        let error: Mutex<Option<Status>> = Mutex::new(None);
        parallelize::until(self.parallelism, n, &stop, |i| {
            let ni = &nodes[(start + i) % n];
            let s =
                fw.run_filter_with_nominated(state, pod, ni, snapshot.nominated_pods(ni.name()));
            if s.is_success() {
                let k = found.fetch_add(1, Ordering::SeqCst) + 1;
                if k > to_find {
                    stop.store(true, Ordering::Relaxed);
                    found.fetch_sub(1, Ordering::SeqCst);
                } else {
                    lock(&feasible).push((i, ni.clone()));
                }
            } else if s.is_rejected() {
                lock(&failed).push((i, s));
            } else {
                *lock(&error) = Some(s);
                stop.store(true, Ordering::Relaxed);
            }
        });
        if let Some(s) = into_inner(error) {
            return Err(ScheduleError::Internal(s));
        }
        let mut failed = into_inner(failed);
        failed.sort_by_key(|(i, _)| *i);
        for (i, s) in failed {
            diagnosis.add_plugin_status(&s);
            let name = nodes[(start + i) % n].name().to_string();
            diagnosis.node_to_status.explicit.insert(name, s);
        }
        let mut feasible = into_inner(feasible);
        feasible.sort_by_key(|(i, _)| *i);
        Ok(feasible.into_iter().map(|(_, ni)| ni).collect())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn into_inner<T>(m: Mutex<T>) -> T {
    m.into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Upstream `prioritizeNodes`: PreScore + Score, or a flat score of 1 without score plugins.
pub fn prioritize_nodes(
    fw: &Framework,
    state: &mut CycleState,
    pod: &Pod,
    nodes: &[Arc<NodeInfo>],
) -> Result<Vec<NodeScore>, ScheduleError> {
    if !fw.has_score_plugins() {
        return Ok(nodes
            .iter()
            .map(|n| NodeScore {
                name: n.name().to_string(),
                score: 1,
            })
            .collect());
    }
    let s = fw.run_pre_score(state, pod, nodes);
    if !s.is_success() {
        return Err(ScheduleError::Internal(s));
    }
    fw.run_score(state, pod, nodes)
        .map_err(ScheduleError::Internal)
}

/// Highest total score; ties broken uniformly at random by reservoir sampling.
pub fn select_host(scores: &[NodeScore]) -> Option<&str> {
    let (first, rest) = scores.split_first()?;
    let mut selected = first;
    let mut ties = 1_u32;
    for s in rest {
        if s.score > selected.score {
            selected = s;
            ties = 1;
        } else if s.score == selected.score {
            ties += 1;
            if rand::random_range(0..ties) == 0 {
                selected = s;
            }
        }
    }
    Some(&selected.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn num_feasible_nodes_table() {
        let cases = [
            (0, 10, 10),
            (0, 99, 99),
            (0, 100, 100),
            (0, 1000, 420),
            (0, 5000, 500),
            (0, 6000, 300),
            (10, 5000, 500),
            (1, 5000, 100),
            (100, 5000, 5000),
        ];
        for (pct, n, want) in cases {
            assert_eq!(num_feasible_nodes_to_find(pct, n), want, "pct={pct} n={n}");
        }
    }

    #[test]
    fn select_host_picks_max_and_samples_ties() {
        let s = |name: &str, score| NodeScore {
            name: name.into(),
            score,
        };
        assert_eq!(select_host(&[]), None);
        assert_eq!(select_host(&[s("a", 1), s("b", 5), s("c", 3)]), Some("b"));
        let tied = [s("a", 5), s("b", 5), s("c", 1)];
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            if let Some(h) = select_host(&tied) {
                seen.insert(h.to_string());
            }
        }
        assert_eq!(seen.len(), 2, "both tied nodes get picked: {seen:?}");
        assert!(!seen.contains("c"));
    }
}
