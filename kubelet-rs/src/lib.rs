//! Library half of `kubelet-rs`: everything but argument parsing lives here so it can be tested.
pub mod config;
pub mod cri;
