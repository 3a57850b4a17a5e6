//! The core/v1 event recorder of client-go's `tools/record`, which
//! kube-controller-manager and the kubelet use (the scheduler and
//! kube-proxy use events.k8s.io/v1, the parent module):
//!
//! - an event carries `source` (`component`, and `host` for the kubelet),
//!   `reportingComponent`/`reportingInstance` copied from it,
//!   `firstTimestamp` = `lastTimestamp` = now, `count` 1, and the whole
//!   `involvedObject`; it is named `<object>.<unix nanos in hex>` in the
//!   object's namespace (`default` for cluster-scoped objects);
//! - recording never blocks: a bounded queue of 1000, dropping when full;
//! - one writer per broadcaster takes events in order through the
//!   [`EventCorrelator`] (aggregation, count patches, spam filter) and
//!   writes each with up to 12 tries, the first pause random within 10s and
//!   10s after that, giving up at once on a server rejection.

mod correlator;
mod lru;
mod sink;

pub use correlator::{
    AGGREGATE_INTERVAL, AGGREGATE_MAX_EVENTS, AGGREGATE_MESSAGE_PREFIX, Correlated,
    EventCorrelator, MAX_LRU_CACHE_ENTRIES, SPAM_BURST, SPAM_QPS,
};

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use sink::Outcome;
use tokio::sync::mpsc;
use tokio::time::sleep;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error};

use super::{EventType, MAX_TRIES_PER_EVENT, RETRY_SLEEP};

/// Records core/v1 events for one source; cheap to clone.
#[derive(Clone)]
pub struct LegacyRecorder {
    component: String,
    host: String,
    tx: mpsc::Sender<Event>,
}

impl LegacyRecorder {
    pub(super) fn new(component: &str, host: &str, tx: mpsc::Sender<Event>) -> Self {
        Self {
            component: component.to_string(),
            host: host.to_string(),
            tx,
        }
    }

    /// `source.component` (and `reportingComponent`).
    pub fn component(&self) -> &str {
        &self.component
    }

    /// `source.host` (and `reportingInstance`); empty for controllers.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Queues an event about `regarding` (client-go `Event`/`Eventf`);
    /// returns at once.
    pub fn event(
        &self,
        regarding: &ObjectReference,
        event_type: EventType,
        reason: &str,
        message: &str,
    ) {
        let event = self.make_event(regarding, event_type, reason, message, Timestamp::now());
        debug!(
            object = format!(
                "{}/{}",
                regarding.namespace.as_deref().unwrap_or_default(),
                regarding.name.as_deref().unwrap_or_default()
            ),
            field_path = regarding.field_path.as_deref().unwrap_or_default(),
            kind = regarding.kind.as_deref().unwrap_or_default(),
            api_version = regarding.api_version.as_deref().unwrap_or_default(),
            r#type = event_type.as_str(),
            reason,
            message,
            "Event occurred"
        );
        match self.tx.try_send(event) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(ev)) => {
                error!(
                    event = ev.metadata.name.as_deref().unwrap_or_default(),
                    "Unable to record event: too many queued events, dropped event"
                );
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                debug!("event broadcaster stopped, dropping event");
            }
        }
    }

    /// client-go `makeEvent` plus the source and reporting fields
    /// `generateEvent` adds.
    pub fn make_event(
        &self,
        regarding: &ObjectReference,
        event_type: EventType,
        reason: &str,
        message: &str,
        now: Timestamp,
    ) -> Event {
        let namespace = regarding
            .namespace
            .clone()
            .filter(|ns| !ns.is_empty())
            .unwrap_or_else(|| "default".to_string());
        let name = format!(
            "{}.{:x}",
            regarding.name.as_deref().unwrap_or_default(),
            now.as_nanosecond()
        );
        let non_empty = |s: &str| Some(s.to_string()).filter(|s| !s.is_empty());
        Event {
            metadata: ObjectMeta {
                name: Some(name),
                namespace: Some(namespace),
                ..ObjectMeta::default()
            },
            involved_object: regarding.clone(),
            reason: Some(reason.to_string()),
            message: Some(message.to_string()),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            count: Some(1),
            type_: Some(event_type.as_str().to_string()),
            source: Some(EventSource {
                component: non_empty(&self.component),
                host: non_empty(&self.host),
            }),
            reporting_component: Some(self.component.clone()),
            reporting_instance: Some(self.host.clone()),
            ..Event::default()
        }
    }
}

/// client-go `StartRecordingToSink`: one correlator, events in order.
pub(super) async fn run_sink(
    client: kube::Client,
    mut rx: mpsc::Receiver<Event>,
    shutdown: CancellationToken,
) {
    let mut correlator = EventCorrelator::default();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            ev = rx.recv() => {
                let Some(ev) = ev else { return };
                record_to_sink(&client, &mut correlator, ev, &shutdown).await;
            }
        }
    }
}

/// client-go `recordToSink`.
async fn record_to_sink(
    client: &kube::Client,
    correlator: &mut EventCorrelator,
    event: Event,
    shutdown: &CancellationToken,
) {
    let Some(Correlated { event, patch }) = correlator.correlate(event, Timestamp::now()) else {
        return;
    };
    let name = event.metadata.name.clone().unwrap_or_default();
    let mut tries = 0;
    loop {
        match sink::record_event(client, &event, patch.as_ref()).await {
            Outcome::Recorded(written) => {
                correlator.update_state(&written);
                return;
            }
            Outcome::GiveUp => return,
            Outcome::Retry => {}
        }
        tries += 1;
        if tries >= MAX_TRIES_PER_EVENT {
            error!(
                event = name,
                "Unable to write event (retry limit exceeded!)"
            );
            return;
        }
        // A random first pause keeps clients from retrying in lockstep
        // after an apiserver outage.
        let pause = if tries == 1 {
            RETRY_SLEEP.mul_f64(rand::random::<f64>())
        } else {
            RETRY_SLEEP
        };
        tokio::select! {
            () = shutdown.cancelled() => {
                error!(event = name, "Unable to write event (broadcaster is shut down)");
                return;
            }
            () = sleep(pause) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_events_carry_what_the_legacy_recorder_sets() {
        let (tx, _rx) = mpsc::channel(1);
        let kubelet = LegacyRecorder::new("kubelet", "node-1", tx.clone());
        let node = ObjectReference {
            kind: Some("Node".into()),
            name: Some("node-1".into()),
            uid: Some("node-1".into()),
            ..Default::default()
        };
        let now = Timestamp::from_second(1_700_000_000).unwrap_or(Timestamp::UNIX_EPOCH);
        let ev = kubelet.make_event(
            &node,
            EventType::Normal,
            "Starting",
            "Starting kubelet.",
            now,
        );
        assert_eq!(ev.metadata.namespace.as_deref(), Some("default"));
        assert_eq!(
            ev.metadata.name,
            Some(format!("node-1.{:x}", now.as_nanosecond()))
        );
        assert_eq!(ev.involved_object, node);
        assert_eq!(ev.first_timestamp, Some(Time(now)));
        assert_eq!(ev.last_timestamp, Some(Time(now)));
        assert_eq!(ev.count, Some(1));
        assert_eq!(ev.type_.as_deref(), Some("Normal"));
        assert_eq!(ev.reason.as_deref(), Some("Starting"));
        assert_eq!(ev.message.as_deref(), Some("Starting kubelet."));
        assert_eq!(
            ev.source,
            Some(EventSource {
                component: Some("kubelet".into()),
                host: Some("node-1".into()),
            })
        );
        assert_eq!(ev.reporting_component.as_deref(), Some("kubelet"));
        assert_eq!(ev.reporting_instance.as_deref(), Some("node-1"));
        assert_eq!(ev.event_time, None);
        assert_eq!(ev.action, None);

        let controller = LegacyRecorder::new("replicaset-controller", "", tx);
        let rs = ObjectReference {
            namespace: Some("ns".into()),
            name: Some("web".into()),
            ..Default::default()
        };
        let ev = controller.make_event(&rs, EventType::Warning, "FailedCreate", "m", now);
        assert_eq!(ev.metadata.namespace.as_deref(), Some("ns"));
        assert_eq!(ev.source.and_then(|s| s.host), None);
        assert_eq!(ev.reporting_instance.as_deref(), Some(""));
        assert_eq!(
            ev.reporting_component.as_deref(),
            Some("replicaset-controller")
        );
    }
}
