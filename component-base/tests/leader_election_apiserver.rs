//! Leader election against a real etcd + stock kube-apiserver (failing when
//! the binaries are absent, unless `FK_ALLOW_SKIP=1`): our candidates contend
//! for a Lease, hand it over on shutdown and on a crash, and interoperate
//! with a stock kube-scheduler on `kube-system/kube-scheduler`.

use component_base::leaderelection::{Error, LeaderElectionConfig, run};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use test_support::apiserver::TestApiServer;
use test_support::prereq;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, timeout};
use tokio_util::sync::CancellationToken;

const LEASE: Duration = Duration::from_secs(4);
const RENEW: Duration = Duration::from_secs(3);
const RETRY: Duration = Duration::from_secs(1);

fn config(name: &str, identity: &str) -> LeaderElectionConfig {
    LeaderElectionConfig {
        lease_namespace: "kube-system".into(),
        lease_name: name.into(),
        identity: identity.into(),
        lease_duration: LEASE,
        renew_deadline: RENEW,
        retry_period: RETRY,
    }
}

#[derive(Clone, Default)]
struct Ledger {
    running: Arc<AtomicUsize>,
    max_running: Arc<AtomicUsize>,
    started: Arc<Mutex<Vec<(String, Instant)>>>,
}

struct RunningGuard(Arc<AtomicUsize>);

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Ledger {
    fn started_at(&self, id: &str) -> Option<Instant> {
        self.started
            .lock()
            .ok()
            .and_then(|s| s.iter().find(|(who, _)| who == id).map(|(_, at)| *at))
    }
}

struct Candidate {
    shutdown: CancellationToken,
    handle: JoinHandle<Result<(), Error>>,
}

fn spawn_candidate(client: kube::Client, cfg: LeaderElectionConfig, ledger: &Ledger) -> Candidate {
    let shutdown = CancellationToken::new();
    let (ledger, who) = (ledger.clone(), cfg.identity.clone());
    let handle = tokio::spawn(run(
        client,
        cfg,
        shutdown.clone(),
        move |token| async move {
            let now = ledger.running.fetch_add(1, Ordering::SeqCst) + 1;
            ledger.max_running.fetch_max(now, Ordering::SeqCst);
            let _running = RunningGuard(ledger.running.clone());
            if let Ok(mut s) = ledger.started.lock() {
                s.push((who, Instant::now()));
            }
            token.cancelled().await;
        },
    ));
    Candidate { shutdown, handle }
}

async fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        sleep(Duration::from_millis(50)).await;
    }
    start.elapsed()
}

/// Samples the Lease's holder every 100ms until stopped.
fn sample_holders(api: Api<Lease>, name: &str, stop: CancellationToken) -> JoinHandle<Vec<String>> {
    let name = name.to_string();
    tokio::spawn(async move {
        let mut seen: Vec<String> = Vec::new();
        while !stop.is_cancelled() {
            if let Ok(Some(lease)) = api.get_opt(&name).await {
                let holder = lease
                    .spec
                    .and_then(|s| s.holder_identity)
                    .unwrap_or_default();
                if seen.last() != Some(&holder) {
                    seen.push(holder);
                }
            }
            sleep(Duration::from_millis(100)).await;
        }
        seen
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn candidates_hand_over_on_crash_and_on_shutdown() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("component_base=debug")
        .with_test_writer()
        .try_init();
    let Some(server) = TestApiServer::start().await else {
        return;
    };
    const NAME: &str = "ferrokube-le-test";
    let ledger = Ledger::default();
    let leases: Api<Lease> = Api::namespaced(server.client().await, "kube-system");
    let stop_sampling = CancellationToken::new();
    let sampler = sample_holders(leases.clone(), NAME, stop_sampling.clone());

    let a = spawn_candidate(server.client().await, config(NAME, "a"), &ledger);
    wait_for("a leads", Duration::from_secs(10), || {
        ledger.started_at("a").is_some()
    })
    .await;
    let b = spawn_candidate(server.client().await, config(NAME, "b"), &ledger);
    sleep(Duration::from_secs(6)).await;
    assert!(
        ledger.started_at("b").is_none(),
        "b took a lease a keeps renewing"
    );

    // Crash: a stops without releasing; b must wait for expiry.
    a.handle.abort();
    let took = wait_for("b takes over", LEASE + RETRY * 6, || {
        ledger.started_at("b").is_some()
    })
    .await;
    assert!(took >= LEASE - RETRY * 2, "b took over after only {took:?}");

    // Graceful shutdown: b releases, c acquires without waiting for expiry.
    let c = spawn_candidate(server.client().await, config(NAME, "c"), &ledger);
    sleep(Duration::from_secs(3)).await;
    assert!(ledger.started_at("c").is_none());
    b.shutdown.cancel();
    let res = timeout(RENEW, b.handle).await;
    assert!(matches!(res, Ok(Ok(Ok(())))), "{res:?}");
    let took = wait_for("c takes over", LEASE, || ledger.started_at("c").is_some()).await;
    assert!(
        took < RETRY.mul_f64(2.2) + Duration::from_millis(800),
        "{took:?} after release"
    );

    let lease = leases
        .get(NAME)
        .await
        .ok()
        .and_then(|l| l.spec)
        .unwrap_or_default();
    assert_eq!(lease.holder_identity.as_deref(), Some("c"));
    assert_eq!(lease.lease_duration_seconds, Some(4));
    assert_eq!(lease.lease_transitions, Some(2));
    assert!(lease.acquire_time.is_some() && lease.renew_time.is_some());

    sleep(Duration::from_secs(1)).await;
    c.shutdown.cancel();
    let res = timeout(RENEW, c.handle).await;
    assert!(matches!(res, Ok(Ok(Ok(())))), "{res:?}");
    sleep(Duration::from_millis(500)).await;
    stop_sampling.cancel();
    let holders = sampler.await.unwrap_or_default();
    // One holder at a time, never going back: a, then b, then (released) c.
    assert_eq!(holders, ["a", "b", "", "c", ""], "sampled holders");
    assert_eq!(ledger.max_running.load(Ordering::SeqCst), 1);
}

/// A stock kube-scheduler process, leader-electing with short durations.
struct StockScheduler(Child);

impl StockScheduler {
    fn start(bin: &Path, server: &TestApiServer, log: &str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or(0);
        let log = std::fs::File::create(server.pki_dir().join(log));
        let (out, err) = match log.and_then(|f| Ok((f.try_clone()?, f))) {
            Ok((a, b)) => (Stdio::from(a), Stdio::from(b)),
            Err(_) => (Stdio::null(), Stdio::null()),
        };
        let child = Command::new(bin)
            .arg(format!("--kubeconfig={}", server.kubeconfig().display()))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--secure-port={port}"))
            .arg("--leader-elect=true")
            .arg("--leader-elect-lease-duration=4s")
            .arg("--leader-elect-renew-deadline=3s")
            .arg("--leader-elect-retry-period=1s")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn();
        match child {
            Ok(c) => Self(c),
            Err(e) => panic!("starting kube-scheduler: {e}"),
        }
    }
}

impl Drop for StockScheduler {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn holder(leases: &Api<Lease>) -> String {
    leases
        .get_opt("kube-scheduler")
        .await
        .ok()
        .flatten()
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interoperates_with_a_stock_kube_scheduler() {
    let Some(scheduler) = prereq::or_skip(prereq::stock_bin("kube-scheduler")) else {
        return;
    };
    let Some(server) = TestApiServer::start().await else {
        return;
    };
    let leases: Api<Lease> = Api::namespaced(server.client().await, "kube-system");
    let ledger = Ledger::default();

    // The stock scheduler takes the lease first; we must stay standby.
    let stock = StockScheduler::start(&scheduler, &server, "kube-scheduler-1.log");
    let start = Instant::now();
    let mut stock_id = String::new();
    while stock_id.is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "stock scheduler never led"
        );
        sleep(Duration::from_millis(200)).await;
        stock_id = holder(&leases).await;
    }
    let ours = spawn_candidate(
        server.client().await,
        config("kube-scheduler", "ferrokube_1"),
        &ledger,
    );
    sleep(Duration::from_secs(8)).await;
    assert!(
        ledger.started_at("ferrokube_1").is_none(),
        "we led while {stock_id} held the lease"
    );
    assert_eq!(holder(&leases).await, stock_id);

    // Crash the stock scheduler: we take over after expiry.
    drop(stock);
    wait_for("we take over", LEASE + RETRY * 6, || {
        ledger.started_at("ferrokube_1").is_some()
    })
    .await;
    assert_eq!(holder(&leases).await, "ferrokube_1");

    // A new stock scheduler must stay standby while we renew...
    let _stock2 = StockScheduler::start(&scheduler, &server, "kube-scheduler-2.log");
    for _ in 0..16 {
        sleep(Duration::from_millis(500)).await;
        assert_eq!(
            holder(&leases).await,
            "ferrokube_1",
            "stock scheduler stole our lease"
        );
    }
    // ...and take over promptly once we release on shutdown.
    ours.shutdown.cancel();
    let res = timeout(RENEW, ours.handle).await;
    assert!(matches!(res, Ok(Ok(Ok(())))), "{res:?}");
    let start = Instant::now();
    loop {
        let h = holder(&leases).await;
        if !h.is_empty() && h != "ferrokube_1" {
            break;
        }
        assert!(
            start.elapsed() < LEASE,
            "stock scheduler did not take the released lease"
        );
        sleep(Duration::from_millis(100)).await;
    }
}
