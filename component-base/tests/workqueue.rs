//! Behaviour of the rate-limited work queue against client-go's workqueue
//! contract, with tokio's paused clock for the timing cases.

use component_base::workqueue::{ItemExponentialFailureRateLimiter, RateLimitingQueue};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::{advance, timeout};

type Queue = RateLimitingQueue<&'static str>;

fn exp_queue() -> Queue {
    RateLimitingQueue::with_rate_limiter(
        "",
        ItemExponentialFailureRateLimiter::new(Duration::from_millis(5), Duration::from_secs(1)),
    )
}

/// `get` must not return within a (virtual) minute.
async fn assert_blocks(q: &Queue) {
    let got = timeout(Duration::from_secs(60), q.get()).await;
    assert!(got.is_err(), "get returned {got:?}, expected it to block");
}

/// The item `get` returns right now, without waiting.
async fn get_now(q: &Queue) -> Option<&'static str> {
    match timeout(Duration::from_millis(1), q.get()).await {
        Ok(item) => item,
        Err(_) => panic!("get blocked, expected an item or None"),
    }
}

#[tokio::test(start_paused = true)]
async fn duplicates_are_queued_once_in_fifo_order() {
    let q = exp_queue();
    for item in ["a", "b", "a", "c", "b"] {
        q.add(item);
    }
    assert_eq!(q.len(), 3);
    assert_eq!(get_now(&q).await, Some("a"));
    assert_eq!(get_now(&q).await, Some("b"));
    assert_eq!(get_now(&q).await, Some("c"));
    assert!(q.is_empty());
    assert_blocks(&q).await;
}

#[tokio::test(start_paused = true)]
async fn item_added_while_processing_is_requeued_after_done() {
    let q = exp_queue();
    q.add("a");
    assert_eq!(get_now(&q).await, Some("a"));
    // Re-added while a worker holds it: dirty, but not handed to a second worker.
    q.add("a");
    q.add("a");
    assert_eq!(q.len(), 0);
    assert_blocks(&q).await;
    q.done(&"a");
    assert_eq!(q.len(), 1);
    assert_eq!(get_now(&q).await, Some("a"));
    q.done(&"a");
    // Not dirty any more: done does not re-queue it.
    assert_blocks(&q).await;
}

#[tokio::test(start_paused = true)]
async fn get_waits_for_an_add_from_another_task() {
    let q = exp_queue();
    let waiter = tokio::spawn({
        let q = q.clone();
        async move { q.get().await }
    });
    tokio::task::yield_now().await;
    assert!(!waiter.is_finished());
    q.add("x");
    assert_eq!(waiter.await.ok().flatten(), Some("x"));
}

#[tokio::test(start_paused = true)]
async fn add_after_becomes_ready_exactly_after_the_delay() {
    let q = exp_queue();
    q.add_after("a", Duration::from_secs(2));
    assert_eq!(q.len(), 0);
    advance(Duration::from_millis(1999)).await;
    assert_eq!(q.len(), 0);
    advance(Duration::from_millis(1)).await;
    assert_eq!(q.len(), 1);
    assert_eq!(get_now(&q).await, Some("a"));
}

#[tokio::test(start_paused = true)]
async fn blocked_get_wakes_when_a_delayed_item_is_ready() {
    let q = exp_queue();
    let start = tokio::time::Instant::now();
    let waiter = tokio::spawn({
        let q = q.clone();
        async move { q.get().await.map(|item| (item, start.elapsed())) }
    });
    tokio::task::yield_now().await;
    // Added after the getter went to sleep with no deadline.
    q.add_after("late", Duration::from_secs(5));
    q.add_after("early", Duration::from_secs(1));
    let (item, waited) = waiter
        .await
        .ok()
        .flatten()
        .unwrap_or(("none", Duration::ZERO));
    assert_eq!(item, "early");
    assert_eq!(waited, Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn add_after_keeps_the_earliest_ready_time() {
    let q = exp_queue();
    q.add_after("a", Duration::from_secs(10));
    q.add_after("a", Duration::from_secs(1));
    q.add_after("a", Duration::from_secs(30));
    advance(Duration::from_secs(1)).await;
    assert_eq!(get_now(&q).await, Some("a"));
    q.done(&"a");
    // The superseded 10s and 30s entries are gone.
    advance(Duration::from_secs(60)).await;
    assert_eq!(q.len(), 0);
}

#[tokio::test(start_paused = true)]
async fn zero_delay_adds_immediately_and_dedups_with_queued() {
    let q = exp_queue();
    q.add("a");
    q.add_after("a", Duration::ZERO);
    assert_eq!(q.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn rate_limited_adds_back_off_exponentially_until_forgotten() {
    let q = exp_queue();
    for (requeues, delay_ms) in [(1, 5), (2, 10), (3, 20), (4, 40)] {
        q.add_rate_limited("a");
        assert_eq!(q.num_requeues(&"a"), requeues);
        advance(Duration::from_millis(delay_ms - 1)).await;
        assert_eq!(q.len(), 0, "ready too early after {requeues} requeues");
        advance(Duration::from_millis(1)).await;
        assert_eq!(get_now(&q).await, Some("a"));
        q.done(&"a");
    }
    q.forget(&"a");
    assert_eq!(q.num_requeues(&"a"), 0);
    q.add_rate_limited("a");
    advance(Duration::from_millis(5)).await;
    assert_eq!(get_now(&q).await, Some("a"));
}

#[tokio::test(start_paused = true)]
async fn default_queue_uses_the_controller_rate_limiter() {
    let q: RateLimitingQueue<u32> = RateLimitingQueue::new("");
    q.add_rate_limited(7);
    assert_eq!(q.num_requeues(&7), 1);
    advance(Duration::from_millis(5)).await;
    assert_eq!(q.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn shut_down_drains_queued_items_then_returns_none() {
    let q = exp_queue();
    q.add("a");
    q.add_after("later", Duration::from_secs(1));
    q.shut_down();
    assert!(q.shutting_down());
    q.add("ignored");
    q.add_rate_limited("ignored too");
    assert_eq!(get_now(&q).await, Some("a"));
    assert_eq!(get_now(&q).await, None);
    advance(Duration::from_secs(2)).await;
    assert_eq!(get_now(&q).await, None);
}

#[tokio::test(start_paused = true)]
async fn shut_down_wakes_every_blocked_getter() {
    let q = exp_queue();
    let waiters: Vec<_> = (0..3)
        .map(|_| {
            let q = q.clone();
            tokio::spawn(async move { q.get().await })
        })
        .collect();
    tokio::task::yield_now().await;
    q.shut_down();
    for w in waiters {
        assert_eq!(w.await.ok().flatten(), None);
    }
}

#[tokio::test(start_paused = true)]
async fn shut_down_with_drain_waits_for_in_flight_items() {
    let q = exp_queue();
    q.add("a");
    assert_eq!(get_now(&q).await, Some("a"));
    let drain = tokio::spawn({
        let q = q.clone();
        async move { q.shut_down_with_drain().await }
    });
    advance(Duration::from_secs(5)).await;
    assert!(
        !drain.is_finished(),
        "drain returned while an item was processing"
    );
    q.done(&"a");
    assert!(timeout(Duration::from_secs(1), drain).await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn shut_down_stops_a_pending_drain() {
    let q = exp_queue();
    q.add("a");
    assert_eq!(get_now(&q).await, Some("a"));
    let drain = tokio::spawn({
        let q = q.clone();
        async move { q.shut_down_with_drain().await }
    });
    tokio::task::yield_now().await;
    q.shut_down();
    assert!(timeout(Duration::from_secs(1), drain).await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn drain_with_nothing_in_flight_returns_at_once() {
    let q = exp_queue();
    assert!(
        timeout(Duration::from_millis(1), q.shut_down_with_drain())
            .await
            .is_ok()
    );
}

/// Many workers hammering a few keys: no key is ever held by two workers at
/// once, and every add is eventually processed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_workers_never_share_an_item() {
    let q: RateLimitingQueue<u32> = RateLimitingQueue::new("");
    let in_flight = Arc::new(Mutex::new(HashSet::new()));
    let processed = Arc::new(Mutex::new(Vec::new()));
    let violations = Arc::new(Mutex::new(0u32));
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let (q, in_flight, processed, violations) = (
                q.clone(),
                in_flight.clone(),
                processed.clone(),
                violations.clone(),
            );
            tokio::spawn(async move {
                while let Some(key) = q.get().await {
                    if !in_flight.lock().map(|mut s| s.insert(key)).unwrap_or(false) {
                        *violations.lock().unwrap_or_else(|e| e.into_inner()) += 1;
                    }
                    tokio::task::yield_now().await;
                    if let Ok(mut s) = in_flight.lock() {
                        s.remove(&key);
                    }
                    if let Ok(mut p) = processed.lock() {
                        p.push(key);
                    }
                    q.done(&key);
                }
            })
        })
        .collect();
    for round in 0..200u32 {
        q.add(round % 5);
        if round % 20 == 0 {
            tokio::task::yield_now().await;
        }
    }
    // Let everything settle, then drain.
    while !q.is_empty() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    q.shut_down_with_drain().await;
    for w in workers {
        assert!(w.await.is_ok());
    }
    assert_eq!(*violations.lock().unwrap_or_else(|e| e.into_inner()), 0);
    let processed = processed.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let keys: HashSet<u32> = processed.iter().copied().collect();
    assert_eq!(keys, (0..5).collect());
    // Dedup collapses the 200 adds into far fewer runs.
    assert!(processed.len() <= 200, "{} runs", processed.len());
}

/// The upstream metric names, labelled by queue name, in `/metrics`.
#[tokio::test(start_paused = true)]
async fn named_queue_exports_workqueue_metrics() {
    let q: RateLimitingQueue<&str> = RateLimitingQueue::new("metrics-test");
    q.add("a");
    q.add("b");
    q.add("a");
    advance(Duration::from_millis(20)).await;
    let item = q.get().await;
    advance(Duration::from_millis(30)).await;
    if let Some(item) = item {
        q.done(&item);
    }
    q.add_rate_limited("c");
    let text = component_base::metrics::encode_text();
    for want in [
        r#"workqueue_depth{name="metrics-test"} 1"#,
        r#"workqueue_adds_total{name="metrics-test"} 2"#,
        r#"workqueue_retries_total{name="metrics-test"} 1"#,
        r#"workqueue_queue_duration_seconds_count{name="metrics-test"} 1"#,
        r#"workqueue_work_duration_seconds_count{name="metrics-test"} 1"#,
    ] {
        assert!(text.contains(want), "missing {want} in:\n{text}");
    }
}
