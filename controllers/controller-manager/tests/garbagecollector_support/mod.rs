//! Shared by the endpointslice, namespace and garbage-collector
//! integration tests: a real apiserver (component-base's helper) and a
//! controller context to start one controller on it.
#![allow(dead_code)]

pub use test_support::apiserver;

use std::sync::Arc;

use component_base::events::EventBroadcaster;
use component_base::informers::SharedInformerFactory;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};
use kube_controller_manager::ControllerManagerConfig;
use kube_controller_manager::controller::{ControllerContext, ControllerDescriptor};
use tokio_util::sync::CancellationToken;

pub use apiserver::TestApiServer;

/// A context on `client` for the controller `descriptor` declares (its
/// default worker count); cancel the token to stop everything.
pub fn context(
    client: &Client,
    descriptor: &ControllerDescriptor,
) -> (ControllerContext, CancellationToken) {
    let shutdown = CancellationToken::new();
    let ctx = ControllerContext {
        client: client.clone(),
        informers: Arc::new(SharedInformerFactory::new(client.clone(), shutdown.clone())),
        config: Arc::new(ControllerManagerConfig::default()),
        shutdown: shutdown.clone(),
        events: Arc::new(EventBroadcaster::start(client.clone(), shutdown.clone())),
        workers: 1,
    };
    (ctx.sized_for(descriptor), shutdown)
}

/// Polls until a condition holds (the shared test helper, under the name
/// these tests use).
pub use test_support::wait::eventually as wait_for;

/// Creates a namespace and its `default` ServiceAccount (pods need it).
pub async fn create_namespace(client: &Client, name: &str) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        ..Default::default()
    };
    if let Err(e) = namespaces.create(&PostParams::default(), &ns).await {
        panic!("create namespace {name}: {e}");
    }
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), name);
    let sa = ServiceAccount {
        metadata: ObjectMeta {
            name: Some("default".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    if let Err(e) = sas.create(&PostParams::default(), &sa).await {
        panic!("create default service account in {name}: {e}");
    }
}
