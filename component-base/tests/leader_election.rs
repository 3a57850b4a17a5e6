//! Leader election against an in-process fake of the Lease API, on tokio's
//! paused clock: contention, hand-over on shutdown, loss on partition, and
//! coexistence with a foreign holder that renews like client-go.

use component_base::leaderelection::{
    Error, LeaderElectionConfig, LeaderElectionHealth, run, run_with_health,
};
use k8s_openapi::api::coordination::v1::LeaseSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use test_support::fake_leases::FakeLeaseApi;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, timeout};
use tokio_util::sync::CancellationToken;

const NS: &str = "kube-system";
const NAME: &str = "kube-scheduler";
const LEASE: Duration = Duration::from_secs(5);
const RENEW: Duration = Duration::from_secs(3);
const RETRY: Duration = Duration::from_secs(1);

fn config(identity: &str) -> LeaderElectionConfig {
    LeaderElectionConfig {
        lease_namespace: NS.into(),
        lease_name: NAME.into(),
        identity: identity.into(),
        lease_duration: LEASE,
        renew_deadline: RENEW,
        retry_period: RETRY,
    }
}

/// Who ran the guarded work, and how many ran at once at worst.
#[derive(Clone, Default)]
struct Ledger {
    running: Arc<AtomicUsize>,
    max_running: Arc<AtomicUsize>,
    started: Arc<Mutex<Vec<(String, Instant)>>>,
}

impl Ledger {
    fn leaders(&self) -> Vec<String> {
        self.started
            .lock()
            .map(|s| s.iter().map(|(id, _)| id.clone()).collect())
            .unwrap_or_default()
    }

    fn started_at(&self, id: &str) -> Option<Instant> {
        self.started
            .lock()
            .ok()
            .and_then(|s| s.iter().find(|(who, _)| who == id).map(|(_, at)| *at))
    }

    fn max_running(&self) -> usize {
        self.max_running.load(Ordering::SeqCst)
    }
}

struct RunningGuard(Arc<AtomicUsize>);

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

struct Candidate {
    shutdown: CancellationToken,
    handle: JoinHandle<Result<(), Error>>,
}

fn spawn_candidate(api: &FakeLeaseApi, id: &str, ledger: &Ledger) -> Candidate {
    let shutdown = CancellationToken::new();
    let client = api.client(id);
    let (ledger, who) = (ledger.clone(), id.to_string());
    let handle = tokio::spawn(run(
        client,
        config(id),
        shutdown.clone(),
        move |token| async move {
            let now_running = ledger.running.fetch_add(1, Ordering::SeqCst) + 1;
            ledger.max_running.fetch_max(now_running, Ordering::SeqCst);
            if let Ok(mut s) = ledger.started.lock() {
                s.push((who, Instant::now()));
            }
            // Counted down even when the elector aborts the work.
            let _running = RunningGuard(ledger.running.clone());
            token.cancelled().await;
        },
    ));
    Candidate { shutdown, handle }
}

async fn finished(c: Candidate, within: Duration) -> Result<(), Error> {
    match timeout(within, c.handle).await {
        Ok(Ok(res)) => res,
        Ok(Err(join)) => panic!("elector task failed: {join}"),
        Err(_) => panic!("elector did not return within {within:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn exactly_one_of_two_candidates_leads() {
    let api = FakeLeaseApi::new();
    let ledger = Ledger::default();
    let a = spawn_candidate(&api, "a", &ledger);
    let b = spawn_candidate(&api, "b", &ledger);
    sleep(Duration::from_secs(30)).await;
    let leaders = ledger.leaders();
    assert_eq!(leaders.len(), 1, "leaders: {leaders:?}");
    assert_eq!(api.holder(NS, NAME), Some(leaders[0].clone()));
    assert_eq!(ledger.max_running(), 1);
    // The leader kept renewing: the lease was written many times, always by it.
    let writes = api.writes();
    assert!(writes.len() >= 10, "{} writes", writes.len());
    assert!(
        writes
            .iter()
            .all(|w| w.holder_identity.as_deref() == Some(leaders[0].as_str()))
    );
    assert!(!a.handle.is_finished() && !b.handle.is_finished());
}

#[tokio::test(start_paused = true)]
async fn shutdown_releases_the_lease_and_the_standby_takes_over_at_once() {
    let api = FakeLeaseApi::new();
    let ledger = Ledger::default();
    let a = spawn_candidate(&api, "a", &ledger);
    sleep(Duration::from_millis(100)).await;
    assert_eq!(ledger.leaders(), ["a"]);
    let b = spawn_candidate(&api, "b", &ledger);
    sleep(Duration::from_secs(10)).await;
    assert_eq!(ledger.leaders(), ["a"]);

    let released_at = Instant::now();
    a.shutdown.cancel();
    assert!(finished(a, RENEW).await.is_ok());
    let writes = api.writes();
    let release = writes.last().cloned().unwrap_or_default();
    assert_eq!(release.holder_identity.as_deref(), Some(""));
    assert_eq!(release.lease_duration_seconds, Some(1));
    assert_eq!(release.lease_transitions, Some(0));

    // b retries within 2.2 retry periods and needs no expiry wait.
    sleep(RETRY.mul_f64(2.3)).await;
    assert_eq!(ledger.leaders(), ["a", "b"]);
    let took_over = ledger.started_at("b").map(|t| t - released_at);
    assert!(
        took_over.is_some_and(|d| d <= RETRY.mul_f64(2.2)),
        "{took_over:?}"
    );
    let spec = api.lease(NS, NAME).and_then(|l| l.spec).unwrap_or_default();
    assert_eq!(spec.holder_identity.as_deref(), Some("b"));
    assert_eq!(spec.lease_transitions, Some(1));
    assert_eq!(ledger.max_running(), 1);
    b.shutdown.cancel();
    assert!(finished(b, RENEW).await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn partitioned_leader_steps_down_before_the_standby_takes_over() {
    let api = FakeLeaseApi::new();
    let ledger = Ledger::default();
    let a = spawn_candidate(&api, "a", &ledger);
    sleep(Duration::from_millis(100)).await;
    let b = spawn_candidate(&api, "b", &ledger);
    sleep(Duration::from_secs(10)).await;

    let cut = Instant::now();
    api.partition("a", true);
    let res = finished(a, RETRY + RENEW + Duration::from_millis(100)).await;
    assert!(
        matches!(res, Err(Error::LeaseLost(ref l)) if l == "kube-system/kube-scheduler"),
        "{res:?}"
    );
    assert!(cut.elapsed() >= RENEW, "gave up after {:?}", cut.elapsed());
    assert_eq!(
        ledger.running.load(Ordering::SeqCst),
        0,
        "a's work still runs"
    );

    // b waits for the lease to expire on its own clock, then takes it.
    sleep(LEASE + RETRY.mul_f64(2.0 * 2.2 + 0.1)).await;
    assert_eq!(ledger.leaders(), ["a", "b"]);
    let b_started = ledger.started_at("b").map(|t| t - cut);
    assert!(
        b_started.is_some_and(|d| d >= LEASE - RETRY),
        "{b_started:?}"
    );
    assert_eq!(ledger.max_running(), 1);
    assert_eq!(api.holder(NS, NAME).as_deref(), Some("b"));
    b.shutdown.cancel();
    assert!(finished(b, RENEW).await.is_ok());
}

fn foreign_spec(renew: Timestamp) -> LeaseSpec {
    LeaseSpec {
        holder_identity: Some("stock-scheduler_1234".into()),
        lease_duration_seconds: Some(5),
        acquire_time: Some(MicroTime(renew)),
        renew_time: Some(MicroTime(renew)),
        lease_transitions: Some(4),
        ..Default::default()
    }
}

/// A holder we do not know (e.g. a stock kube-scheduler) renewing every
/// second keeps us out, with timestamps far off our clock; once it stops we
/// take over after one lease duration and bump leaseTransitions.
#[tokio::test(start_paused = true)]
async fn foreign_holder_keeps_the_lease_while_it_renews() {
    let api = FakeLeaseApi::new();
    let ledger = Ledger::default();
    let skewed = Timestamp::from_second(1_000_000).unwrap_or(Timestamp::UNIX_EPOCH);
    api.put_spec(NS, NAME, foreign_spec(skewed));
    let us = spawn_candidate(&api, "us", &ledger);
    for i in 1..=20 {
        sleep(Duration::from_secs(1)).await;
        let renew = skewed.checked_add(Duration::from_secs(i)).unwrap_or(skewed);
        api.put_spec(NS, NAME, foreign_spec(renew));
    }
    assert!(ledger.leaders().is_empty());
    let stopped = Instant::now();
    // Worst case: we notice the last renewal one jittered period late, wait a
    // lease duration, then poll one jittered period late again.
    sleep(LEASE + RETRY.mul_f64(2.0 * 2.2 + 0.1)).await;
    assert_eq!(ledger.leaders(), ["us"]);
    let waited = ledger.started_at("us").map(|t| t - stopped);
    assert!(waited.is_some_and(|d| d >= LEASE - RETRY), "{waited:?}");
    let spec = api.lease(NS, NAME).and_then(|l| l.spec).unwrap_or_default();
    assert_eq!(spec.holder_identity.as_deref(), Some("us"));
    assert_eq!(spec.lease_transitions, Some(5));
    assert_eq!(spec.lease_duration_seconds, Some(5));
    us.shutdown.cancel();
    assert!(finished(us, RENEW).await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn finished_work_releases_and_health_reports_leadership() {
    // Its own lease name: the metric series is process-wide and other tests
    // in this binary run concurrently.
    const SOLO: &str = "solo-lease";
    let api = FakeLeaseApi::new();
    let health = LeaderElectionHealth::new(Duration::from_secs(20));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(run_with_health(
        api.client("solo"),
        LeaderElectionConfig {
            lease_name: SOLO.into(),
            ..config("solo")
        },
        health.clone(),
        CancellationToken::new(),
        move |_token| async move {
            let _ = rx.await;
        },
    ));
    sleep(Duration::from_secs(7)).await;
    assert!(health.is_leader());
    assert!(health.check().is_ok());
    assert_eq!(health.name(), "leaderElection");
    let metrics = component_base::metrics::encode_text();
    assert!(
        metrics.contains(r#"leader_election_master_status{name="solo-lease"} 1"#),
        "{metrics}"
    );
    assert_eq!(api.holder(NS, SOLO).as_deref(), Some("solo"));
    let _ = tx.send(());
    let res = timeout(RENEW, handle).await;
    assert!(matches!(res, Ok(Ok(Ok(())))), "{res:?}");
    assert_eq!(api.holder(NS, SOLO).as_deref(), Some(""));
    assert!(!health.is_leader());
    let metrics = component_base::metrics::encode_text();
    assert!(
        metrics.contains(r#"leader_election_master_status{name="solo-lease"} 0"#),
        "{metrics}"
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_before_acquiring_returns_without_writing() {
    let api = FakeLeaseApi::new();
    api.put_spec(NS, NAME, foreign_spec(Timestamp::now()));
    let ledger = Ledger::default();
    let c = spawn_candidate(&api, "late", &ledger);
    sleep(Duration::from_secs(2)).await;
    c.shutdown.cancel();
    assert!(finished(c, Duration::from_secs(1)).await.is_ok());
    assert!(ledger.leaders().is_empty());
    assert_eq!(api.writes().len(), 1, "only the foreign write");
}

#[tokio::test(start_paused = true)]
async fn invalid_config_is_rejected() {
    let api = FakeLeaseApi::new();
    let mut cfg = config("x");
    cfg.renew_deadline = cfg.lease_duration;
    let res = run(api.client("x"), cfg, CancellationToken::new(), |_t| async {
    })
    .await;
    assert!(matches!(res, Err(Error::InvalidConfig(_))), "{res:?}");
}
