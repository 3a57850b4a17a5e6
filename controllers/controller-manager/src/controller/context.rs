//! The context a controller starts with (upstream `ControllerContext`).

use std::sync::Arc;
use std::time::Duration;

use component_base::events::EventBroadcaster;
use component_base::informers::SharedInformerFactory;
use kube::Client;
use tokio_util::sync::CancellationToken;

use super::ControllerDescriptor;
use crate::config::ControllerManagerConfig;
use crate::error::Error;

/// What every controller gets when it starts.
#[derive(Clone)]
pub struct ControllerContext {
    pub client: Client,
    pub informers: Arc<SharedInformerFactory>,
    pub config: Arc<ControllerManagerConfig>,
    pub shutdown: CancellationToken,
    /// One event writer for the whole process; controllers take recorders.
    pub events: Arc<EventBroadcaster>,
    /// Workers for this controller: its descriptor's `--concurrent-*-syncs`.
    pub workers: usize,
}

impl ControllerContext {
    /// This context with the worker count `descriptor` asks for.
    pub fn sized_for(mut self, descriptor: &ControllerDescriptor) -> Self {
        self.workers = (descriptor.concurrent_syncs)(&self.config);
        self
    }
}

/// What a sync asks of the queue besides success/failure: `Some(after)`
/// re-adds the key after that delay.
pub type SyncResult = Result<Option<Duration>, Error>;
