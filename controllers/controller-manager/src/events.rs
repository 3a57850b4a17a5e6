//! Event emission for the controllers. Reconcilers return [`EventSpec`]s as
//! data (so tests can check reasons and messages); the runner records them
//! through the shared `component_base::events` recorder (events.k8s.io/v1,
//! series semantics) with the controller's name as `reportingController`.

use component_base::events::{EventBroadcaster, EventRecorder, EventType};
use k8s_openapi::api::core::v1::ObjectReference;

/// Normal or Warning, as upstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Normal,
    Warning,
}

/// One event a reconciler wants recorded on the object it works on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventSpec {
    pub kind: Kind,
    pub reason: String,
    pub message: String,
}

impl EventSpec {
    pub fn normal(reason: &str, message: impl Into<String>) -> Self {
        Self {
            kind: Kind::Normal,
            reason: reason.to_string(),
            message: message.into(),
        }
    }

    pub fn warning(reason: &str, message: impl Into<String>) -> Self {
        Self {
            kind: Kind::Warning,
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
        let event_type = match spec.kind {
            Kind::Normal => EventType::Normal,
            Kind::Warning => EventType::Warning,
        };
        self.recorder.record(
            regarding,
            None,
            event_type,
            &spec.reason,
            &spec.reason,
            &spec.message,
        );
    }
}
