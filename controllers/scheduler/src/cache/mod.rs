//! Scheduler cache: nodes and assigned pods, including pods *assumed* onto a node before their
//! binding is visible (upstream `internal/cache`).

pub mod snapshot;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod};

use crate::framework::NodeInfo;
use crate::pod::{key as pod_key, node_name, uid};
use snapshot::Snapshot;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CacheError {
    #[error("pod {0} is in the cache, so can't be assumed")]
    AlreadyPresent(String),
    #[error("pod {0} has no node name, can't be assumed")]
    NoNodeName(String),
    #[error("pod {0} wasn't assumed so cannot be forgotten")]
    NotAssumed(String),
}

#[derive(Debug)]
struct PodState {
    pod: Arc<Pod>,
    assumed: bool,
    /// Set once binding finished; an assumed pod past its deadline is expired.
    deadline: Option<Instant>,
}

#[derive(Debug, Default)]
struct Inner {
    nodes: HashMap<String, NodeInfo>,
    pods: HashMap<String, PodState>,
    generation: u64,
    /// Nodes were added or removed (or their images changed) since the last snapshot:
    /// rebuild it, so every NodeInfo sees current image spread.
    node_set_changed: bool,
    /// Image name -> nodes that have it.
    image_nodes: HashMap<String, HashSet<String>>,
}

/// Thread-safe cache; every method holds the lock only briefly.
#[derive(Debug)]
pub struct Cache {
    inner: Mutex<Inner>,
    /// How long an assumed pod may wait for its binding to show up (`None`: forever, the
    /// upstream default since the assumed-pod TTL was set to 0).
    ttl: Option<Duration>,
}

impl Inner {
    fn set_node_images(&mut self, node: &str, old: &HashSet<String>, new: &HashSet<String>) {
        for img in old.difference(new) {
            if let Some(set) = self.image_nodes.get_mut(img) {
                set.remove(node);
                if set.is_empty() {
                    self.image_nodes.remove(img);
                }
            }
        }
        for img in new.difference(old) {
            self.image_nodes
                .entry(img.clone())
                .or_default()
                .insert(node.to_string());
        }
        self.node_set_changed = true;
    }

    /// Copy of a NodeInfo for a snapshot, with its images' cluster-wide spread.
    fn snapshot_copy(&self, info: &NodeInfo, total_nodes: usize) -> Arc<NodeInfo> {
        let mut copy = info.clone();
        copy.image_states = info
            .image_sizes
            .iter()
            .map(|(name, size)| {
                let num_nodes = self.image_nodes.get(name).map_or(0, HashSet::len);
                let summary = crate::framework::node_info::ImageStateSummary {
                    size: *size,
                    num_nodes,
                    total_nodes,
                };
                (name.clone(), summary)
            })
            .collect();
        Arc::new(copy)
    }

    fn bump(&mut self, node: &str) -> &mut NodeInfo {
        self.generation += 1;
        let generation = self.generation;
        let info = self.nodes.entry(node.to_string()).or_default();
        info.generation = generation;
        info
    }

    fn add_pod_to_node(&mut self, pod: Arc<Pod>) {
        let node = node_name(&pod).to_string();
        self.bump(&node).add_pod(pod);
    }

    fn remove_pod_from_node(&mut self, pod: &Pod) {
        let node = node_name(pod).to_string();
        if !self.nodes.contains_key(&node) {
            return;
        }
        let info = self.bump(&node);
        info.remove_pod(uid(pod));
        if info.node().is_none() && info.pods.is_empty() {
            self.nodes.remove(&node);
            self.node_set_changed = true;
        }
    }
}

impl Cache {
    pub fn new(ttl: Option<Duration>) -> Self {
        Cache {
            inner: Mutex::new(Inner::default()),
            ttl,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Accounts for `pod` (with `spec.nodeName` set) on its node before the binding exists.
    pub fn assume_pod(&self, pod: Arc<Pod>) -> Result<(), CacheError> {
        if node_name(&pod).is_empty() {
            return Err(CacheError::NoNodeName(pod_key(&pod)));
        }
        let mut inner = self.lock();
        let id = uid(&pod).to_string();
        if inner.pods.contains_key(&id) {
            return Err(CacheError::AlreadyPresent(pod_key(&pod)));
        }
        inner.add_pod_to_node(pod.clone());
        inner.pods.insert(
            id,
            PodState {
                pod,
                assumed: true,
                deadline: None,
            },
        );
        Ok(())
    }

    /// Starts the expiry clock for an assumed pod whose binding call returned.
    pub fn finish_binding(&self, pod_uid: &str, now: Instant) {
        let ttl = self.ttl;
        let mut inner = self.lock();
        if let Some(ps) = inner.pods.get_mut(pod_uid)
            && ps.assumed
        {
            ps.deadline = ttl.map(|t| now + t);
        }
    }

    /// Drops an assumed pod (binding failed or the cycle was aborted).
    pub fn forget_pod(&self, pod_uid: &str) -> Result<(), CacheError> {
        let mut inner = self.lock();
        let Some(ps) = inner.pods.get(pod_uid) else {
            return Err(CacheError::NotAssumed(pod_uid.to_string()));
        };
        if !ps.assumed {
            return Err(CacheError::NotAssumed(pod_key(&ps.pod)));
        }
        let pod = ps.pod.clone();
        inner.remove_pod_from_node(&pod);
        inner.pods.remove(pod_uid);
        Ok(())
    }

    /// An assigned pod seen by the informer: confirms an assumed pod or adds a new one.
    pub fn add_pod(&self, pod: Arc<Pod>) {
        let mut inner = self.lock();
        let id = uid(&pod).to_string();
        if let Some(old) = inner.pods.get(&id).map(|ps| ps.pod.clone()) {
            // Assumed (or re-listed) pod: replace with the authoritative object, which may even
            // sit on another node than we assumed.
            inner.remove_pod_from_node(&old);
        }
        inner.add_pod_to_node(pod.clone());
        inner.pods.insert(
            id,
            PodState {
                pod,
                assumed: false,
                deadline: None,
            },
        );
    }

    pub fn update_pod(&self, new: Arc<Pod>) {
        self.add_pod(new);
    }

    pub fn remove_pod(&self, pod: &Pod) {
        let mut inner = self.lock();
        let id = uid(pod).to_string();
        let Some(ps) = inner.pods.remove(&id) else {
            return;
        };
        let cached = ps.pod;
        inner.remove_pod_from_node(&cached);
    }

    pub fn is_assumed(&self, pod_uid: &str) -> bool {
        self.lock().pods.get(pod_uid).is_some_and(|p| p.assumed)
    }

    pub fn has_pod(&self, pod_uid: &str) -> bool {
        self.lock().pods.contains_key(pod_uid)
    }

    pub fn add_or_update_node(&self, node: Arc<Node>) {
        let name = node.metadata.name.clone().unwrap_or_default();
        let mut inner = self.lock();
        if inner.nodes.get(&name).is_none_or(|n| n.node().is_none()) {
            inner.node_set_changed = true;
        }
        let info = inner.bump(&name);
        let old_images: HashSet<String> = info.image_sizes.keys().cloned().collect();
        info.set_node(node);
        let new_images: HashSet<String> = info.image_sizes.keys().cloned().collect();
        if old_images != new_images {
            inner.set_node_images(&name, &old_images, &new_images);
        }
    }

    pub fn remove_node(&self, name: &str) {
        let mut inner = self.lock();
        inner.node_set_changed = true;
        let info = inner.bump(name);
        let old_images: HashSet<String> = info.image_sizes.keys().cloned().collect();
        info.image_sizes.clear();
        info.remove_node();
        inner.set_node_images(name, &old_images, &HashSet::new());
        if inner.nodes.get(name).is_some_and(|i| i.pods.is_empty()) {
            inner.nodes.remove(name);
        }
    }

    /// Removes assumed pods whose binding finished more than `ttl` ago without the informer
    /// confirming them. Returns their keys.
    pub fn cleanup_expired_assumed_pods(&self, now: Instant) -> Vec<String> {
        let mut inner = self.lock();
        let expired: Vec<Arc<Pod>> = inner
            .pods
            .values()
            .filter(|ps| ps.assumed && ps.deadline.is_some_and(|d| now > d))
            .map(|ps| ps.pod.clone())
            .collect();
        for pod in &expired {
            inner.remove_pod_from_node(pod);
            inner.pods.remove(uid(pod));
        }
        expired.iter().map(|p| pod_key(p)).collect()
    }

    pub fn node_count(&self) -> usize {
        self.lock()
            .nodes
            .values()
            .filter(|n| n.node().is_some())
            .count()
    }

    /// Clone of one node's info (tests, debugging).
    pub fn node_info(&self, name: &str) -> Option<NodeInfo> {
        self.lock().nodes.get(name).cloned()
    }

    /// Brings `snap` up to date, copying only NodeInfos changed since its generation
    /// (upstream `UpdateSnapshot`).
    pub fn update_snapshot(&self, snap: &mut Snapshot) {
        let mut inner = self.lock();
        if inner.node_set_changed {
            let total = inner.nodes.values().filter(|n| n.node().is_some()).count();
            let mut infos: Vec<Arc<NodeInfo>> = inner
                .nodes
                .values()
                .filter(|n| n.node().is_some())
                .map(|n| inner.snapshot_copy(n, total))
                .collect();
            infos.sort_by(|a, b| a.name().cmp(b.name()));
            let nominated = snap.take_nominated();
            *snap = Snapshot::from_node_infos(infos);
            snap.set_nominated(nominated);
            snap.generation = inner.generation;
            inner.node_set_changed = false;
            return;
        }
        let since = snap.generation;
        let total = snap.num_nodes();
        for info in inner.nodes.values() {
            if info.generation > since && info.node().is_some() {
                snap.replace(inner.snapshot_copy(info, total));
            }
        }
        snap.generation = inner.generation;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{container, node, pod_named};

    fn on_node(mut p: Pod, n: &str) -> Arc<Pod> {
        if let Some(s) = p.spec.as_mut() {
            s.node_name = Some(n.into());
        }
        Arc::new(p)
    }

    fn cpu_on(cache: &Cache, n: &str) -> i64 {
        cache.node_info(n).map_or(-1, |i| i.requested.milli_cpu)
    }

    #[test]
    fn assume_confirm_forget() {
        let cache = Cache::new(None);
        cache.add_or_update_node(Arc::new(node("n1", "4", "8Gi", "110")));
        cache.add_or_update_node(Arc::new(node("n2", "4", "8Gi", "110")));
        let p = on_node(pod_named("p", vec![container(&[("cpu", "1")])]), "n1");
        assert_eq!(cache.assume_pod(p.clone()), Ok(()));
        assert!(cache.is_assumed("uid-p"));
        assert_eq!(cpu_on(&cache, "n1"), 1000);
        assert!(matches!(
            cache.assume_pod(p.clone()),
            Err(CacheError::AlreadyPresent(_))
        ));

        // The informer reports it bound to n2 instead: the cache follows the apiserver.
        let bound = on_node(pod_named("p", vec![container(&[("cpu", "1")])]), "n2");
        cache.add_pod(bound.clone());
        assert!(!cache.is_assumed("uid-p"));
        assert_eq!(cpu_on(&cache, "n1"), 0);
        assert_eq!(cpu_on(&cache, "n2"), 1000);
        assert!(matches!(
            cache.forget_pod("uid-p"),
            Err(CacheError::NotAssumed(_))
        ));
        cache.remove_pod(&bound);
        assert_eq!(cpu_on(&cache, "n2"), 0);

        let q = on_node(pod_named("q", vec![container(&[("cpu", "2")])]), "n1");
        assert_eq!(cache.assume_pod(q), Ok(()));
        assert_eq!(cache.forget_pod("uid-q"), Ok(()));
        assert_eq!(cpu_on(&cache, "n1"), 0);
        assert!(!cache.has_pod("uid-q"));
    }

    #[test]
    fn assumed_pods_expire_only_with_ttl_after_binding() {
        let now = Instant::now();
        let cache = Cache::new(Some(Duration::from_secs(30)));
        cache.add_or_update_node(Arc::new(node("n1", "4", "8Gi", "110")));
        let p = on_node(pod_named("p", vec![container(&[("cpu", "1")])]), "n1");
        assert_eq!(cache.assume_pod(p), Ok(()));
        assert!(
            cache
                .cleanup_expired_assumed_pods(now + Duration::from_secs(60))
                .is_empty()
        );
        cache.finish_binding("uid-p", now);
        assert!(
            cache
                .cleanup_expired_assumed_pods(now + Duration::from_secs(10))
                .is_empty()
        );
        assert_eq!(
            cache.cleanup_expired_assumed_pods(now + Duration::from_secs(31)),
            vec!["default/p".to_string()]
        );
        assert_eq!(cpu_on(&cache, "n1"), 0);

        let never = Cache::new(None);
        never.add_or_update_node(Arc::new(node("n1", "4", "8Gi", "110")));
        let p = on_node(pod_named("p", vec![]), "n1");
        assert_eq!(never.assume_pod(p), Ok(()));
        never.finish_binding("uid-p", now);
        assert!(
            never
                .cleanup_expired_assumed_pods(now + Duration::from_secs(3600))
                .is_empty()
        );
    }

    #[test]
    fn snapshot_updates_incrementally() {
        let cache = Cache::new(None);
        cache.add_or_update_node(Arc::new(node("b", "4", "8Gi", "110")));
        cache.add_or_update_node(Arc::new(node("a", "4", "8Gi", "110")));
        let mut snap = Snapshot::default();
        cache.update_snapshot(&mut snap);
        let names: Vec<&str> = snap.list().iter().map(|n| n.name()).collect();
        assert_eq!(names, ["a", "b"]);
        let before_b = snap.get("b").cloned();

        let p = on_node(pod_named("p", vec![container(&[("cpu", "1")])]), "a");
        cache.add_pod(p);
        cache.update_snapshot(&mut snap);
        assert_eq!(snap.get("a").map(|n| n.requested.milli_cpu), Some(1000));
        // Unchanged node shares the same Arc: nothing was copied.
        assert!(matches!((before_b, snap.get("b")), (Some(x), Some(y)) if Arc::ptr_eq(&x, y)));

        cache.remove_node("b");
        cache.update_snapshot(&mut snap);
        assert_eq!(snap.num_nodes(), 1);
    }

    #[test]
    fn snapshot_carries_image_spread() {
        let with_image = |name: &str, image: &str| {
            let mut n = node(name, "1", "1Gi", "10");
            if let Some(s) = n.status.as_mut() {
                s.images = Some(vec![k8s_openapi::api::core::v1::ContainerImage {
                    names: Some(vec![image.to_string()]),
                    size_bytes: Some(100),
                }]);
            }
            Arc::new(n)
        };
        let cache = Cache::new(None);
        cache.add_or_update_node(with_image("a", "nginx:1"));
        cache.add_or_update_node(with_image("b", "nginx:1"));
        cache.add_or_update_node(with_image("c", "redis:7"));
        let mut snap = Snapshot::default();
        cache.update_snapshot(&mut snap);
        let state = snap
            .get("a")
            .and_then(|n| n.image_states.get("nginx:1").copied());
        assert_eq!(
            state.map(|s| (s.size, s.num_nodes, s.total_nodes)),
            Some((100, 2, 3))
        );
        cache.add_or_update_node(with_image("c", "nginx:1"));
        cache.update_snapshot(&mut snap);
        let state = snap
            .get("a")
            .and_then(|n| n.image_states.get("nginx:1").copied());
        assert_eq!(
            state.map(|s| s.num_nodes),
            Some(3),
            "other nodes see the new spread"
        );
    }
}
