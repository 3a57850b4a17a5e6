//! Where scheduling outcomes become visible: `Scheduled`/`FailedScheduling` events and the
//! pod's `PodScheduled` condition. A trait so the scheduling loop is testable without an API.

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter as EventReporter};
use kube::Resource;

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
    /// Warning `FailedScheduling` event (action `Scheduling`) plus `PodScheduled=False`.
    async fn failed(&self, pod: &Pod, reason: &str, message: &str);
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

/// Reporter writing to the apiserver.
pub struct KubeReporter {
    client: kube::Client,
    recorder: Recorder,
}

impl KubeReporter {
    pub fn new(client: kube::Client, instance: String) -> Self {
        let reporter = EventReporter {
            controller: crate::config::DEFAULT_SCHEDULER_NAME.to_string(),
            instance: Some(instance),
        };
        KubeReporter {
            recorder: Recorder::new(client.clone(), reporter),
            client,
        }
    }

    async fn publish(&self, pod: &Pod, type_: EventType, reason: &str, action: &str, note: String) {
        let ev = Event {
            type_,
            reason: reason.to_string(),
            note: Some(truncate_message(&note)),
            action: action.to_string(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, &pod.object_ref(&())).await {
            tracing::warn!(pod = ?pod.metadata.name, %e, "failed to record event");
        }
    }
}

#[async_trait]
impl Reporter for KubeReporter {
    async fn scheduled(&self, pod: &Pod, node: &str) {
        self.publish(pod, EventType::Normal, "Scheduled", "Binding", scheduled_message(pod, node))
            .await;
    }

    async fn failed(&self, pod: &Pod, reason: &str, message: &str) {
        self.publish(pod, EventType::Warning, "FailedScheduling", "Scheduling", message.to_string())
            .await;
        if has_condition(pod, reason, message) {
            return;
        }
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let now = jiff::Timestamp::now();
        let patch = serde_json::json!({
            "status": {"conditions": [{
                "type": "PodScheduled",
                "status": "False",
                "reason": reason,
                "message": message,
                "lastProbeTime": null,
                "lastTransitionTime": now,
            }]}
        });
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        if let Err(e) = api
            .patch_status(name, &PatchParams::default(), &Patch::Strategic(patch))
            .await
        {
            tracing::warn!(pod = %format!("{ns}/{name}"), %e, "failed to update PodScheduled condition");
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
