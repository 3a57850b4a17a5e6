//! NodeResourcesBalancedAllocation: favours nodes whose resource utilisation stays balanced.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use serde::Deserialize;

use super::resource_allocation::{
    ResourceAllocationScorer, ResourceSpec, Strategy, default_resources,
};
use crate::Error;
use crate::framework::{CycleState, NodeInfo, Plugin, PreScorePlugin, ScorePlugin, Status};
use crate::plugins::names;

const PRE_SCORE_STATE_KEY: &str = "PreScoreNodeResourcesBalancedAllocation";

#[derive(Debug, Default, Deserialize)]
struct RawArgs {
    #[serde(default)]
    resources: Option<Vec<ResourceSpec>>,
}

pub struct BalancedAllocation {
    scorer: ResourceAllocationScorer,
}

struct PreScoreState(Vec<i64>);

impl BalancedAllocation {
    pub fn from_args(args: Option<&serde_json::Value>) -> Result<Self, Error> {
        let raw: RawArgs = match args {
            Some(v) if !v.is_null() => serde_json::from_value(v.clone()).map_err(|e| {
                Error::InvalidConfig(format!("NodeResourcesBalancedAllocationArgs: {e}"))
            })?,
            _ => RawArgs::default(),
        };
        let resources = raw.resources.unwrap_or_else(default_resources);
        Ok(BalancedAllocation {
            scorer: ResourceAllocationScorer::new(Strategy::Balanced, resources, true)?,
        })
    }
}

impl Plugin for BalancedAllocation {
    fn name(&self) -> &'static str {
        names::NODE_RESOURCES_BALANCED_ALLOCATION
    }
    fn as_pre_score(&self) -> Option<&dyn PreScorePlugin> {
        Some(self)
    }
    fn as_score(&self) -> Option<&dyn ScorePlugin> {
        Some(self)
    }
}

impl PreScorePlugin for BalancedAllocation {
    fn pre_score(&self, state: &mut CycleState, pod: &Pod, _nodes: &[Arc<NodeInfo>]) -> Status {
        let reqs = self.scorer.pod_request_list(pod);
        // Best-effort pods would all pile onto one node if scored by balance (upstream #129138).
        if reqs.iter().all(|r| *r == 0) {
            return Status::skip();
        }
        state.write(PRE_SCORE_STATE_KEY, PreScoreState(reqs));
        Status::success()
    }
}

impl ScorePlugin for BalancedAllocation {
    fn score(&self, state: &CycleState, pod: &Pod, node: &NodeInfo) -> Result<i64, Status> {
        Ok(match state.read::<PreScoreState>(PRE_SCORE_STATE_KEY) {
            Some(s) => self.scorer.score(node, &s.0),
            None => self.scorer.score(node, &self.scorer.pod_request_list(pod)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{container, node, pod_named};

    #[test]
    fn scores_balance_and_skips_best_effort() {
        let Ok(b) = BalancedAllocation::from_args(None) else {
            panic!("rejected")
        };
        let ni = NodeInfo::new(Arc::new(node("n", "4", "8Gi", "110")));
        let skewed = pod_named("p", vec![container(&[("cpu", "3"), ("memory", "2Gi")])]);
        let mut state = CycleState::new();
        assert!(b.pre_score(&mut state, &skewed, &[]).is_success());
        assert_eq!(b.score(&state, &skewed, &ni).ok(), Some(75));
        let be = pod_named("be", vec![container(&[])]);
        assert!(b.pre_score(&mut CycleState::new(), &be, &[]).is_skip());
    }
}
