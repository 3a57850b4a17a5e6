//! `run`: wires the rooms together (upstream `Kubelet.Run` / `syncLoop`). Only wiring
//! lives here; what it wires is in the submodules and the rooms themselves.

mod handle;
mod housekeeping;
mod node_setup;
mod pod_sources;
mod probe_wakeups;

pub use handle::KubeletHandle;

use std::path::PathBuf;
use std::sync::Arc;

use component_base::events::EventType;
use component_base::informers::SharedInformerFactory;
use kube::Client;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::{apiserver, static_pods};
use crate::cri::{self, ImageService, RuntimeService};
use crate::error::Error;
use crate::events::EventSink;
use crate::kubeletconfig::KubeletConfig;
use crate::kuberuntime::manager::{RuntimeDeps, RuntimeManager};
use crate::nodestatus::machine::MachineInfo;
use crate::nodestatus::setters;
use crate::nodestatus::updater::NodeStatusUpdater;
use crate::pod_workers::{PodWorkers, WorkerContext};
use crate::prober::{ProbeManager, ProberEvent};
use crate::status::status_manager::StatusManager;
use crate::volumemanager::{KubeObjectSource, VolumeManager, VolumeManagerConfig};
use housekeeping::Housekeeping;
use pod_sources::ApiPods;

/// Runs the kubelet until `shutdown` is cancelled.
pub async fn run(
    client: Client,
    config: KubeletConfig,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    run_with(client, config, shutdown, KubeletHandle::new()).await
}

/// The runtime's name as it reports it; containerd's if it does not answer yet.
async fn runtime_name(runtime: &RuntimeService) -> String {
    match runtime.version().await {
        Ok(v) => {
            tracing::info!(runtime = %v.runtime_name, version = %v.runtime_version, "Container runtime initialized");
            v.runtime_name
        }
        Err(e) => {
            tracing::warn!(error = %e, "container runtime not answering yet");
            "containerd".to_string()
        }
    }
}

/// The rooms the sync loop drives, built once the node is known.
struct Rooms {
    manager: Arc<RuntimeManager>,
    workers: PodWorkers,
    probes: Arc<ProbeManager>,
    prober_events: UnboundedReceiver<ProberEvent>,
    status: Arc<StatusManager>,
}

/// Runtime manager (with volumes), prober, status manager and the pod workers over them.
#[allow(clippy::too_many_arguments)]
fn build_rooms(
    client: &Client,
    config: &KubeletConfig,
    machine: &MachineInfo,
    runtime: &RuntimeService,
    images: ImageService,
    events: Arc<dyn EventSink>,
    runtime_name: String,
    shutdown: &CancellationToken,
) -> Rooms {
    let cfg = &config.configuration;
    let host_ips = node_setup::host_ips(config);
    let volumes = VolumeManager::new(
        VolumeManagerConfig {
            root_dir: config.flags.root_directory.clone(),
            node_allocatable: setters::to_quantities(&node_setup::allocatable(config, machine)),
        },
        Arc::new(KubeObjectSource::new(client.clone())),
    );
    let manager = Arc::new(RuntimeManager::new(RuntimeDeps {
        runtime: runtime.clone(),
        images,
        client: Some(client.clone()),
        settings: node_setup::runtime_settings(config, machine, &host_ips),
        volumes: Some(Arc::new(volumes)),
        events,
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
    Rooms {
        manager,
        workers,
        probes,
        prober_events,
        status,
    }
}

/// Node status updates and the node lease (upstream `syncNodeStatus`, `nodeLeaseController`).
fn spawn_node_status(
    tasks: &mut JoinSet<()>,
    updater: NodeStatusUpdater,
    config: &KubeletConfig,
    shutdown: &CancellationToken,
) {
    let client = updater.client.clone();
    tasks.spawn(updater.run(shutdown.clone()));
    tasks.spawn(crate::nodelease::run(
        client,
        config.node_name.clone(),
        config.configuration.node_lease_duration_seconds,
        shutdown.clone(),
    ));
}

/// Pod sources → pod workers: the apiserver's pods (via the shared informer) and,
/// if configured, the static pod files.
fn spawn_pod_sources(
    tasks: &mut JoinSet<()>,
    informers: &SharedInformerFactory,
    client: &Client,
    config: &KubeletConfig,
    workers: &PodWorkers,
    api_pods: ApiPods,
    shutdown: &CancellationToken,
) {
    let cfg = &config.configuration;
    tasks.spawn(apiserver::watch_pods(
        apiserver::node_pods(informers, &config.node_name),
        shutdown.clone(),
        pod_sources::api_source(workers.clone(), api_pods),
    ));
    if !cfg.static_pod_path.is_empty() {
        tasks.spawn(static_pods::run(
            client.clone(),
            PathBuf::from(&cfg.static_pod_path),
            config.node_name.clone(),
            cfg.file_check_frequency,
            shutdown.clone(),
            pod_sources::file_source(workers.clone()),
        ));
    }
}

/// Runtime events → pod workers; each relist also marks the sync loop alive and drives
/// housekeeping.
fn spawn_pleg(
    tasks: &mut JoinSet<()>,
    runtime: RuntimeService,
    housekeeping: Housekeeping,
    handle: KubeletHandle,
    shutdown: &CancellationToken,
) {
    let wake = housekeeping.workers.clone();
    tasks.spawn(crate::pleg::run(
        runtime,
        shutdown.clone(),
        move |uid| wake.wake(uid),
        move |snapshot| {
            // The relist loop drives pod syncs here, so it stands in for upstream's
            // syncLoop; like upstream it stops marking while the runtime is failing.
            handle.mark_loop_entry();
            housekeeping.cleanup_orphans(snapshot);
        },
    ));
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
    let runtime_name = runtime_name(&runtime).await;
    let machine = MachineInfo::read(&config.flags.root_directory);
    let cgroups = crate::cm::CgroupLayout::detect();
    if let Err(e) = crate::cm::ensure_qos_cgroups(&cgroups, &cfg.cgroup_root, cfg.cgroups_per_qos) {
        tracing::warn!(error = %e, "creating QoS cgroups");
    }

    // Upstream: source.component=kubelet, source.host=<node>.
    let recorder =
        component_base::events::EventBroadcaster::start(client.clone(), shutdown.clone())
            .new_legacy_recorder("kubelet", &config.node_name);
    let events: Arc<dyn EventSink> = Arc::new(recorder);
    if cfg.register_node {
        node_setup::register_until_done(&client, &config, &shutdown).await;
    }
    events.record(
        &crate::events::node_ref(&config.node_name),
        EventType::Normal,
        crate::events::reasons::STARTING_KUBELET,
        "Starting kubelet.",
    );
    let mut tasks = JoinSet::new();
    let updater = NodeStatusUpdater {
        client: client.clone(),
        config: config.clone(),
        runtime: runtime.clone(),
        images: images.clone(),
        machine: machine.clone(),
        events: events.clone(),
    };
    spawn_node_status(&mut tasks, updater, &config, &shutdown);

    let rooms = build_rooms(
        &client,
        &config,
        &machine,
        &runtime,
        images,
        events,
        runtime_name,
        &shutdown,
    );
    let workers = rooms.workers;
    handle.attach(handle::Attached {
        workers: workers.clone(),
        status: rooms.status,
        runtime: runtime.clone(),
    })?;
    // The process's one informer factory: every watch the kubelet adds shares it.
    let informers = SharedInformerFactory::new(client.clone(), shutdown.clone());
    let api_pods = ApiPods::default();
    spawn_pod_sources(
        &mut tasks,
        &informers,
        &client,
        &config,
        &workers,
        api_pods.clone(),
        &shutdown,
    );
    let housekeeping = Housekeeping::new(rooms.manager, workers.clone(), api_pods);
    spawn_pleg(&mut tasks, runtime, housekeeping, handle, &shutdown);
    // Prober verdicts and results → pod workers.
    tasks.spawn(
        workers
            .clone()
            .run_prober_events(rooms.prober_events, shutdown.clone()),
    );
    probe_wakeups::spawn(&mut tasks, &rooms.probes, &workers, &shutdown);

    shutdown.cancelled().await;
    tasks.shutdown().await;
    Ok(())
}
