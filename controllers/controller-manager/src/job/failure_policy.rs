//! `spec.podFailurePolicy` (upstream `pkg/controller/job/pod_failure_policy.go`):
//! which rule a failed pod matches, by container exit codes or pod
//! conditions (e.g. `DisruptionTarget`), and what that does to the Job.

use k8s_openapi::api::batch::v1::{
    Job, PodFailurePolicyOnExitCodesRequirement, PodFailurePolicyOnPodConditionsPattern,
};
use k8s_openapi::api::core::v1::{ContainerStatus, Pod, PodCondition};

/// Upstream `batch.JobReasonPodFailurePolicy`.
pub const REASON_POD_FAILURE_POLICY: &str = "PodFailurePolicy";

/// The outcome of matching one failed pod (upstream's
/// `(jobFailureMessage, countFailed, action)`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Matched {
    /// Set when a `FailJob` rule matched.
    pub fail_job_message: Option<String>,
    /// False when an `Ignore` rule matched: not counted against backoffLimit.
    pub count_failed: bool,
    pub action: Option<String>,
}

impl Matched {
    fn none() -> Self {
        Matched {
            fail_job_message: None,
            count_failed: true,
            action: None,
        }
    }
}

/// Upstream `matchPodFailurePolicy`: the first matching rule decides.
pub fn match_pod(job: &Job, pod: &Pod) -> Matched {
    let Some(policy) = job
        .spec
        .as_ref()
        .and_then(|s| s.pod_failure_policy.as_ref())
    else {
        return Matched::none();
    };
    let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let status = pod.status.clone().unwrap_or_default();
    for (index, rule) in policy.rules.iter().enumerate() {
        let message = if let Some(req) = &rule.on_exit_codes {
            let Some((container, code)) = match_exit_codes(&status, req) else {
                continue;
            };
            format!(
                "Container {container} for pod {ns}/{name} failed with exit code {code} matching {} rule at index {index}",
                rule.action
            )
        } else if let Some(patterns) = &rule.on_pod_conditions {
            let Some(cond) =
                match_conditions(status.conditions.as_deref().unwrap_or_default(), patterns)
            else {
                continue;
            };
            format!(
                "Pod {ns}/{name} has condition {} matching {} rule at index {index}",
                cond.type_, rule.action
            )
        } else {
            continue;
        };
        let action = Some(rule.action.clone());
        return match rule.action.as_str() {
            "Ignore" => Matched {
                fail_job_message: None,
                count_failed: false,
                action,
            },
            "FailJob" => Matched {
                fail_job_message: Some(message),
                count_failed: true,
                action,
            },
            // Count, and FailIndex (which only acts with backoffLimitPerIndex).
            _ => Matched {
                fail_job_message: None,
                count_failed: true,
                action,
            },
        };
    }
    Matched::none()
}

/// Upstream `matchOnExitCodes`: app containers first, then init
/// containers; a zero exit code never matches.
fn match_exit_codes(
    status: &k8s_openapi::api::core::v1::PodStatus,
    req: &PodFailurePolicyOnExitCodesRequirement,
) -> Option<(String, i32)> {
    let first = |list: Option<&Vec<ContainerStatus>>| {
        list.into_iter().flatten().find_map(|c| {
            let code = c.state.as_ref()?.terminated.as_ref()?.exit_code;
            let name_ok = req.container_name.as_ref().is_none_or(|n| *n == c.name);
            (name_ok && code != 0 && operator_matches(code, req)).then(|| (c.name.clone(), code))
        })
    };
    first(status.container_statuses.as_ref())
        .or_else(|| first(status.init_container_statuses.as_ref()))
}

fn operator_matches(code: i32, req: &PodFailurePolicyOnExitCodesRequirement) -> bool {
    match req.operator.as_str() {
        "In" => req.values.contains(&code),
        "NotIn" => !req.values.contains(&code),
        _ => false,
    }
}

/// Upstream `matchOnPodConditions`. The pattern status defaults to True.
fn match_conditions<'a>(
    conditions: &'a [PodCondition],
    patterns: &[PodFailurePolicyOnPodConditionsPattern],
) -> Option<&'a PodCondition> {
    conditions.iter().find(|c| {
        patterns
            .iter()
            .any(|p| p.type_ == c.type_ && p.status.as_deref().unwrap_or("True") == c.status)
    })
}

/// Upstream `getFailJobMessage`: the message of the first failed pod
/// matching a `FailJob` rule.
pub fn fail_job_message(job: &Job, pods: &[&Pod]) -> Option<String> {
    job.spec.as_ref()?.pod_failure_policy.as_ref()?;
    pods.iter()
        .filter(|p| super::reconcile::is_pod_failed(p, job))
        .find_map(|p| match_pod(job, p).fail_job_message)
}

/// Whether a failed pod counts against backoffLimit.
pub fn counts_as_failed(job: &Job, pod: &Pod) -> bool {
    match_pod(job, pod).count_failed
}
