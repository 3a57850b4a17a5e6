//! The `/stats/summary` body, field for field upstream's
//! `k8s.io/kubelet/pkg/apis/stats/v1alpha1` (JSON names, `omitempty` as
//! `skip_serializing_if`, `metav1.Time` as RFC 3339 seconds in UTC).

use serde::{Serialize, Serializer};

/// `metav1.Time`: RFC 3339 at second precision, `null` when zero.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Time(pub Option<jiff::Timestamp>);

impl Time {
    pub fn at(ts: jiff::Timestamp) -> Self {
        Time(Some(ts))
    }

    /// From nanoseconds since the epoch (CRI timestamps); zero is unset.
    pub fn from_nanos(nanos: i64) -> Self {
        if nanos <= 0 {
            return Time(None);
        }
        Time(jiff::Timestamp::from_nanosecond(i128::from(nanos)).ok())
    }

    /// Milliseconds since the epoch (Prometheus sample timestamps).
    pub fn millis(&self) -> Option<i64> {
        self.0.map(|t| t.as_millisecond())
    }

    /// Seconds since the epoch with sub-second precision.
    pub fn seconds_f64(&self) -> Option<f64> {
        self.0.map(|t| t.as_nanosecond() as f64 / 1e9)
    }
}

impl Serialize for Time {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Some(t) => s.serialize_str(&t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()),
            None => s.serialize_none(),
        }
    }
}

/// Upstream `Summary`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    pub node: NodeStats,
    pub pods: Vec<PodStats>,
}

/// Upstream `NodeStats`.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStats {
    pub node_name: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub system_containers: Vec<ContainerStats>,
    pub start_time: Time,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fs: Option<FsStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime: Option<RuntimeStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rlimit: Option<RlimitStats>,
}

/// Upstream `RlimitStats`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RlimitStats {
    pub time: Time,
    #[serde(rename = "maxpid", skip_serializing_if = "Option::is_none")]
    pub max_pid: Option<i64>,
    #[serde(rename = "curproc", skip_serializing_if = "Option::is_none")]
    pub num_of_running_processes: Option<i64>,
}

/// Upstream `RuntimeStats`.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeStats {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_fs: Option<FsStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_fs: Option<FsStats>,
}

/// Upstream `SystemContainerKubelet` / `SystemContainerPods`.
pub const SYSTEM_CONTAINER_KUBELET: &str = "kubelet";
pub const SYSTEM_CONTAINER_PODS: &str = "pods";

/// Upstream `PodStats`.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStats {
    pub pod_ref: PodReference,
    pub start_time: Time,
    pub containers: Vec<ContainerStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkStats>,
    #[serde(rename = "volume", skip_serializing_if = "Vec::is_empty")]
    pub volume_stats: Vec<VolumeStats>,
    #[serde(rename = "ephemeral-storage", skip_serializing_if = "Option::is_none")]
    pub ephemeral_storage: Option<FsStats>,
}

/// Upstream `ContainerStats`.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStats {
    pub name: String,
    pub start_time: Time,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rootfs: Option<FsStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logs: Option<FsStats>,
}

/// Upstream `PodReference`.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct PodReference {
    pub name: String,
    pub namespace: String,
    pub uid: String,
}

/// Upstream `InterfaceStats`.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct InterfaceStats {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rx_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rx_errors: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tx_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tx_errors: Option<u64>,
}

/// Upstream `NetworkStats`: the default interface inline, then all of them.
#[derive(Clone, Debug, Default, Serialize)]
pub struct NetworkStats {
    pub time: Time,
    #[serde(flatten)]
    pub default: InterfaceStats,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<InterfaceStats>,
}

/// Upstream `CPUStats`.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CpuStats {
    pub time: Time,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_nano_cores: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_core_nano_seconds: Option<u64>,
}

/// Upstream `MemoryStats`.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MemoryStats {
    pub time: Time,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub available_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub working_set_bytes: Option<u64>,
    #[serde(rename = "rssBytes", skip_serializing_if = "Option::is_none")]
    pub rss_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page_faults: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub major_page_faults: Option<u64>,
}

/// Upstream `VolumeStats`: the filesystem figures inline, then the name.
#[derive(Clone, Debug, Default, Serialize)]
pub struct VolumeStats {
    #[serde(flatten)]
    pub fs: FsStats,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
}

/// Upstream `FsStats`.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FsStats {
    pub time: Time,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub available_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub used_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inodes_free: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inodes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inodes_used: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_names_are_upstreams() {
        let t = Time::at(jiff::Timestamp::from_second(1_700_000_000).unwrap());
        let pod = PodStats {
            pod_ref: PodReference {
                name: "p".into(),
                namespace: "ns".into(),
                uid: "u".into(),
            },
            start_time: t,
            containers: vec![ContainerStats {
                name: "c".into(),
                start_time: t,
                cpu: Some(CpuStats {
                    time: t,
                    usage_nano_cores: Some(5),
                    usage_core_nano_seconds: Some(7),
                }),
                memory: Some(MemoryStats {
                    time: t,
                    working_set_bytes: Some(1),
                    rss_bytes: Some(2),
                    ..MemoryStats::default()
                }),
                ..ContainerStats::default()
            }],
            network: Some(NetworkStats {
                time: t,
                default: InterfaceStats {
                    name: "eth0".into(),
                    rx_bytes: Some(3),
                    ..InterfaceStats::default()
                },
                interfaces: vec![],
            }),
            volume_stats: vec![VolumeStats {
                fs: FsStats {
                    time: t,
                    used_bytes: Some(4),
                    ..FsStats::default()
                },
                name: "v".into(),
            }],
            ..PodStats::default()
        };
        let v = serde_json::to_value(&pod).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "podRef": {"name": "p", "namespace": "ns", "uid": "u"},
                "startTime": "2023-11-14T22:13:20Z",
                "containers": [{
                    "name": "c",
                    "startTime": "2023-11-14T22:13:20Z",
                    "cpu": {"time": "2023-11-14T22:13:20Z", "usageNanoCores": 5, "usageCoreNanoSeconds": 7},
                    "memory": {"time": "2023-11-14T22:13:20Z", "workingSetBytes": 1, "rssBytes": 2}
                }],
                "network": {"time": "2023-11-14T22:13:20Z", "name": "eth0", "rxBytes": 3},
                "volume": [{"time": "2023-11-14T22:13:20Z", "usedBytes": 4, "name": "v"}]
            })
        );
        let rl = serde_json::to_value(RlimitStats {
            time: t,
            max_pid: Some(10),
            num_of_running_processes: Some(3),
        })
        .unwrap();
        assert_eq!(rl["maxpid"], 10);
        assert_eq!(rl["curproc"], 3);
        assert_eq!(
            serde_json::to_value(Time::default()).unwrap(),
            serde_json::Value::Null
        );
    }
}
