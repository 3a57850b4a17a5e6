//! Test helpers: the fake CRI, the status recorder, and a re-export of the
//! shared private-containerd fixture (`test_support::containerd`).
#![allow(dead_code)]

pub mod fake_cri;
// The private containerd the real-runtime tests run against (not every test binary does).
#[allow(unused_imports)]
pub use test_support::containerd::{BUSYBOX_IMAGE, Containerd, PAUSE_IMAGE};

use std::sync::Mutex;

use k8s_openapi::api::core::v1::{Pod, PodStatus};
use kubelet::pod_workers::StatusSink;

/// A status sink that records what the pod workers report.
#[derive(Default)]
pub struct Recorder {
    pub statuses: Mutex<Vec<PodStatus>>,
    pub terminated: Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl StatusSink for Recorder {
    async fn set_pod_status(&self, _pod: &Pod, status: &PodStatus) -> Result<(), kubelet::Error> {
        self.statuses
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(status.clone());
        Ok(())
    }
    async fn pod_terminated(&self, pod: &Pod) -> Result<(), kubelet::Error> {
        self.terminated
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(pod.metadata.uid.clone().unwrap_or_default());
        Ok(())
    }
}

impl Recorder {
    pub fn last(&self) -> Option<PodStatus> {
        self.statuses.lock().ok()?.last().cloned()
    }
}
