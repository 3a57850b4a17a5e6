//! `run`: wires the rooms together (upstream `Kubelet.Run` / `syncLoop`).

mod handle;

pub use handle::KubeletHandle;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use tokio_util::sync::CancellationToken;

use crate::config::apiserver::{PodUpdate, watch_pods};
use crate::cri::{self, ImageService, RuntimeService};
use crate::error::Error;
use crate::events::EventSink;
use crate::kubeletconfig::KubeletConfig;
use crate::kuberuntime::dns::{ClusterDns, parse_resolv_conf};
use crate::kuberuntime::manager::{RuntimeDeps, RuntimeManager, RuntimeSettings};
use crate::nodestatus::machine::MachineInfo;
use crate::nodestatus::updater::NodeStatusUpdater;
use crate::nodestatus::{netaddr, register, setters};
use crate::pod_workers::{PodWorkers, WorkerContext};
use crate::prober::{ProbeManager, ProbeType};
use crate::status::status_manager::StatusManager;
use crate::volumemanager::{KubeObjectSource, VolumeManager, VolumeManagerConfig};
use component_base::events::EventType;

fn allocatable(config: &KubeletConfig, machine: &MachineInfo) -> setters::ResourceMilli {
    let cfg = &config.configuration;
    let capacity = setters::capacity(machine, cfg.max_pods);
    setters::allocatable(
        &capacity,
        &cfg.kube_reserved,
        &cfg.system_reserved,
        &cfg.eviction_hard,
    )
}

fn runtime_settings(
    config: &KubeletConfig,
    machine: &MachineInfo,
    host_ips: &[String],
) -> RuntimeSettings {
    let cfg = &config.configuration;
    let allocatable = allocatable(config, machine);
    RuntimeSettings {
        log_root: config.flags.pod_log_root.clone(),
        cluster_dns: ClusterDns {
            servers: cfg.cluster_dns.clone(),
            domain: cfg.cluster_domain.clone(),
        },
        host_resolv: parse_resolv_conf(
            &std::fs::read_to_string(&cfg.resolv_conf).unwrap_or_default(),
        ),
        memory_capacity: machine.memory_capacity,
        cpu_cfs_quota: cfg.cpu_cfs_quota,
        host_ips: host_ips.to_vec(),
        node_allocatable: setters::to_quantities(&allocatable)
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect(),
        cgroups_per_qos: cfg.cgroups_per_qos,
        cgroup_root: cfg.cgroup_root.clone(),
    }
}

async fn register_until_done(
    client: &Client,
    config: &KubeletConfig,
    shutdown: &CancellationToken,
) {
    let mut delay = Duration::from_millis(100);
    loop {
        match register::register_node(client, config).await {
            Ok(_) => return,
            Err(e) => {
                tracing::error!(error = %e, node = %config.node_name, "Unable to register node with API server")
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(7));
    }
}

/// Runs the kubelet until `shutdown` is cancelled.
pub async fn run(
    client: Client,
    config: KubeletConfig,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    run_with(client, config, shutdown, KubeletHandle::new()).await
}

/// [`run`], exposing the kubelet's pods and sync-loop liveness through
/// `handle` (for the :10250 server and `/healthz/syncloop`).
pub async fn run_with(
    client: Client,
    config: KubeletConfig,
    shutdown: CancellationToken,
    handle: KubeletHandle,
) -> Result<(), Error> {
    let cfg = &config.configuration;
    let channel = cri::connect(&config.runtime_socket())?;
    let runtime = RuntimeService::new(channel.clone(), cfg.runtime_request_timeout);
    let images = ImageService::new(channel, cfg.runtime_request_timeout);
    let runtime_name = match runtime.version().await {
        Ok(v) => {
            tracing::info!(runtime = %v.runtime_name, version = %v.runtime_version, "Container runtime initialized");
            v.runtime_name
        }
        Err(e) => {
            tracing::warn!(error = %e, "container runtime not answering yet");
            "containerd".to_string()
        }
    };
    let machine = MachineInfo::read(&config.flags.root_directory);
    let host_ips: Vec<String> = if config.flags.node_ips.is_empty() {
        netaddr::detect_node_ip()
            .into_iter()
            .map(|ip| ip.to_string())
            .collect()
    } else {
        config
            .flags
            .node_ips
            .iter()
            .map(|ip| ip.to_string())
            .collect()
    };
    if let Err(e) = crate::cm::ensure_qos_cgroups(
        &crate::cm::CgroupLayout::detect(),
        &cfg.cgroup_root,
        cfg.cgroups_per_qos,
    ) {
        tracing::warn!(error = %e, "creating QoS cgroups");
    }

    // Upstream: source.component=kubelet, source.host=<node>.
    let recorder =
        component_base::events::EventBroadcaster::start(client.clone(), shutdown.clone())
            .new_recorder_with_instance("kubelet", &config.node_name);
    let events: Arc<dyn EventSink> = Arc::new(recorder);
    if cfg.register_node {
        register_until_done(&client, &config, &shutdown).await;
    }
    events.record(
        &crate::events::node_ref(&config.node_name),
        EventType::Normal,
        crate::events::reasons::STARTING_KUBELET,
        "Starting kubelet.",
    );
    let mut tasks = tokio::task::JoinSet::new();
    let updater = NodeStatusUpdater {
        client: client.clone(),
        config: config.clone(),
        runtime: runtime.clone(),
        images: images.clone(),
        machine: machine.clone(),
        events: events.clone(),
    };
    tasks.spawn(updater.run(shutdown.clone()));
    tasks.spawn(crate::nodelease::run(
        client.clone(),
        config.node_name.clone(),
        cfg.node_lease_duration_seconds,
        shutdown.clone(),
    ));

    let manager = Arc::new(RuntimeManager::new(RuntimeDeps {
        runtime: runtime.clone(),
        images,
        client: Some(client.clone()),
        settings: runtime_settings(&config, &machine, &host_ips),
        volumes: Some(Arc::new(VolumeManager::new(
            VolumeManagerConfig {
                root_dir: config.flags.root_directory.clone(),
                node_allocatable: setters::to_quantities(&allocatable(&config, &machine)),
            },
            Arc::new(KubeObjectSource::new(client.clone())),
        ))),
        events: events.clone(),
    }));
    let (probes, prober_events) = ProbeManager::new();
    let probes = Arc::new(probes);
    let status = Arc::new(StatusManager::new(client.clone()));
    let workers = PodWorkers::new(
        WorkerContext {
            manager: manager.clone(),
            status: status.clone(),
            runtime_name,
            host_ips,
            resync: cfg.sync_frequency,
            probes: Some(probes.clone()),
            exec: Some(Arc::new(runtime.clone())),
        },
        shutdown.clone(),
    );
    handle.attach(handle::Attached {
        workers: workers.clone(),
        status,
        runtime: runtime.clone(),
    })?;

    // Pods the apiserver knows, for orphan housekeeping; `None` until the first list.
    let known: Arc<Mutex<Option<HashMap<String, Pod>>>> = Arc::new(Mutex::new(None));
    {
        let workers = workers.clone();
        let known = known.clone();
        let mut seen: HashMap<String, Pod> = HashMap::new();
        tasks.spawn(watch_pods(
            client.clone(),
            config.node_name.clone(),
            shutdown.clone(),
            move |update| match update {
                PodUpdate::Upsert(pod) => {
                    let uid = pod.metadata.uid.clone().unwrap_or_default();
                    seen.insert(uid, pod.clone());
                    workers.update_pod(pod);
                    if let Some(k) = known.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
                        k.clone_from(&seen);
                    }
                }
                PodUpdate::Removed(pod) => {
                    let uid = pod.metadata.uid.clone().unwrap_or_default();
                    seen.remove(&uid);
                    workers.remove_pod(&pod);
                    if let Some(k) = known.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
                        k.remove(&uid);
                    }
                }
                PodUpdate::Synced => {
                    *known.lock().unwrap_or_else(|p| p.into_inner()) = Some(seen.clone());
                }
            },
        ));
    }
    {
        let wake = workers.clone();
        let house = workers.clone();
        let manager = manager.clone();
        let known = known.clone();
        let orphans_in_flight: Arc<Mutex<HashSet<String>>> = Arc::new(Mutex::new(HashSet::new()));
        let handle = handle.clone();
        tasks.spawn(crate::pleg::run(
            runtime.clone(),
            shutdown.clone(),
            move |uid| wake.wake(uid),
            move |snapshot| {
                // The relist loop drives pod syncs here, so it stands in for
                // upstream's syncLoop; like upstream it stops marking while
                // the runtime is failing.
                handle.mark_loop_entry();
                let Some(known) = known
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .as_ref()
                    .map(|k| k.keys().cloned().collect::<HashSet<_>>())
                else {
                    return;
                };
                let active: HashSet<String> = house.known_uids().into_iter().collect();
                for uid in snapshot
                    .keys()
                    .filter(|u| !known.contains(*u) && !active.contains(*u))
                {
                    if !orphans_in_flight
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(uid.clone())
                    {
                        continue;
                    }
                    let manager = manager.clone();
                    let uid = uid.clone();
                    let in_flight = orphans_in_flight.clone();
                    tokio::spawn(async move {
                        // A pod the apiserver no longer has: kill and remove what is left.
                        if let Ok(rt) = manager.get_pod_status(&uid).await {
                            let pod = Pod::default();
                            let _ = manager.kill_pod(&pod, &rt, Duration::from_secs(2)).await;
                            if let Ok(rt) = manager.get_pod_status(&uid).await
                                && let Err(e) = manager.remove_pod(&rt).await
                            {
                                tracing::warn!(uid = %uid, error = %e, "removing orphaned pod");
                            }
                        }
                        in_flight
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .remove(&uid);
                    });
                }
            },
        ));
    }
    if !cfg.static_pod_path.is_empty() {
        tasks.spawn(crate::config::static_pods::run(
            client.clone(),
            std::path::PathBuf::from(&cfg.static_pod_path),
            config.node_name.clone(),
            cfg.file_check_frequency,
            workers.clone(),
            shutdown.clone(),
        ));
    }
    tasks.spawn(
        workers
            .clone()
            .run_prober_events(prober_events, shutdown.clone()),
    );
    for probe_type in [
        ProbeType::Liveness,
        ProbeType::Readiness,
        ProbeType::Startup,
    ] {
        let mut updates = probes.results(probe_type).subscribe();
        let workers = workers.clone();
        let shutdown = shutdown.clone();
        // A changed probe result re-syncs the pod so ready/started reach its status.
        tasks.spawn(async move {
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    update = updates.recv() => match update {
                        Ok(u) => workers.wake(&u.pod_uid),
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                            for uid in workers.known_uids() {
                                workers.wake(&uid);
                            }
                        }
                        Err(_) => return,
                    },
                }
            }
        });
    }
    shutdown.cancelled().await;
    tasks.shutdown().await;
    Ok(())
}
