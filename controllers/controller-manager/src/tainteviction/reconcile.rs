//! The pure half of upstream `pkg/controller/tainteviction`
//! (`processPodOnNode`, `GetMatchingTolerations`, `getMinTolerationTime`):
//! given a pod's tolerations, its node's NoExecute taints and the eviction
//! already scheduled for it, what happens to the pod and when.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Taint, Toleration};

pub const NO_EXECUTE: &str = "NoExecute";

/// Upstream event reason for both the eviction and its cancellation.
pub const REASON_TAINT_MANAGER_EVICTION: &str = "TaintManagerEviction";

/// Upstream `DisruptionTarget` condition written before the delete.
pub const DISRUPTION_TARGET: &str = "DisruptionTarget";
pub const REASON_DELETION_BY_TAINT_MANAGER: &str = "DeletionByTaintManager";
pub const MESSAGE_DELETION_BY_TAINT_MANAGER: &str =
    "Taint manager: deleting due to NoExecute taint";

/// Upstream `emitPodDeletionEvent` message.
pub fn marking_for_deletion_message(namespace: &str, name: &str) -> String {
    format!("Marking for deletion Pod {namespace}/{name}")
}

/// Upstream `emitCancelPodDeletionEvent` message.
pub fn cancelling_deletion_message(namespace: &str, name: &str) -> String {
    format!("Cancelling deletion of Pod {namespace}/{name}")
}

/// The NoExecute taints among `taints` (upstream `getNoExecuteTaints`).
pub fn no_execute_taints(taints: &[Taint]) -> Vec<Taint> {
    taints
        .iter()
        .filter(|t| t.effect == NO_EXECUTE)
        .cloned()
        .collect()
}

/// Upstream `Toleration.ToleratesTaint`: effect (empty tolerates every
/// effect), key (empty key with `Exists` matches every key), then operator.
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    let effect = toleration.effect.as_deref().unwrap_or_default();
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = toleration.key.as_deref().unwrap_or_default();
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match toleration.operator.as_deref().unwrap_or_default() {
        "Exists" => true,
        "" | "Equal" => {
            toleration.value.as_deref().unwrap_or_default()
                == taint.value.as_deref().unwrap_or_default()
        }
        _ => false,
    }
}

/// Upstream `GetMatchingTolerations`: whether every taint is tolerated,
/// and the first toleration matching each taint.
pub fn matching_tolerations<'a>(
    taints: &[Taint],
    tolerations: &'a [Toleration],
) -> Option<Vec<&'a Toleration>> {
    let mut used = Vec::with_capacity(taints.len());
    for taint in taints {
        used.push(tolerations.iter().find(|t| tolerates(t, taint))?);
    }
    Some(used)
}

/// How long the used tolerations let the pod stay (upstream
/// `getMinTolerationTime`): `None` = forever, zero for no tolerations or
/// any `tolerationSeconds <= 0`.
pub fn min_toleration_time(used: &[&Toleration]) -> Option<Duration> {
    if used.is_empty() {
        return Some(Duration::ZERO);
    }
    let mut min: Option<i64> = None;
    for seconds in used.iter().filter_map(|t| t.toleration_seconds) {
        if seconds <= 0 {
            return Some(Duration::ZERO);
        }
        min = Some(min.map_or(seconds, |m| m.min(seconds)));
    }
    min.map(|s| Duration::from_secs(s.unsigned_abs()))
}

/// An eviction waiting in upstream's `TimedWorkerQueue`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scheduled {
    pub created_at: Timestamp,
    pub fire_at: Timestamp,
}

/// What to do with one pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Keep the scheduled eviction (or keep having none).
    Keep,
    /// Drop the scheduled eviction; an event says so when one existed.
    Cancel,
    /// (Re)schedule the eviction; `cancelled` when a previous one was
    /// dropped (with its event) to make room.
    Schedule { at: Scheduled, cancelled: bool },
}

/// Upstream `processPodOnNode` for a pod whose node carries
/// `taints` (NoExecute only) and which has `scheduled` pending. An empty
/// taint list means the node lost its NoExecute taints (upstream
/// `handleNodeUpdate` cancels then).
pub fn plan(
    taints: &[Taint],
    tolerations: &[Toleration],
    scheduled: Option<Scheduled>,
    now: Timestamp,
) -> Plan {
    if taints.is_empty() {
        return cancel(scheduled);
    }
    let Some(used) = matching_tolerations(taints, tolerations) else {
        // Not everything tolerated: delete right away.
        return Plan::Schedule {
            at: Scheduled {
                created_at: now,
                fire_at: now,
            },
            cancelled: scheduled.is_some(),
        };
    };
    let Some(min) = min_toleration_time(&used) else {
        return cancel(scheduled);
    };
    let trigger = add(now, min);
    match scheduled {
        // Upstream keeps a clock that started earlier, even if the
        // tolerations changed since: only a timer created at this very
        // instant is replaced.
        Some(existing) if add(existing.created_at, min) < trigger => Plan::Keep,
        Some(existing) => Plan::Schedule {
            at: Scheduled {
                created_at: existing.created_at,
                fire_at: trigger,
            },
            cancelled: true,
        },
        None => Plan::Schedule {
            at: Scheduled {
                created_at: now,
                fire_at: trigger,
            },
            cancelled: false,
        },
    }
}

fn cancel(scheduled: Option<Scheduled>) -> Plan {
    match scheduled {
        Some(_) => Plan::Cancel,
        None => Plan::Keep,
    }
}

fn add(t: Timestamp, d: Duration) -> Timestamp {
    jiff::SignedDuration::try_from(d)
        .ok()
        .and_then(|d| t.checked_add(d).ok())
        .unwrap_or(Timestamp::MAX)
}

/// How long until `at` fires (zero when due).
pub fn until(at: Timestamp, now: Timestamp) -> Duration {
    Duration::try_from(at.duration_since(now)).unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taint(key: &str, value: &str) -> Taint {
        Taint {
            key: key.into(),
            value: Some(value.into()),
            effect: NO_EXECUTE.into(),
            time_added: None,
        }
    }

    fn toleration(key: &str, op: &str, value: &str, seconds: Option<i64>) -> Toleration {
        Toleration {
            key: Some(key.into()),
            operator: Some(op.into()),
            value: Some(value.into()),
            effect: Some(NO_EXECUTE.into()),
            toleration_seconds: seconds,
        }
    }

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    #[test]
    fn toleration_matching_follows_upstream() {
        let tn = taint("k", "v");
        assert!(tolerates(&toleration("k", "Equal", "v", None), &tn));
        assert!(!tolerates(&toleration("k", "Equal", "w", None), &tn));
        assert!(tolerates(&toleration("k", "Exists", "", None), &tn));
        assert!(tolerates(&toleration("", "Exists", "", None), &tn));
        assert!(!tolerates(&toleration("other", "Exists", "", None), &tn));
        let mut no_schedule_only = toleration("k", "Exists", "", None);
        no_schedule_only.effect = Some("NoSchedule".into());
        assert!(!tolerates(&no_schedule_only, &tn));
        let mut any_effect = toleration("k", "Exists", "", None);
        any_effect.effect = None;
        assert!(tolerates(&any_effect, &tn));
    }

    /// Upstream `TestGetMinTolerationTime`.
    #[test]
    fn min_toleration_time_table() {
        let one = toleration("a", "Exists", "", Some(1));
        let two = toleration("b", "Exists", "", Some(2));
        let forever = toleration("c", "Exists", "", None);
        let negative = toleration("d", "Exists", "", Some(-2));
        assert_eq!(min_toleration_time(&[]), Some(Duration::ZERO));
        assert_eq!(
            min_toleration_time(&[&two, &one]),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            min_toleration_time(&[&forever, &two]),
            Some(Duration::from_secs(2))
        );
        assert_eq!(min_toleration_time(&[&forever]), None);
        assert_eq!(
            min_toleration_time(&[&negative, &two]),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn untolerated_taint_evicts_now() {
        let p = plan(&[taint("k", "v")], &[], None, t(100));
        let at = Scheduled {
            created_at: t(100),
            fire_at: t(100),
        };
        assert_eq!(
            p,
            Plan::Schedule {
                at,
                cancelled: false
            }
        );
    }

    #[test]
    fn toleration_seconds_delay_the_eviction() {
        let tol = [toleration("k", "Equal", "v", Some(5))];
        let p = plan(&[taint("k", "v")], &tol, None, t(100));
        let at = Scheduled {
            created_at: t(100),
            fire_at: t(105),
        };
        assert_eq!(
            p,
            Plan::Schedule {
                at,
                cancelled: false
            }
        );
        // A later look keeps the clock that is already running.
        assert_eq!(plan(&[taint("k", "v")], &tol, Some(at), t(103)), Plan::Keep);
    }

    #[test]
    fn forever_tolerated_cancels_a_scheduled_eviction() {
        let tol = [toleration("k", "Exists", "", None)];
        let at = Scheduled {
            created_at: t(100),
            fire_at: t(105),
        };
        assert_eq!(
            plan(&[taint("k", "v")], &tol, Some(at), t(101)),
            Plan::Cancel
        );
        assert_eq!(plan(&[taint("k", "v")], &tol, None, t(101)), Plan::Keep);
    }

    #[test]
    fn removed_taints_cancel() {
        let at = Scheduled {
            created_at: t(100),
            fire_at: t(105),
        };
        assert_eq!(plan(&[], &[], Some(at), t(101)), Plan::Cancel);
        assert_eq!(plan(&[], &[], None, t(101)), Plan::Keep);
    }

    #[test]
    fn a_new_untolerated_taint_replaces_the_timer() {
        let tol = [toleration("k", "Exists", "", Some(60))];
        let at = Scheduled {
            created_at: t(100),
            fire_at: t(160),
        };
        let p = plan(&[taint("k", "v"), taint("x", "y")], &tol, Some(at), t(110));
        assert_eq!(
            p,
            Plan::Schedule {
                at: Scheduled {
                    created_at: t(110),
                    fire_at: t(110)
                },
                cancelled: true
            }
        );
    }

    /// Upstream keeps the running timer when the tolerations shrink.
    #[test]
    fn a_running_timer_is_kept_when_tolerations_change() {
        let short = [toleration("k", "Exists", "", Some(10))];
        let at = Scheduled {
            created_at: t(100),
            fire_at: t(160),
        };
        assert_eq!(
            plan(&[taint("k", "v")], &short, Some(at), t(105)),
            Plan::Keep
        );
    }

    #[test]
    fn messages_match_upstream() {
        assert_eq!(
            marking_for_deletion_message("ns", "p"),
            "Marking for deletion Pod ns/p"
        );
        assert_eq!(
            cancelling_deletion_message("ns", "p"),
            "Cancelling deletion of Pod ns/p"
        );
        assert_eq!(until(t(105), t(100)), Duration::from_secs(5));
        assert_eq!(until(t(95), t(100)), Duration::ZERO);
    }
}
