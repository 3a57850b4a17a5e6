//! ReplicationController ⇄ ReplicaSet (upstream
//! `pkg/controller/replication/conversion.go`, "as if ReplicationController
//! were an older API version of ReplicaSet"): the selector map becomes
//! `matchLabels`, status fields and conditions map one to one.

use std::borrow::Cow;

use k8s_openapi::api::apps::v1::{
    ReplicaSet, ReplicaSetCondition, ReplicaSetSpec, ReplicaSetStatus,
};
use k8s_openapi::api::core::v1::{
    ReplicationController, ReplicationControllerCondition, ReplicationControllerSpec,
    ReplicationControllerStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::replicaset::kind::ReplicaSetLike;

impl ReplicaSetLike for ReplicationController {
    const HAS_TERMINATING_REPLICAS: bool = false;

    fn as_replica_set(&self) -> Cow<'_, ReplicaSet> {
        Cow::Owned(rc_to_rs(self))
    }

    fn with_status(&self, status: &ReplicaSetStatus) -> Self {
        let mut next = self.clone();
        next.status = Some(rs_status_to_rc(status));
        next
    }
}

/// Upstream `convertRCtoRS`.
pub fn rc_to_rs(rc: &ReplicationController) -> ReplicaSet {
    let spec = rc.spec.clone().unwrap_or_default();
    ReplicaSet {
        metadata: rc.metadata.clone(),
        spec: Some(rc_spec_to_rs(spec)),
        status: rc.status.as_ref().map(rc_status_to_rs),
    }
}

fn rc_spec_to_rs(spec: ReplicationControllerSpec) -> ReplicaSetSpec {
    ReplicaSetSpec {
        replicas: spec.replicas,
        min_ready_seconds: spec.min_ready_seconds,
        selector: LabelSelector {
            match_labels: spec.selector,
            match_expressions: None,
        },
        template: spec.template,
    }
}

fn rc_status_to_rs(status: &ReplicationControllerStatus) -> ReplicaSetStatus {
    ReplicaSetStatus {
        replicas: status.replicas,
        fully_labeled_replicas: status.fully_labeled_replicas,
        ready_replicas: status.ready_replicas,
        available_replicas: status.available_replicas,
        observed_generation: status.observed_generation,
        terminating_replicas: None,
        conditions: status.conditions.as_ref().map(|conds| {
            conds
                .iter()
                .map(|c| ReplicaSetCondition {
                    type_: c.type_.clone(),
                    status: c.status.clone(),
                    reason: c.reason.clone(),
                    message: c.message.clone(),
                    last_transition_time: c.last_transition_time.clone(),
                })
                .collect()
        }),
    }
}

/// The status half of upstream `convertRStoRC` (ReplicationController has
/// no `terminatingReplicas`).
pub fn rs_status_to_rc(status: &ReplicaSetStatus) -> ReplicationControllerStatus {
    ReplicationControllerStatus {
        replicas: status.replicas,
        fully_labeled_replicas: status.fully_labeled_replicas,
        ready_replicas: status.ready_replicas,
        available_replicas: status.available_replicas,
        observed_generation: status.observed_generation,
        conditions: status.conditions.as_ref().map(|conds| {
            conds
                .iter()
                .map(|c| ReplicationControllerCondition {
                    type_: c.type_.clone(),
                    status: c.status.clone(),
                    reason: c.reason.clone(),
                    message: c.message.clone(),
                    last_transition_time: c.last_transition_time.clone(),
                })
                .collect()
        }),
    }
}
