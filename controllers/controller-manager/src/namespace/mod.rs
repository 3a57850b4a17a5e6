//! The namespace controller (upstream `pkg/controller/namespace`): once a
//! Namespace is being deleted, delete everything in it (pods first), keep
//! the deletion conditions up to date, and remove the `kubernetes`
//! finalizer through the `finalize` subresource when nothing is left.

pub mod reconcile;

use std::sync::Arc;
use std::time::Duration;

use component_base::workqueue::{
    BucketRateLimiter, ItemExponentialFailureRateLimiter, MaxOfRateLimiter, RateLimitingQueue,
};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::Client;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, PostParams};
use kube::discovery::{Discovery, Scope, verbs};

use crate::controller::{
    ControllerContext, ControllerDescriptor, Enqueue, Key, KeyedController, Reconciler, SyncResult,
};
use crate::error::Error;
use component_base::informers::Change;
use kube::runtime::reflector::Store;
use reconcile::{ConditionUpdater, ContentTotals, PodGrace, ResourceOutcome};

/// Upstream `namespaceDeletionGracePeriod`: lets HA apiservers observe the
/// deletion and etcd members last-minute creations before we clean up.
const NAMESPACE_DELETION_GRACE_PERIOD: Duration = Duration::from_secs(5);

/// Attempts at the finalize PUT before giving up to the rate limiter.
const FINALIZE_CONFLICT_RETRIES: usize = 5;

/// Upstream `names.NamespaceController`.
pub const NAMESPACE_CONTROLLER: &str = "namespace-controller";

pub const DESCRIPTOR: ControllerDescriptor = ControllerDescriptor {
    name: NAMESPACE_CONTROLLER,
    aliases: &["namespace"],
    disabled_by_default: false,
    client_name: "namespace-controller",
    watches: &["Namespace"],
    concurrent_syncs: |c| c.concurrent.namespace,
    start: |ctx| Box::pin(start(ctx)),
};

struct Controller {
    client: Client,
    namespaces: Store<Namespace>,
}

pub async fn start(ctx: ControllerContext) -> Result<(), Error> {
    let informer = ctx.informers.informer::<Namespace>();
    let ctl = Arc::new(Controller {
        client: ctx.client.clone(),
        namespaces: informer.store().clone(),
    });
    let queue = RateLimitingQueue::with_rate_limiter("namespace", ns_controller_rate_limiter());
    KeyedController::new(NAMESPACE_CONTROLLER, ctl, queue)
        .watches(&informer, |_, change| match change {
            Change::Added(ns) | Change::Updated { new: ns, .. } => key_if_deleting(&ns),
            Change::Deleted(_) | Change::Resync => Vec::new(),
        })
        .run(&ctx)
        .await
}

impl Reconciler for Controller {
    async fn sync(&self, key: &Key) -> SyncResult {
        self.sync_namespace(&key.name).await
    }

    fn all_keys(&self) -> Vec<Enqueue> {
        self.namespaces
            .state()
            .iter()
            .flat_map(|ns| key_if_deleting(ns))
            .collect()
    }
}

/// A namespace being deleted is synced after the grace period.
fn key_if_deleting(ns: &Namespace) -> Vec<Enqueue> {
    if ns.metadata.deletion_timestamp.is_none() {
        return Vec::new();
    }
    let key = Key::new(None, ns.metadata.name.as_deref().unwrap_or_default());
    vec![Enqueue::After(key, NAMESPACE_DELETION_GRACE_PERIOD)]
}

/// Upstream `nsControllerRateLimiter`: failed deletions are retried at
/// least every minute.
fn ns_controller_rate_limiter() -> MaxOfRateLimiter<Key> {
    MaxOfRateLimiter::new(vec![
        Box::new(ItemExponentialFailureRateLimiter::new(
            Duration::from_millis(5),
            Duration::from_secs(60),
        )),
        Box::new(BucketRateLimiter::new(10.0, 100)),
    ])
}

fn is_method_not_supported(err: &Error) -> bool {
    err.status_code() == Some(405) || err.is_not_found()
}

/// A namespaced, deletable resource found by discovery.
struct Deletable {
    resource: ApiResource,
    list: bool,
    delete_collection: bool,
}

impl Deletable {
    /// `resource.group`, as upstream prints GroupResources in conditions.
    fn display(&self) -> String {
        format!("{}.{}", self.resource.plural, self.resource.group)
    }

    fn is_pods(&self) -> bool {
        self.resource.group.is_empty() && self.resource.plural == "pods"
    }
}

impl Controller {
    /// Upstream `namespacedResourcesDeleter.Delete`.
    async fn sync_namespace(&self, name: &str) -> SyncResult {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let Some(mut ns) = api.get_opt(name).await? else {
            return Ok(None);
        };
        let Some(deleted_at) = ns.metadata.deletion_timestamp.clone() else {
            return Ok(None);
        };
        if ns.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Terminating") {
            ns.status.get_or_insert_with(Default::default).phase = Some("Terminating".into());
            ns = api
                .replace_status(name, &PostParams::default(), &ns)
                .await?;
        }
        let finalizers = ns
            .spec
            .as_ref()
            .and_then(|s| s.finalizers.clone())
            .unwrap_or_default();
        if finalizers.is_empty() {
            return Ok(None);
        }
        let (estimate, result) = self.delete_all_content(&api, &mut ns, deleted_at.0).await;
        result?;
        if estimate > 0 {
            tracing::debug!(
                namespace = name,
                estimate,
                "content remains in namespace; requeueing"
            );
            return Ok(Some(Duration::from_secs(reconcile::requeue_after_seconds(
                estimate,
            ))));
        }
        self.finalize(&api, ns).await?;
        Ok(None)
    }

    /// Upstream `finalizeNamespace`, retried on conflicts with a fresh copy.
    async fn finalize(&self, api: &Api<Namespace>, mut ns: Namespace) -> Result<(), Error> {
        let name = ns.metadata.name.clone().unwrap_or_default();
        for _ in 0..FINALIZE_CONFLICT_RETRIES {
            let spec = ns.spec.get_or_insert_with(Default::default);
            let current = spec.finalizers.clone().unwrap_or_default();
            spec.finalizers = Some(reconcile::finalizers_after_finalize(&current));
            match api
                .replace_subresource("finalize", &name, &PostParams::default(), &ns)
                .await
                .map_err(Error::from)
            {
                Ok(_) => return Ok(()),
                Err(err) if err.is_not_found() => return Ok(()),
                Err(err) if err.is_conflict() => match api.get_opt(&name).await? {
                    Some(fresh) if fresh.metadata.uid == ns.metadata.uid => ns = fresh,
                    _ => return Ok(()),
                },
                Err(err) => return Err(err),
            }
        }
        Err(Error::Controller {
            name: NAMESPACE_CONTROLLER,
            reason: format!("finalizing namespace {name}: too many conflicts"),
        })
    }

    /// Namespaced resources that can be deleted (upstream
    /// `ServerPreferredNamespacedResources` filtered by the `delete` verb).
    async fn discover(&self) -> Result<Vec<Deletable>, Error> {
        let discovery = match Discovery::new(self.client.clone()).run_aggregated().await {
            Ok(d) => d,
            Err(err) => {
                tracing::debug!(error = %err, "aggregated discovery failed; falling back");
                Discovery::new(self.client.clone()).run().await?
            }
        };
        let mut out = Vec::new();
        for group in discovery.groups() {
            for (resource, caps) in group.recommended_resources() {
                if caps.scope != Scope::Namespaced || !caps.supports_operation(verbs::DELETE) {
                    continue;
                }
                out.push(Deletable {
                    list: caps.supports_operation(verbs::LIST),
                    delete_collection: caps.supports_operation(verbs::DELETE_COLLECTION),
                    resource,
                });
            }
        }
        Ok(out)
    }

    /// Upstream `deleteAllContent`: returns the estimate and the aggregated error.
    async fn delete_all_content(
        &self,
        api: &Api<Namespace>,
        ns: &mut Namespace,
        deleted_at: jiff::Timestamp,
    ) -> (i64, Result<(), Error>) {
        let name = ns.metadata.name.clone().unwrap_or_default();
        let mut updater = ConditionUpdater::default();
        let mut errors: Vec<String> = Vec::new();
        let resources = match self.discover().await {
            Ok(r) => r,
            Err(err) => {
                updater.discovery_failed(err.to_string());
                errors.push(err.to_string());
                Vec::new()
            }
        };
        let mut totals = ContentTotals::default();
        let mut estimate = 0;
        // Pods go first (OrderedNamespaceDeletion, GA): nothing else is
        // touched while pods that may still use it are terminating.
        let (pods, rest): (Vec<&Deletable>, Vec<&Deletable>) =
            resources.iter().partition(|r| r.is_pods());
        let mut pods_remain = false;
        for (phase, batch) in [pods, rest].into_iter().enumerate() {
            for res in batch {
                let (outcome, err) = self.delete_resource(res, &name, deleted_at).await;
                if let Some(err) = err {
                    updater.delete_content_failed(err.clone());
                    errors.push(err);
                }
                estimate = estimate.max(outcome.estimate_seconds);
                totals.add(&res.display(), &outcome);
            }
            if phase == 0 && !totals.remaining_by_resource.is_empty() {
                tracing::debug!(namespace = %name, "pods still remain, delaying deletion of other resources");
                pods_remain = true;
                break;
            }
        }
        // Upstream reports totals only after a full pass.
        if !pods_remain {
            updater.content_totals(&totals);
        }
        let status = ns.status.get_or_insert_with(Default::default);
        if updater.update(status, jiff::Timestamp::now())
            && let Err(err) = api
                .replace_status(&name, &PostParams::default(), &*ns)
                .await
        {
            tracing::warn!(namespace = %name, error = %err, "couldn't update status condition for namespace");
        }
        let result = match errors.len() {
            0 => Ok(()),
            count => Err(Error::Multiple {
                count,
                first: errors.remove(0),
            }),
        };
        (estimate, result)
    }

    /// Upstream `deleteAllContentForGroupVersionResource`.
    async fn delete_resource(
        &self,
        res: &Deletable,
        ns: &str,
        deleted_at: jiff::Timestamp,
    ) -> (ResourceOutcome, Option<String>) {
        let estimate = if res.is_pods() {
            match self.estimate_pods(ns, deleted_at).await {
                Ok(e) => e,
                Err(err) => return (ResourceOutcome::default(), Some(err.to_string())),
            }
        } else {
            0
        };
        let with_estimate = |msg: String| {
            let outcome = ResourceOutcome {
                estimate_seconds: estimate,
                ..Default::default()
            };
            (outcome, Some(msg))
        };
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), ns, &res.resource);
        let mut collection_done = false;
        if res.delete_collection {
            match api
                .delete_collection(&DeleteParams::background(), &ListParams::default())
                .await
                .map_err(Error::from)
            {
                Ok(_) => collection_done = true,
                Err(err) if is_method_not_supported(&err) => {}
                Err(err) => return with_estimate(err.to_string()),
            }
        }
        if !res.list {
            return (
                ResourceOutcome {
                    estimate_seconds: estimate,
                    ..Default::default()
                },
                None,
            );
        }
        if !collection_done {
            let items = match api
                .list_metadata(&ListParams::default())
                .await
                .map_err(Error::from)
            {
                Ok(list) => list.items,
                Err(err) if is_method_not_supported(&err) => Vec::new(),
                Err(err) => return with_estimate(err.to_string()),
            };
            for item in items {
                let item_name = item.metadata.name.unwrap_or_default();
                match api
                    .delete(&item_name, &DeleteParams::background())
                    .await
                    .map_err(Error::from)
                {
                    Ok(_) => {}
                    Err(err) if is_method_not_supported(&err) => {}
                    Err(err) => return with_estimate(err.to_string()),
                }
            }
        }
        let leftovers = match api
            .list_metadata(&ListParams::default())
            .await
            .map_err(Error::from)
        {
            Ok(list) => list.items,
            Err(err) if is_method_not_supported(&err) => Vec::new(),
            Err(err) => return with_estimate(err.to_string()),
        };
        let finalizers: Vec<Vec<String>> = leftovers
            .into_iter()
            .map(|i| i.metadata.finalizers.unwrap_or_default())
            .collect();
        reconcile::resource_outcome(&res.display(), ns, &finalizers, estimate)
    }

    async fn estimate_pods(&self, ns: &str, deleted_at: jiff::Timestamp) -> Result<i64, Error> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let list = pods.list(&ListParams::default()).await?;
        let graces: Vec<PodGrace> = list
            .items
            .iter()
            .map(|p| {
                let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
                PodGrace {
                    terminal: matches!(phase, Some("Succeeded") | Some("Failed")),
                    termination_grace_period_seconds: p
                        .spec
                        .as_ref()
                        .and_then(|s| s.termination_grace_period_seconds),
                    deletion_grace_period_seconds: p.metadata.deletion_grace_period_seconds,
                }
            })
            .collect();
        Ok(reconcile::estimate_for_pods(
            &graces,
            deleted_at,
            jiff::Timestamp::now(),
        ))
    }
}
