//! The ServiceAccount controller (upstream `pkg/controller/serviceaccount`
//! `serviceaccounts_controller.go`): every active namespace has the
//! `default` ServiceAccount; it is re-created when deleted.

use std::sync::Arc;

use component_base::workqueue::RateLimitingQueue;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};

use crate::controller::{
    ControllerContext, ControllerDescriptor, Enqueue, Key, KeyedController, Reconciler, SyncResult,
    store_keys,
};
use crate::error::Error;
use component_base::informers::Change;

pub mod reconcile;

pub use reconcile::{SERVICE_ACCOUNTS_TO_ENSURE, missing_service_accounts};

/// Upstream `names.ServiceAccountController`.
pub const SERVICEACCOUNT_CONTROLLER: &str = "serviceaccount-controller";

/// Upstream runs one worker (`Run(ctx, 1)`): there is no flag.
pub const DESCRIPTOR: ControllerDescriptor = ControllerDescriptor {
    name: SERVICEACCOUNT_CONTROLLER,
    aliases: &["serviceaccount"],
    disabled_by_default: false,
    client_name: "service-account-controller",
    watches: &["Namespace", "ServiceAccount"],
    concurrent_syncs: |_| 1,
    start: |ctx| Box::pin(start(ctx)),
};

struct Controller {
    client: Client,
    namespaces: Store<Namespace>,
    service_accounts: Store<ServiceAccount>,
}

pub async fn start(ctx: ControllerContext) -> Result<(), Error> {
    let ns_informer = ctx.informers.informer::<Namespace>();
    let sa_informer = ctx.informers.informer::<ServiceAccount>();
    let controller = Arc::new(Controller {
        client: ctx.client.clone(),
        namespaces: ns_informer.store().clone(),
        service_accounts: sa_informer.store().clone(),
    });
    KeyedController::new(
        SERVICEACCOUNT_CONTROLLER,
        controller,
        RateLimitingQueue::new("serviceaccount"),
    )
    .watches(&ns_informer, |_, change| match change {
        Change::Added(ns) | Change::Updated { new: ns, .. } => vec![Key::of(ns.as_ref()).into()],
        Change::Deleted(_) | Change::Resync => Vec::new(),
    })
    // Only deletions matter: a removed `default` account is re-created.
    .watches(&sa_informer, |_, change| match change {
        Change::Deleted(sa) => sa
            .metadata
            .namespace
            .as_deref()
            .map(|ns| Key::new(None, ns).into())
            .into_iter()
            .collect(),
        Change::Added(_) | Change::Updated { .. } | Change::Resync => Vec::new(),
    })
    .run(&ctx)
    .await
}

impl Reconciler for Controller {
    async fn sync(&self, key: &Key) -> SyncResult {
        self.sync_namespace(key).await
    }

    fn all_keys(&self) -> Vec<Enqueue> {
        store_keys(&self.namespaces)
    }
}

impl Controller {
    /// Upstream `syncNamespace`.
    async fn sync_namespace(&self, key: &Key) -> SyncResult {
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
