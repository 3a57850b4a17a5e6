//! Probe results → pod syncs (upstream `syncLoopIteration`'s liveness/readiness/startup
//! channels): a changed result re-syncs the pod so ready/started reach its status.

use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use crate::pod_workers::PodWorkers;
use crate::prober::{ProbeManager, ProbeType};

/// Spawns one waker per probe type onto `tasks`.
pub(super) fn spawn(
    tasks: &mut tokio::task::JoinSet<()>,
    probes: &ProbeManager,
    workers: &PodWorkers,
    shutdown: &CancellationToken,
) {
    for probe_type in [
        ProbeType::Liveness,
        ProbeType::Readiness,
        ProbeType::Startup,
    ] {
        let mut updates = probes.results(probe_type).subscribe();
        let workers = workers.clone();
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    update = updates.recv() => match update {
                        Ok(u) => workers.wake(&u.pod_uid),
                        // Missed results: re-sync every pod.
                        Err(RecvError::Lagged(_)) => {
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
}
