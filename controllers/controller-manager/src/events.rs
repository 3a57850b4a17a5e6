//! Event emission for the controllers. Reconcilers return [`EventSpec`]s as
//! data (so tests can check reasons and messages); the runner records them
//! as core/v1 events through client-go `tools/record`'s recorder
//! (`component_base::events::record`), with upstream's per-controller event
//! source (`replicaset-controller`, ...) as `source.component`.

use component_base::events::record::LegacyRecorder;
use component_base::events::{EventBroadcaster, EventType};
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
    recorder: LegacyRecorder,
}

impl EventSink {
    /// Records as `v1.EventSource{Component: source}` (controllers set no
    /// host).
    pub fn new(broadcaster: &EventBroadcaster, source: &str) -> Self {
        Self {
            recorder: broadcaster.new_legacy_recorder(source, ""),
        }
    }

    pub fn publish(&self, regarding: &ObjectReference, spec: &EventSpec) {
        self.recorder
            .event(regarding, spec.kind, &spec.reason, &spec.message);
    }
}
