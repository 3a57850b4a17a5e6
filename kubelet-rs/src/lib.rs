//! Library half of `kubelet-rs`: everything but argument parsing lives here so it can be tested.
pub mod cm;
pub mod config;
pub mod cri;
mod error;
pub mod events;
pub mod expansion;
mod kubelet;
pub mod kubeletconfig;
pub mod kuberuntime;
pub mod lifecycle;
pub mod nodelease;
pub mod nodestatus;
pub mod prober;
pub mod qos;
pub mod resources;
pub mod server;
pub mod stats;
pub mod volumemanager;

pub use error::Error;
pub use kubelet::{KubeletHandle, run, run_with};
pub use kubeletconfig::{KubeletConfig, KubeletConfiguration, KubeletFlags};
pub mod pleg;
pub mod pod_workers;
pub mod status;
pub mod types;
