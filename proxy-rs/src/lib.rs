//! Library half of `kube-proxy-rs`: everything but argument parsing lives here so it can be tested.
//!
//! Layout mirrors upstream `pkg/proxy`: [`model`] is the backend-neutral
//! Service/EndpointSlice model; a backend implements [`Provider`] (upstream
//! `pkg/proxy.Provider`) and renders the model into kernel state —
//! [`nftables`] today, an `ipvs` backend beside it later. [`event_handlers`]
//! turns the shared informers' changes into `Provider` calls, [`sync_loop`]
//! paces the syncs with the [`bounded_frequency_runner`], and `wiring`
//! (upstream `cmd/kube-proxy/app/server.go`) picks and builds the backend.
//! [`healthcheck`], [`metrics`] and [`conntrack`] are shared by every backend.
//!
//! Adding a backend: a module beside `nftables/` with a proxier that
//! implements [`Provider`] (copy `nftables/provider_impl.rs`), its kernel
//! calls behind a small trait with a fake (copy `nftables/exec.rs` and
//! `nftables/fake.rs`), and one arm in `wiring::run_in_netns`'s `match
//! config.mode` that builds it and calls `run_provider`.

pub mod bounded_frequency_runner;
pub mod config;
pub mod conntrack;
pub mod conntrack_sysctl;
pub mod event_handlers;
pub mod healthcheck;
pub mod metrics;
pub mod model;
pub mod nftables;
mod node_info;
pub mod provider;
pub mod proxy_util;
pub mod sync_loop;
mod wiring;

#[cfg(test)]
pub(crate) mod testutil;

pub use config::{KubeProxyConfiguration, ProxyConfig, ProxyMode};
pub use healthcheck::{HealthResponse, ProxierHealth};
pub use metrics::ProxyMetrics;
pub use provider::Provider;
pub use wiring::{Handles, run, run_in_netns, run_with};

/// Why the proxy (or one of its syncs) failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("nft: {0}")]
    Nft(#[from] nftables::exec::NftError),
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("invalid configuration: {0}")]
    Config(#[from] config::ConfigValidationError),
    #[error("cannot determine node name: {0}")]
    Hostname(#[source] nix::errno::Errno),
    #[error("proxy mode {0:?} is not implemented yet")]
    ModeNotImplemented(ProxyMode),
}

impl Error {
    /// Whether trying again can succeed: a failed sync is retried (as a full
    /// sync); a bad configuration or an unsupported mode is fatal at start-up.
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Nft(e) => e.is_retriable(),
            Error::Kube(_) => true,
            Error::Config(_) | Error::Hostname(_) | Error::ModeNotImplemented(_) => false,
        }
    }
}
