//! Scheduling queue (upstream `internal/queue.PriorityQueue`): activeQ ordered by the QueueSort
//! plugin, backoffQ ordered by backoff expiry, and unschedulablePods waiting for a cluster event
//! that one of the rejecting plugins registered, or for the 5-minute flush.

pub mod heap;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::framework::events::{EventResource, FORCE_ACTIVATE, UNSCHEDULABLE_TIMEOUT};
use crate::framework::{ClusterEvent, EventObject, Framework, QueuedPodView, QueueingHint};
use crate::pod::{scheduler_name, uid};
use heap::Heap;

/// Upstream `DefaultPodMaxInUnschedulablePodsDuration`.
pub const POD_MAX_IN_UNSCHEDULABLE_PODS_DURATION: Duration = Duration::from_secs(5 * 60);
const BACKOFF_FLUSH_INTERVAL: Duration = Duration::from_secs(1);
const UNSCHEDULABLE_FLUSH_INTERVAL: Duration = Duration::from_secs(30);

/// A pod as the queue tracks it (upstream `QueuedPodInfo`).
#[derive(Debug, Clone)]
pub struct QueuedPodInfo {
    pub pod: Arc<Pod>,
    /// When the pod was last added to the queue (or last failed).
    pub timestamp: Instant,
    pub initial_attempt_timestamp: Option<Instant>,
    pub attempts: u32,
    /// Plugins that rejected the pod in its last attempt; only their events requeue it.
    pub unschedulable_plugins: BTreeSet<&'static str>,
    /// A PreEnqueue plugin (e.g. SchedulingGates) keeps the pod out of activeQ.
    pub gated_by: Option<&'static str>,
}

impl QueuedPodInfo {
    fn new(pod: Arc<Pod>, now: Instant) -> Self {
        QueuedPodInfo {
            pod,
            timestamp: now,
            initial_attempt_timestamp: None,
            attempts: 0,
            unschedulable_plugins: BTreeSet::new(),
            gated_by: None,
        }
    }

    pub fn uid(&self) -> &str {
        uid(&self.pod)
    }
}

/// Counts for `scheduler_pending_pods{queue}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PendingCounts {
    pub active: usize,
    pub backoff: usize,
    pub unschedulable: usize,
    pub gated: usize,
}

/// An owned copy of an event's objects, kept while pods are in flight.
#[derive(Clone)]
enum OwnedObject {
    Pod(Box<Pod>),
    Node(Box<k8s_openapi::api::core::v1::Node>),
}

impl OwnedObject {
    fn of(o: Option<EventObject<'_>>) -> Option<Self> {
        match o? {
            EventObject::Pod(p) => Some(OwnedObject::Pod(Box::new(p.clone()))),
            EventObject::Node(n) => Some(OwnedObject::Node(Box::new(n.clone()))),
        }
    }

    fn view(o: &Option<Self>) -> Option<EventObject<'_>> {
        match o.as_ref()? {
            OwnedObject::Pod(p) => Some(EventObject::Pod(p)),
            OwnedObject::Node(n) => Some(EventObject::Node(n)),
        }
    }
}

struct InFlightEvent {
    cycle: u64,
    event: ClusterEvent,
    old: Option<OwnedObject>,
    new: Option<OwnedObject>,
}

struct Inner {
    active: Heap<QueuedPodInfo>,
    backoff: Heap<(Instant, QueuedPodInfo)>,
    unschedulable: HashMap<String, QueuedPodInfo>,
    /// Pods in a scheduling attempt: uid -> the cycle they were popped in.
    in_flight: HashMap<String, u64>,
    scheduling_cycle: u64,
    /// Interesting events received while pods were in flight (upstream `inFlightEvents`): a
    /// pod failing in an older-or-equal cycle may have missed one, so the rejecting plugins'
    /// hints decide whether it goes to backoff instead of unschedulablePods.
    in_flight_events: Vec<InFlightEvent>,
    /// Pods nominated to a node by preemption: uid -> (node, pod) (upstream `nominator`).
    nominated: HashMap<String, (String, Arc<Pod>)>,
    closed: bool,
}

pub struct SchedulingQueue {
    inner: Mutex<Inner>,
    notify: Notify,
    profiles: HashMap<String, Arc<Framework>>,
    initial_backoff: Duration,
    max_backoff: Duration,
}

impl Inner {
    /// Drops events no in-flight pod can have missed.
    fn prune_in_flight_events(&mut self) {
        match self.in_flight.values().min().copied() {
            None => self.in_flight_events.clear(),
            Some(oldest) => self.in_flight_events.retain(|e| e.cycle >= oldest),
        }
    }
}

impl SchedulingQueue {
    /// `profiles` maps scheduler names to frameworks; they must share one QueueSort plugin.
    pub fn new(
        profiles: HashMap<String, Arc<Framework>>,
        initial_backoff: Duration,
        max_backoff: Duration,
    ) -> Self {
        let sorter = profiles.values().next().cloned();
        let less = move |a: &QueuedPodInfo, b: &QueuedPodInfo| match &sorter {
            Some(fw) => fw.less(
                &QueuedPodView {
                    pod: &a.pod,
                    timestamp: a.timestamp,
                },
                &QueuedPodView {
                    pod: &b.pod,
                    timestamp: b.timestamp,
                },
            ),
            None => a.timestamp < b.timestamp,
        };
        SchedulingQueue {
            inner: Mutex::new(Inner {
                active: Heap::new(Box::new(less)),
                backoff: Heap::new(Box::new(|a: &(Instant, QueuedPodInfo), b| a.0 < b.0)),
                unschedulable: HashMap::new(),
                in_flight: HashMap::new(),
                scheduling_cycle: 0,
                in_flight_events: Vec::new(),
                nominated: HashMap::new(),
                closed: false,
            }),
            notify: Notify::new(),
            profiles,
            initial_backoff,
            max_backoff,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn framework_for(&self, pod: &Pod) -> Option<&Arc<Framework>> {
        self.profiles.get(scheduler_name(pod))
    }

    /// Upstream `calculateBackoffDuration`: initial * 2^(attempts-1), capped.
    pub fn backoff_duration(&self, attempts: u32) -> Duration {
        let mut d = self.initial_backoff;
        for _ in 1..attempts {
            if d > self.max_backoff.saturating_sub(d) {
                return self.max_backoff;
            }
            d += d;
        }
        d.min(self.max_backoff)
    }

    fn backoff_expiry(&self, p: &QueuedPodInfo) -> Instant {
        p.timestamp + self.backoff_duration(p.attempts)
    }

    /// Runs PreEnqueue; gated pods park in unschedulablePods.
    fn move_to_active_or_gate(&self, inner: &mut Inner, mut p: QueuedPodInfo) {
        let status = match self.framework_for(&p.pod) {
            Some(fw) => fw.run_pre_enqueue(&p.pod),
            None => crate::framework::Status::success(),
        };
        let key = p.uid().to_string();
        if status.is_success() {
            p.gated_by = None;
            inner.unschedulable.remove(&key);
            inner.backoff.delete(&key);
            inner.active.add_or_update(key, p);
            self.notify.notify_one();
        } else {
            tracing::debug!(pod = %key, plugin = status.plugin(), %status, "pod gated by PreEnqueue");
            p.gated_by = Some(status.plugin());
            p.unschedulable_plugins = BTreeSet::from([status.plugin()]);
            inner.unschedulable.insert(key, p);
        }
    }

    /// Records (or with an empty `node` clears) the pod's nomination.
    pub fn add_nominated(&self, pod: Arc<Pod>, node: &str) {
        let mut inner = self.lock();
        Self::set_nominated(&mut inner, pod, node);
    }

    fn set_nominated(inner: &mut Inner, pod: Arc<Pod>, node: &str) {
        let key = uid(&pod).to_string();
        if node.is_empty() {
            inner.nominated.remove(&key);
        } else {
            inner.nominated.insert(key, (node.to_string(), pod));
        }
    }

    /// Nominated pods grouped by node, for the next cycle's snapshot.
    pub fn nominated_pods(&self) -> HashMap<String, Vec<Arc<Pod>>> {
        let inner = self.lock();
        let mut out: HashMap<String, Vec<Arc<Pod>>> = HashMap::new();
        for (node, pod) in inner.nominated.values() {
            out.entry(node.clone()).or_default().push(pod.clone());
        }
        out
    }

    /// A pod's own status may carry a nomination (e.g. from before a restart).
    fn nominate_from_status(inner: &mut Inner, pod: &Arc<Pod>) {
        let node = pod
            .status
            .as_ref()
            .and_then(|s| s.nominated_node_name.as_deref())
            .unwrap_or_default();
        if !node.is_empty() {
            Self::set_nominated(inner, pod.clone(), node);
        }
    }

    /// A new unscheduled pod (informer add).
    pub fn add(&self, pod: Arc<Pod>) {
        let now = Instant::now();
        let mut inner = self.lock();
        Self::nominate_from_status(&mut inner, &pod);
        let key = uid(&pod).to_string();
        if inner.active.contains(&key)
            || inner.backoff.contains(&key)
            || inner.unschedulable.contains_key(&key)
        {
            drop(inner);
            self.update(pod);
            return;
        }
        self.move_to_active_or_gate(&mut inner, QueuedPodInfo::new(pod, now));
    }

    /// An unscheduled pod changed (upstream `Update`).
    pub fn update(&self, new: Arc<Pod>) {
        let key = uid(&new).to_string();
        let mut inner = self.lock();
        Self::nominate_from_status(&mut inner, &new);
        if let Some(mut p) = inner.active.get(&key).cloned() {
            p.pod = new;
            inner.active.add_or_update(key, p);
            return;
        }
        if let Some((t, mut p)) = inner.backoff.get(&key).cloned() {
            p.pod = new;
            inner.backoff.add_or_update(key, (t, p));
            return;
        }
        if let Some(mut p) = inner.unschedulable.remove(&key) {
            let old = p.pod.clone();
            p.pod = new.clone();
            let event = ClusterEvent::new(
                EventResource::UnscheduledPod,
                crate::framework::events::pod_update_actions(&old, &new),
                "UnscheduledPodUpdate",
            );
            let requeue = event.action != 0
                && self.hints_allow(
                    &p,
                    &event,
                    Some(EventObject::Pod(&old)),
                    Some(EventObject::Pod(&new)),
                );
            if requeue {
                self.requeue(&mut inner, p, Instant::now());
            } else {
                inner.unschedulable.insert(key, p);
            }
            return;
        }
        if inner.in_flight.contains_key(&key) {
            return;
        }
        self.move_to_active_or_gate(&mut inner, QueuedPodInfo::new(new, Instant::now()));
    }

    /// The pod was deleted or got assigned elsewhere.
    pub fn delete(&self, pod: &Pod) {
        let key = uid(pod);
        let mut inner = self.lock();
        inner.active.delete(key);
        inner.backoff.delete(key);
        inner.unschedulable.remove(key);
        inner.nominated.remove(key);
    }

    /// Waits for the next pod to schedule; `None` once the queue is closed.
    pub async fn pop(&self) -> Option<(QueuedPodInfo, u64)> {
        loop {
            let notified = self.notify.notified();
            {
                let mut inner = self.lock();
                if inner.closed {
                    return None;
                }
                if let Some(mut p) = inner.active.pop() {
                    p.attempts += 1;
                    if p.initial_attempt_timestamp.is_none() {
                        p.initial_attempt_timestamp = Some(Instant::now());
                    }
                    inner.scheduling_cycle += 1;
                    let cycle = inner.scheduling_cycle;
                    inner.in_flight.insert(p.uid().to_string(), cycle);
                    return Some((p, inner.scheduling_cycle));
                }
            }
            notified.await;
        }
    }

    /// The pod's scheduling attempt ended (scheduled, requeued or dropped).
    pub fn done(&self, pod_uid: &str) {
        let mut inner = self.lock();
        inner.in_flight.remove(pod_uid);
        inner.prune_in_flight_events();
    }

    pub fn close(&self) {
        self.lock().closed = true;
        self.notify.notify_waiters();
    }

    /// Requeues a pod whose attempt failed (upstream `AddUnschedulableIfNotPresent`): pods
    /// rejected by plugins wait in unschedulablePods unless a move request arrived during their
    /// cycle; pods that failed with an error go to backoff.
    pub fn add_unschedulable_if_not_present(&self, mut p: QueuedPodInfo, pod_cycle: u64) {
        let now = Instant::now();
        let mut inner = self.lock();
        let key = p.uid().to_string();
        inner.in_flight.remove(&key);
        let missed_event = !p.unschedulable_plugins.is_empty()
            && inner
                .in_flight_events
                .iter()
                .filter(|e| e.cycle >= pod_cycle)
                .any(|e| {
                    self.hints_allow(
                        &p,
                        &e.event,
                        OwnedObject::view(&e.old),
                        OwnedObject::view(&e.new),
                    )
                });
        inner.prune_in_flight_events();
        if inner.active.contains(&key)
            || inner.backoff.contains(&key)
            || inner.unschedulable.contains_key(&key)
        {
            return;
        }
        p.timestamp = now;
        if p.unschedulable_plugins.is_empty() || missed_event {
            let expiry = self.backoff_expiry(&p);
            inner.backoff.add_or_update(key, (expiry, p));
        } else {
            inner.unschedulable.insert(key, p);
        }
    }

    fn hints_allow(
        &self,
        p: &QueuedPodInfo,
        event: &ClusterEvent,
        old: Option<EventObject<'_>>,
        new: Option<EventObject<'_>>,
    ) -> bool {
        if event.resource == EventResource::Wildcard {
            return true;
        }
        let Some(fw) = self.framework_for(&p.pod) else {
            return true;
        };
        fw.plugins_interested_in(event)
            .filter(|r| p.unschedulable_plugins.contains(r.plugin.name()))
            .any(|r| {
                !r.event.has_hint
                    || r.plugin.queueing_hint(&p.pod, event, old, new) == QueueingHint::Queue
            })
    }

    /// Moves to backoffQ if still backing off, activeQ otherwise; gated pods re-run PreEnqueue.
    fn requeue(&self, inner: &mut Inner, p: QueuedPodInfo, now: Instant) {
        let key = p.uid().to_string();
        inner.unschedulable.remove(&key);
        if p.gated_by.is_some() {
            self.move_to_active_or_gate(inner, p);
            return;
        }
        let expiry = self.backoff_expiry(&p);
        if expiry > now {
            inner.backoff.add_or_update(key, (expiry, p));
        } else {
            self.move_to_active_or_gate(inner, p);
        }
    }

    /// A cluster event happened (upstream `MoveAllToActiveOrBackoffQueue`).
    pub fn move_all_to_active_or_backoff(
        &self,
        event: &ClusterEvent,
        old: Option<EventObject<'_>>,
        new: Option<EventObject<'_>>,
    ) {
        // Upstream `isEventOfInterest`: events no plugin registered for change nothing, and must
        // not push failing in-flight pods to backoff either.
        let interesting = event.resource == EventResource::Wildcard
            || self
                .profiles
                .values()
                .any(|fw| fw.plugins_interested_in(event).next().is_some());
        if !interesting {
            return;
        }
        let now = Instant::now();
        let mut inner = self.lock();
        if !inner.in_flight.is_empty() {
            let cycle = inner.scheduling_cycle;
            inner.in_flight_events.push(InFlightEvent {
                cycle,
                event: *event,
                old: OwnedObject::of(old),
                new: OwnedObject::of(new),
            });
        }
        let candidates: Vec<QueuedPodInfo> = inner
            .unschedulable
            .values()
            .filter(|p| self.hints_allow(p, event, old, new))
            .cloned()
            .collect();
        for p in candidates {
            tracing::trace!(
                pod = p.uid(),
                event = event.label,
                "requeueing pod on cluster event"
            );
            self.requeue(&mut inner, p, now);
        }
    }

    /// Moves pods whose backoff expired to activeQ.
    pub fn flush_backoff_completed(&self) {
        let now = Instant::now();
        let mut inner = self.lock();
        while let Some((expiry, _)) = inner.backoff.peek() {
            if *expiry > now {
                break;
            }
            if let Some((_, p)) = inner.backoff.pop() {
                self.move_to_active_or_gate(&mut inner, p);
            }
        }
    }

    /// Moves pods that sat in unschedulablePods longer than the limit.
    pub fn flush_unschedulable_left_over(&self) {
        let now = Instant::now();
        let mut inner = self.lock();
        let stale: Vec<QueuedPodInfo> = inner
            .unschedulable
            .values()
            .filter(|p| now.duration_since(p.timestamp) > POD_MAX_IN_UNSCHEDULABLE_PODS_DURATION)
            .cloned()
            .collect();
        for p in stale {
            tracing::trace!(
                pod = p.uid(),
                event = UNSCHEDULABLE_TIMEOUT.label,
                "flushing pod"
            );
            self.requeue(&mut inner, p, now);
        }
    }

    /// Forces a pod back to activeQ (upstream `Activate`).
    pub fn activate(&self, pod_uid: &str) {
        let mut inner = self.lock();
        let p = inner
            .unschedulable
            .remove(pod_uid)
            .or_else(|| inner.backoff.delete(pod_uid).map(|(_, p)| p));
        if let Some(p) = p {
            tracing::trace!(
                pod = pod_uid,
                event = FORCE_ACTIVATE.label,
                "activating pod"
            );
            self.move_to_active_or_gate(&mut inner, p);
        }
    }

    pub fn pending(&self) -> PendingCounts {
        let inner = self.lock();
        let gated = inner
            .unschedulable
            .values()
            .filter(|p| p.gated_by.is_some())
            .count();
        PendingCounts {
            active: inner.active.len(),
            backoff: inner.backoff.len(),
            unschedulable: inner.unschedulable.len() - gated,
            gated,
        }
    }

    /// Periodic flushes until `shutdown` (upstream `PriorityQueue.Run`).
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut backoff_tick = tokio::time::interval(BACKOFF_FLUSH_INTERVAL);
        let mut unsched_tick = tokio::time::interval(UNSCHEDULABLE_FLUSH_INTERVAL);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => {
                    self.close();
                    return;
                }
                _ = backoff_tick.tick() => self.flush_backoff_completed(),
                _ = unsched_tick.tick() => self.flush_unschedulable_left_over(),
            }
        }
    }
}

#[cfg(test)]
mod tests;
