//! Helpers for end-to-end tests against a running cluster (normally the one
//! `hack/local-up` brings up).
//!
//! Tests call [`cluster::connect`] first; when no cluster is reachable it
//! returns [`cluster::Connection::Skip`] with the reason, and the test prints
//! it and passes, so `cargo test` stays green where no apiserver exists.

pub mod cluster;
pub mod error;
pub mod exec;
pub mod netns;
pub mod objects;
pub mod reach;
pub mod wait;
pub mod workloads;

pub use error::E2eError;
