//! Generic PLEG: relists the runtime every second and wakes the worker of any pod whose
//! containers or sandboxes changed state.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::cri::{CriError, RuntimeService};
use crate::kuberuntime::labels::POD_UID;

pub const RELIST_PERIOD: Duration = Duration::from_secs(1);

/// Per-pod fingerprint: sorted (id, state) of sandboxes and containers.
pub type Snapshot = HashMap<String, BTreeMap<String, i32>>;

/// Reads the runtime's current view.
pub async fn relist(runtime: &RuntimeService) -> Result<Snapshot, CriError> {
    let mut snap: Snapshot = HashMap::new();
    for sb in runtime.list_pod_sandbox(None).await? {
        if let Some(uid) = sb.labels.get(POD_UID) {
            snap.entry(uid.clone())
                .or_default()
                .insert(sb.id.clone(), sb.state);
        }
    }
    for c in runtime.list_containers(None).await? {
        if let Some(uid) = c.labels.get(POD_UID) {
            snap.entry(uid.clone())
                .or_default()
                .insert(c.id.clone(), c.state);
        }
    }
    Ok(snap)
}

/// Pods whose fingerprint differs between two relists.
pub fn changed_pods(old: &Snapshot, new: &Snapshot) -> Vec<String> {
    let mut out: Vec<String> = new
        .iter()
        .filter(|(uid, v)| old.get(*uid) != Some(*v))
        .map(|(uid, _)| uid.clone())
        .chain(old.keys().filter(|uid| !new.contains_key(*uid)).cloned())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Relists until cancelled, calling `on_change(uid)` for every changed pod and
/// `on_snapshot` with each full view (for housekeeping of orphaned pods).
pub async fn run(
    runtime: RuntimeService,
    shutdown: CancellationToken,
    on_change: impl Fn(&str),
    on_snapshot: impl Fn(&Snapshot),
) {
    let mut last = Snapshot::new();
    loop {
        match relist(&runtime).await {
            Ok(snap) => {
                for uid in changed_pods(&last, &snap) {
                    on_change(&uid);
                }
                on_snapshot(&snap);
                last = snap;
            }
            Err(e) => tracing::warn!(error = %e, "PLEG relist failed"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(RELIST_PERIOD) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_changes() {
        let mk = |pairs: &[(&str, &str, i32)]| {
            let mut s = Snapshot::new();
            for (uid, id, st) in pairs {
                s.entry(uid.to_string())
                    .or_default()
                    .insert(id.to_string(), *st);
            }
            s
        };
        let a = mk(&[("u1", "c1", 1), ("u2", "c2", 1)]);
        let b = mk(&[("u1", "c1", 2), ("u2", "c2", 1), ("u3", "c3", 0)]);
        assert_eq!(changed_pods(&a, &b), vec!["u1", "u3"]);
        assert_eq!(changed_pods(&b, &mk(&[])), vec!["u1", "u2", "u3"]);
        assert!(changed_pods(&a, &a).is_empty());
    }
}
