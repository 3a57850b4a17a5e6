use super::*;
use crate::config::SchedulerConfig;
use crate::framework::Handle;
use crate::framework::events::action;
use crate::plugins::registry;
use crate::testing::{container, node, pod_named, with_priority};
use k8s_openapi::api::core::v1::PodSchedulingGate;

fn queue() -> SchedulingQueue {
    let cfg = SchedulerConfig::default();
    let fw = Framework::new(&cfg.profiles[0], &registry::in_tree(), &Handle::default());
    let Ok(fw) = fw else {
        panic!("default framework: {fw:?}");
    };
    let profiles = HashMap::from([("default-scheduler".to_string(), Arc::new(fw))]);
    SchedulingQueue::new(profiles, Duration::from_secs(1), Duration::from_secs(10))
}

async fn pop_name(q: &SchedulingQueue) -> Option<(String, QueuedPodInfo, u64)> {
    let res = tokio::time::timeout(Duration::from_millis(10), q.pop())
        .await
        .ok()??;
    let name = res.0.pod.metadata.name.clone().unwrap_or_default();
    Some((name, res.0, res.1))
}

fn fit_rejected(mut p: QueuedPodInfo) -> QueuedPodInfo {
    p.unschedulable_plugins = BTreeSet::from(["NodeResourcesFit"]);
    p
}

#[tokio::test(start_paused = true)]
async fn active_queue_orders_by_priority_then_fifo() {
    let q = queue();
    q.add(Arc::new(pod_named("a", vec![])));
    tokio::time::advance(Duration::from_millis(1)).await;
    q.add(Arc::new(pod_named("b", vec![])));
    q.add(Arc::new(with_priority(pod_named("c", vec![]), 100)));
    let mut order = Vec::new();
    while let Some((n, _, _)) = pop_name(&q).await {
        order.push(n);
    }
    assert_eq!(order, ["c", "a", "b"]);
    assert_eq!(q.pending().active, 0);
}

#[tokio::test]
async fn backoff_doubles_up_to_max() {
    let q = queue();
    let got: Vec<u64> = (1..=6).map(|a| q.backoff_duration(a).as_secs()).collect();
    assert_eq!(got, [1, 2, 4, 8, 10, 10]);
}

#[tokio::test(start_paused = true)]
async fn errored_pod_waits_out_its_backoff() {
    let q = queue();
    q.add(Arc::new(pod_named("p", vec![])));
    let Some((_, p, cycle)) = pop_name(&q).await else {
        panic!("pod not popped");
    };
    q.add_unschedulable_if_not_present(p, cycle);
    assert_eq!(q.pending().backoff, 1);
    tokio::time::advance(Duration::from_millis(900)).await;
    q.flush_backoff_completed();
    assert_eq!(q.pending().active, 0);
    tokio::time::advance(Duration::from_millis(200)).await;
    q.flush_backoff_completed();
    assert_eq!(q.pending().active, 1);

    // Second failure: 2s.
    let Some((_, p, cycle)) = pop_name(&q).await else {
        panic!("pod not popped again");
    };
    assert_eq!(p.attempts, 2);
    q.add_unschedulable_if_not_present(p, cycle);
    tokio::time::advance(Duration::from_millis(1500)).await;
    q.flush_backoff_completed();
    assert_eq!(q.pending().active, 0);
    tokio::time::advance(Duration::from_millis(600)).await;
    q.flush_backoff_completed();
    assert_eq!(q.pending().active, 1);
}

#[tokio::test(start_paused = true)]
async fn rejected_pod_moves_only_on_events_its_plugins_care_about() {
    let q = queue();
    q.add(Arc::new(pod_named("p", vec![container(&[("cpu", "3")])])));
    let Some((_, p, cycle)) = pop_name(&q).await else {
        panic!("pod not popped");
    };
    q.add_unschedulable_if_not_present(fit_rejected(p), cycle);
    assert_eq!(q.pending().unschedulable, 1);
    tokio::time::advance(Duration::from_secs(5)).await;

    let node_add = ClusterEvent::new(EventResource::Node, action::ADD, "NodeAdd");
    let small = node("small", "2", "4Gi", "110");
    q.move_all_to_active_or_backoff(&node_add, None, Some(EventObject::Node(&small)));
    assert_eq!(
        q.pending().unschedulable,
        1,
        "a node too small does not help"
    );

    let taint = ClusterEvent::new(EventResource::Node, action::UPDATE_NODE_TAINT, "NodeTaint");
    let big = node("big", "8", "4Gi", "110");
    q.move_all_to_active_or_backoff(
        &taint,
        Some(EventObject::Node(&big)),
        Some(EventObject::Node(&big)),
    );
    assert_eq!(
        q.pending().unschedulable,
        1,
        "NodeResourcesFit ignores taint changes"
    );

    q.move_all_to_active_or_backoff(&node_add, None, Some(EventObject::Node(&big)));
    assert_eq!(q.pending().active, 1, "backoff already over -> activeQ");
}

#[tokio::test(start_paused = true)]
async fn event_during_cycle_sends_pod_to_backoff() {
    let q = queue();
    q.add(Arc::new(pod_named("p", vec![container(&[("cpu", "3")])])));
    let Some((_, p, cycle)) = pop_name(&q).await else {
        panic!("pod not popped");
    };
    let ev = ClusterEvent::new(
        EventResource::AssignedPod,
        action::DELETE,
        "AssignedPodDelete",
    );
    q.move_all_to_active_or_backoff(&ev, None, None);
    q.add_unschedulable_if_not_present(fit_rejected(p), cycle);
    assert_eq!(q.pending().backoff, 1);
}

#[tokio::test(start_paused = true)]
async fn unschedulable_pods_are_flushed_after_five_minutes() {
    let q = queue();
    q.add(Arc::new(pod_named("p", vec![])));
    let Some((_, p, cycle)) = pop_name(&q).await else {
        panic!("pod not popped");
    };
    q.add_unschedulable_if_not_present(fit_rejected(p), cycle);
    tokio::time::advance(Duration::from_secs(299)).await;
    q.flush_unschedulable_left_over();
    assert_eq!(q.pending().unschedulable, 1);
    tokio::time::advance(Duration::from_secs(2)).await;
    q.flush_unschedulable_left_over();
    assert_eq!(q.pending().active, 1);
}

#[tokio::test(start_paused = true)]
async fn gated_pod_enters_active_queue_when_gates_removed() {
    let q = queue();
    let mut gated = pod_named("g", vec![]);
    if let Some(s) = gated.spec.as_mut() {
        s.scheduling_gates = Some(vec![PodSchedulingGate { name: "x".into() }]);
    }
    q.add(Arc::new(gated.clone()));
    assert_eq!(q.pending().gated, 1);
    assert!(pop_name(&q).await.is_none());
    if let Some(s) = gated.spec.as_mut() {
        s.scheduling_gates = None;
    }
    q.update(Arc::new(gated));
    assert_eq!(q.pending().active, 1);
    assert!(pop_name(&q).await.is_some());
}

#[tokio::test(start_paused = true)]
async fn delete_removes_from_every_queue_and_close_ends_pop() {
    let q = Arc::new(queue());
    let p = pod_named("p", vec![]);
    q.add(Arc::new(p.clone()));
    q.delete(&p);
    assert_eq!(q.pending(), PendingCounts::default());
    let waiter = {
        let q = q.clone();
        tokio::spawn(async move { q.pop().await.is_none() })
    };
    tokio::task::yield_now().await;
    q.close();
    assert!(matches!(waiter.await, Ok(true)));
}

#[tokio::test(start_paused = true)]
async fn uninteresting_event_does_not_send_failing_pod_to_backoff() {
    let q = queue();
    q.add(Arc::new(pod_named("p", vec![container(&[("cpu", "3")])])));
    let Some((_, p, cycle)) = pop_name(&q).await else {
        panic!("pod not popped");
    };
    // Every binding produces an AssignedPod add; PodTopologySpread and InterPodAffinity register
    // it, but not NodeResourcesFit, which rejected this pod (upstream replays in-flight events
    // through the rejecting plugins' hints only).
    let ev = ClusterEvent::new(EventResource::AssignedPod, action::ADD, "AssignedPodAdd");
    q.move_all_to_active_or_backoff(&ev, None, None);
    q.add_unschedulable_if_not_present(fit_rejected(p), cycle);
    assert_eq!(q.pending().unschedulable, 1);
}

#[tokio::test(start_paused = true)]
async fn events_before_the_pods_cycle_do_not_count_as_missed() {
    let q = queue();
    q.add(Arc::new(pod_named("a", vec![])));
    q.add(Arc::new(pod_named("b", vec![container(&[("cpu", "3")])])));
    let Some((_, a, _)) = pop_name(&q).await else {
        panic!("a not popped");
    };
    // While only `a` is in flight, a node is added (NodeResourcesFit cares).
    let ev = ClusterEvent::new(EventResource::Node, action::ADD, "NodeAdd");
    q.move_all_to_active_or_backoff(&ev, None, None);
    let Some((_, b, cycle)) = pop_name(&q).await else {
        panic!("b not popped");
    };
    q.done(a.uid());
    q.add_unschedulable_if_not_present(fit_rejected(b), cycle);
    assert_eq!(q.pending().unschedulable, 1);
}
