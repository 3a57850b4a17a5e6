//! Event recorders. [`EventBroadcaster`] hands out two kinds, each written
//! by its own background task:
//!
//! - [`EventBroadcaster::new_legacy_recorder`]: core/v1 events as client-go's
//!   `tools/record` writes them (kube-controller-manager, kubelet); see
//!   [`record`];
//! - [`EventBroadcaster::new_recorder`]: events.k8s.io/v1 events as
//!   client-go's `tools/events` writes them (kube-scheduler and kube-proxy,
//!   through `NewEventBroadcasterAdapter`), described below.
//!
//! The events.k8s.io/v1 recorder:
//!
//! - [`EventRecorder::record`] never blocks: events go through a bounded
//!   queue (1000, like `maxQueuedEvents`) and are dropped when it is full;
//! - an event is named `<regarding.name>.<unix nanos in hex>` and created in
//!   the regarding object's namespace (`default` for cluster-scoped objects);
//! - a repeat of an event with the same type, action, reason, reporting
//!   controller/instance, regarding and related objects becomes a `series`:
//!   the second occurrence is patched at once (count 2), later ones only bump
//!   the cached count, which is written every 30 minutes and when the series
//!   has been idle for 6 minutes (then it is forgotten);
//! - failed writes are retried up to 12 times, 10s apart (jittered), unless
//!   the apiserver rejected the event.

mod cache;
pub mod record;
mod sink;

pub use cache::{FINISH_TIME, REFRESH_TIME};

use cache::EventCache;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use rand::Rng;
use sink::Outcome;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior, interval_at, sleep};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, warn};

/// client-go `maxQueuedEvents`.
pub const MAX_QUEUED_EVENTS: usize = 1000;
/// client-go `maxTriesPerEvent`.
pub const MAX_TRIES_PER_EVENT: u32 = 12;
/// client-go `defaultSleepDuration` between tries (jittered by up to 25%).
pub const RETRY_SLEEP: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// Owns the background task writing events; hands out recorders.
pub struct EventBroadcaster {
    tx: mpsc::Sender<Event>,
    legacy_tx: mpsc::Sender<k8s_openapi::api::core::v1::Event>,
    hostname: String,
}

impl EventBroadcaster {
    /// Starts writing recorded events with `client` until `shutdown`.
    pub fn start(client: kube::Client, shutdown: CancellationToken) -> Self {
        let (tx, rx) = mpsc::channel(MAX_QUEUED_EVENTS);
        let (legacy_tx, legacy_rx) = mpsc::channel(MAX_QUEUED_EVENTS);
        tokio::spawn(record::run_sink(
            client.clone(),
            legacy_rx,
            shutdown.clone(),
        ));
        tokio::spawn(run_sink(client, rx, shutdown));
        let hostname = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_default();
        Self {
            tx,
            legacy_tx,
            hostname,
        }
    }

    /// A core/v1 recorder with source `component` (and `host`, which the
    /// kubelet sets to its node name and controllers leave empty), like
    /// client-go `record.EventBroadcaster.NewRecorder`.
    pub fn new_legacy_recorder(&self, component: &str, host: &str) -> record::LegacyRecorder {
        record::LegacyRecorder::new(component, host, self.legacy_tx.clone())
    }

    /// A recorder reporting as `reporting_controller` (e.g.
    /// `default-scheduler`) with client-go's default instance,
    /// `<controller>-<hostname>`.
    pub fn new_recorder(&self, reporting_controller: &str) -> EventRecorder {
        let instance = format!("{reporting_controller}-{}", self.hostname);
        self.new_recorder_with_instance(reporting_controller, &instance)
    }

    pub fn new_recorder_with_instance(
        &self,
        reporting_controller: &str,
        reporting_instance: &str,
    ) -> EventRecorder {
        EventRecorder {
            reporting_controller: reporting_controller.to_string(),
            reporting_instance: reporting_instance.to_string(),
            tx: self.tx.clone(),
        }
    }
}

/// Records events for one reporting controller; cheap to clone.
#[derive(Clone)]
pub struct EventRecorder {
    reporting_controller: String,
    reporting_instance: String,
    tx: mpsc::Sender<Event>,
}

impl EventRecorder {
    pub fn reporting_controller(&self) -> &str {
        &self.reporting_controller
    }

    pub fn reporting_instance(&self) -> &str {
        &self.reporting_instance
    }

    /// Queues an event about `regarding` (client-go `Eventf`); returns at once.
    pub fn record(
        &self,
        regarding: &ObjectReference,
        related: Option<&ObjectReference>,
        event_type: EventType,
        reason: &str,
        action: &str,
        note: &str,
    ) {
        let event = self.make_event(
            regarding,
            related,
            event_type,
            reason,
            action,
            note,
            Timestamp::now(),
        );
        debug!(
            object = format!(
                "{}/{}",
                regarding.namespace.as_deref().unwrap_or_default(),
                regarding.name.as_deref().unwrap_or_default()
            ),
            kind = regarding.kind.as_deref().unwrap_or_default(),
            r#type = event_type.as_str(),
            reason,
            action,
            note,
            "Event occurred"
        );
        match self.tx.try_send(event) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(ev)) => {
                warn!(event = ?ev.metadata.name, "event queue full, dropping event");
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                debug!("event broadcaster stopped, dropping event");
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn make_event(
        &self,
        regarding: &ObjectReference,
        related: Option<&ObjectReference>,
        event_type: EventType,
        reason: &str,
        action: &str,
        note: &str,
        now: Timestamp,
    ) -> Event {
        let namespace = regarding
            .namespace
            .clone()
            .filter(|ns| !ns.is_empty())
            .unwrap_or_else(|| "default".to_string());
        let ref_name = regarding.name.as_deref().unwrap_or_default();
        Event {
            metadata: ObjectMeta {
                name: Some(generate_event_name(ref_name, now.as_nanosecond())),
                namespace: Some(namespace),
                ..Default::default()
            },
            event_time: Some(MicroTime(now)),
            series: None,
            reporting_controller: Some(self.reporting_controller.clone()),
            reporting_instance: Some(self.reporting_instance.clone()),
            action: Some(action.to_string()),
            reason: Some(reason.to_string()),
            regarding: Some(regarding.clone()),
            related: related.cloned(),
            note: Some(note.to_string()),
            type_: Some(event_type.as_str().to_string()),
            ..Default::default()
        }
    }
}

/// client-go `GenerateEventName`: `<name>.<nanos hex>`, or, when that is not
/// a valid DNS subdomain, 63 random lowercase alphanumerics instead of name.
pub fn generate_event_name(ref_name: &str, unix_nanos: i128) -> String {
    let name = format!("{ref_name}.{unix_nanos:x}");
    if is_dns_subdomain(&name) {
        return name;
    }
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let random: String = (0..63)
        .map(|_| char::from(CHARS[rng.random_range(0..CHARS.len())]))
        .collect();
    format!("{random}.{unix_nanos:x}")
}

fn is_dns_subdomain(name: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.starts_with(alnum)
                && label.ends_with(alnum)
                && label.chars().all(|c| alnum(c) || c == '-')
        })
}

async fn run_sink(
    client: kube::Client,
    mut rx: mpsc::Receiver<Event>,
    shutdown: CancellationToken,
) {
    let mut cache = EventCache::default();
    // client-go runs both passes with wait.Until: right away, then every period.
    let mut refresh = interval_at(Instant::now(), REFRESH_TIME);
    let mut finish = interval_at(Instant::now(), FINISH_TIME);
    refresh.set_missed_tick_behavior(MissedTickBehavior::Delay);
    finish.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            ev = rx.recv() => {
                let Some(ev) = ev else { return };
                if let Some(to_send) = cache.observe(ev, Instant::now(), Timestamp::now()) {
                    tokio::spawn(attempt_recording(client.clone(), to_send, shutdown.clone()));
                }
            }
            _ = refresh.tick() => {
                for (key, ev) in cache.series() {
                    if let Outcome::Recorded(written) = sink::record_event(&client, &ev).await {
                        cache.replace(&key, *written);
                    }
                }
            }
            _ = finish.tick() => {
                for (key, ev) in cache.finished(Instant::now()) {
                    if !matches!(sink::record_event(&client, &ev).await, Outcome::Retry) {
                        cache.forget(&key);
                    }
                }
            }
        }
    }
}

/// client-go `attemptRecording`: up to 12 tries, ~10s apart.
async fn attempt_recording(client: kube::Client, event: Event, shutdown: CancellationToken) {
    for attempt in 1..=MAX_TRIES_PER_EVENT {
        if !matches!(sink::record_event(&client, &event).await, Outcome::Retry) {
            return;
        }
        if attempt == MAX_TRIES_PER_EVENT {
            break;
        }
        let pause = RETRY_SLEEP.mul_f64(1.0 + rand::random::<f64>() * 0.25);
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = sleep(pause) => {}
        }
    }
    error!(event = ?event.metadata.name, "Unable to write event (retry limit exceeded!)");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_names_follow_client_go() {
        assert_eq!(generate_event_name("nginx-1", 255), "nginx-1.ff");
        let odd = generate_event_name("Node_With_Caps", 0x10);
        let (random, suffix) = odd.split_once('.').unwrap_or_default();
        assert_eq!(suffix, "10");
        assert_eq!(random.len(), 63);
        assert!(is_dns_subdomain(&odd));
        assert!(!is_dns_subdomain(&format!("{}.1", "a".repeat(64))));
        assert!(is_dns_subdomain("a.b-c.1"));
        assert!(!is_dns_subdomain("-a.1"));
    }

    #[test]
    fn made_events_carry_every_field_upstream_sets() {
        let (tx, _rx) = mpsc::channel(1);
        let rec = EventRecorder {
            reporting_controller: "default-scheduler".into(),
            reporting_instance: "default-scheduler-host".into(),
            tx,
        };
        let node = ObjectReference {
            kind: Some("Node".into()),
            name: Some("n1".into()),
            ..Default::default()
        };
        let now = Timestamp::from_second(1_700_000_000).unwrap_or(Timestamp::UNIX_EPOCH);
        let ev = rec.make_event(
            &node,
            None,
            EventType::Warning,
            "Rebooted",
            "Reboot",
            "node rebooted",
            now,
        );
        assert_eq!(
            ev.metadata.namespace.as_deref(),
            Some("default"),
            "cluster-scoped → default"
        );
        assert_eq!(
            ev.metadata.name,
            Some(format!("n1.{:x}", now.as_nanosecond()))
        );
        assert_eq!(ev.event_time, Some(MicroTime(now)));
        assert_eq!(ev.type_.as_deref(), Some("Warning"));
        assert_eq!(ev.reason.as_deref(), Some("Rebooted"));
        assert_eq!(ev.action.as_deref(), Some("Reboot"));
        assert_eq!(ev.note.as_deref(), Some("node rebooted"));
        assert_eq!(
            ev.reporting_controller.as_deref(),
            Some("default-scheduler")
        );
        assert_eq!(
            ev.reporting_instance.as_deref(),
            Some("default-scheduler-host")
        );
        assert_eq!(ev.regarding.as_ref(), Some(&node));
        assert_eq!(ev.series, None);
    }
}
