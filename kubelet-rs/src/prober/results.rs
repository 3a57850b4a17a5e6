//! Cached probe results per container, after upstream `prober/results`.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::broadcast;

use super::ProbeType;

/// The result the kubelet acts on (upstream `results.Result`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProbeResult {
    Unknown,
    Success,
    Failure,
}

impl ProbeResult {
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeResult::Unknown => "UNKNOWN",
            ProbeResult::Success => "Success",
            ProbeResult::Failure => "Failure",
        }
    }
}

/// A changed result, sent to every subscriber.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultUpdate {
    pub container_id: String,
    pub result: ProbeResult,
    pub pod_uid: String,
    pub probe_type: ProbeType,
}

/// Latest result per container id for one probe type; publishes changes.
///
/// Subscribers that lag behind the broadcast buffer get `RecvError::Lagged` and should
/// re-read current values with [`ResultsManager::get`].
pub struct ResultsManager {
    probe_type: ProbeType,
    cache: Mutex<HashMap<String, (ProbeResult, String)>>,
    updates: broadcast::Sender<ResultUpdate>,
}

impl ResultsManager {
    pub fn new(probe_type: ProbeType) -> Self {
        let (updates, _) = broadcast::channel(256);
        ResultsManager {
            probe_type,
            cache: Mutex::new(HashMap::new()),
            updates,
        }
    }

    pub fn probe_type(&self) -> ProbeType {
        self.probe_type
    }

    pub fn get(&self, container_id: &str) -> Option<ProbeResult> {
        self.lock().get(container_id).map(|(r, _)| *r)
    }

    /// Stores `result`; subscribers hear about it only when it changed.
    pub fn set(&self, container_id: &str, result: ProbeResult, pod_uid: &str) {
        let changed = {
            let mut cache = self.lock();
            let previous = cache.insert(container_id.to_string(), (result, pod_uid.to_string()));
            previous.map(|(r, _)| r) != Some(result)
        };
        if changed {
            // No receivers is fine: nobody is interested yet.
            let _ = self.updates.send(ResultUpdate {
                container_id: container_id.to_string(),
                result,
                pod_uid: pod_uid.to_string(),
                probe_type: self.probe_type,
            });
        }
    }

    pub fn remove(&self, container_id: &str) {
        self.lock().remove(container_id);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<ResultUpdate> {
        self.updates.subscribe()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (ProbeResult, String)>> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publishes_only_changes() {
        let m = ResultsManager::new(ProbeType::Readiness);
        let mut rx = m.subscribe();
        m.set("c1", ProbeResult::Failure, "pod");
        m.set("c1", ProbeResult::Failure, "pod");
        m.set("c1", ProbeResult::Success, "pod");
        assert_eq!(rx.try_recv().map(|u| u.result), Ok(ProbeResult::Failure));
        assert_eq!(rx.try_recv().map(|u| u.result), Ok(ProbeResult::Success));
        assert!(rx.try_recv().is_err());
        assert_eq!(m.get("c1"), Some(ProbeResult::Success));
        m.remove("c1");
        assert_eq!(m.get("c1"), None);
    }
}
