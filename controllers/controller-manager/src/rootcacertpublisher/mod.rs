//! The root CA certificate publisher (upstream
//! `pkg/controller/certificates/rootcacertpublisher`): ConfigMap
//! `kube-root-ca.crt` with the apiserver CA bundle under `ca.crt` in every
//! namespace, repaired when edited or deleted.

use std::sync::Arc;

use component_base::workqueue::RateLimitingQueue;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::Client;
use kube::api::{Api, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};

use crate::controller::{
    ControllerContext, ControllerDescriptor, Enqueue, Key, KeyedController, Reconciler, SyncResult,
    store_keys,
};
use crate::error::Error;
use component_base::informers::Change;

pub mod reconcile;

pub use reconcile::{
    DESCRIPTION, DESCRIPTION_ANNOTATION, Publish, ROOT_CA_CONFIG_MAP_NAME, decide,
};

/// Upstream `names.RootCACertificatePublisherController`.
pub const ROOT_CA_CERTIFICATE_PUBLISHER_CONTROLLER: &str =
    "root-ca-certificate-publisher-controller";

/// Upstream hard-codes one worker for the root CA publisher.
pub const DESCRIPTOR: ControllerDescriptor = ControllerDescriptor {
    name: ROOT_CA_CERTIFICATE_PUBLISHER_CONTROLLER,
    aliases: &["root-ca-cert-publisher"],
    disabled_by_default: false,
    client_name: "root-ca-cert-publisher",
    watches: &["Namespace", "ConfigMap"],
    concurrent_syncs: |_| 1,
    start: |ctx| Box::pin(start(ctx)),
};

struct Controller {
    client: Client,
    namespaces: Store<Namespace>,
    config_maps: Store<ConfigMap>,
    root_ca: String,
}

pub async fn start(ctx: ControllerContext) -> Result<(), Error> {
    let Some(root_ca) = ctx.config.root_ca.clone() else {
        tracing::error!(
            controller = ROOT_CA_CERTIFICATE_PUBLISHER_CONTROLLER,
            "no root CA (neither --root-ca-file nor the client's CA); not starting"
        );
        return Ok(());
    };
    let ns_informer = ctx.informers.informer::<Namespace>();
    let cm_informer = ctx.informers.informer::<ConfigMap>();
    let controller = Arc::new(Controller {
        client: ctx.client.clone(),
        namespaces: ns_informer.store().clone(),
        config_maps: cm_informer.store().clone(),
        root_ca: String::from_utf8_lossy(&root_ca).into_owned(),
    });
    KeyedController::new(
        ROOT_CA_CERTIFICATE_PUBLISHER_CONTROLLER,
        controller,
        RateLimitingQueue::new("root_ca_cert_publisher"),
    )
    .watches(&ns_informer, |_, change| match change {
        Change::Added(ns) => vec![Key::of(ns.as_ref()).into()],
        Change::Updated { new, .. } => {
            let phase = new.status.as_ref().and_then(|s| s.phase.as_deref());
            if phase == Some("Active") {
                vec![Key::of(new.as_ref()).into()]
            } else {
                Vec::new()
            }
        }
        Change::Deleted(_) | Change::Resync => Vec::new(),
    })
    .watches(&cm_informer, |_, change| match change {
        Change::Updated { new: cm, .. } | Change::Deleted(cm) => config_map_key(&cm),
        Change::Added(_) | Change::Resync => Vec::new(),
    })
    .run(&ctx)
    .await
}

/// Our ConfigMap was edited or deleted: repair its namespace.
fn config_map_key(cm: &ConfigMap) -> Vec<Enqueue> {
    match cm.metadata.namespace.as_deref() {
        Some(ns) if cm.metadata.name.as_deref() == Some(ROOT_CA_CONFIG_MAP_NAME) => {
            vec![Key::new(None, ns).into()]
        }
        _ => Vec::new(),
    }
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
        let ns = key.name.as_str();
        let existing = self
            .config_maps
            .get(&ObjectRef::new(ROOT_CA_CONFIG_MAP_NAME).within(ns));
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), ns);
        match decide(existing.as_deref(), &self.root_ca) {
            Publish::Nothing => {}
            Publish::Create(cm) => match api
                .create(&PostParams::default(), &cm)
                .await
                .map_err(Error::from)
            {
                Ok(_) => {}
                Err(err) if err.is_not_found() || err.is_namespace_terminating() => {}
                Err(err) => return Err(err),
            },
            Publish::Update(cm) => {
                api.replace(ROOT_CA_CONFIG_MAP_NAME, &PostParams::default(), &cm)
                    .await?;
            }
        }
        Ok(None)
    }
}
