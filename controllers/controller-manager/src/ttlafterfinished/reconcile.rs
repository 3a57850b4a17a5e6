//! Pure TTL arithmetic of upstream `ttlafterfinished_controller.go`
//! (`needsCleanup`, `jobFinishTime`, `timeLeft`).

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::batch::v1::Job;
use kube::ResourceExt;

/// Why a finished Job's expiry cannot be computed (upstream's messages).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TtlError {
    #[error("unable to find the time when the Job {0} finished")]
    NoFinishTime(String),
    #[error("unable to find the status of the finished Job {0}")]
    NotFinished(String),
}

/// What to do with a Job now.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// No TTL, not finished, or already being deleted.
    Ignore,
    /// Expired at that time: delete it.
    Expired(Timestamp),
    /// Look again after this long.
    After(std::time::Duration),
}

/// Upstream `needsCleanup`: a TTL is set and the Job finished.
pub fn needs_cleanup(job: &Job) -> bool {
    ttl(job).is_some() && finish_time_condition(job).is_some()
}

fn ttl(job: &Job) -> Option<i32> {
    job.spec.as_ref()?.ttl_seconds_after_finished
}

fn finish_time_condition(job: &Job) -> Option<Option<Timestamp>> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
        .map(|c| c.last_transition_time.as_ref().map(|t| t.0))
}

/// Upstream `processTTL` without the enqueue: expired, wait, or ignore.
pub fn verdict(job: &Job, now: Timestamp) -> Result<Verdict, TtlError> {
    let name = || format!("{}/{}", job.namespace().unwrap_or_default(), job.name_any());
    if job.metadata.deletion_timestamp.is_some() {
        return Ok(Verdict::Ignore);
    }
    let (Some(ttl), Some(finish)) = (ttl(job), finish_time_condition(job)) else {
        return Ok(Verdict::Ignore);
    };
    let finish = finish.ok_or_else(|| TtlError::NoFinishTime(name()))?;
    if finish > now {
        tracing::info!(job = %name(), "Warning: Found Job finished in the future. This is likely due to time skew in the cluster. Job cleanup will be deferred.");
    }
    let expire = finish + SignedDuration::from_secs(i64::from(ttl));
    let remaining = expire.duration_since(now);
    if remaining <= SignedDuration::ZERO {
        return Ok(Verdict::Expired(expire));
    }
    match std::time::Duration::try_from(remaining) {
        Ok(after) => Ok(Verdict::After(after)),
        Err(_) => Err(TtlError::NotFinished(name())),
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::batch::v1::{JobCondition, JobSpec, JobStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;

    fn ts(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap()
    }

    fn job(ttl: Option<i32>, finished: Option<(&str, Option<i64>)>) -> Job {
        let mut job = Job::default();
        job.metadata.name = Some("j".into());
        job.metadata.namespace = Some("ns".into());
        job.spec = Some(JobSpec {
            ttl_seconds_after_finished: ttl,
            ..Default::default()
        });
        job.status = finished.map(|(kind, at)| JobStatus {
            conditions: Some(vec![JobCondition {
                type_: kind.into(),
                status: "True".into(),
                last_transition_time: at.map(|s| Time(ts(s))),
                ..Default::default()
            }]),
            ..Default::default()
        });
        job
    }

    /// Upstream `TestTimeLeft` and `needsCleanup` cases.
    #[test]
    fn verdicts() {
        let now = 1000;
        let cases = [
            (
                "no TTL",
                job(None, Some(("Complete", Some(900)))),
                Ok(Verdict::Ignore),
            ),
            ("unfinished", job(Some(10), None), Ok(Verdict::Ignore)),
            (
                "Complete, not expired",
                job(Some(200), Some(("Complete", Some(900)))),
                Ok(Verdict::After(std::time::Duration::from_secs(100))),
            ),
            (
                "Failed, expired",
                job(Some(50), Some(("Failed", Some(900)))),
                Ok(Verdict::Expired(ts(950))),
            ),
            (
                "TTL 0",
                job(Some(0), Some(("Complete", Some(1000)))),
                Ok(Verdict::Expired(ts(1000))),
            ),
            (
                "finished in the future",
                job(Some(0), Some(("Complete", Some(1010)))),
                Ok(Verdict::After(std::time::Duration::from_secs(10))),
            ),
            (
                "no finish time",
                job(Some(0), Some(("Complete", None))),
                Err(TtlError::NoFinishTime("ns/j".into())),
            ),
        ];
        for (name, job, want) in cases {
            assert_eq!(verdict(&job, ts(now)), want, "{name}");
        }
        let mut deleting = job(Some(0), Some(("Complete", Some(900))));
        deleting.metadata.deletion_timestamp = Some(Time(ts(999)));
        assert_eq!(verdict(&deleting, ts(now)), Ok(Verdict::Ignore));
        assert!(needs_cleanup(&job(Some(0), Some(("Failed", Some(1))))));
        assert!(!needs_cleanup(&job(Some(0), None)));
    }
}
