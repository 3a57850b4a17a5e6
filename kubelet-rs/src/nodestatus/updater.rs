//! The node status loop: recompute every `nodeStatusUpdateFrequency`, patch when
//! something other than heartbeats changed or `nodeStatusReportFrequency` elapsed.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeCondition, NodeDaemonEndpoints, NodeStatus,
};
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use tokio_util::sync::CancellationToken;

use super::machine::MachineInfo;
use super::{KUBELET_VERSION, netaddr, setters};
use crate::cri::{ImageService, RuntimeService};
use crate::error::Error;
use crate::events::{EventSink, node_ref};
use crate::kubeletconfig::KubeletConfig;
use component_base::events::EventType;

/// Everything the status is computed from.
pub struct NodeStatusUpdater {
    pub client: Client,
    pub config: KubeletConfig,
    pub runtime: RuntimeService,
    pub images: ImageService,
    pub machine: MachineInfo,
    /// Node condition transitions are recorded here.
    pub events: Arc<dyn EventSink>,
}

/// Conditions with heartbeats blanked, for change detection (`nodeStatusHasChanged`).
fn without_heartbeats(conditions: &[NodeCondition]) -> Vec<NodeCondition> {
    conditions
        .iter()
        .map(|c| NodeCondition {
            last_heartbeat_time: None,
            ..c.clone()
        })
        .collect()
}

/// Whether `new` differs from `old` in anything but condition heartbeats.
pub fn status_changed(old: &NodeStatus, new: &NodeStatus) -> bool {
    let strip = |s: &NodeStatus| NodeStatus {
        conditions: s.conditions.as_deref().map(without_heartbeats),
        ..s.clone()
    };
    strip(old) != strip(new)
}

impl NodeStatusUpdater {
    /// Builds the full status from the current machine and runtime state.
    pub async fn compute(&self, previous: &NodeStatus, now: Timestamp) -> NodeStatus {
        let cfg = &self.config.configuration;
        let version = self.runtime.version().await.ok();
        let runtime_status = self.runtime.status().await.ok().and_then(|s| s.status);
        let errors = setters::runtime_errors(runtime_status.as_ref());
        let image_list = self.images.list_images().await.unwrap_or_default();
        let capacity = setters::capacity(&self.machine, cfg.max_pods);
        let allocatable = setters::allocatable(
            &capacity,
            &cfg.kube_reserved,
            &cfg.system_reserved,
            &cfg.eviction_hard,
        );
        let detected = if self.config.flags.node_ips.is_empty() {
            netaddr::detect_node_ip()
        } else {
            None
        };
        NodeStatus {
            capacity: Some(setters::to_quantities(&capacity)),
            allocatable: Some(setters::to_quantities(&allocatable)),
            conditions: Some(setters::conditions(
                previous.conditions.as_deref().unwrap_or_default(),
                &errors,
                now,
            )),
            addresses: Some(setters::node_addresses(
                &self.config.flags.node_ips,
                detected,
                &self.config.node_name,
            )),
            daemon_endpoints: Some(NodeDaemonEndpoints {
                kubelet_endpoint: Some(DaemonEndpoint {
                    port: i32::from(cfg.port),
                }),
            }),
            node_info: Some(setters::node_info(
                &self.machine,
                version.as_ref(),
                KUBELET_VERSION,
            )),
            images: Some(setters::images(&image_list)),
            ..previous.clone()
        }
    }

    async fn patch(&self, status: &NodeStatus) -> Result<Node, Error> {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let body = serde_json::json!({ "status": status });
        Ok(nodes
            .patch_status(
                &self.config.node_name,
                &PatchParams::default(),
                &Patch::Merge(&body),
            )
            .await?)
    }

    /// One tick: fetch, compute, patch if needed. Returns whether it patched.
    pub async fn sync_once(&self, force: bool) -> Result<bool, Error> {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let node = nodes.get(&self.config.node_name).await?;
        let previous = node.status.unwrap_or_default();
        let next = self.compute(&previous, Timestamp::now()).await;
        let name = &self.config.node_name;
        for reason in super::status_events::condition_events(
            previous.conditions.as_deref().unwrap_or_default(),
            next.conditions.as_deref().unwrap_or_default(),
        ) {
            self.events.record(
                &node_ref(name),
                EventType::Normal,
                reason,
                &super::status_events::node_status_message(name, reason),
            );
        }
        if !force && !status_changed(&previous, &next) {
            return Ok(false);
        }
        self.patch(&next).await?;
        Ok(true)
    }

    /// Runs until cancelled; errors are logged and retried on the next tick.
    pub async fn run(self, shutdown: CancellationToken) {
        let cfg = &self.config.configuration;
        let update_every = cfg.node_status_update_frequency.max(Duration::from_secs(1));
        let report_every = cfg.node_status_report_frequency;
        let mut last_report: Option<tokio::time::Instant> = None;
        loop {
            let force = last_report.is_none_or(|t| t.elapsed() >= report_every);
            match self.sync_once(force).await {
                Ok(true) => {
                    tracing::debug!(node = %self.config.node_name, "updated node status");
                    last_report = Some(tokio::time::Instant::now());
                }
                Ok(false) => {}
                Err(e) => tracing::error!(error = %e, "Error updating node status, will retry"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(update_every) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    #[test]
    fn heartbeat_only_is_not_a_change() {
        let t0 = Timestamp::from_second(10).expect("ts");
        let t1 = Timestamp::from_second(20).expect("ts");
        let a = NodeStatus {
            conditions: Some(setters::conditions(&[], &[], t0)),
            ..Default::default()
        };
        let mut b = a.clone();
        for c in b.conditions.iter_mut().flatten() {
            c.last_heartbeat_time = Some(Time(t1));
        }
        assert!(!status_changed(&a, &b));
        b.conditions = Some(setters::conditions(&[], &["down".to_string()], t1));
        assert!(status_changed(&a, &b));
    }
}
