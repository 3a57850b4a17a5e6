//! The nftables renderer (upstream `pkg/proxy/nftables`): table `ip
//! kube-proxy`, one atomic `nft -f` transaction per sync. IPv4 only for
//! now; an `ip6 kube-proxy` proxier is the same code with `IpFamily::V6`.

pub mod element_storage;
pub mod exec;
pub mod names;
mod provider_impl;
pub mod proxier;
pub mod render;
pub mod setup;
pub mod transaction;

#[cfg(test)]
mod fake;
#[cfg(test)]
mod proxier_tests;
#[cfg(test)]
mod render_tests;

pub use proxier::Proxier;
pub use render::{NftConfig, RendererState, SyncInput, SyncOutput, render};
pub use transaction::Transaction;
