//! Event emission for the controllers. Reconcilers return [`EventSpec`]s as
//! data (so tests can check reasons and messages); the runner records them
//! through the shared `component_base::events` recorder (events.k8s.io/v1,
//! series semantics) with the controller's name as `reportingController`.

use component_base::events::{EventBroadcaster, EventRecorder, EventType};
use k8s_openapi::api::core::v1::ObjectReference;

/// One event a reconciler wants recorded on the object it works on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventSpec {
    pub kind: EventType,
    pub reason: String,
    pub message: String,
}

impl EventSpec {
    pub fn normal(reason: &str, message: impl Into<String>) -> Self {
        Self {
            kind: EventType::Normal,
            reason: reason.to_string(),
            message: message.into(),
        }
    }

    pub fn warning(reason: &str, message: impl Into<String>) -> Self {
        Self {
            kind: EventType::Warning,
            reason: reason.to_string(),
            message: message.into(),
        }
    }
}

/// Records events for one controller; never blocks, never fails.
#[derive(Clone)]
pub struct EventSink {
    recorder: EventRecorder,
}

impl EventSink {
    pub fn new(broadcaster: &EventBroadcaster, controller: &str) -> Self {
        Self {
            recorder: broadcaster.new_recorder(controller),
        }
    }

    /// events.k8s.io/v1 requires an action; upstream's controllers record
    /// through the legacy API, which has none, so the reason doubles as it.
    pub fn publish(&self, regarding: &ObjectReference, spec: &EventSpec) {
        self.recorder.record(
            regarding,
            None,
            spec.kind,
            &spec.reason,
            &spec.reason,
            &spec.message,
        );
    }
}
