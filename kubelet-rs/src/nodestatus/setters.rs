//! Pure pieces of the node status (upstream `pkg/kubelet/nodestatus/setters.go`).

use std::collections::BTreeMap;
use std::net::IpAddr;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{ContainerImage, NodeAddress, NodeCondition, NodeSystemInfo};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::machine::MachineInfo;
use crate::cri::api;
use crate::resources::milli;
use component_base::quantity::{Format, ParsedQuantity};

/// Upstream `nodeStatusMaxImages`.
pub const MAX_NODE_STATUS_IMAGES: usize = 50;

/// Capacity in milli-units, keyed by resource name.
pub type ResourceMilli = BTreeMap<String, i128>;

/// `capacity` of the node: cpu, memory, pods, ephemeral-storage and huge pages.
pub fn capacity(machine: &MachineInfo, max_pods: i32) -> ResourceMilli {
    let mut c = ResourceMilli::new();
    c.insert("cpu".into(), machine.num_cores as i128 * 1000);
    c.insert("memory".into(), machine.memory_capacity as i128 * 1000);
    c.insert("pods".into(), max_pods as i128 * 1000);
    c.insert(
        "ephemeral-storage".into(),
        machine.root_fs_capacity as i128 * 1000,
    );
    for (size, bytes) in &machine.hugepages {
        c.insert(format!("hugepages-{size}"), *bytes as i128 * 1000);
    }
    c
}

/// A hard eviction threshold for `signal` as milli-units of `capacity_milli`.
fn eviction_reservation(
    eviction_hard: &BTreeMap<String, String>,
    signal: &str,
    capacity_milli: i128,
) -> i128 {
    let Some(v) = eviction_hard.get(signal) else {
        return 0;
    };
    match v.strip_suffix('%') {
        Some(pct) => {
            let pct: f64 = pct.parse().unwrap_or(0.0);
            // Upstream truncates the byte value: int64(float64(capacity) * percentage).
            ((capacity_milli / 1000) as f64 * pct / 100.0) as i128 * 1000
        }
        None => milli(v).unwrap_or(0),
    }
}

/// `allocatable` = capacity − kube-reserved − system-reserved − hard eviction
/// threshold, and memory further minus huge pages; never negative.
pub fn allocatable(
    capacity: &ResourceMilli,
    kube_reserved: &BTreeMap<String, String>,
    system_reserved: &BTreeMap<String, String>,
    eviction_hard: &BTreeMap<String, String>,
) -> ResourceMilli {
    let mut out = ResourceMilli::new();
    for (name, cap) in capacity {
        let mut reserved: i128 = [kube_reserved, system_reserved]
            .iter()
            .filter_map(|m| m.get(name))
            .filter_map(|q| milli(q))
            .sum();
        reserved += match name.as_str() {
            "memory" => eviction_reservation(eviction_hard, "memory.available", *cap),
            "ephemeral-storage" => eviction_reservation(eviction_hard, "nodefs.available", *cap),
            _ => 0,
        };
        out.insert(name.clone(), (*cap - reserved).max(0));
    }
    let hugepages: i128 = capacity
        .iter()
        .filter(|(k, _)| k.starts_with("hugepages-"))
        .map(|(_, v)| *v)
        .sum();
    if let Some(mem) = out.get_mut("memory") {
        *mem = (*mem - hugepages).max(0);
    }
    out
}

/// Renders milli-values as quantities the way upstream prints each resource.
pub fn to_quantities(list: &ResourceMilli) -> BTreeMap<String, Quantity> {
    list.iter()
        .map(|(name, milli)| {
            let text = match name.as_str() {
                "cpu" | "pods" => ParsedQuantity::new_milli(*milli as i64, Format::DecimalSI),
                _ => ParsedQuantity::new((*milli / 1000) as i64, Format::BinarySI),
            };
            (name.clone(), text.to_quantity())
        })
        .collect()
}

/// `InternalIP`s from `--node-ip` (or the detected address) followed by `Hostname`.
pub fn node_addresses(
    node_ips: &[IpAddr],
    detected: Option<IpAddr>,
    hostname: &str,
) -> Vec<NodeAddress> {
    let ips: Vec<IpAddr> = if node_ips.is_empty() {
        detected.into_iter().collect()
    } else {
        node_ips.to_vec()
    };
    ips.iter()
        .map(|ip| NodeAddress {
            type_: "InternalIP".into(),
            address: ip.to_string(),
        })
        .chain(std::iter::once(NodeAddress {
            type_: "Hostname".into(),
            address: hostname.into(),
        }))
        .collect()
}

/// Why the node is not ready, from the runtime's `Status` (empty when ready).
pub fn runtime_errors(status: Option<&api::RuntimeStatus>) -> Vec<String> {
    let Some(status) = status else {
        return vec!["container runtime is down".into()];
    };
    let mut errs = Vec::new();
    for (cond_type, prefix) in [
        ("RuntimeReady", "container runtime not ready"),
        ("NetworkReady", "container runtime network not ready"),
    ] {
        match status.conditions.iter().find(|c| c.r#type == cond_type) {
            Some(c) if c.status => {}
            Some(c) => errs.push(format!(
                "{prefix}: {cond_type}=false reason:{} message:{}",
                c.reason, c.message
            )),
            None => errs.push(format!("{prefix}: {cond_type} condition missing")),
        }
    }
    errs
}

/// The four node conditions in upstream order, carrying transition times over from
/// `previous` when the status did not change.
pub fn conditions(
    previous: &[NodeCondition],
    not_ready: &[String],
    now: Timestamp,
) -> Vec<NodeCondition> {
    let (ready_status, ready_reason, ready_message) = if not_ready.is_empty() {
        (
            "True",
            "KubeletReady",
            "kubelet is posting ready status".to_string(),
        )
    } else {
        ("False", "KubeletNotReady", not_ready.join(","))
    };
    let wanted = [
        (
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available".to_string(),
        ),
        (
            "DiskPressure",
            "False",
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure".to_string(),
        ),
        (
            "PIDPressure",
            "False",
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available".to_string(),
        ),
        ("Ready", ready_status, ready_reason, ready_message),
    ];
    wanted
        .into_iter()
        .map(|(type_, status, reason, message)| {
            let prev = previous.iter().find(|c| c.type_ == type_);
            let transition = match prev {
                Some(p) if p.status == status => p.last_transition_time.clone(),
                _ => Some(Time(now)),
            };
            NodeCondition {
                type_: type_.into(),
                status: status.into(),
                reason: Some(reason.into()),
                message: Some(message),
                last_heartbeat_time: Some(Time(now)),
                last_transition_time: transition,
            }
        })
        .collect()
}

/// The runtime version as upstream prints it: `utilversion.ParseGeneric`
/// keeps only the leading dotted numbers (`1.6.20~ds1` → `1.6.20`), falling
/// back to the raw string when it does not start with one.
pub fn generic_version(raw: &str) -> &str {
    let v = raw.strip_prefix('v').unwrap_or(raw);
    let end = v
        .char_indices()
        .find(|&(i, c)| {
            !(c.is_ascii_digit()
                || (c == '.' && v[i + 1..].starts_with(|d: char| d.is_ascii_digit())))
        })
        .map_or(v.len(), |(i, _)| i);
    if end == 0 { raw } else { &v[..end] }
}

/// `containerRuntimeVersion` is `<runtime name>://<version>`.
pub fn node_info(
    machine: &MachineInfo,
    version: Option<&api::VersionResponse>,
    kubelet_version: &str,
) -> NodeSystemInfo {
    NodeSystemInfo {
        machine_id: machine.machine_id.clone(),
        system_uuid: machine.system_uuid.clone(),
        boot_id: machine.boot_id.clone(),
        kernel_version: machine.kernel_version.clone(),
        os_image: machine.os_image.clone(),
        container_runtime_version: version
            .map(|v| {
                format!(
                    "{}://{}",
                    v.runtime_name,
                    generic_version(&v.runtime_version)
                )
            })
            .unwrap_or_default(),
        kubelet_version: kubelet_version.into(),
        kube_proxy_version: String::new(),
        operating_system: "linux".into(),
        architecture: go_arch().into(),
        swap: None,
    }
}

/// `runtime.GOARCH` for this build.
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// Images by size, largest first, at most [`MAX_NODE_STATUS_IMAGES`].
pub fn images(list: &[api::Image]) -> Vec<ContainerImage> {
    let mut sorted: Vec<&api::Image> = list.iter().collect();
    sorted.sort_by_key(|img| std::cmp::Reverse(img.size));
    sorted
        .into_iter()
        .take(MAX_NODE_STATUS_IMAGES)
        .map(|img| {
            let names: Vec<String> = img
                .repo_digests
                .iter()
                .chain(img.repo_tags.iter())
                .cloned()
                .collect();
            ContainerImage {
                names: Some(names),
                size_bytes: Some(img.size as i64),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `BinarySI` byte count printed by the shared quantity code.
    fn format_binary_si(bytes: i64) -> String {
        ParsedQuantity::new(bytes, Format::BinarySI).to_string()
    }

    fn format_decimal_milli(milli: i64) -> String {
        ParsedQuantity::new_milli(milli, Format::DecimalSI).to_string()
    }

    /// Was `nodestatus/quantity.rs`'s test; the same assertions against the shared code.
    #[test]
    fn formats_like_go() {
        assert_eq!(format_binary_si(0), "0");
        assert_eq!(format_binary_si(8_236_683_264), "8043636Ki");
        assert_eq!(format_binary_si(1024 * 1024 * 1024), "1Gi");
        assert_eq!(format_binary_si(2 * 1024 * 1024), "2Mi");
        assert_eq!(format_binary_si(237_764_976_390), "237764976390");
        assert_eq!(format_decimal_milli(2000), "2");
        assert_eq!(format_decimal_milli(1500), "1500m");
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn allocatable_subtracts_reservations_and_eviction() {
        let machine = MachineInfo {
            num_cores: 4,
            memory_capacity: 8 * 1024 * 1024 * 1024,
            root_fs_capacity: 100 * 1024 * 1024 * 1024,
            hugepages: BTreeMap::from([("2Mi".to_string(), 512 * 1024 * 1024)]),
            ..Default::default()
        };
        let cap = capacity(&machine, 110);
        let alloc = allocatable(
            &cap,
            &map(&[("cpu", "100m"), ("memory", "1Gi")]),
            &map(&[("cpu", "200m")]),
            &map(&[("memory.available", "100Mi"), ("nodefs.available", "10%")]),
        );
        let q = to_quantities(&alloc);
        assert_eq!(q["cpu"].0, "3700m");
        assert_eq!(q["pods"].0, "110");
        // 8Gi - 1Gi - 100Mi - 512Mi huge pages
        assert_eq!(
            q["memory"].0,
            format_binary_si(
                8 * 1024 * 1024 * 1024 - 1024 * 1024 * 1024 - 100 * 1024 * 1024 - 512 * 1024 * 1024
            )
        );
        assert_eq!(
            q["ephemeral-storage"].0,
            format_binary_si(100 * 1024 * 1024 * 1024 - 10 * 1024 * 1024 * 1024)
        );
        let capq = to_quantities(&cap);
        assert_eq!(capq["memory"].0, "8Gi");
        assert_eq!(capq["hugepages-2Mi"].0, "512Mi");
        assert_eq!(capq["cpu"].0, "4");
    }

    #[test]
    fn conditions_keep_transition_time_when_unchanged() {
        let t0 = Timestamp::from_second(1_000).expect("valid");
        let t1 = Timestamp::from_second(2_000).expect("valid");
        let first = conditions(&[], &[], t0);
        assert_eq!(
            first.iter().map(|c| c.type_.as_str()).collect::<Vec<_>>(),
            ["MemoryPressure", "DiskPressure", "PIDPressure", "Ready"]
        );
        let ready = &first[3];
        assert_eq!(ready.reason.as_deref(), Some("KubeletReady"));
        assert_eq!(
            ready.message.as_deref(),
            Some("kubelet is posting ready status")
        );
        let second = conditions(&first, &[], t1);
        assert_eq!(second[3].last_transition_time, Some(Time(t0)));
        assert_eq!(second[3].last_heartbeat_time, Some(Time(t1)));
        let third = conditions(&second, &["container runtime is down".to_string()], t1);
        assert_eq!(third[3].status, "False");
        assert_eq!(third[3].reason.as_deref(), Some("KubeletNotReady"));
        assert_eq!(third[3].last_transition_time, Some(Time(t1)));
    }

    #[test]
    fn runtime_errors_match_upstream_messages() {
        let status = api::RuntimeStatus {
            conditions: vec![
                api::RuntimeCondition {
                    r#type: "RuntimeReady".into(),
                    status: true,
                    ..Default::default()
                },
                api::RuntimeCondition {
                    r#type: "NetworkReady".into(),
                    status: false,
                    reason: "NetworkPluginNotReady".into(),
                    message: "cni plugin not initialized".into(),
                },
            ],
        };
        assert_eq!(
            runtime_errors(Some(&status)),
            vec!["container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:cni plugin not initialized".to_string()]
        );
        assert_eq!(
            runtime_errors(None),
            vec!["container runtime is down".to_string()]
        );
    }

    #[test]
    fn addresses_prefer_node_ip() {
        let ip: IpAddr = "10.0.0.5".parse().expect("ip");
        let other: IpAddr = "192.168.1.2".parse().expect("ip");
        let a = node_addresses(&[ip], Some(other), "node-a");
        assert_eq!(a.len(), 2);
        assert_eq!(
            (a[0].type_.as_str(), a[0].address.as_str()),
            ("InternalIP", "10.0.0.5")
        );
        assert_eq!(
            (a[1].type_.as_str(), a[1].address.as_str()),
            ("Hostname", "node-a")
        );
        assert_eq!(
            node_addresses(&[], Some(other), "n")[0].address,
            "192.168.1.2"
        );
    }

    #[test]
    fn runtime_version_like_parse_generic() {
        assert_eq!(generic_version("1.6.20~ds1"), "1.6.20");
        assert_eq!(generic_version("v2.0.0-rc.1"), "2.0.0");
        assert_eq!(generic_version("1.7.3"), "1.7.3");
        assert_eq!(generic_version("1."), "1");
        assert_eq!(generic_version("devel"), "devel");
    }
}
