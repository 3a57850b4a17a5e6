//! Helpers for end-to-end tests against a running cluster (normally the one
//! `hack/local-up` brings up).
//!
//! Tests call [`cluster::connect`] first; when no cluster is reachable it
//! returns [`cluster::Connection::Unavailable`] with the reason and the test
//! fails with it ([`cluster::skip_or_fail`]): a green run must mean the
//! cluster was tested. `FK_ALLOW_SKIP=1` turns that into a printed `SKIP`
//! and a pass.

pub mod cluster;
pub mod error;
pub mod exec;
pub mod netns;
pub mod objects;
/// The workspace-wide lookup of stock binaries (`hack/kube-bin/path`) and the
/// skip-or-fail policy, shared with every crate's integration tests.
pub use test_support::prereq;
pub mod reach;
pub mod wait;
pub mod workloads;

pub use error::E2eError;
