//! Library half of `kube-controller-manager-rs`: everything but argument parsing lives here so it can be tested.
//!
//! Layout mirrors upstream `pkg/controller/`: one module per controller, each
//! with a pure `reconcile.rs` and a thin `mod.rs` that declares the
//! controller (`DESCRIPTOR`) and feeds it from the shared informers through
//! [`controller::KeyedController`]; shared helpers live once in
//! [`controller_utils`]. A new controller is one module plus one line in
//! [`registry`]. Dependencies point one way: [`controller`] ← each
//! controller ← [`registry`] ← [`names`], [`runner`].

pub mod clientbuilder;
pub mod config;
pub mod control;
pub mod controller;
pub mod controller_utils;
pub mod cronjob;
pub mod daemon;
pub mod deployment;
pub mod disruption;
pub mod endpoint;
pub mod endpointslice;
pub mod endpointslicemirroring;
pub mod error;
pub mod events;
pub mod garbagecollector;
pub mod hash;
pub mod history;
pub mod job;
pub mod names;
pub mod namespace;
pub mod nodelifecycle;
pub mod protectionutil;
pub mod pvcprotection;
pub mod pvprotection;
pub mod registry;
pub mod replicaset;
pub mod replication;
pub mod resourcequota;
pub mod rootcacertpublisher;
pub mod runner;
pub mod serviceaccount;
pub mod statefulset;
pub mod tainteviction;
pub mod ttlafterfinished;
pub mod volumeattributesclassprotection;

pub use config::{ConcurrentSyncs, ControllerManagerConfig};
pub use error::Error;
pub use runner::run;
