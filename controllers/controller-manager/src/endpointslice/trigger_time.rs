//! `endpoints.kubernetes.io/last-change-trigger-time` bookkeeping (upstream
//! `endpointslice/util/trigger_time_tracker.go`): the earliest change
//! (pod Ready transition or service creation) not yet reflected in the
//! service's slices, so latency SLIs measure from the cause, not the sync.

use std::collections::HashMap;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Pod, Service};

use crate::controller_utils::Key;

#[derive(Default)]
struct ServiceState {
    service_trigger: Option<Timestamp>,
    pod_triggers: HashMap<String, Timestamp>,
}

/// Remembers, per service, the trigger times already accounted for.
#[derive(Default)]
pub struct TriggerTimeTracker {
    services: HashMap<Key, ServiceState>,
}

fn pod_trigger(pod: &Pod) -> Option<Timestamp> {
    let conditions = pod.status.as_ref()?.conditions.as_ref()?;
    let ready = conditions.iter().find(|c| c.type_ == "Ready")?;
    ready.last_transition_time.as_ref().map(|t| t.0)
}

fn earliest(current: Option<Timestamp>, candidate: Timestamp) -> Option<Timestamp> {
    Some(current.map_or(candidate, |c| c.min(candidate)))
}

impl TriggerTimeTracker {
    /// Upstream `ComputeEndpointLastChangeTriggerTime`; `None` means "no
    /// new trigger" (the annotation is then removed).
    pub fn compute(&mut self, key: &Key, service: &Service, pods: &[&Pod]) -> Option<Timestamp> {
        let was_known = self.services.contains_key(key);
        let state = self.services.entry(key.clone()).or_default();
        let mut min_changed = None;
        let mut pod_triggers = HashMap::new();
        for pod in pods {
            let Some(t) = pod_trigger(pod) else { continue };
            let name = pod.metadata.name.clone().unwrap_or_default();
            if state.pod_triggers.get(&name).is_none_or(|last| t > *last) {
                min_changed = earliest(min_changed, t);
            }
            pod_triggers.insert(name, t);
        }
        let service_trigger = service.metadata.creation_timestamp.as_ref().map(|t| t.0);
        if let Some(t) = service_trigger
            && state.service_trigger.is_none_or(|last| t > last)
        {
            min_changed = earliest(min_changed, t);
        }
        state.pod_triggers = pod_triggers;
        state.service_trigger = service_trigger;
        if !was_known {
            return service_trigger;
        }
        min_changed
    }

    pub fn delete_service(&mut self, key: &Key) {
        self.services.remove(key);
    }
}

/// Go's `time.RFC3339Nano` in UTC (fraction without trailing zeros).
pub fn format_rfc3339_nano(t: Timestamp) -> String {
    t.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller_utils::testing::{pod, ready_since, ts};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use kube::api::ObjectMeta;

    #[test]
    fn first_sync_uses_creation_then_earliest_new_change() {
        let svc = Service {
            metadata: ObjectMeta {
                name: Some("web".into()),
                creation_timestamp: Some(Time(ts(100))),
                ..Default::default()
            },
            ..Default::default()
        };
        let key = Key::new(Some("ns"), "web");
        let mut tracker = TriggerTimeTracker::default();
        let a = ready_since(pod("a"), 200);
        assert_eq!(tracker.compute(&key, &svc, &[&a]), Some(ts(100)));
        // Nothing new.
        assert_eq!(tracker.compute(&key, &svc, &[&a]), None);
        // Two pods became ready: the earlier one counts.
        let a2 = ready_since(pod("a"), 300);
        let b = ready_since(pod("b"), 250);
        assert_eq!(tracker.compute(&key, &svc, &[&a2, &b]), Some(ts(250)));
        tracker.delete_service(&key);
        assert_eq!(tracker.compute(&key, &svc, &[&a2, &b]), Some(ts(100)));
        assert_eq!(format_rfc3339_nano(ts(100)), "1970-01-01T00:01:40Z");
    }
}
