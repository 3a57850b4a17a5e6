//! The isomorphic-event cache of client-go's `tools/events` broadcaster:
//! which event to send when an event is recorded, and which series to write
//! on the periodic refresh (30 min) and finish (6 min) passes.

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;

/// A series with no new occurrence for this long is finished, and a
/// singleton this old is forgotten (client-go `finishTime`).
pub const FINISH_TIME: Duration = Duration::from_secs(6 * 60);
/// Ongoing series are re-written this often (client-go `refreshTime`).
pub const REFRESH_TIME: Duration = Duration::from_secs(30 * 60);

/// All fields of an ObjectReference, since client-go keys on the whole struct.
type RefKey = [Option<String>; 7];

fn ref_key(r: Option<&ObjectReference>) -> RefKey {
    let r = r.cloned().unwrap_or_default();
    [
        r.api_version,
        r.field_path,
        r.kind,
        r.name,
        r.namespace,
        r.resource_version,
        r.uid,
    ]
}

/// client-go `eventKey`: the note is *not* part of it, so an event that
/// differs only in its message joins the earlier event's series.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EventKey {
    event_type: Option<String>,
    action: Option<String>,
    reason: Option<String>,
    reporting_controller: Option<String>,
    reporting_instance: Option<String>,
    regarding: RefKey,
    related: RefKey,
}

impl EventKey {
    pub fn of(ev: &Event) -> Self {
        Self {
            event_type: ev.type_.clone(),
            action: ev.action.clone(),
            reason: ev.reason.clone(),
            reporting_controller: ev.reporting_controller.clone(),
            reporting_instance: ev.reporting_instance.clone(),
            regarding: ref_key(ev.regarding.as_ref()),
            related: ref_key(ev.related.as_ref()),
        }
    }
}

struct Cached {
    event: Event,
    /// Local clock of the first occurrence and of the latest one.
    first_seen: Instant,
    last_seen: Instant,
}

#[derive(Default)]
pub struct EventCache {
    entries: HashMap<EventKey, Cached>,
}

impl EventCache {
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Records an occurrence of `ev`; returns what to send now, if anything:
    /// the event itself the first time, the event with a `series` of count 2
    /// the second time, and nothing after that (the count only grows in the
    /// cache until the next refresh or finish pass writes it).
    pub fn observe(&mut self, ev: Event, now: Instant, wall_now: Timestamp) -> Option<Event> {
        let key = EventKey::of(&ev);
        if let Some(cached) = self.entries.get_mut(&key) {
            cached.last_seen = now;
            let observed = MicroTime(wall_now);
            return match &mut cached.event.series {
                Some(series) => {
                    series.count = series.count.saturating_add(1);
                    series.last_observed_time = observed;
                    None
                }
                None => {
                    cached.event.series = Some(EventSeries {
                        count: 2,
                        last_observed_time: observed,
                    });
                    Some(cached.event.clone())
                }
            };
        }
        self.entries.insert(
            key,
            Cached {
                event: ev.clone(),
                first_seen: now,
                last_seen: now,
            },
        );
        Some(ev)
    }

    /// Every ongoing series, to be re-written by the refresh pass.
    pub fn series(&self) -> Vec<(EventKey, Event)> {
        self.entries
            .iter()
            .filter(|(_, c)| c.event.series.is_some())
            .map(|(k, c)| (k.clone(), c.event.clone()))
            .collect()
    }

    /// Replaces a cached event with the server's copy after a refresh write.
    pub fn replace(&mut self, key: &EventKey, ev: Event) {
        if let Some(c) = self.entries.get_mut(key) {
            c.event = ev;
        }
    }

    /// The finish pass: forgets singletons older than [`FINISH_TIME`] and
    /// returns the series idle for that long, whose final count must be
    /// written before they are forgotten with [`Self::forget`].
    pub fn finished(&mut self, now: Instant) -> Vec<(EventKey, Event)> {
        let cutoff = |t: Instant| now.saturating_duration_since(t) > FINISH_TIME;
        self.entries
            .retain(|_, c| c.event.series.is_some() || !cutoff(c.first_seen));
        self.entries
            .iter()
            .filter(|(_, c)| c.event.series.is_some() && cutoff(c.last_seen))
            .map(|(k, c)| (k.clone(), c.event.clone()))
            .collect()
    }

    pub fn forget(&mut self, key: &EventKey) {
        self.entries.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(reason: &str, note: &str) -> Event {
        Event {
            type_: Some("Normal".into()),
            reason: Some(reason.into()),
            action: Some("Binding".into()),
            note: Some(note.into()),
            reporting_controller: Some("default-scheduler".into()),
            reporting_instance: Some("default-scheduler-host".into()),
            regarding: Some(ObjectReference {
                kind: Some("Pod".into()),
                namespace: Some("ns".into()),
                name: Some("p".into()),
                uid: Some("u1".into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn series_count(ev: &Option<Event>) -> Option<i32> {
        ev.as_ref().and_then(|e| e.series.as_ref()).map(|s| s.count)
    }

    #[test]
    fn first_is_sent_second_starts_a_series_later_ones_only_count() {
        let mut cache = EventCache::default();
        let t0 = Instant::now();
        let wall = Timestamp::UNIX_EPOCH;
        let first = cache.observe(event("Scheduled", "a"), t0, wall);
        assert_eq!(first.as_ref().and_then(|e| e.note.as_deref()), Some("a"));
        assert_eq!(series_count(&first), None);
        // A different note is the same event for client-go.
        let second = cache.observe(event("Scheduled", "b"), t0, wall);
        assert_eq!(series_count(&second), Some(2));
        assert_eq!(second.as_ref().and_then(|e| e.note.as_deref()), Some("a"));
        assert_eq!(cache.observe(event("Scheduled", "c"), t0, wall), None);
        assert_eq!(cache.observe(event("Scheduled", "d"), t0, wall), None);
        let series = cache.series();
        assert_eq!(series.len(), 1);
        assert_eq!(series[0].1.series.as_ref().map(|s| s.count), Some(4));
        // Another reason is another event.
        assert!(
            cache
                .observe(event("FailedScheduling", "x"), t0, wall)
                .is_some()
        );
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn key_covers_the_whole_regarding_reference() {
        let a = event("Scheduled", "n");
        let mut b = a.clone();
        if let Some(r) = b.regarding.as_mut() {
            r.resource_version = Some("42".into());
        }
        assert_ne!(EventKey::of(&a), EventKey::of(&b));
        let mut c = a.clone();
        c.note = Some("other".into());
        assert_eq!(EventKey::of(&a), EventKey::of(&c));
    }

    #[test]
    fn finish_pass_forgets_old_singletons_and_returns_idle_series() {
        let mut cache = EventCache::default();
        let t0 = Instant::now();
        let wall = Timestamp::UNIX_EPOCH;
        cache.observe(event("Single", ""), t0, wall);
        cache.observe(event("Repeated", ""), t0, wall);
        cache.observe(event("Repeated", ""), t0 + Duration::from_secs(60), wall);
        assert!(cache.finished(t0 + FINISH_TIME).is_empty());
        assert_eq!(cache.len(), 2);
        // The singleton is old now; the series was last seen 1 min later.
        assert!(
            cache
                .finished(t0 + FINISH_TIME + Duration::from_secs(1))
                .is_empty()
        );
        assert_eq!(cache.len(), 1);
        let done = cache.finished(t0 + FINISH_TIME + Duration::from_secs(61));
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].1.reason.as_deref(), Some("Repeated"));
        cache.forget(&done[0].0);
        assert!(cache.is_empty());
    }
}
