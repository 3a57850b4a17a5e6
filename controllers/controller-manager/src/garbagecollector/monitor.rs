//! Resource monitors (upstream `GraphBuilder.syncMonitors` and
//! `Run`/`runProcessGraphChanges`): one metadata-only watch per deletable
//! resource feeding the graph, (re)started from discovery every 30 s.
//! Resources that cannot be watched are logged and retried by the
//! watcher's backoff; they never block the others.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::core::PartialObjectMeta;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::graph::Node;
use super::resources::{self, resource_key};
use super::{Collector, DISCOVERY_RESYNC_PERIOD};

/// Becomes ready once every monitor started by the first discovery has
/// listed its resource once.
pub struct SyncGate {
    pending: Vec<watch::Receiver<bool>>,
}

impl SyncGate {
    pub async fn wait(mut self, limit: Duration) {
        let all = async {
            for rx in &mut self.pending {
                // A closed channel means the monitor stopped: nothing to wait for.
                let _ = rx.wait_for(|synced| *synced).await;
            }
        };
        if tokio::time::timeout(limit, all).await.is_err() {
            tracing::warn!(
                ?limit,
                "timed out waiting for all garbage collector monitors to sync; starting anyway"
            );
        }
    }
}

/// Runs discovery once, starts monitors, and keeps re-syncing them in the
/// background until `shutdown`.
pub async fn run_discovery_loop(
    collector: Arc<Collector>,
    shutdown: CancellationToken,
) -> SyncGate {
    let mut monitors: HashMap<String, CancellationToken> = HashMap::new();
    let pending = sync_monitors(&collector, &mut monitors, &shutdown).await;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(DISCOVERY_RESYNC_PERIOD) => {}
            }
            sync_monitors(&collector, &mut monitors, &shutdown).await;
        }
    });
    SyncGate { pending }
}

/// Starts monitors for new resources and stops those no longer served.
async fn sync_monitors(
    collector: &Arc<Collector>,
    monitors: &mut HashMap<String, CancellationToken>,
    shutdown: &CancellationToken,
) -> Vec<watch::Receiver<bool>> {
    let table = match resources::discover(&collector.client).await {
        Ok(t) => t,
        Err(err) => {
            tracing::warn!(error = %err, "garbage collector: failed to discover resources; keeping current monitors");
            return Vec::new();
        }
    };
    let wanted: HashSet<String> = table.by_key.keys().cloned().collect();
    monitors.retain(|key, stop| {
        let keep = wanted.contains(key);
        if !keep {
            tracing::info!(resource = %key, "garbage collector: removing monitor");
            stop.cancel();
        }
        keep
    });
    let mut pending = Vec::new();
    for (key, resource) in &table.by_key {
        if monitors.contains_key(key) {
            continue;
        }
        let stop = shutdown.child_token();
        let (tx, rx) = watch::channel(false);
        tokio::spawn(run_monitor(
            Arc::clone(collector),
            resource.api.clone(),
            stop.clone(),
            tx,
        ));
        monitors.insert(key.clone(), stop);
        pending.push(rx);
    }
    *collector
        .resources
        .write()
        .unwrap_or_else(|p| p.into_inner()) = table;
    pending
}

async fn run_monitor(
    collector: Arc<Collector>,
    ar: ApiResource,
    stop: CancellationToken,
    synced: watch::Sender<bool>,
) {
    let key = resource_key(&ar);
    // `Api<PartialObjectMeta<_>>` makes metadata-only list/watch requests.
    let api: Api<PartialObjectMeta<DynamicObject>> = Api::all_with(collector.client.clone(), &ar);
    let stream = watcher::watcher(api, watcher::Config::default()).default_backoff();
    let mut stream = std::pin::pin!(stream);
    let mut relisted: Option<HashSet<String>> = None;
    loop {
        let next = tokio::select! {
            _ = stop.cancelled() => break,
            next = stream.next() => next,
        };
        let event = match next {
            Some(Ok(event)) => event,
            Some(Err(err)) => {
                tracing::warn!(resource = %key, error = %err, "garbage collector: watch failed; retrying");
                continue;
            }
            None => break,
        };
        let work = match event {
            Event::Init => {
                relisted = Some(HashSet::new());
                Vec::new()
            }
            Event::InitApply(obj) | Event::Apply(obj) => {
                let Some(node) = Node::from_meta(&key, &obj.metadata) else {
                    continue;
                };
                if let Some(seen) = relisted.as_mut() {
                    seen.insert(node.uid.clone());
                }
                collector.graph().observe(node)
            }
            Event::Delete(obj) => match obj.metadata.uid.as_deref() {
                Some(uid) => collector.graph().remove(uid),
                None => Vec::new(),
            },
            Event::InitDone => {
                let seen = relisted.take().unwrap_or_default();
                let mut graph = collector.graph();
                let gone: Vec<String> = graph
                    .uids_of(&key)
                    .into_iter()
                    .filter(|u| !seen.contains(u))
                    .collect();
                let work = gone.iter().flat_map(|uid| graph.remove(uid)).collect();
                drop(graph);
                let _ = synced.send(true);
                work
            }
        };
        collector.enqueue(work);
    }
    tracing::debug!(resource = %key, "garbage collector monitor stopped");
}
