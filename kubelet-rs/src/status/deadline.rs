//! `activeDeadlineSeconds` (upstream `pkg/kubelet/active_deadline.go`): a pod active on
//! the node longer than its deadline is failed with reason `DeadlineExceeded`. The
//! deadline counts from `status.startTime` and follows updates to the spec field.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;

/// `status.reason` (and event reason) of a pod failed by its deadline.
pub const DEADLINE_EXCEEDED: &str = "DeadlineExceeded";
pub const DEADLINE_EXCEEDED_MESSAGE: &str =
    "Pod was active on the node longer than the specified deadline";

/// Time left before the pod's deadline: `None` without a deadline or a start time,
/// zero once it has passed (upstream `pastActiveDeadline`: elapsed >= allowed).
pub fn time_left(pod: &Pod, now: Timestamp) -> Option<Duration> {
    let seconds = pod.spec.as_ref()?.active_deadline_seconds?;
    let start = pod.status.as_ref()?.start_time.as_ref()?.0;
    let allowed = Duration::from_secs(seconds.max(0) as u64);
    let elapsed = if now < start {
        Duration::ZERO
    } else {
        now.duration_since(start).unsigned_abs()
    };
    Some(allowed.saturating_sub(elapsed))
}

/// Whether the pod has been active longer than `activeDeadlineSeconds`.
pub fn past_active_deadline(pod: &Pod, now: Timestamp) -> bool {
    time_left(pod, now).is_some_and(|left| left.is_zero())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn pod(deadline: Option<i64>, start: Option<i64>) -> Pod {
        Pod {
            spec: Some(PodSpec {
                active_deadline_seconds: deadline,
                ..Default::default()
            }),
            status: Some(PodStatus {
                start_time: start.map(|s| Time(Timestamp::from_second(s).expect("ts"))),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn deadline_counts_from_start_time() {
        let now = Timestamp::from_second(1000).expect("ts");
        assert!(!past_active_deadline(&pod(None, Some(0)), now));
        assert!(!past_active_deadline(&pod(Some(5), None), now));
        assert!(past_active_deadline(&pod(Some(5), Some(995)), now));
        assert!(past_active_deadline(&pod(Some(5), Some(990)), now));
        assert!(!past_active_deadline(&pod(Some(5), Some(996)), now));
        assert_eq!(
            time_left(&pod(Some(30), Some(990)), now),
            Some(Duration::from_secs(20))
        );
        // A start time in the future (clock skew) leaves the whole deadline.
        assert_eq!(
            time_left(&pod(Some(30), Some(2000)), now),
            Some(Duration::from_secs(30))
        );
    }
}
