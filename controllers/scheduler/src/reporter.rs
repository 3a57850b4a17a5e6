//! Where scheduling outcomes become visible: `Scheduled`/`FailedScheduling` events and the
//! pod's `PodScheduled` condition. A trait so the scheduling loop is testable without an API.

use std::sync::Arc;

use async_trait::async_trait;
use component_base::events::{EventRecorder, EventType};
use k8s_openapi::api::core::v1::Pod;
use kube::Resource;
use kube::api::{Api, Patch, PatchParams};
use std::collections::HashMap;

/// Upstream `v1.PodReasonUnschedulable`.
pub const REASON_UNSCHEDULABLE: &str = "Unschedulable";
/// Upstream `v1.PodReasonSchedulerError`.
pub const REASON_SCHEDULER_ERROR: &str = "SchedulerError";
/// Upstream caps event notes at 1024 bytes (`truncateMessage`).
const NOTE_MAX_BYTES: usize = 1024;

#[async_trait]
pub trait Reporter: Send + Sync {
    /// Normal `Scheduled` event, action `Binding`.
    async fn scheduled(&self, pod: &Pod, node: &str);
    /// Warning `FailedScheduling` event (action `Scheduling`) plus `PodScheduled=False`;
    /// `nominated` sets (or with `""` clears) `status.nominatedNodeName`.
    async fn failed(&self, pod: &Pod, reason: &str, message: &str, nominated: Option<&str>);
    /// Evicts preemption victims for `preemptor`, which was nominated to `node`.
    async fn preempt(&self, preemptor: &Pod, node: &str, victims: &[Arc<Pod>]);
}

/// Upstream `truncateMessage`: keep at most 1024 bytes, ending in "..." when cut.
pub fn truncate_message(msg: &str) -> String {
    if msg.len() <= NOTE_MAX_BYTES {
        return msg.to_string();
    }
    let mut end = NOTE_MAX_BYTES - 3;
    while !msg.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &msg[..end])
}

pub fn scheduled_message(pod: &Pod, node: &str) -> String {
    format!(
        "Successfully assigned {}/{} to {}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default(),
        node
    )
}

/// Whether the pod already carries this exact `PodScheduled` condition (upstream skips the
/// patch then).
pub fn has_condition(pod: &Pod, reason: &str, message: &str) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| {
            c.type_ == "PodScheduled"
                && c.status == "False"
                && c.reason.as_deref() == Some(reason)
                && c.message.as_deref() == Some(message)
        })
}

/// Reporter writing to the apiserver; events go through component-base's recorder, one per
/// profile (the profile's scheduler name is the reporting controller, as upstream).
pub struct KubeReporter {
    client: kube::Client,
    recorders: HashMap<String, EventRecorder>,
}

impl KubeReporter {
    /// `recorders` maps scheduler names to their event recorders.
    pub fn new(client: kube::Client, recorders: HashMap<String, EventRecorder>) -> Self {
        KubeReporter { client, recorders }
    }

    fn publish(
        &self,
        pod: &Pod,
        related: Option<&Pod>,
        type_: EventType,
        reason: &str,
        action: &str,
        note: &str,
    ) {
        let name = crate::pod::scheduler_name(related.unwrap_or(pod));
        let recorder = self
            .recorders
            .get(name)
            .or_else(|| self.recorders.get(crate::config::DEFAULT_SCHEDULER_NAME))
            .or_else(|| self.recorders.values().next());
        let Some(recorder) = recorder else {
            return;
        };
        let related = related.map(|r| r.object_ref(&()));
        recorder.record(
            &pod.object_ref(&()),
            related.as_ref(),
            type_,
            reason,
            action,
            &truncate_message(note),
        );
    }
}

#[async_trait]
impl Reporter for KubeReporter {
    async fn scheduled(&self, pod: &Pod, node: &str) {
        let note = scheduled_message(pod, node);
        self.publish(pod, None, EventType::Normal, "Scheduled", "Binding", &note);
    }

    async fn failed(&self, pod: &Pod, reason: &str, message: &str, nominated: Option<&str>) {
        self.publish(
            pod,
            None,
            EventType::Warning,
            "FailedScheduling",
            "Scheduling",
            message,
        );
        let current = pod
            .status
            .as_ref()
            .and_then(|s| s.nominated_node_name.as_deref())
            .unwrap_or_default();
        let nomination_changes = nominated.is_some_and(|n| n != current);
        if has_condition(pod, reason, message) && !nomination_changes {
            return;
        }
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        // Like upstream UpdatePodCondition: the transition time only moves when the status does.
        let transition = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .find(|c| c.type_ == "PodScheduled" && c.status == "False")
            .and_then(|c| c.last_transition_time.as_ref().map(|t| t.0))
            .unwrap_or_else(jiff::Timestamp::now);
        let mut patch = serde_json::json!({
            "status": {"conditions": [{
                "type": "PodScheduled",
                "status": "False",
                "reason": reason,
                "message": message,
                "lastProbeTime": null,
                "lastTransitionTime": transition,
            }]}
        });
        if nomination_changes {
            let value = nominated.filter(|n| !n.is_empty());
            patch["status"]["nominatedNodeName"] = serde_json::json!(value);
        }
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        if let Err(e) = api
            .patch_status(name, &PatchParams::default(), &Patch::Strategic(patch))
            .await
        {
            tracing::warn!(pod = %format!("{ns}/{name}"), %e, "failed to update PodScheduled condition");
        }
    }

    async fn preempt(&self, preemptor: &Pod, node: &str, victims: &[Arc<Pod>]) {
        for v in victims {
            self.evict(preemptor, node, v).await;
        }
    }
}

impl KubeReporter {
    /// Upstream `prepareCandidate`: mark each victim with a DisruptionTarget condition, delete
    /// it, and record a `Preempted` event on it.
    async fn evict(&self, preemptor: &Pod, node: &str, victim: &Pod) {
        let ns = victim.metadata.namespace.as_deref().unwrap_or("default");
        let name = victim.metadata.name.as_deref().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let condition = serde_json::json!({"status": {"conditions": [{
            "type": "DisruptionTarget",
            "status": "True",
            "reason": crate::plugins::defaultpreemption::DISRUPTION_REASON,
            "message": format!("{}: preempting to accommodate a higher priority pod", crate::config::DEFAULT_SCHEDULER_NAME),
            "lastTransitionTime": jiff::Timestamp::now(),
        }]}});
        if let Err(e) = api
            .patch_status(name, &PatchParams::default(), &Patch::Strategic(condition))
            .await
        {
            tracing::warn!(victim = %format!("{ns}/{name}"), %e, "failed to add DisruptionTarget condition");
        }
        let dp = kube::api::DeleteParams {
            preconditions: victim
                .metadata
                .uid
                .clone()
                .map(|uid| kube::api::Preconditions {
                    uid: Some(uid),
                    resource_version: None,
                }),
            ..Default::default()
        };
        match api.delete(name, &dp).await {
            Ok(_) => {
                let note = format!(
                    "Preempted by pod {} on node {node}",
                    crate::pod::uid(preemptor)
                );
                self.publish(
                    victim,
                    Some(preemptor),
                    EventType::Normal,
                    "Preempted",
                    "Preempting",
                    &note,
                );
            }
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => {
                tracing::warn!(victim = %format!("{ns}/{name}"), %e, "failed to delete preemption victim")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_long_messages() {
        assert_eq!(truncate_message("short"), "short");
        let long = "x".repeat(2000);
        let t = truncate_message(&long);
        assert_eq!(t.len(), 1024);
        assert!(t.ends_with("..."));
    }
}
