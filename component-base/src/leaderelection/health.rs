//! Leadership state for `/healthz` (client-go `HealthzAdaptor`) and the
//! `leader_election_master_status` / `leader_election_slowpath_total` metrics.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::time::Instant;

/// The health check fails when we lead but have not renewed for longer than
/// the lease duration plus `timeout`: the elector should have stepped down by
/// then, so something (a deadlock, a stuck runtime) is wrong. Before an
/// elector is attached, or while we are a standby, the check passes.
#[derive(Clone)]
pub struct LeaderElectionHealth {
    timeout: Duration,
    state: Arc<Mutex<Option<Snapshot>>>,
}

#[derive(Debug, Clone)]
struct Snapshot {
    lease: String,
    lease_duration: Duration,
    leading: bool,
    observed_time: Option<Instant>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("failed election to renew leadership on lease {0}")]
pub struct LeaderElectionUnhealthy(pub String);

impl LeaderElectionHealth {
    /// `timeout` is upstream's `maxTolerableExpiredLease` (kube-scheduler and
    /// kube-controller-manager use 20s).
    pub fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            state: Arc::new(Mutex::new(None)),
        }
    }

    /// The healthz check name upstream registers.
    pub fn name(&self) -> &'static str {
        "leaderElection"
    }

    pub fn check(&self) -> Result<(), LeaderElectionUnhealthy> {
        self.check_at(Instant::now())
    }

    fn check_at(&self, now: Instant) -> Result<(), LeaderElectionUnhealthy> {
        let Some(snap) = self.snapshot() else {
            return Ok(());
        };
        if !snap.leading {
            return Ok(());
        }
        let overdue = snap.observed_time.is_none_or(|seen| {
            now.saturating_duration_since(seen) > snap.lease_duration + self.timeout
        });
        if overdue {
            return Err(LeaderElectionUnhealthy(snap.lease));
        }
        Ok(())
    }

    /// Whether we currently hold the lease (as last observed).
    pub fn is_leader(&self) -> bool {
        self.snapshot().is_some_and(|s| s.leading)
    }

    fn snapshot(&self) -> Option<Snapshot> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    pub(super) fn update(
        &self,
        lease: &str,
        lease_duration: Duration,
        leading: bool,
        observed_time: Option<Instant>,
    ) {
        *self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Snapshot {
            lease: lease.to_string(),
            lease_duration,
            leading,
            observed_time,
        });
    }
}

type NameLabel = Vec<(String, String)>;

struct Families {
    master_status: Family<NameLabel, Gauge>,
    slowpath: Family<NameLabel, Counter>,
}

fn families() -> &'static Families {
    static FAMILIES: OnceLock<Families> = OnceLock::new();
    FAMILIES.get_or_init(|| {
        let f = Families {
            master_status: Family::default(),
            slowpath: Family::default(),
        };
        register(&f);
        f
    })
}

fn register(f: &Families) {
    use crate::metrics::register;
    register(
        "leader_election_master_status",
        "Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates master. 'name' is the string used to identify the lease. Please make sure to group by name.",
        f.master_status.clone(),
    );
    // Exposed as leader_election_slowpath_total.
    register(
        "leader_election_slowpath",
        "Total number of slow path exercised in renewing leader leases. 'name' is the string used to identify the lease. Please make sure to group by name.",
        f.slowpath.clone(),
    );
}

/// The metric series of one election, labelled by its name like upstream.
pub(super) struct ElectionMetrics {
    master_status: Gauge,
    slowpath: Counter,
}

impl ElectionMetrics {
    pub fn new(name: &str) -> Self {
        let f = families();
        let label = vec![("name".to_string(), name.to_string())];
        let m = Self {
            master_status: f.master_status.get_or_create(&label).clone(),
            slowpath: f.slowpath.get_or_create(&label).clone(),
        };
        m.leader_off();
        m
    }

    pub fn leader_on(&self) {
        self.master_status.set(1);
    }

    pub fn leader_off(&self) {
        self.master_status.set(0);
    }

    pub fn slowpath_exercised(&self) {
        self.slowpath.inc();
    }

    #[cfg(test)]
    pub fn is_on(&self) -> bool {
        self.master_status.get() == 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healthy_until_leader_renewal_is_overdue() {
        let h = LeaderElectionHealth::new(Duration::from_secs(20));
        let t0 = Instant::now();
        assert_eq!(h.check_at(t0), Ok(()), "no elector attached yet");
        let lease = Duration::from_secs(15);
        h.update("kube-scheduler", lease, false, Some(t0));
        assert_eq!(
            h.check_at(t0 + Duration::from_secs(3600)),
            Ok(()),
            "standby"
        );
        h.update("kube-scheduler", lease, true, Some(t0));
        assert!(h.is_leader());
        assert_eq!(h.check_at(t0 + Duration::from_secs(35)), Ok(()));
        assert_eq!(
            h.check_at(t0 + Duration::from_secs(36)),
            Err(LeaderElectionUnhealthy("kube-scheduler".into()))
        );
    }

    #[test]
    fn master_status_follows_leadership() {
        let m = ElectionMetrics::new("unit-test-lease");
        assert!(!m.is_on());
        m.leader_on();
        assert!(m.is_on());
        m.leader_off();
        assert!(!m.is_on());
    }
}
