//! Library half of `kube-scheduler-rs`: everything but argument parsing lives here so it can be tested.
//!
//! Layout mirrors upstream `pkg/scheduler`: `framework` (extension points, statuses, NodeInfo,
//! the plugin `Registry` type and the runtime that runs a profile's plugins), `plugins` (one
//! module per in-tree plugin, named as upstream's folders, `helper` for what several share,
//! `registry` listing them), `queue` (active/backoff/unschedulable queues), `cache` (nodes,
//! assigned and assumed pods, snapshots), `schedule_one` (the pure scheduling algorithm) and
//! `scheduler` (the loop, binding and failure handling), fed by `eventhandlers` (the shared
//! Pod and Node informers' changes). Dependencies point one way: plugins → framework, never back.

pub mod cache;
pub mod config;
pub mod eventhandlers;
pub mod framework;
pub mod metrics;
pub mod plugins;
pub mod pod;
pub mod queue;
pub mod reporter;
pub mod runner;
pub mod schedule_one;
pub mod scheduler;
#[cfg(test)]
mod testing;

pub use config::SchedulerConfig;
pub use runner::run;

/// Errors of the scheduler library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid scheduler configuration: {0}")]
    InvalidConfig(String),
    #[error("kubernetes API error: {0}")]
    Kube(#[from] kube::Error),
}
