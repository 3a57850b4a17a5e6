//! The ServiceAccount controller (upstream `pkg/controller/serviceaccount`
//! `serviceaccounts_controller.go`): every active namespace has the
//! `default` ServiceAccount; it is re-created when deleted.

use std::sync::Arc;

use component_base::workqueue::RateLimitingQueue;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};

use crate::controller_utils::Key;
use crate::error::Error;
use crate::names::SERVICEACCOUNT_CONTROLLER;
use crate::runner::{ControllerContext, SyncResult, run_workers};
use component_base::informers::{Change, Subscription};

/// Upstream `DefaultServiceAccountsControllerOptions`.
pub const SERVICE_ACCOUNTS_TO_ENSURE: &[&str] = &["default"];

/// Which of `wanted` must be created in a namespace (pure decision).
/// Terminating (or unknown) namespaces get nothing, as upstream.
pub fn missing_service_accounts<'a>(
    namespace: Option<&Namespace>,
    existing: &dyn Fn(&str) -> bool,
    wanted: &[&'a str],
) -> Vec<&'a str> {
    let Some(ns) = namespace else {
        return Vec::new();
    };
    let phase = ns.status.as_ref().and_then(|s| s.phase.as_deref());
    if phase != Some("Active") && phase.is_some() {
        return Vec::new();
    }
    if ns.metadata.deletion_timestamp.is_some() {
        return Vec::new();
    }
    wanted
        .iter()
        .copied()
        .filter(|name| !existing(name))
        .collect()
}

struct Controller {
    client: Client,
    namespaces: Store<Namespace>,
    service_accounts: Store<ServiceAccount>,
    queue: RateLimitingQueue<Key>,
}

pub async fn start(ctx: ControllerContext) -> Result<(), Error> {
    let ns_informer = ctx.informers.informer::<Namespace>();
    let sa_informer = ctx.informers.informer::<ServiceAccount>();
    let ns_changes = ns_informer.subscribe();
    let sa_changes = sa_informer.subscribe();
    let controller = Arc::new(Controller {
        client: ctx.client.clone(),
        namespaces: ns_informer.store().clone(),
        service_accounts: sa_informer.store().clone(),
        queue: RateLimitingQueue::new("serviceaccount"),
    });
    tokio::select! {
        _ = ctx.shutdown.cancelled() => return Ok(()),
        _ = async { tokio::join!(ns_informer.wait_synced(), sa_informer.wait_synced()) } => {}
    }
    tokio::spawn(watch_namespaces(Arc::clone(&controller), ns_changes));
    tokio::spawn(watch_service_accounts(Arc::clone(&controller), sa_changes));
    controller.enqueue_all();
    let sync_ctl = Arc::clone(&controller);
    run_workers(
        SERVICEACCOUNT_CONTROLLER,
        controller.queue.clone(),
        ctx.config.concurrent.serviceaccount,
        ctx.shutdown.clone(),
        move |key| {
            let ctl = Arc::clone(&sync_ctl);
            async move { ctl.sync(&key).await }
        },
    )
    .await;
    Ok(())
}

async fn watch_namespaces(ctl: Arc<Controller>, mut changes: Subscription<Namespace>) {
    while let Some(change) = changes.recv().await {
        match change {
            Change::Added(ns) | Change::Updated { new: ns, .. } => ctl.queue.add(Key::new(
                None,
                ns.metadata.name.as_deref().unwrap_or_default(),
            )),
            Change::Deleted(_) => {}
            Change::Resync => ctl.enqueue_all(),
        }
    }
}

/// Only deletions matter: a removed `default` account is re-created.
async fn watch_service_accounts(ctl: Arc<Controller>, mut changes: Subscription<ServiceAccount>) {
    while let Some(change) = changes.recv().await {
        match change {
            Change::Deleted(sa) => {
                if let Some(ns) = sa.metadata.namespace.as_deref() {
                    ctl.queue.add(Key::new(None, ns));
                }
            }
            Change::Resync => ctl.enqueue_all(),
            Change::Added(_) | Change::Updated { .. } => {}
        }
    }
}

impl Controller {
    fn enqueue_all(&self) {
        for ns in self.namespaces.state() {
            self.queue.add(Key::new(
                None,
                ns.metadata.name.as_deref().unwrap_or_default(),
            ));
        }
    }

    async fn sync(&self, key: &Key) -> SyncResult {
        let ns_name = key.name.as_str();
        let namespace = self.namespaces.get(&ObjectRef::new(ns_name));
        let exists = |name: &str| {
            self.service_accounts
                .get(&ObjectRef::new(name).within(ns_name))
                .is_some()
        };
        let missing =
            missing_service_accounts(namespace.as_deref(), &exists, SERVICE_ACCOUNTS_TO_ENSURE);
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), ns_name);
        for name in missing {
            let sa = ServiceAccount {
                metadata: ObjectMeta {
                    name: Some(name.to_string()),
                    ..Default::default()
                },
                ..Default::default()
            };
            match api
                .create(&PostParams::default(), &sa)
                .await
                .map_err(Error::from)
            {
                Ok(_) => tracing::debug!(namespace = ns_name, name, "created service account"),
                // Already there (cache lag) or the namespace is going away.
                Err(err) if err.is_already_exists() || err.is_namespace_terminating() => {}
                Err(err) if err.status_code() == Some(403) || err.is_not_found() => {
                    tracing::debug!(namespace = ns_name, error = %err, "not creating service account");
                }
                Err(err) => return Err(err),
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::NamespaceStatus;

    fn ns(phase: Option<&str>) -> Namespace {
        Namespace {
            metadata: ObjectMeta {
                name: Some("team".into()),
                ..Default::default()
            },
            spec: None,
            status: Some(NamespaceStatus {
                phase: phase.map(str::to_string),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn ensures_default_in_active_namespaces_only() {
        let none = |_: &str| false;
        let all = |_: &str| true;
        type Exists<'a> = &'a dyn Fn(&str) -> bool;
        let cases: Vec<(Option<Namespace>, Exists, Vec<&str>)> = vec![
            (Some(ns(Some("Active"))), &none, vec!["default"]),
            (Some(ns(None)), &none, vec!["default"]),
            (Some(ns(Some("Active"))), &all, vec![]),
            (Some(ns(Some("Terminating"))), &none, vec![]),
            (None, &none, vec![]),
        ];
        for (namespace, existing, want) in cases {
            assert_eq!(
                missing_service_accounts(namespace.as_ref(), existing, SERVICE_ACCOUNTS_TO_ENSURE),
                want
            );
        }
    }
}
