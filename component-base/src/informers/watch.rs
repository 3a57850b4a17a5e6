//! The single watch loop of one informer: applies watch events to the
//! store and turns them into notifications.

use std::collections::HashMap;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{ObjectRef, store::Writer};
use kube::runtime::watcher::{self, Event};
use tokio_util::sync::CancellationToken;

use super::informer::{CHANNEL_CAPACITY, Change, Feed, Informable};

/// Runs one informer's watch until `shutdown` fires or the stream ends.
pub(super) async fn run<K, S>(events: S, feed: Feed<K>, shutdown: CancellationToken)
where
    K: Informable,
    S: Stream<Item = Result<Event<K>, watcher::Error>> + Send + 'static,
{
    let Feed {
        mut writer,
        tx,
        synced,
    } = feed;
    let kind = K::kind(&());
    let stream = events.default_backoff();
    let mut stream = std::pin::pin!(stream);
    let mut relist = Relist::default();
    loop {
        let next = tokio::select! {
            _ = shutdown.cancelled() => break,
            next = stream.next() => next,
        };
        match next {
            Some(Ok(event)) => {
                tracing::trace!(%kind, "watch event");
                let list_done = matches!(event, Event::InitDone);
                let changes = apply_event(&mut writer, &mut relist, &event);
                // No receivers is fine: consumers may not have subscribed yet.
                if changes.len() > CHANNEL_CAPACITY {
                    // A (re)list larger than the channel would make every
                    // subscriber lag; one resync from the store says the same.
                    let _ = tx.send(Change::Resync);
                } else {
                    for change in changes {
                        let _ = tx.send(change);
                    }
                }
                if list_done {
                    synced.send_replace(true);
                }
            }
            Some(Err(err)) => {
                tracing::warn!(%kind, error = %err, "watch failed; retrying with backoff")
            }
            None => break,
        }
    }
    tracing::debug!(%kind, "informer stopped");
}

/// What the store held when a relist started, to diff against its result.
struct Relist<K: Informable> {
    before: Option<HashMap<ObjectRef<K>, Arc<K>>>,
}

impl<K: Informable> Default for Relist<K> {
    fn default() -> Self {
        Self { before: None }
    }
}

/// Applies one watch event to the store and returns the notifications it
/// implies. A relist is diffed against the previous contents so deletions
/// missed while disconnected are still reported.
fn apply_event<K: Informable>(
    writer: &mut Writer<K>,
    relist: &mut Relist<K>,
    event: &Event<K>,
) -> Vec<Change<K>> {
    let store = writer.as_reader();
    match event {
        Event::Apply(obj) => {
            let old = store.get(&ObjectRef::from_obj(obj));
            writer.apply_watcher_event(event);
            let new = Arc::new(obj.clone());
            vec![match old {
                Some(old) => Change::Updated { old, new },
                None => Change::Added(new),
            }]
        }
        Event::Delete(obj) => {
            let last = store
                .get(&ObjectRef::from_obj(obj))
                .unwrap_or_else(|| Arc::new(obj.clone()));
            writer.apply_watcher_event(event);
            vec![Change::Deleted(last)]
        }
        Event::Init => {
            relist.before = Some(
                store
                    .state()
                    .into_iter()
                    .map(|o| (ObjectRef::from_obj(o.as_ref()), o))
                    .collect(),
            );
            writer.apply_watcher_event(event);
            Vec::new()
        }
        Event::InitApply(_) => {
            writer.apply_watcher_event(event);
            Vec::new()
        }
        Event::InitDone => {
            writer.apply_watcher_event(event);
            let mut before = relist.before.take().unwrap_or_default();
            let mut changes = Vec::new();
            for new in store.state() {
                let key = ObjectRef::from_obj(new.as_ref());
                changes.push(match before.remove(&key) {
                    Some(old) => Change::Updated { old, new },
                    None => Change::Added(new),
                });
            }
            changes.extend(before.into_values().map(Change::Deleted));
            changes
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::ObjectMeta;

    fn pod(name: &str, rv: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                resource_version: Some(rv.into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn describe(changes: &[Change<Pod>]) -> Vec<String> {
        let name = |p: &Arc<Pod>| p.metadata.name.clone().unwrap_or_default();
        changes
            .iter()
            .map(|c| match c {
                Change::Added(p) => format!("add {}", name(p)),
                Change::Updated { old, new } => format!(
                    "update {} {}->{}",
                    name(new),
                    old.metadata.resource_version.clone().unwrap_or_default(),
                    new.metadata.resource_version.clone().unwrap_or_default()
                ),
                Change::Deleted(p) => format!("delete {}", name(p)),
                Change::Resync => "resync".into(),
            })
            .collect()
    }

    #[test]
    fn watch_events_become_add_update_delete_and_relists_are_diffed() {
        let mut writer = Writer::<Pod>::default();
        let mut relist = Relist::default();
        let mut run = |ev: Event<Pod>| describe(&apply_event(&mut writer, &mut relist, &ev));
        assert!(run(Event::Init).is_empty());
        assert!(run(Event::InitApply(pod("a", "1"))).is_empty());
        assert!(run(Event::InitApply(pod("b", "1"))).is_empty());
        let mut initial = run(Event::InitDone);
        initial.sort();
        assert_eq!(initial, vec!["add a", "add b"]);
        assert_eq!(run(Event::Apply(pod("a", "2"))), vec!["update a 1->2"]);
        assert_eq!(run(Event::Apply(pod("c", "3"))), vec!["add c"]);
        assert_eq!(run(Event::Delete(pod("c", "4"))), vec!["delete c"]);
        // Relist after a disconnect: b vanished, a changed.
        run(Event::Init);
        run(Event::InitApply(pod("a", "5")));
        assert_eq!(run(Event::InitDone), vec!["update a 2->5", "delete b"]);
    }
}
