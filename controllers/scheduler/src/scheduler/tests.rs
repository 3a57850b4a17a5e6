//! Whole scheduling attempts through `Scheduler::schedule_one` on an in-memory cluster:
//! no apiserver; binding and reporting are captured by fakes.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{Attempt, Scheduler};
use crate::SchedulerConfig;
use crate::eventhandlers::fake::FakeInformers;
use crate::framework::{BindPlugin, CycleState, Handle, Plugin, Status};
use crate::plugins::{names, registry};
use crate::reporter::Reporter;
use crate::testing::{container, node, pod_named, taint, with_priority, with_taints};
use async_trait::async_trait;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::reflector::store::Writer;
use kube::runtime::watcher::Event;

#[derive(Default)]
struct Recorded {
    bound: Vec<(String, String)>,
    scheduled: Vec<String>,
    failed: Vec<(String, String)>,
    nominated: Vec<Option<String>>,
    preempted: Vec<(String, String)>,
}

#[derive(Clone, Default)]
struct Fakes(Arc<Mutex<Recorded>>);

impl Fakes {
    fn with<T>(&self, f: impl FnOnce(&mut Recorded) -> T) -> T {
        let mut g = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut g)
    }
}

struct FakeBinder(Fakes);

impl Plugin for FakeBinder {
    fn name(&self) -> &'static str {
        names::DEFAULT_BINDER
    }
    fn as_bind(&self) -> Option<&dyn BindPlugin> {
        Some(self)
    }
}

#[async_trait]
impl BindPlugin for FakeBinder {
    async fn bind(&self, _state: &CycleState, pod: &Pod, node: &str) -> Status {
        let name = pod.metadata.name.clone().unwrap_or_default();
        self.0.with(|r| r.bound.push((name, node.to_string())));
        Status::success()
    }
}

#[async_trait]
impl Reporter for Fakes {
    async fn scheduled(&self, pod: &Pod, node: &str) {
        self.with(|r| {
            r.scheduled
                .push(crate::reporter::scheduled_message(pod, node))
        });
    }
    async fn failed(&self, _pod: &Pod, reason: &str, message: &str, nominated: Option<&str>) {
        self.with(|r| {
            r.failed.push((reason.to_string(), message.to_string()));
            r.nominated.push(nominated.map(str::to_string));
        });
    }
    async fn preempt(&self, _preemptor: &Pod, node: &str, victims: &[Arc<Pod>]) {
        let names = victims.iter().filter_map(|v| v.metadata.name.clone());
        self.with(|r| r.preempted.extend(names.map(|n| (n, node.to_string()))));
    }
}

/// A scheduler with a fake binder and reporter, and the fake informers that feed it.
fn scheduler(fakes: &Fakes) -> (Scheduler, FakeInformers) {
    let mut registry = registry::in_tree();
    let binder: Arc<dyn Plugin> = Arc::new(FakeBinder(fakes.clone()));
    registry.register(
        names::DEFAULT_BINDER,
        Arc::new(move |_, _| Ok(binder.clone())),
    );
    let pods = Writer::<Pod>::default();
    let s = Scheduler::new(
        &SchedulerConfig::default(),
        &registry,
        &Handle::default(),
        Arc::new(fakes.clone()),
        pods.as_reader(),
    );
    match s {
        Ok(s) => {
            let informers = FakeInformers::new(s.shared.clone(), pods);
            (s, informers)
        }
        Err(e) => panic!("scheduler: {e}"),
    }
}

async fn attempt(s: &mut Scheduler) -> Option<Attempt> {
    tokio::time::timeout(Duration::from_secs(1), s.schedule_one())
        .await
        .ok()
        .flatten()
}

async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn mixed_two_node_failure_has_upstream_message() {
    let fakes = Fakes::default();
    let (mut s, mut informers) = scheduler(&fakes);
    let shared = s.shared.clone();
    let control_plane = with_taints(
        node("cp", "8", "16Gi", "110"),
        vec![taint(
            "node-role.kubernetes.io/control-plane",
            "",
            "NoSchedule",
        )],
    );
    informers.apply_node(control_plane);
    informers.apply_node(node("worker", "1", "4Gi", "110"));
    informers.apply_pod(pod_named("big", vec![container(&[("cpu", "2")])]));

    let got = attempt(&mut s).await;
    let want = "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }. preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling.";
    assert_eq!(
        got,
        Some(Attempt::Failed {
            reason: "Unschedulable",
            message: want.to_string()
        })
    );
    settle().await;
    assert_eq!(
        fakes.with(|r| r.failed.clone()),
        vec![("Unschedulable".to_string(), want.to_string())]
    );
    // Rejected by NodeResourcesFit and TaintToleration: waits in unschedulablePods.
    assert_eq!(shared.queue.pending().unschedulable, 1);
}

#[tokio::test]
async fn pods_are_spread_and_bound_then_node_fills_up() {
    let fakes = Fakes::default();
    let (mut s, mut informers) = scheduler(&fakes);
    let shared = s.shared.clone();
    informers.apply_node(node("a", "2", "4Gi", "110"));
    informers.apply_node(node("b", "2", "4Gi", "110"));
    for name in ["p1", "p2"] {
        informers.apply_pod(pod_named(name, vec![container(&[("cpu", "1500m")])]));
    }
    let first = attempt(&mut s).await;
    let second = attempt(&mut s).await;
    let (Some(Attempt::Assumed(h1)), Some(Attempt::Assumed(h2))) = (first, second) else {
        panic!("both pods should be assumed");
    };
    assert_ne!(
        h1, h2,
        "LeastAllocated spreads the second pod to the empty node"
    );
    settle().await;
    let bound = fakes.with(|r| r.bound.clone());
    assert_eq!(bound.len(), 2);
    let scheduled = fakes.with(|r| r.scheduled.clone());
    assert!(scheduled.contains(&format!("Successfully assigned default/p1 to {h1}")));

    // Third pod does not fit anywhere while both are assumed.
    informers.apply_pod(pod_named("p3", vec![container(&[("cpu", "1")])]));
    let third = attempt(&mut s).await;
    assert_eq!(
        third,
        Some(Attempt::Failed {
            reason: "Unschedulable",
            message: "0/2 nodes are available: 2 Insufficient cpu. preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod.".into()
        })
    );

    // The informer confirms p1's binding, then p1 is deleted: p3 becomes schedulable.
    let mut p1 = pod_named("p1", vec![container(&[("cpu", "1500m")])]);
    p1.spec.get_or_insert_with(Default::default).node_name = Some(h1.clone());
    informers.apply_pod(p1.clone());
    informers.delete_pod(&p1);
    let counts = shared.queue.pending();
    assert_eq!(
        counts.unschedulable, 0,
        "assigned pod delete requeues p3: {counts:?}"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    shared.queue.flush_backoff_completed();
    assert_eq!(attempt(&mut s).await, Some(Attempt::Assumed(h1)));
}

#[tokio::test]
async fn no_nodes_message() {
    let fakes = Fakes::default();
    let (mut s, mut informers) = scheduler(&fakes);
    informers.apply_pod(pod_named("p", vec![]));
    assert_eq!(
        attempt(&mut s).await,
        Some(Attempt::Failed {
            reason: "Unschedulable",
            message: "no nodes available to schedule pods".into()
        })
    );
}

#[tokio::test]
async fn pods_for_other_schedulers_are_ignored() {
    let fakes = Fakes::default();
    let (mut s, mut informers) = scheduler(&fakes);
    let mut p = pod_named("p", vec![]);
    p.spec.get_or_insert_with(Default::default).scheduler_name = Some("other".into());
    informers.apply_pod(p);
    assert_eq!(attempt(&mut s).await, None, "nothing to pop");
}

#[tokio::test]
async fn higher_priority_pod_preempts_and_is_nominated() {
    let fakes = Fakes::default();
    let (mut s, mut informers) = scheduler(&fakes);
    let shared = s.shared.clone();
    informers.apply_node(node("a", "2", "4Gi", "110"));
    let mut low = pod_named("low", vec![container(&[("cpu", "1500m")])]);
    low.spec.get_or_insert_with(Default::default).node_name = Some("a".into());
    informers.apply_pod(low);
    let high = with_priority(pod_named("high", vec![container(&[("cpu", "1")])]), 1000);
    informers.apply_pod(high);
    assert_eq!(
        attempt(&mut s).await,
        Some(Attempt::Failed {
            reason: "Unschedulable",
            message: "0/1 nodes are available: 1 Insufficient cpu.".into()
        })
    );
    settle().await;
    assert_eq!(
        fakes.with(|r| r.nominated.clone()),
        vec![Some("a".to_string())]
    );
    assert_eq!(
        fakes.with(|r| r.preempted.clone()),
        vec![("low".to_string(), "a".to_string())]
    );

    // The victim is gone; a lower-priority pod must not take the space the nominated pod
    // preempted for.
    if let Some(victim) = shared.pods.get(&ObjectRef::new("low").within("default")) {
        informers.delete_pod(&victim);
    }
    informers.apply_pod(pod_named("sneaky", vec![container(&[("cpu", "1500m")])]));
    assert_eq!(
        attempt(&mut s).await,
        Some(Attempt::Failed {
            reason: "Unschedulable",
            message: "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.".into()
        })
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    shared.queue.flush_backoff_completed();
    assert_eq!(attempt(&mut s).await, Some(Attempt::Assumed("a".into())));
}

#[tokio::test]
async fn preemption_policy_never_is_reported() {
    let fakes = Fakes::default();
    let (mut s, mut informers) = scheduler(&fakes);
    informers.apply_node(node("a", "2", "4Gi", "110"));
    let mut p = pod_named("p", vec![container(&[("cpu", "3")])]);
    p.spec
        .get_or_insert_with(Default::default)
        .preemption_policy = Some("Never".into());
    informers.apply_pod(p);
    assert_eq!(
        attempt(&mut s).await,
        Some(Attempt::Failed {
            reason: "Unschedulable",
            message: "0/1 nodes are available: 1 Insufficient cpu. preemption: not eligible due to preemptionPolicy=Never.".into()
        })
    );
}

#[tokio::test]
async fn resync_after_lag_applies_missed_adds_binds_deletes_and_recreations() {
    let fakes = Fakes::default();
    let (s, mut informers) = scheduler(&fakes);
    let shared = s.shared.clone();
    let on_a = |name: &str, uid: &str| {
        let mut p = pod_named(name, vec![container(&[("cpu", "1")])]);
        p.metadata.uid = Some(uid.into());
        p.spec.get_or_insert_with(Default::default).node_name = Some("a".into());
        p
    };
    let cpu_on_a = || shared.cache.node_info("a").map(|n| n.requested.milli_cpu);
    informers.apply_node(node("a", "4", "8Gi", "110"));
    informers.apply_pod(pod_named("queued", vec![]));
    informers.apply_pod(on_a("gone", "uid-gone"));
    informers.apply_pod(on_a("recreated", "uid-old"));
    assert_eq!(shared.queue.pending().active, 1);
    assert_eq!(cpu_on_a(), Some(2000));

    // Notifications lost to lag: "queued" was bound, "gone" deleted, "recreated" deleted and
    // created again with a new UID, "new" created.
    informers.miss_pod_event(Event::Apply(on_a("queued", "uid-queued")));
    informers.miss_pod_event(Event::Delete(on_a("gone", "uid-gone")));
    informers.miss_pod_event(Event::Apply(on_a("recreated", "uid-new")));
    informers.miss_pod_event(Event::Apply(pod_named("new", vec![])));
    informers.resync_pods();

    assert_eq!(shared.queue.pending().active, 1, "only the new pod waits");
    assert!(shared.cache.has_pod("uid-queued"));
    assert!(!shared.cache.has_pod("uid-gone"));
    assert!(!shared.cache.has_pod("uid-old"));
    assert!(shared.cache.has_pod("uid-new"));
    assert_eq!(cpu_on_a(), Some(2000));
    informers.resync_pods();
    assert_eq!(
        shared.queue.pending().active,
        1,
        "a second resync changes nothing"
    );
}
