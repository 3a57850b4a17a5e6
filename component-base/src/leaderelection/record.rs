//! The leader election record kept in a Lease's spec, and the pure decisions
//! client-go's `LeaderElector.tryAcquireOrRenew` takes over it.
//!
//! Like client-go, expiry is judged only on the *local* clock: a lease is
//! valid until `leaseDurationSeconds` after the moment we last saw its record
//! change, whatever its timestamps say, so clock skew between candidates does
//! not matter.

use k8s_openapi::api::coordination::v1::LeaseSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use std::time::Duration;
use tokio::time::Instant;

/// client-go `resourcelock.LeaderElectionRecord`, as stored in a Lease spec.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LeaderElectionRecord {
    pub holder_identity: String,
    pub lease_duration_seconds: i32,
    pub acquire_time: Option<Timestamp>,
    pub renew_time: Option<Timestamp>,
    pub leader_transitions: i32,
    pub strategy: Option<String>,
    pub preferred_holder: Option<String>,
}

impl LeaderElectionRecord {
    pub fn from_spec(spec: &LeaseSpec) -> Self {
        Self {
            holder_identity: spec.holder_identity.clone().unwrap_or_default(),
            lease_duration_seconds: spec.lease_duration_seconds.unwrap_or(0),
            acquire_time: spec.acquire_time.as_ref().map(|t| t.0),
            renew_time: spec.renew_time.as_ref().map(|t| t.0),
            leader_transitions: spec.lease_transitions.unwrap_or(0),
            strategy: spec.strategy.clone(),
            preferred_holder: spec.preferred_holder.clone(),
        }
    }

    /// The spec client-go's LeaseLock writes: holder, duration and
    /// transitions are always present (an empty holder is written as `""`).
    pub fn to_spec(&self) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.holder_identity.clone()),
            lease_duration_seconds: Some(self.lease_duration_seconds),
            acquire_time: self.acquire_time.map(MicroTime),
            renew_time: self.renew_time.map(MicroTime),
            lease_transitions: Some(self.leader_transitions),
            strategy: self.strategy.clone(),
            preferred_holder: self.preferred_holder.clone(),
        }
    }

    /// Whether two reads show the same record. client-go compares its
    /// record's JSON, with times at whole seconds; we compare the times at
    /// the microseconds a Lease stores, so a renewal is noticed even when
    /// renewals come less than a second apart (and under a paused test clock).
    pub fn same_observation(&self, other: &Self) -> bool {
        self == other
    }

    fn duration(&self) -> Duration {
        Duration::from_secs(u64::try_from(self.lease_duration_seconds).unwrap_or(0))
    }
}

/// What to do after reading the Lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// No Lease exists: create it holding this record.
    Create(LeaderElectionRecord),
    /// Write this record over the Lease just read (acquire or renew).
    Update(LeaderElectionRecord),
    /// Someone else holds a lease that has not expired yet.
    HeldByOther { holder: String },
}

/// One candidate's view of the election (client-go `LeaderElector`'s
/// observedRecord/observedTime bookkeeping).
#[derive(Debug, Clone)]
pub struct ElectorState {
    identity: String,
    lease_duration: Duration,
    observed: LeaderElectionRecord,
    /// Local time the observed record last changed; `None` before any read.
    observed_time: Option<Instant>,
}

impl ElectorState {
    pub fn new(identity: impl Into<String>, lease_duration: Duration) -> Self {
        Self {
            identity: identity.into(),
            lease_duration,
            observed: LeaderElectionRecord::default(),
            observed_time: None,
        }
    }

    pub fn observed(&self) -> &LeaderElectionRecord {
        &self.observed
    }

    pub fn observed_time(&self) -> Option<Instant> {
        self.observed_time
    }

    /// The last record we saw (or wrote) names us as holder.
    pub fn is_leader(&self) -> bool {
        !self.identity.is_empty() && self.observed.holder_identity == self.identity
    }

    /// The observed lease has not run out on our local clock.
    pub fn lease_valid(&self, now: Instant) -> bool {
        self.observed_time
            .is_some_and(|seen| seen + self.observed.duration() > now)
    }

    /// What we write when taking or keeping the lease, before carrying over
    /// acquireTime/transitions.
    fn ours(&self, wall_now: Timestamp) -> LeaderElectionRecord {
        LeaderElectionRecord {
            holder_identity: self.identity.clone(),
            lease_duration_seconds: i32::try_from(self.lease_duration.as_secs())
                .unwrap_or(i32::MAX),
            acquire_time: Some(wall_now),
            renew_time: Some(wall_now),
            leader_transitions: 0,
            strategy: None,
            preferred_holder: None,
        }
    }

    /// The fast path: while we lead and our lease is valid, renew on top of
    /// our own last write without reading first.
    pub fn fast_renewal(&self, wall_now: Timestamp, now: Instant) -> Option<LeaderElectionRecord> {
        if !(self.is_leader() && self.lease_valid(now)) {
            return None;
        }
        let mut rec = self.ours(wall_now);
        rec.acquire_time = self.observed.acquire_time;
        rec.leader_transitions = self.observed.leader_transitions;
        Some(rec)
    }

    /// The slow path, given the Lease as just read (`None`: it does not exist).
    pub fn decide(
        &mut self,
        current: Option<&LeaderElectionRecord>,
        wall_now: Timestamp,
        now: Instant,
    ) -> Attempt {
        let mut rec = self.ours(wall_now);
        let Some(current) = current else {
            return Attempt::Create(rec);
        };
        if self.observed_time.is_none() || !self.observed.same_observation(current) {
            self.observed = current.clone();
            self.observed_time = Some(now);
        }
        if !current.holder_identity.is_empty() && self.lease_valid(now) && !self.is_leader() {
            return Attempt::HeldByOther {
                holder: current.holder_identity.clone(),
            };
        }
        if self.is_leader() {
            rec.acquire_time = current.acquire_time;
            rec.leader_transitions = current.leader_transitions;
        } else {
            rec.leader_transitions = current.leader_transitions.saturating_add(1);
        }
        Attempt::Update(rec)
    }

    /// A write of `rec` succeeded at `now`.
    pub fn record_written(&mut self, rec: LeaderElectionRecord, now: Instant) {
        self.observed = rec;
        self.observed_time = Some(now);
    }

    /// What client-go writes to give the lease up: no holder, a 1s duration,
    /// both times set to now, transitions kept. `None` if we do not lead.
    pub fn release_record(&self, wall_now: Timestamp) -> Option<LeaderElectionRecord> {
        self.is_leader().then(|| LeaderElectionRecord {
            holder_identity: String::new(),
            lease_duration_seconds: 1,
            acquire_time: Some(wall_now),
            renew_time: Some(wall_now),
            leader_transitions: self.observed.leader_transitions,
            strategy: None,
            preferred_holder: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: Duration = Duration::from_secs(15);

    fn ts(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    fn held_by(holder: &str, transitions: i32, renew: i64) -> LeaderElectionRecord {
        LeaderElectionRecord {
            holder_identity: holder.into(),
            lease_duration_seconds: 15,
            acquire_time: Some(ts(100)),
            renew_time: Some(ts(renew)),
            leader_transitions: transitions,
            ..Default::default()
        }
    }

    #[test]
    fn spec_round_trip_keeps_every_field() {
        let rec = LeaderElectionRecord {
            strategy: Some("OldestEmulationVersion".into()),
            preferred_holder: Some("b".into()),
            ..held_by("a", 3, 120)
        };
        assert_eq!(LeaderElectionRecord::from_spec(&rec.to_spec()), rec);
        let released = LeaderElectionRecord::default().to_spec();
        assert_eq!(released.holder_identity.as_deref(), Some(""));
        assert_eq!(
            LeaderElectionRecord::from_spec(&LeaseSpec::default()),
            LeaderElectionRecord::default()
        );
    }

    #[test]
    fn any_renew_time_change_is_a_new_observation() {
        let a = held_by("a", 0, 120);
        let mut b = a.clone();
        assert!(a.same_observation(&b));
        b.renew_time = Timestamp::from_microsecond(120_000_001).ok();
        assert!(!a.same_observation(&b));
    }

    /// One table over the slow path: (what we saw before, when; what we read
    /// now; how much later) → decision.
    #[test]
    fn decide_table() {
        struct Case {
            name: &'static str,
            previously: Option<LeaderElectionRecord>,
            current: Option<LeaderElectionRecord>,
            elapsed: Duration,
            want: Attempt,
        }
        let t0 = Instant::now();
        let wall = ts(1000);
        let mine = |transitions, acquire: i64| LeaderElectionRecord {
            acquire_time: Some(ts(acquire)),
            renew_time: Some(wall),
            leader_transitions: transitions,
            ..held_by("me", 0, 0)
        };
        let cases = [
            Case {
                name: "no lease: create it",
                previously: None,
                current: None,
                elapsed: Duration::ZERO,
                want: Attempt::Create(mine(0, 1000)),
            },
            Case {
                name: "first sight of another holder: wait a full duration",
                previously: None,
                current: Some(held_by("other", 2, 0)),
                elapsed: Duration::ZERO,
                want: Attempt::HeldByOther {
                    holder: "other".into(),
                },
            },
            Case {
                name: "unchanged for less than the duration: still held",
                previously: Some(held_by("other", 2, 50)),
                current: Some(held_by("other", 2, 50)),
                elapsed: Duration::from_secs(14),
                want: Attempt::HeldByOther {
                    holder: "other".into(),
                },
            },
            Case {
                name: "unchanged for the full duration: expired, take over",
                previously: Some(held_by("other", 2, 50)),
                current: Some(held_by("other", 2, 50)),
                elapsed: LEASE,
                want: Attempt::Update(mine(3, 1000)),
            },
            Case {
                name: "renewed by the holder meanwhile: the clock restarts",
                previously: Some(held_by("other", 2, 50)),
                current: Some(held_by("other", 2, 52)),
                elapsed: Duration::from_secs(20),
                want: Attempt::HeldByOther {
                    holder: "other".into(),
                },
            },
            Case {
                name: "timestamps far in the past do not matter, only change does",
                previously: None,
                current: Some(held_by("other", 0, -1_000_000)),
                elapsed: Duration::ZERO,
                want: Attempt::HeldByOther {
                    holder: "other".into(),
                },
            },
            Case {
                name: "released (empty holder): acquire at once",
                previously: None,
                current: Some(held_by("", 4, 50)),
                elapsed: Duration::ZERO,
                want: Attempt::Update(mine(5, 1000)),
            },
            Case {
                name: "already ours: renew, keep acquireTime and transitions",
                previously: None,
                current: Some(held_by("me", 7, 50)),
                elapsed: Duration::ZERO,
                want: Attempt::Update(mine(7, 100)),
            },
        ];
        for c in cases {
            let mut st = ElectorState::new("me", LEASE);
            if let Some(prev) = &c.previously {
                assert_eq!(
                    st.decide(Some(prev), wall, t0),
                    Attempt::HeldByOther {
                        holder: prev.holder_identity.clone()
                    },
                    "{}: setup",
                    c.name
                );
            }
            let got = st.decide(c.current.as_ref(), wall, t0 + c.elapsed);
            assert_eq!(got, c.want, "{}", c.name);
        }
    }

    #[test]
    fn fast_path_only_while_leading_with_a_valid_lease() {
        let t0 = Instant::now();
        let mut st = ElectorState::new("me", LEASE);
        assert_eq!(st.fast_renewal(ts(1), t0), None);
        let acquired = LeaderElectionRecord {
            leader_transitions: 1,
            ..held_by("me", 0, 100)
        };
        st.record_written(acquired, t0);
        assert!(st.is_leader());
        let renewal = st.fast_renewal(ts(110), t0 + Duration::from_secs(10));
        assert_eq!(
            renewal,
            Some(LeaderElectionRecord {
                acquire_time: Some(ts(100)),
                renew_time: Some(ts(110)),
                leader_transitions: 1,
                ..held_by("me", 0, 0)
            })
        );
        assert_eq!(st.fast_renewal(ts(115), t0 + LEASE), None);
    }

    #[test]
    fn release_clears_the_holder_and_keeps_transitions() {
        let t0 = Instant::now();
        let mut st = ElectorState::new("me", LEASE);
        assert_eq!(st.release_record(ts(5)), None);
        st.record_written(held_by("me", 3, 100), t0);
        let released = st.release_record(ts(200));
        assert_eq!(
            released,
            Some(LeaderElectionRecord {
                holder_identity: String::new(),
                lease_duration_seconds: 1,
                acquire_time: Some(ts(200)),
                renew_time: Some(ts(200)),
                leader_transitions: 3,
                strategy: None,
                preferred_holder: None,
            })
        );
    }

    #[test]
    fn lost_lease_is_seen_on_the_next_read() {
        let t0 = Instant::now();
        let mut st = ElectorState::new("me", LEASE);
        st.record_written(held_by("me", 1, 100), t0);
        let taken = held_by("other", 2, 130);
        assert_eq!(
            st.decide(Some(&taken), ts(131), t0 + Duration::from_secs(3)),
            Attempt::HeldByOther {
                holder: "other".into()
            }
        );
        assert!(!st.is_leader());
    }
}
