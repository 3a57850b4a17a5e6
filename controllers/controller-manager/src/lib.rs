//! Library half of `kube-controller-manager-rs`: everything but argument parsing lives here so it can be tested.
//!
//! Layout mirrors upstream `pkg/controller/`: one module per controller, each
//! with a pure `reconcile` and a thin runner fed from the shared informers
//! (`component_base::informers`); shared helpers live once in [`controller_utils`]. A new
//! controller is one module plus one line in [`registry`].

pub mod clientbuilder;
pub mod config;
pub mod controller_utils;
pub mod deployment;
pub mod endpointslice;
pub mod error;
pub mod events;
pub mod garbagecollector;
pub mod names;
pub mod namespace;
pub mod nodelifecycle;
pub mod registry;
pub mod replicaset;
pub mod rootcacertpublisher;
pub mod runner;
pub mod serviceaccount;

pub use config::{ConcurrentSyncs, ControllerManagerConfig};
pub use error::Error;
pub use runner::run;
