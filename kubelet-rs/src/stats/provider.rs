//! Gathers one [`Summary`] (upstream `summaryProviderImpl.Get` /
//! `GetCPUAndMemoryStats`): the node from the root cgroup and host files,
//! pods from their cgroups and sandbox stats, containers from the CRI.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::Pod;

use super::StatsError;
use super::cgroup::{CgroupReader, CgroupSample};
use super::cpu_rate::CpuRates;
use super::host;
use super::types::*;
use crate::cm::{CgroupLayout, qos_cgroup_names};
use crate::cri::{CriError, RuntimeService, api};
use crate::kuberuntime::labels::{POD_NAME, POD_NAMESPACE, POD_UID};
use crate::server::PodProvider;

/// Volume plugin directories whose usage is reported (upstream's
/// `du`-measured emptyDir and the types wrapping it).
const VOLUME_PLUGIN_DIRS: [&str; 5] = [
    "kubernetes.io~empty-dir",
    "kubernetes.io~configmap",
    "kubernetes.io~secret",
    "kubernetes.io~projected",
    "kubernetes.io~downward-api",
];

/// Volumes counted into a pod's ephemeral storage (disk-backed).
const EPHEMERAL_PLUGIN_DIRS: [&str; 2] = ["kubernetes.io~empty-dir", "kubernetes.io~configmap"];

/// The CRI calls the stats need.
#[async_trait::async_trait]
pub trait StatsRuntime: Send + Sync {
    async fn container_stats(&self) -> Result<Vec<api::ContainerStats>, CriError>;
    async fn containers(&self) -> Result<Vec<api::Container>, CriError>;
    async fn sandbox_stats(&self) -> Result<Vec<api::PodSandboxStats>, CriError>;
}

#[async_trait::async_trait]
impl StatsRuntime for RuntimeService {
    async fn container_stats(&self) -> Result<Vec<api::ContainerStats>, CriError> {
        self.list_container_stats().await
    }
    async fn containers(&self) -> Result<Vec<api::Container>, CriError> {
        self.list_containers(None).await
    }
    async fn sandbox_stats(&self) -> Result<Vec<api::PodSandboxStats>, CriError> {
        self.list_pod_sandbox_stats().await
    }
}

/// What the server asks for.
#[async_trait::async_trait]
pub trait StatsProvider: Send + Sync {
    async fn collect(&self, only_cpu_and_memory: bool) -> Result<Collected, StatsError>;
}

/// Where the node keeps what is measured.
#[derive(Clone, Debug)]
pub struct ProviderConfig {
    pub node_name: String,
    pub root_dir: PathBuf,
    pub pod_log_root: PathBuf,
    pub cgroup_root: String,
    pub cgroups_per_qos: bool,
    pub layout: CgroupLayout,
    pub memory_capacity: u64,
    pub num_cores: u64,
    /// `boot_id`, `machine_id`, `system_uuid` of the `machine_*` series.
    pub machine_labels: [String; 3],
}

/// A container's identity as cAdvisor labels it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ContainerMeta {
    pub id: String,
    pub image: String,
    /// cgroup path (`/kubepods/.../pod<uid>/<id>`), cAdvisor's `id` label.
    pub cgroup: String,
}

/// A summary plus what `/metrics/cadvisor` labels series with.
#[derive(Clone, Debug, Default)]
pub struct Collected {
    pub summary: Summary,
    /// (pod uid, container name) → identity.
    pub containers: HashMap<(String, String), ContainerMeta>,
    /// pod uid → pod cgroup.
    pub pod_cgroups: HashMap<String, String>,
    pub num_cores: u64,
    pub memory_capacity: u64,
    pub machine_labels: [String; 3],
}

/// The real provider: cgroups, host files, the CRI and the pod manager.
pub struct SummaryProvider {
    config: ProviderConfig,
    cgroups: CgroupReader,
    runtime: Arc<dyn StatsRuntime>,
    pods: Arc<dyn PodProvider>,
    rates: Mutex<CpuRates>,
}

fn now_ns(t: jiff::Timestamp) -> i64 {
    i64::try_from(t.as_nanosecond()).unwrap_or(i64::MAX)
}

fn value(v: &Option<api::UInt64Value>) -> Option<u64> {
    v.as_ref().map(|v| v.value)
}

/// CPU stats from a cgroup sample, with the rate since the last one.
pub fn cgroup_cpu(s: &CgroupSample, time: Time, rate: Option<u64>) -> CpuStats {
    CpuStats {
        time,
        usage_nano_cores: rate,
        usage_core_nano_seconds: Some(s.cpu_usage_ns),
    }
}

/// Memory stats from a cgroup sample; available is limit (or `capacity`)
/// minus working set, as upstream.
pub fn cgroup_memory(s: &CgroupSample, time: Time, capacity: Option<u64>) -> MemoryStats {
    MemoryStats {
        time,
        available_bytes: s
            .memory_limit
            .or(capacity)
            .map(|l| l.saturating_sub(s.working_set)),
        usage_bytes: Some(s.memory_usage),
        working_set_bytes: Some(s.working_set),
        rss_bytes: Some(s.rss),
        page_faults: Some(s.page_faults),
        major_page_faults: Some(s.major_page_faults),
    }
}

/// CRI CPU usage; the rate is ours when we have a previous sample, the
/// runtime's otherwise.
pub fn cri_cpu(c: &api::CpuUsage, rate: Option<u64>) -> CpuStats {
    CpuStats {
        time: Time::from_nanos(c.timestamp),
        usage_nano_cores: rate.or(value(&c.usage_nano_cores)),
        usage_core_nano_seconds: value(&c.usage_core_nano_seconds),
    }
}

pub fn cri_memory(m: &api::MemoryUsage) -> MemoryStats {
    MemoryStats {
        time: Time::from_nanos(m.timestamp),
        available_bytes: value(&m.available_bytes),
        usage_bytes: value(&m.usage_bytes),
        working_set_bytes: value(&m.working_set_bytes),
        rss_bytes: value(&m.rss_bytes),
        page_faults: value(&m.page_faults),
        major_page_faults: value(&m.major_page_faults),
    }
}

pub fn cri_network(n: &api::NetworkUsage) -> NetworkStats {
    let iface = |i: &api::NetworkInterfaceUsage| InterfaceStats {
        name: i.name.clone(),
        rx_bytes: value(&i.rx_bytes),
        rx_errors: value(&i.rx_errors),
        tx_bytes: value(&i.tx_bytes),
        tx_errors: value(&i.tx_errors),
    };
    NetworkStats {
        time: Time::from_nanos(n.timestamp),
        default: n.default_interface.as_ref().map(iface).unwrap_or_default(),
        interfaces: n.interfaces.iter().map(iface).collect(),
    }
}

/// Rootfs of a container: the writable layer's usage on the image filesystem.
pub fn cri_rootfs(w: &api::FilesystemUsage, image_fs: Option<&FsStats>) -> FsStats {
    FsStats {
        time: Time::from_nanos(w.timestamp),
        available_bytes: image_fs.and_then(|f| f.available_bytes),
        capacity_bytes: image_fs.and_then(|f| f.capacity_bytes),
        used_bytes: value(&w.used_bytes),
        inodes_free: image_fs.and_then(|f| f.inodes_free),
        inodes: image_fs.and_then(|f| f.inodes),
        inodes_used: value(&w.inodes_used),
    }
}

/// The pod a CRI object belongs to, from the kubelet's labels.
fn pod_ref_from_labels(labels: &HashMap<String, String>) -> Option<PodReference> {
    Some(PodReference {
        name: labels.get(POD_NAME)?.clone(),
        namespace: labels.get(POD_NAMESPACE)?.clone(),
        uid: labels.get(POD_UID)?.clone(),
    })
}

fn sum(values: impl Iterator<Item = Option<u64>>) -> u64 {
    values.flatten().sum()
}

/// upstream `calcEphemeralStorage`: rootfs and logs of every container plus
/// disk-backed volumes.
pub fn ephemeral_storage(pod: &PodStats, ephemeral_volumes: &[VolumeStats], now: Time) -> FsStats {
    let first_fs = pod
        .containers
        .iter()
        .find_map(|c| c.rootfs.as_ref().or(c.logs.as_ref()));
    let used = sum(pod
        .containers
        .iter()
        .map(|c| c.rootfs.as_ref().and_then(|f| f.used_bytes)))
        + sum(pod
            .containers
            .iter()
            .map(|c| c.logs.as_ref().and_then(|f| f.used_bytes)))
        + sum(ephemeral_volumes.iter().map(|v| v.fs.used_bytes));
    let inodes_used = sum(pod
        .containers
        .iter()
        .map(|c| c.rootfs.as_ref().and_then(|f| f.inodes_used)))
        + sum(pod
            .containers
            .iter()
            .map(|c| c.logs.as_ref().and_then(|f| f.inodes_used)))
        + sum(ephemeral_volumes.iter().map(|v| v.fs.inodes_used));
    FsStats {
        time: now,
        available_bytes: first_fs.and_then(|f| f.available_bytes),
        capacity_bytes: first_fs.and_then(|f| f.capacity_bytes),
        used_bytes: Some(used),
        inodes_free: first_fs.and_then(|f| f.inodes_free),
        inodes: first_fs.and_then(|f| f.inodes),
        inodes_used: Some(inodes_used),
    }
}

/// Only the CPU and memory parts (upstream `GetCPUAndMemoryStats`).
pub fn cpu_and_memory_only(mut s: Summary) -> Summary {
    let strip = |c: &mut ContainerStats| {
        c.rootfs = None;
        c.logs = None;
    };
    s.node.network = None;
    s.node.fs = None;
    s.node.runtime = None;
    s.node.rlimit = None;
    s.node.system_containers.iter_mut().for_each(strip);
    for p in &mut s.pods {
        p.network = None;
        p.volume_stats.clear();
        p.ephemeral_storage = None;
        p.containers.iter_mut().for_each(strip);
    }
    s
}

fn boot_time() -> Time {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| component_base::metrics::parse_boot_time(&s))
        .and_then(|b| jiff::Timestamp::from_second(i64::try_from(b).ok()?).ok())
        .map(Time::at)
        .unwrap_or_default()
}

impl SummaryProvider {
    pub fn new(
        config: ProviderConfig,
        runtime: Arc<dyn StatsRuntime>,
        pods: Arc<dyn PodProvider>,
    ) -> Self {
        SummaryProvider {
            cgroups: CgroupReader::new(config.layout.clone()),
            config,
            runtime,
            pods,
            rates: Mutex::new(CpuRates::default()),
        }
    }

    /// The provider for a running kubelet: its root dir, log root, cgroup
    /// layout and CRI endpoint.
    pub fn for_kubelet(
        config: &crate::KubeletConfig,
        pods: Arc<dyn PodProvider>,
    ) -> Result<Self, CriError> {
        let cfg = &config.configuration;
        let channel = crate::cri::connect(&config.runtime_socket())?;
        let runtime = RuntimeService::new(channel, cfg.runtime_request_timeout);
        let machine = crate::nodestatus::machine::MachineInfo::read(&config.flags.root_directory);
        let provider = ProviderConfig {
            node_name: config.node_name.clone(),
            root_dir: config.flags.root_directory.clone(),
            pod_log_root: config.flags.pod_log_root.clone(),
            cgroup_root: cfg.cgroup_root.clone(),
            cgroups_per_qos: cfg.cgroups_per_qos,
            layout: CgroupLayout::detect(),
            memory_capacity: u64::try_from(machine.memory_capacity).unwrap_or(0),
            num_cores: u64::try_from(machine.num_cores).unwrap_or(0),
            machine_labels: [machine.boot_id, machine.machine_id, machine.system_uuid],
        };
        Ok(Self::new(provider, Arc::new(runtime), pods))
    }

    fn rate(
        &self,
        live: &mut HashSet<String>,
        key: String,
        time_ns: i64,
        usage: u64,
    ) -> Option<u64> {
        let r = self
            .rates
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .observe(&key, time_ns, usage);
        live.insert(key);
        r
    }

    /// A cgroup's CPU and memory, `None` (logged) when it cannot be read.
    fn cgroup_stats(
        &self,
        live: &mut HashSet<String>,
        name: &str,
        now: jiff::Timestamp,
        capacity: Option<u64>,
    ) -> Option<(CpuStats, MemoryStats)> {
        let s = match self.cgroups.sample(name) {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(cgroup = name, error = %e, "cgroup stats unavailable");
                return None;
            }
        };
        let rate = self.rate(live, format!("cgroup:{name}"), now_ns(now), s.cpu_usage_ns);
        Some((
            cgroup_cpu(&s, Time::at(now), rate),
            cgroup_memory(&s, Time::at(now), capacity),
        ))
    }

    /// The pod's cgroup under the QoS hierarchy, if it exists.
    fn pod_cgroup(&self, uid: &str) -> Option<String> {
        if !self.config.cgroups_per_qos {
            return None;
        }
        qos_cgroup_names(&self.config.cgroup_root)
            .iter()
            .map(|q| format!("/{q}/pod{uid}"))
            .find(|c| self.cgroups.exists(c))
    }

    fn system_container(
        &self,
        live: &mut HashSet<String>,
        name: &str,
        cgroup: &str,
        start: Time,
        now: jiff::Timestamp,
    ) -> Option<ContainerStats> {
        let (cpu, memory) = self.cgroup_stats(live, cgroup, now, None)?;
        Some(ContainerStats {
            name: name.to_string(),
            start_time: start,
            cpu: Some(cpu),
            memory: Some(memory),
            ..ContainerStats::default()
        })
    }

    fn node_stats(
        &self,
        live: &mut HashSet<String>,
        now: jiff::Timestamp,
    ) -> Result<NodeStats, StatsError> {
        let t = Time::at(now);
        let root = self.cgroups.sample("")?;
        let rate = self.rate(live, "cgroup:/".into(), now_ns(now), root.cpu_usage_ns);
        let start = boot_time();
        let mut system = Vec::new();
        let own = std::fs::read_to_string("/proc/self/cgroup")
            .ok()
            .and_then(|s| super::cgroup::own_cgroup(&s, &self.config.layout));
        if let Some(own) = own.filter(|o| o != "/") {
            system.extend(self.system_container(live, SYSTEM_CONTAINER_KUBELET, &own, start, now));
        }
        if self.config.cgroups_per_qos {
            let [pods, _, _] = qos_cgroup_names(&self.config.cgroup_root);
            system.extend(self.system_container(live, SYSTEM_CONTAINER_PODS, &pods, start, now));
        }
        let interfaces = std::fs::read_to_string("/proc/net/dev")
            .map(|s| host::parse_net_dev(&s))
            .unwrap_or_default();
        let fs = host::fs_stats(&self.config.root_dir, t);
        Ok(NodeStats {
            node_name: self.config.node_name.clone(),
            system_containers: system,
            start_time: start,
            cpu: Some(cgroup_cpu(&root, t, rate)),
            memory: Some(cgroup_memory(&root, t, Some(self.config.memory_capacity))),
            network: Some(NetworkStats {
                time: t,
                default: host::default_interface(&interfaces),
                interfaces,
            }),
            runtime: Some(RuntimeStats {
                image_fs: fs.clone(),
                container_fs: fs.clone(),
            }),
            fs,
            rlimit: Some(host::rlimit(t)),
        })
    }

    fn volume_stats(&self, uid: &str, now: Time) -> (Vec<VolumeStats>, Vec<VolumeStats>) {
        let base = self.config.root_dir.join("pods").join(uid).join("volumes");
        let mut all = Vec::new();
        let mut ephemeral = Vec::new();
        for plugin in VOLUME_PLUGIN_DIRS {
            let Ok(rd) = std::fs::read_dir(base.join(plugin)) else {
                continue;
            };
            for e in rd.flatten() {
                let Some(fs) = host::dir_stats(&e.path(), now) else {
                    continue;
                };
                let v = VolumeStats {
                    fs,
                    name: e.file_name().to_string_lossy().into_owned(),
                };
                if EPHEMERAL_PLUGIN_DIRS.contains(&plugin) {
                    ephemeral.push(v.clone());
                }
                all.push(v);
            }
        }
        all.sort_by(|a, b| a.name.cmp(&b.name));
        (all, ephemeral)
    }

    fn log_dir(&self, pod: &PodReference) -> PathBuf {
        self.config
            .pod_log_root
            .join(format!("{}_{}_{}", pod.namespace, pod.name, pod.uid))
    }
}

fn api_start_time(pod: Option<&Pod>) -> Option<Time> {
    let st = pod?.status.as_ref()?.start_time.as_ref()?;
    Some(Time::at(st.0))
}

#[async_trait::async_trait]
impl StatsProvider for SummaryProvider {
    async fn collect(&self, only_cpu_and_memory: bool) -> Result<Collected, StatsError> {
        let now = jiff::Timestamp::now();
        let t = Time::at(now);
        let mut live = HashSet::new();
        let node = self.node_stats(&mut live, now)?;
        let image_fs = node.runtime.as_ref().and_then(|r| r.image_fs.clone());
        let container_stats = self.runtime.container_stats().await?;
        let containers: HashMap<String, api::Container> = self
            .runtime
            .containers()
            .await?
            .into_iter()
            .map(|c| (c.id.clone(), c))
            .collect();
        // Older runtimes lack sandbox stats: pods then have no network.
        let sandbox_stats = match self.runtime.sandbox_stats().await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, "ListPodSandboxStats failed; pod network stats unavailable");
                Vec::new()
            }
        };
        let api_pods: HashMap<String, Pod> = self
            .pods
            .pods()
            .into_iter()
            .filter_map(|p| Some((p.metadata.uid.clone()?, p)))
            .collect();

        let mut pods: BTreeMap<String, PodStats> = BTreeMap::new();
        let mut meta = HashMap::new();
        let mut sandbox_net = HashMap::new();
        for sb in &sandbox_stats {
            let Some(attrs) = &sb.attributes else {
                continue;
            };
            let Some(r) = pod_ref_from_labels(&attrs.labels) else {
                continue;
            };
            if let Some(net) = sb.linux.as_ref().and_then(|l| l.network.as_ref()) {
                sandbox_net.insert(r.uid.clone(), cri_network(net));
            }
            pods.entry(r.uid.clone()).or_insert_with(|| PodStats {
                pod_ref: r,
                ..PodStats::default()
            });
        }
        for cs in &container_stats {
            let Some(attrs) = &cs.attributes else {
                continue;
            };
            let Some(c) = containers.get(&attrs.id) else {
                continue;
            };
            if c.state != api::ContainerState::ContainerRunning as i32 {
                continue;
            }
            let Some(r) = pod_ref_from_labels(&attrs.labels) else {
                continue;
            };
            let name = attrs
                .metadata
                .as_ref()
                .map(|m| m.name.clone())
                .unwrap_or_default();
            let rate = cs.cpu.as_ref().and_then(|cpu| {
                let usage = value(&cpu.usage_core_nano_seconds)?;
                self.rate(
                    &mut live,
                    format!("container:{}", attrs.id),
                    cpu.timestamp,
                    usage,
                )
            });
            let logs = host::dir_stats(&self.log_dir(&r).join(&name), t);
            let pod = pods.entry(r.uid.clone()).or_insert_with(|| PodStats {
                pod_ref: r.clone(),
                ..PodStats::default()
            });
            let pod_cgroup = self.pod_cgroup(&r.uid).unwrap_or_default();
            meta.insert(
                (r.uid.clone(), name.clone()),
                ContainerMeta {
                    id: attrs.id.clone(),
                    image: c.image_ref.clone(),
                    cgroup: format!("{pod_cgroup}/{}", attrs.id),
                },
            );
            pod.containers.push(ContainerStats {
                name,
                start_time: Time::from_nanos(c.created_at),
                cpu: cs.cpu.as_ref().map(|cpu| cri_cpu(cpu, rate)),
                memory: cs.memory.as_ref().map(cri_memory),
                rootfs: cs
                    .writable_layer
                    .as_ref()
                    .map(|w| cri_rootfs(w, image_fs.as_ref())),
                logs,
            });
        }
        let mut pod_cgroups = HashMap::new();
        for (uid, pod) in &mut pods {
            pod.containers.sort_by(|a, b| a.name.cmp(&b.name));
            let api_pod = api_pods.get(uid);
            pod.start_time = api_start_time(api_pod).unwrap_or_default();
            if let Some(cg) = self.pod_cgroup(uid) {
                if let Some((cpu, mem)) = self.cgroup_stats(&mut live, &cg, now, None) {
                    pod.cpu = Some(cpu);
                    pod.memory = Some(mem);
                }
                pod_cgroups.insert(uid.clone(), cg);
            }
            pod.network = sandbox_net.remove(uid);
            if !only_cpu_and_memory {
                let (volumes, ephemeral) = self.volume_stats(uid, t);
                pod.ephemeral_storage = Some(ephemeral_storage(pod, &ephemeral, t));
                pod.volume_stats = volumes;
            }
        }
        self.rates
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(&live);
        let summary = Summary {
            node,
            pods: pods.into_values().collect(),
        };
        Ok(Collected {
            summary: if only_cpu_and_memory {
                cpu_and_memory_only(summary)
            } else {
                summary
            },
            containers: meta,
            pod_cgroups,
            num_cores: self.config.num_cores,
            memory_capacity: self.config.memory_capacity,
            machine_labels: self.config.machine_labels.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(v: u64) -> Option<api::UInt64Value> {
        Some(api::UInt64Value { value: v })
    }

    #[test]
    fn cgroup_memory_available_from_limit_or_capacity() {
        let s = CgroupSample {
            cpu_usage_ns: 9,
            memory_usage: 100,
            working_set: 80,
            rss: 50,
            page_faults: 3,
            major_page_faults: 1,
            memory_limit: Some(1000),
        };
        let m = cgroup_memory(&s, Time::default(), Some(5000));
        assert_eq!(m.available_bytes, Some(920));
        assert_eq!(
            (m.usage_bytes, m.working_set_bytes, m.rss_bytes),
            (Some(100), Some(80), Some(50))
        );
        let unlimited = CgroupSample {
            memory_limit: None,
            ..s.clone()
        };
        assert_eq!(
            cgroup_memory(&unlimited, Time::default(), Some(5000)).available_bytes,
            Some(4920)
        );
        assert_eq!(
            cgroup_memory(&unlimited, Time::default(), None).available_bytes,
            None
        );
        let cpu = cgroup_cpu(&s, Time::default(), Some(7));
        assert_eq!(
            (cpu.usage_core_nano_seconds, cpu.usage_nano_cores),
            (Some(9), Some(7))
        );
    }

    #[test]
    fn cri_conversions() {
        let cpu = api::CpuUsage {
            timestamp: 1_700_000_000_000_000_000,
            usage_core_nano_seconds: u(10),
            usage_nano_cores: u(3),
            ..Default::default()
        };
        assert_eq!(cri_cpu(&cpu, None).usage_nano_cores, Some(3));
        assert_eq!(cri_cpu(&cpu, Some(4)).usage_nano_cores, Some(4));
        let net = api::NetworkUsage {
            timestamp: 1,
            default_interface: Some(api::NetworkInterfaceUsage {
                name: "eth0".into(),
                rx_bytes: u(5),
                tx_bytes: u(6),
                ..Default::default()
            }),
            interfaces: vec![],
        };
        let n = cri_network(&net);
        assert_eq!(
            (
                n.default.name.as_str(),
                n.default.rx_bytes,
                n.default.tx_bytes
            ),
            ("eth0", Some(5), Some(6))
        );
        let w = api::FilesystemUsage {
            timestamp: 1,
            fs_id: None,
            used_bytes: u(100),
            inodes_used: u(2),
        };
        let img = FsStats {
            capacity_bytes: Some(1000),
            available_bytes: Some(400),
            ..FsStats::default()
        };
        let r = cri_rootfs(&w, Some(&img));
        assert_eq!(
            (
                r.used_bytes,
                r.capacity_bytes,
                r.available_bytes,
                r.inodes_used
            ),
            (Some(100), Some(1000), Some(400), Some(2))
        );
    }

    #[test]
    fn ephemeral_storage_sums_rootfs_logs_and_volumes() {
        let fs = |used| FsStats {
            used_bytes: Some(used),
            inodes_used: Some(1),
            capacity_bytes: Some(10_000),
            ..FsStats::default()
        };
        let pod = PodStats {
            containers: vec![
                ContainerStats {
                    rootfs: Some(fs(10)),
                    logs: Some(fs(20)),
                    ..ContainerStats::default()
                },
                ContainerStats {
                    rootfs: Some(fs(30)),
                    ..ContainerStats::default()
                },
            ],
            ..PodStats::default()
        };
        let vols = vec![VolumeStats {
            fs: fs(40),
            name: "scratch".into(),
        }];
        let e = ephemeral_storage(&pod, &vols, Time::default());
        assert_eq!(
            (e.used_bytes, e.inodes_used, e.capacity_bytes),
            (Some(100), Some(4), Some(10_000))
        );
    }

    #[test]
    fn only_cpu_and_memory_strips_the_rest() {
        let s = Summary {
            node: NodeStats {
                fs: Some(FsStats::default()),
                rlimit: Some(RlimitStats::default()),
                cpu: Some(CpuStats::default()),
                ..NodeStats::default()
            },
            pods: vec![PodStats {
                network: Some(NetworkStats::default()),
                volume_stats: vec![VolumeStats::default()],
                containers: vec![ContainerStats {
                    rootfs: Some(FsStats::default()),
                    memory: Some(MemoryStats::default()),
                    ..ContainerStats::default()
                }],
                ..PodStats::default()
            }],
        };
        let s = cpu_and_memory_only(s);
        assert!(s.node.fs.is_none() && s.node.rlimit.is_none() && s.node.cpu.is_some());
        assert!(s.pods[0].network.is_none() && s.pods[0].volume_stats.is_empty());
        assert!(
            s.pods[0].containers[0].rootfs.is_none() && s.pods[0].containers[0].memory.is_some()
        );
    }

    #[test]
    fn pod_identity_from_labels() {
        let labels: HashMap<String, String> =
            [(POD_NAME, "p"), (POD_NAMESPACE, "ns"), (POD_UID, "u")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        assert_eq!(
            pod_ref_from_labels(&labels),
            Some(PodReference {
                name: "p".into(),
                namespace: "ns".into(),
                uid: "u".into()
            })
        );
        assert_eq!(pod_ref_from_labels(&HashMap::new()), None);
    }
}
