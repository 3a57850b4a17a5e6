//! Code shared by the four Ferrokube binaries: upstream-compatible flags,
//! secure serving with delegated authentication/authorization, health checks,
//! leader election, logging, metrics, and API helpers the controllers need.

pub mod app;
pub mod args;
pub mod auth;
pub mod client;
pub mod config;
pub mod events;
pub mod flags;
pub mod informers;
pub mod leaderelection;
pub mod logging;
pub mod metrics;
pub mod ownerref;
pub mod quantity;
pub mod selectors;
pub mod serving;
pub mod signals;
pub mod workqueue;
