//! Starts the enabled controllers of the registry on shared informers
//! (upstream `StartControllers`).

use std::future::Future;
use std::sync::Arc;

use component_base::events::EventBroadcaster;
use component_base::informers::SharedInformerFactory;
use kube::Client;
use tokio_util::sync::CancellationToken;

use crate::clientbuilder::{ControllerClientBuilder, SERVICE_ACCOUNT_NAMESPACE};
use crate::config::ControllerManagerConfig;
use crate::controller::{ControllerContext, ControllerDescriptor};
use crate::error::Error;
use crate::names::ControllerSelection;
use crate::registry::DESCRIPTORS;

/// Runs every enabled, implemented controller until `shutdown` fires.
pub async fn run(
    client: Client,
    config: ControllerManagerConfig,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let selection = ControllerSelection::parse(&config.controllers)?;
    let clients = client_builder(&client, &config, &shutdown)?;
    let ctx = ControllerContext {
        events: Arc::new(EventBroadcaster::start(client.clone(), shutdown.clone())),
        informers: Arc::new(SharedInformerFactory::new(client.clone(), shutdown.clone())),
        client,
        config: Arc::new(config),
        shutdown: shutdown.clone(),
        workers: 1,
    };
    for name in selection.enabled() {
        if !DESCRIPTORS.iter().any(|d| d.name == name) {
            // Never a quiet skip: the objects this controller owns will not
            // be reconciled, which the operator must see at start.
            tracing::warn!(
                controller = name,
                "controller is enabled but kube-controller-manager-rs does not implement it yet; \
                 objects it manages are not reconciled (disable it with --controllers=-{name})"
            );
        }
    }
    let mut tasks = tokio::task::JoinSet::new();
    for descriptor in DESCRIPTORS {
        if !selection.is_enabled(descriptor.name) {
            tracing::info!(
                controller = descriptor.name,
                "Warning: controller is disabled"
            );
            continue;
        }
        tracing::info!(controller = descriptor.name, watches = ?descriptor.watches, "Starting controller");
        let name = descriptor.name;
        let start = descriptor.start;
        let controller_ctx = for_controller(&ctx, &clients, descriptor);
        tasks.spawn(async move {
            match controller_ctx.await {
                Ok(ctx) => (name, start(ctx).await),
                Err(err) => (name, Err(err)),
            }
        });
    }
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((name, Ok(()))) => tracing::info!(controller = name, "controller stopped"),
            Ok((name, Err(err))) => {
                tracing::error!(controller = name, error = %err, "controller failed");
                shutdown.cancel();
                return Err(err);
            }
            Err(err) => {
                shutdown.cancel();
                return Err(Error::Controller {
                    name: "runner",
                    reason: err.to_string(),
                });
            }
        }
    }
    Ok(())
}

/// Upstream `createClientBuilders`: the process's own client for everyone,
/// or per-controller ServiceAccount clients with the flag set. Informers
/// keep the process's client either way.
fn client_builder(
    client: &Client,
    config: &ControllerManagerConfig,
    shutdown: &CancellationToken,
) -> Result<ControllerClientBuilder, Error> {
    if !config.use_service_account_credentials {
        return Ok(ControllerClientBuilder::Simple(client.clone()));
    }
    let base = config
        .base_client_config
        .clone()
        .ok_or_else(|| Error::Controller {
            name: "clientbuilder",
            reason: "use_service_account_credentials needs base_client_config".to_string(),
        })?;
    Ok(ControllerClientBuilder::ServiceAccount {
        root: client.clone(),
        base: Box::new(base),
        limits: config.client_limits,
        namespace: SERVICE_ACCOUNT_NAMESPACE.to_string(),
        shutdown: shutdown.clone(),
    })
}

/// The context one controller starts with: its own client, and (as
/// upstream, where each controller makes its own event broadcaster and
/// records through its own client) its own event writer, so correlation and
/// spam filtering are per controller.
fn for_controller(
    shared: &ControllerContext,
    clients: &ControllerClientBuilder,
    descriptor: &ControllerDescriptor,
) -> impl Future<Output = Result<ControllerContext, Error>> + Send + 'static {
    let mut ctx = shared.clone().sized_for(descriptor);
    let clients = clients.clone();
    let client_name = descriptor.client_name;
    async move {
        if let ControllerClientBuilder::ServiceAccount { .. } = clients {
            ctx.client = clients.client(client_name).await?;
        }
        ctx.events = Arc::new(EventBroadcaster::start(
            ctx.client.clone(),
            ctx.shutdown.clone(),
        ));
        Ok(ctx)
    }
}
