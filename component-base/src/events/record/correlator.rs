//! client-go `tools/record` `EventCorrelator`: what becomes of each event
//! before it is written.
//!
//! - **Aggregation**: once 10 events that differ only in their message have
//!   been seen for the same source, object, type and reason within 10
//!   minutes, further ones become a single event whose message is
//!   `(combined from similar events): <latest message>`.
//! - **Deduplication**: an event identical (message included) to one seen
//!   before is sent as a strategic-merge patch of the first one's `count`,
//!   `lastTimestamp` and `message`.
//! - **Spam filter**: a token bucket per source + object (burst 25, one more
//!   every 5 minutes) drops whatever exceeds it.
//!
//! Each cache holds at most 4096 entries, least recently used first out.

use std::collections::HashSet;
use std::time::Duration;

use k8s_openapi::api::core::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value};

use super::lru::Lru;

/// client-go `maxLruCacheEntries`.
pub const MAX_LRU_CACHE_ENTRIES: usize = 4096;
/// client-go `defaultAggregateMaxEvents`.
pub const AGGREGATE_MAX_EVENTS: usize = 10;
/// client-go `defaultAggregateIntervalInSeconds`.
pub const AGGREGATE_INTERVAL: Duration = Duration::from_secs(600);
/// client-go `defaultSpamBurst`.
pub const SPAM_BURST: f64 = 25.0;
/// client-go `defaultSpamQPS`: one event every 5 minutes.
pub const SPAM_QPS: f64 = 1.0 / 300.0;
/// client-go `EventAggregatorByReasonMessageFunc`'s prefix.
pub const AGGREGATE_MESSAGE_PREFIX: &str = "(combined from similar events): ";

/// What to write for one recorded event.
#[derive(Debug, Clone, PartialEq)]
pub struct Correlated {
    /// The event to create (or, with a patch, the one being updated).
    pub event: Event,
    /// A strategic-merge patch of the existing event named `event`'s name,
    /// when this is a repeat (then `event.count` > 1).
    pub patch: Option<Value>,
}

/// Keys of the occurrence log: a single event's full key, or the key of the
/// combined event of an aggregation group.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum LogKey {
    Event(Vec<String>),
    Aggregate(Vec<String>),
}

#[derive(Default)]
struct AggregateRecord {
    /// Distinct messages seen in the group (never more than the maximum).
    local_keys: HashSet<String>,
    last: Option<Timestamp>,
}

/// client-go `eventLog`: the event a repeat patches.
struct EventLog {
    count: i32,
    first_timestamp: Option<Time>,
    name: Option<String>,
    resource_version: Option<String>,
}

/// client-go's `TryAccept` token bucket, full at first.
struct SpamBucket {
    tokens: f64,
    last: Timestamp,
}

impl SpamBucket {
    fn try_accept(&mut self, now: Timestamp) -> bool {
        let elapsed = seconds_between(self.last, now).max(0.0);
        self.tokens = (self.tokens + elapsed * SPAM_QPS).min(SPAM_BURST);
        if now > self.last {
            self.last = now;
        }
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

fn seconds_between(from: Timestamp, to: Timestamp) -> f64 {
    to.duration_since(from).as_secs_f64()
}

pub struct EventCorrelator {
    aggregates: Lru<Vec<String>, AggregateRecord>,
    log: Lru<LogKey, EventLog>,
    spam: Lru<Vec<String>, SpamBucket>,
}

impl Default for EventCorrelator {
    fn default() -> Self {
        Self {
            aggregates: Lru::new(MAX_LRU_CACHE_ENTRIES),
            log: Lru::new(MAX_LRU_CACHE_ENTRIES),
            spam: Lru::new(MAX_LRU_CACHE_ENTRIES),
        }
    }
}

fn text(s: &Option<String>) -> String {
    s.clone().unwrap_or_default()
}

fn source_of(ev: &Event) -> [String; 2] {
    let source = ev.source.clone().unwrap_or_default();
    [text(&source.component), text(&source.host)]
}

/// client-go `getSpamKey`: source and object.
fn spam_key(ev: &Event) -> Vec<String> {
    let o = &ev.involved_object;
    let [component, host] = source_of(ev);
    vec![
        component,
        host,
        text(&o.kind),
        text(&o.namespace),
        text(&o.name),
        text(&o.uid),
        text(&o.api_version),
    ]
}

/// client-go `getEventKey`: source, object (with field path), type, reason
/// and message.
fn event_key(ev: &Event) -> Vec<String> {
    let o = &ev.involved_object;
    let [component, host] = source_of(ev);
    vec![
        component,
        host,
        text(&o.kind),
        text(&o.namespace),
        text(&o.name),
        text(&o.field_path),
        text(&o.uid),
        text(&o.api_version),
        text(&ev.type_),
        text(&ev.reason),
        text(&ev.message),
    ]
}

/// client-go `EventAggregatorByReasonFunc`: the group (everything but the
/// message and field path) and the message within it.
fn aggregate_key(ev: &Event) -> (Vec<String>, String) {
    let mut key = spam_key(ev);
    key.extend([
        text(&ev.type_),
        text(&ev.reason),
        text(&ev.reporting_component),
        text(&ev.reporting_instance),
    ]);
    (key, text(&ev.message))
}

impl EventCorrelator {
    /// client-go `EventCorrelate`: the event to write and how, or `None`
    /// when the spam filter drops it.
    pub fn correlate(&mut self, event: Event, now: Timestamp) -> Option<Correlated> {
        let (event, key) = self.aggregate(event, now);
        let (event, patch) = self.observe(event, key);
        if self.is_spam(&event, now) {
            return None;
        }
        Some(Correlated { event, patch })
    }

    /// client-go `UpdateState`: remember the server's copy (its name and
    /// resourceVersion) of a written event.
    pub fn update_state(&mut self, written: &Event) {
        self.log
            .add(LogKey::Event(event_key(written)), EventLog::of(written));
    }

    fn aggregate(&mut self, event: Event, now: Timestamp) -> (Event, LogKey) {
        let (group, local) = aggregate_key(&event);
        let max_interval =
            SignedDuration::try_from(AGGREGATE_INTERVAL).unwrap_or(SignedDuration::MAX);
        let stale = self
            .aggregates
            .get(&group)
            .and_then(|r| r.last)
            .is_none_or(|last| now.duration_since(last) > max_interval);
        if stale {
            self.aggregates
                .add(group.clone(), AggregateRecord::default());
        }
        let Some(record) = self.aggregates.get(&group) else {
            let key = LogKey::Event(event_key(&event));
            return (event, key);
        };
        record.local_keys.insert(local);
        record.last = Some(now);
        if record.local_keys.len() < AGGREGATE_MAX_EVENTS {
            let key = LogKey::Event(event_key(&event));
            return (event, key);
        }
        // Keep the group at its maximum: any one message makes room.
        if let Some(any) = record.local_keys.iter().next().cloned() {
            record.local_keys.remove(&any);
        }
        let combined = Event {
            metadata: ObjectMeta {
                name: Some(format!(
                    "{}.{:x}",
                    text(&event.involved_object.name),
                    now.as_nanosecond()
                )),
                namespace: event.metadata.namespace.clone(),
                ..ObjectMeta::default()
            },
            count: Some(1),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            message: Some(format!(
                "{AGGREGATE_MESSAGE_PREFIX}{}",
                text(&event.message)
            )),
            type_: event.type_.clone(),
            reason: event.reason.clone(),
            source: event.source.clone(),
            involved_object: event.involved_object,
            ..Event::default()
        };
        (combined, LogKey::Aggregate(group))
    }

    /// client-go `eventObserve`: a repeat takes the first occurrence's name,
    /// resourceVersion and firstTimestamp, a count one higher, and a patch.
    fn observe(&mut self, mut event: Event, key: LogKey) -> (Event, Option<Value>) {
        let mut patch = None;
        if let Some(last) = self.log.get(&key).filter(|l| l.count > 0) {
            event.metadata.name = last.name.clone();
            event.metadata.resource_version = last.resource_version.clone();
            event.first_timestamp = last.first_timestamp.clone();
            event.count = Some(last.count.saturating_add(1));
            patch = Some(repeat_patch(&event));
        }
        self.log.add(key, EventLog::of(&event));
        (event, patch)
    }

    /// client-go `EventSourceObjectSpamFilter.Filter`.
    fn is_spam(&mut self, event: &Event, now: Timestamp) -> bool {
        let key = spam_key(event);
        if self.spam.get(&key).is_none() {
            self.spam.add(
                key.clone(),
                SpamBucket {
                    tokens: SPAM_BURST,
                    last: now,
                },
            );
        }
        self.spam.get(&key).is_some_and(|b| !b.try_accept(now))
    }
}

impl EventLog {
    fn of(event: &Event) -> Self {
        Self {
            count: event.count.unwrap_or(0),
            first_timestamp: event.first_timestamp.clone(),
            name: event.metadata.name.clone(),
            resource_version: event.metadata.resource_version.clone(),
        }
    }
}

/// The two-way strategic merge patch client-go computes between the event
/// with count 0, lastTimestamp at the epoch and no message, and the event
/// itself: exactly the fields a repeat changes.
fn repeat_patch(event: &Event) -> Value {
    let mut patch = Map::new();
    if let Some(count) = event.count.filter(|c| *c != 0) {
        patch.insert("count".into(), Value::from(count));
    }
    match &event.last_timestamp {
        Some(t) if t.0 == Timestamp::UNIX_EPOCH => {}
        Some(t) => {
            patch.insert(
                "lastTimestamp".into(),
                serde_json::to_value(t).unwrap_or(Value::Null),
            );
        }
        None => {
            patch.insert("lastTimestamp".into(), Value::Null);
        }
    }
    if let Some(message) = event.message.as_deref().filter(|m| !m.is_empty()) {
        patch.insert("message".into(), Value::from(message));
    }
    Value::Object(patch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{EventSource, ObjectReference};
    use serde_json::json;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    fn event(object: &str, reason: &str, message: &str, now: Timestamp) -> Event {
        Event {
            metadata: ObjectMeta {
                name: Some(format!("{object}.{:x}", now.as_nanosecond())),
                namespace: Some("ns".into()),
                ..ObjectMeta::default()
            },
            involved_object: ObjectReference {
                api_version: Some("apps/v1".into()),
                kind: Some("ReplicaSet".into()),
                namespace: Some("ns".into()),
                name: Some(object.into()),
                uid: Some(format!("uid-{object}")),
                resource_version: Some("7".into()),
                field_path: None,
            },
            reason: Some(reason.into()),
            message: Some(message.into()),
            type_: Some("Normal".into()),
            count: Some(1),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            source: Some(EventSource {
                component: Some("replicaset-controller".into()),
                host: None,
            }),
            reporting_component: Some("replicaset-controller".into()),
            reporting_instance: Some(String::new()),
            ..Event::default()
        }
    }

    fn correlate(c: &mut EventCorrelator, ev: Event, now: Timestamp) -> Correlated {
        c.correlate(ev, now).expect("not filtered")
    }

    #[test]
    fn identical_events_become_count_patches_of_the_first() {
        let mut c = EventCorrelator::default();
        let first = correlate(&mut c, event("rs", "SuccessfulCreate", "m", at(0)), at(0));
        assert_eq!(first.patch, None);
        assert_eq!(first.event.count, Some(1));
        let first_name = first.event.metadata.name.clone();

        let second = correlate(&mut c, event("rs", "SuccessfulCreate", "m", at(5)), at(5));
        assert_eq!(second.event.metadata.name, first_name);
        assert_eq!(second.event.count, Some(2));
        assert_eq!(second.event.first_timestamp, Some(Time(at(0))));
        assert_eq!(second.event.last_timestamp, Some(Time(at(5))));
        assert_eq!(
            second.patch,
            Some(json!({
                "count": 2,
                "lastTimestamp": "2023-11-14T22:13:25Z",
                "message": "m",
            }))
        );

        let third = correlate(&mut c, event("rs", "SuccessfulCreate", "m", at(9)), at(9));
        assert_eq!(third.event.count, Some(3));
        assert_eq!(third.event.metadata.name, first_name);

        // Another message is another event (not yet an aggregation).
        let other = correlate(&mut c, event("rs", "SuccessfulCreate", "n", at(9)), at(9));
        assert_eq!(other.patch, None);
        assert_eq!(other.event.count, Some(1));
    }

    #[test]
    fn server_state_names_the_event_later_repeats_patch() {
        let mut c = EventCorrelator::default();
        let first = correlate(&mut c, event("rs", "R", "m", at(0)), at(0));
        let mut written = first.event.clone();
        written.metadata.name = Some("rs.server".into());
        written.metadata.resource_version = Some("100".into());
        c.update_state(&written);
        let again = correlate(&mut c, event("rs", "R", "m", at(1)), at(1));
        assert_eq!(again.event.metadata.name.as_deref(), Some("rs.server"));
        assert_eq!(
            again.event.metadata.resource_version.as_deref(),
            Some("100")
        );
        assert_eq!(again.event.count, Some(2));
    }

    #[test]
    fn ten_similar_events_within_ten_minutes_are_combined() {
        let mut c = EventCorrelator::default();
        for i in 0..9 {
            let out = correlate(&mut c, event("rs", "R", &format!("m{i}"), at(i)), at(i));
            assert_eq!(out.event.message.as_deref(), Some(format!("m{i}").as_str()));
            assert_eq!(out.patch, None);
        }
        let tenth = correlate(&mut c, event("rs", "R", "m9", at(9)), at(9));
        assert_eq!(
            tenth.event.message.as_deref(),
            Some("(combined from similar events): m9")
        );
        assert_eq!(tenth.event.count, Some(1));
        assert_eq!(tenth.patch, None);
        assert_eq!(
            tenth.event.metadata.name,
            Some(format!("rs.{:x}", at(9).as_nanosecond()))
        );
        assert_eq!(tenth.event.first_timestamp, Some(Time(at(9))));
        assert_eq!(tenth.event.source, event("rs", "R", "", at(0)).source);
        // client-go's combined event carries no reporting fields.
        assert_eq!(tenth.event.reporting_component, None);
        assert_eq!(tenth.event.involved_object.name.as_deref(), Some("rs"));

        let eleventh = correlate(&mut c, event("rs", "R", "m10", at(10)), at(10));
        assert_eq!(eleventh.event.metadata.name, tenth.event.metadata.name);
        assert_eq!(eleventh.event.count, Some(2));
        assert_eq!(
            eleventh.patch.as_ref().and_then(|p| p.get("message")),
            Some(&json!("(combined from similar events): m10"))
        );

        // Another reason, or another object, is another group.
        let other = correlate(&mut c, event("rs", "Other", "x", at(11)), at(11));
        assert_eq!(other.event.message.as_deref(), Some("x"));
        let other = correlate(&mut c, event("rs2", "R", "x", at(11)), at(11));
        assert_eq!(other.event.message.as_deref(), Some("x"));
    }

    #[test]
    fn aggregation_restarts_after_ten_quiet_minutes() {
        let mut c = EventCorrelator::default();
        for i in 0..9 {
            correlate(&mut c, event("rs", "R", &format!("m{i}"), at(i)), at(i));
        }
        // The group was last seen at 8s; 600s later it is still current...
        let t = at(8 + 600);
        let out = correlate(&mut c, event("rs", "R", "late", t), t);
        assert!(
            out.event
                .message
                .as_deref()
                .is_some_and(|m| m.starts_with("(combined"))
        );
        // ...but more than 600s after that it starts over.
        let t = at(8 + 600 + 601);
        let out = correlate(&mut c, event("rs", "R", "fresh", t), t);
        assert_eq!(out.event.message.as_deref(), Some("fresh"));
    }

    #[test]
    fn spam_filter_allows_a_burst_of_25_per_object_then_one_per_5_minutes() {
        let mut c = EventCorrelator::default();
        // Distinct reasons so neither aggregation nor dedup hides anything.
        let mut sent = 0;
        for i in 0..30 {
            if c.correlate(event("rs", &format!("R{i}"), "m", at(0)), at(0))
                .is_some()
            {
                sent += 1;
            }
        }
        assert_eq!(sent, 25);
        // Repeats count against the same bucket.
        assert!(c.correlate(event("rs", "R0", "m", at(1)), at(1)).is_none());
        // Another object has its own bucket.
        assert!(
            c.correlate(event("other", "R0", "m", at(1)), at(1))
                .is_some()
        );
        // One token back after five minutes, and only one.
        assert!(
            c.correlate(event("rs", "R40", "m", at(299)), at(299))
                .is_none()
        );
        assert!(
            c.correlate(event("rs", "R41", "m", at(301)), at(301))
                .is_some()
        );
        assert!(
            c.correlate(event("rs", "R42", "m", at(302)), at(302))
                .is_none()
        );
    }

    #[test]
    fn repeat_patch_is_the_fields_a_repeat_changes() {
        let mut ev = event("rs", "R", "", at(0));
        ev.count = Some(4);
        assert_eq!(
            repeat_patch(&ev),
            json!({"count": 4, "lastTimestamp": "2023-11-14T22:13:20Z"})
        );
    }
}
