//! Quota monitors (upstream `resource_quota_monitor.go` plus the
//! controller's `Sync` discovery loop): one metadata-only watch per
//! quotable resource without a typed evaluator, keeping how many objects
//! each namespace stores (the object-count evaluators' lister) and reporting
//! deletions so the namespace's quotas are replenished. Resources come from
//! discovery (preferred versions, namespaced, supporting create, list,
//! watch and delete; minus upstream's ignored resources), refreshed every
//! [`DISCOVERY_PERIOD`].

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::core::PartialObjectMeta;
use kube::discovery::{Discovery, Scope, verbs};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tokio_util::sync::CancellationToken;

use super::evaluator::{GroupResource, TYPED};

/// Upstream runs `Sync(ctx, discoveryFunc, 30*time.Second)`.
pub const DISCOVERY_PERIOD: Duration = Duration::from_secs(30);

/// Upstream `quotainstall.DefaultIgnoredResources`.
pub const IGNORED_RESOURCES: &[(&str, &str)] = &[
    ("", "bindings"),
    ("", "componentstatuses"),
    ("authentication.k8s.io", "tokenreviews"),
    ("authentication.k8s.io", "selfsubjectreviews"),
    ("authorization.k8s.io", "subjectaccessreviews"),
    ("authorization.k8s.io", "selfsubjectaccessreviews"),
    ("authorization.k8s.io", "localsubjectaccessreviews"),
    ("authorization.k8s.io", "selfsubjectrulesreviews"),
    ("", "events"),
    ("events.k8s.io", "events"),
];

/// Whether discovery's resource is one a monitor counts.
pub fn is_monitored(gr: &GroupResource, namespaced: bool, operations: &[String]) -> bool {
    let has = |v: &str| operations.iter().any(|o| o == v);
    let ignored = IGNORED_RESOURCES
        .iter()
        .any(|(g, r)| gr.group == *g && gr.resource == *r);
    let typed = gr.group.is_empty() && TYPED.contains(&gr.resource.as_str());
    namespaced
        && !ignored
        && !typed
        && !gr.resource.contains('/')
        && [verbs::CREATE, verbs::LIST, verbs::WATCH, verbs::DELETE]
            .iter()
            .all(|v| has(v))
}

#[derive(Default)]
struct Counted {
    synced: bool,
    /// namespace → names stored there.
    by_namespace: HashMap<String, HashSet<String>>,
}

/// Called with a resource and namespace whose objects were deleted.
pub type Replenish = Arc<dyn Fn(&GroupResource, &str) + Send + Sync>;

/// The monitors' shared state; cheap to clone.
#[derive(Clone, Default)]
pub struct Monitors {
    counted: Arc<RwLock<HashMap<GroupResource, Counted>>>,
}

impl Monitors {
    /// The resources being counted (the object-count evaluators).
    pub fn resources(&self) -> Vec<GroupResource> {
        self.read().keys().cloned().collect()
    }

    /// Objects of `gr` stored in `namespace`, once its monitor has listed.
    pub fn count(&self, gr: &GroupResource, namespace: &str) -> Option<usize> {
        let counted = self.read();
        let c = counted.get(gr).filter(|c| c.synced)?;
        Some(c.by_namespace.get(namespace).map_or(0, HashSet::len))
    }

    /// Whether every monitor has listed its resource once.
    pub fn all_synced(&self) -> bool {
        self.read().values().all(|c| c.synced)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<GroupResource, Counted>> {
        self.counted.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<GroupResource, Counted>> {
        self.counted.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs discovery now and then every [`DISCOVERY_PERIOD`] until
    /// `shutdown`, starting and stopping monitors to match. Returns after
    /// the first round has started its monitors.
    pub async fn start(&self, client: Client, replenish: Replenish, shutdown: CancellationToken) {
        let mut running: HashMap<GroupResource, CancellationToken> = HashMap::new();
        self.sync_monitors(&client, &replenish, &mut running, &shutdown)
            .await;
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(DISCOVERY_PERIOD) => {}
                }
                this.sync_monitors(&client, &replenish, &mut running, &shutdown)
                    .await;
            }
        });
    }

    async fn sync_monitors(
        &self,
        client: &Client,
        replenish: &Replenish,
        running: &mut HashMap<GroupResource, CancellationToken>,
        shutdown: &CancellationToken,
    ) {
        let found = match discover(client).await {
            Ok(found) => found,
            Err(err) => {
                tracing::warn!(error = %err, "resource quota: discovery failed; keeping current monitors");
                return;
            }
        };
        let wanted: HashSet<&GroupResource> = found.iter().map(|(gr, _)| gr).collect();
        running.retain(|gr, stop| {
            let keep = wanted.contains(gr);
            if !keep {
                tracing::info!(resource = ?gr, "resource quota: removing monitor");
                stop.cancel();
                self.write().remove(gr);
            }
            keep
        });
        for (gr, ar) in found {
            if running.contains_key(&gr) {
                continue;
            }
            let stop = shutdown.child_token();
            self.write().insert(gr.clone(), Counted::default());
            tokio::spawn(self.clone().run_monitor(
                client.clone(),
                gr.clone(),
                ar,
                stop.clone(),
                Arc::clone(replenish),
            ));
            running.insert(gr, stop);
        }
    }

    async fn run_monitor(
        self,
        client: Client,
        gr: GroupResource,
        ar: ApiResource,
        stop: CancellationToken,
        replenish: Replenish,
    ) {
        let api: Api<PartialObjectMeta<DynamicObject>> = Api::all_with(client, &ar);
        let stream = watcher::watcher(api, watcher::Config::default()).default_backoff();
        let mut stream = std::pin::pin!(stream);
        let mut relisted: Option<HashMap<String, HashSet<String>>> = None;
        loop {
            let next = tokio::select! {
                _ = stop.cancelled() => break,
                next = stream.next() => next,
            };
            let event = match next {
                Some(Ok(event)) => event,
                Some(Err(err)) => {
                    tracing::warn!(resource = ?gr, error = %err, "resource quota monitor: watch failed; retrying");
                    continue;
                }
                None => break,
            };
            match event {
                Event::Init => relisted = Some(HashMap::new()),
                Event::InitApply(obj) => {
                    if let (Some(seen), Some((ns, name))) = (relisted.as_mut(), ns_name(&obj)) {
                        seen.entry(ns).or_default().insert(name);
                    }
                }
                Event::InitDone => {
                    let fresh = relisted.take().unwrap_or_default();
                    let shrunk = self.replace(&gr, fresh);
                    for ns in shrunk {
                        replenish(&gr, &ns);
                    }
                }
                Event::Apply(obj) => {
                    if let Some((ns, name)) = ns_name(&obj) {
                        self.update(&gr, |c| {
                            c.by_namespace.entry(ns).or_default().insert(name);
                        });
                    }
                }
                Event::Delete(obj) => {
                    if let Some((ns, name)) = ns_name(&obj) {
                        self.update(&gr, |c| {
                            if let Some(names) = c.by_namespace.get_mut(&ns) {
                                names.remove(&name);
                            }
                        });
                        replenish(&gr, &ns);
                    }
                }
            }
        }
        tracing::debug!(resource = ?gr, "resource quota monitor stopped");
    }

    fn update(&self, gr: &GroupResource, f: impl FnOnce(&mut Counted)) {
        if let Some(c) = self.write().get_mut(gr) {
            f(c);
        }
    }

    /// Installs a fresh listing; returns the namespaces that lost objects
    /// (deletions missed while the watch was down).
    fn replace(&self, gr: &GroupResource, fresh: HashMap<String, HashSet<String>>) -> Vec<String> {
        let mut counted = self.write();
        let Some(c) = counted.get_mut(gr) else {
            return Vec::new();
        };
        let shrunk = c
            .by_namespace
            .iter()
            .filter(|(ns, names)| {
                let now = fresh.get(*ns);
                names.iter().any(|n| !now.is_some_and(|s| s.contains(n)))
            })
            .map(|(ns, _)| ns.clone())
            .collect();
        c.by_namespace = fresh;
        c.synced = true;
        shrunk
    }
}

fn ns_name(obj: &PartialObjectMeta<DynamicObject>) -> Option<(String, String)> {
    Some((obj.metadata.namespace.clone()?, obj.metadata.name.clone()?))
}

/// Upstream `GetQuotableResources` over `ServerPreferredNamespacedResources`.
async fn discover(client: &Client) -> Result<Vec<(GroupResource, ApiResource)>, kube::Error> {
    let discovery = match Discovery::new(client.clone()).run_aggregated().await {
        Ok(d) => d,
        Err(err) => {
            tracing::debug!(error = %err, "aggregated discovery failed; falling back");
            Discovery::new(client.clone()).run().await?
        }
    };
    let mut found = Vec::new();
    for group in discovery.groups() {
        for (ar, caps) in group.recommended_resources() {
            let gr = GroupResource::new(&ar.group, &ar.plural);
            if is_monitored(&gr, caps.scope == Scope::Namespaced, &caps.operations) {
                found.push((gr, ar));
            }
        }
    }
    Ok(found)
}
