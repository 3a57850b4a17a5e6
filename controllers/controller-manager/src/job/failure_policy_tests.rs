//! Cases from upstream `pod_failure_policy_test.go`
//! (`TestMatchPodFailurePolicy`) and the policy's effect on the counters.

use std::collections::BTreeSet;

use k8s_openapi::api::batch::v1::{
    Job, JobSpec, PodFailurePolicy, PodFailurePolicyOnExitCodesRequirement,
    PodFailurePolicyOnPodConditionsPattern, PodFailurePolicyRule,
};
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateTerminated, ContainerStatus, Pod, PodCondition, PodStatus,
    PodTemplateSpec,
};

use super::failure_policy::*;
use super::reconcile::{self, JOB_TRACKING_FINALIZER};

fn exit_rule(action: &str, op: &str, values: Vec<i32>) -> PodFailurePolicyRule {
    PodFailurePolicyRule {
        action: action.into(),
        on_exit_codes: Some(PodFailurePolicyOnExitCodesRequirement {
            container_name: None,
            operator: op.into(),
            values,
        }),
        on_pod_conditions: None,
    }
}

fn condition_rule(action: &str, type_: &str) -> PodFailurePolicyRule {
    PodFailurePolicyRule {
        action: action.into(),
        on_exit_codes: None,
        on_pod_conditions: Some(vec![PodFailurePolicyOnPodConditionsPattern {
            type_: type_.into(),
            status: Some("True".into()),
        }]),
    }
}

fn job(rules: Vec<PodFailurePolicyRule>) -> Job {
    let mut job = Job::default();
    job.metadata.name = Some("job".into());
    job.spec = Some(JobSpec {
        backoff_limit: Some(0),
        pod_failure_policy: Some(PodFailurePolicy { rules }),
        template: PodTemplateSpec::default(),
        ..Default::default()
    });
    job
}

fn failed_pod(exit_code: i32, condition: Option<&str>) -> Pod {
    let mut pod = Pod::default();
    pod.metadata.name = Some("mypod".into());
    pod.metadata.namespace = Some("default".into());
    pod.metadata.uid = Some("mypod".into());
    pod.metadata.finalizers = Some(vec![JOB_TRACKING_FINALIZER.into()]);
    pod.status = Some(PodStatus {
        phase: Some("Failed".into()),
        container_statuses: Some(vec![ContainerStatus {
            name: "main-container".into(),
            state: Some(ContainerState {
                terminated: Some(ContainerStateTerminated {
                    exit_code,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }]),
        conditions: condition.map(|c| {
            vec![PodCondition {
                type_: c.into(),
                status: "True".into(),
                ..Default::default()
            }]
        }),
        ..Default::default()
    });
    pod
}

#[test]
fn match_pod_failure_policy_cases() {
    let fail_on_42 = job(vec![exit_rule("FailJob", "In", vec![42])]);
    let m = match_pod(&fail_on_42, &failed_pod(42, None));
    assert_eq!(
        m.fail_job_message.as_deref(),
        Some(
            "Container main-container for pod default/mypod failed with exit code 42 matching FailJob rule at index 0"
        )
    );
    assert!(m.count_failed);
    assert_eq!(match_pod(&fail_on_42, &failed_pod(5, None)).action, None);

    let not_in = job(vec![exit_rule("Count", "NotIn", vec![1, 2])]);
    assert_eq!(
        match_pod(&not_in, &failed_pod(3, None)).action.as_deref(),
        Some("Count")
    );
    assert_eq!(match_pod(&not_in, &failed_pod(2, None)).action, None);
    assert_eq!(
        match_pod(&not_in, &failed_pod(0, None)).action,
        None,
        "zero never matches"
    );

    let ignore_disruption = job(vec![condition_rule("Ignore", "DisruptionTarget")]);
    let m = match_pod(
        &ignore_disruption,
        &failed_pod(137, Some("DisruptionTarget")),
    );
    assert!(!m.count_failed);
    assert_eq!(m.action.as_deref(), Some("Ignore"));

    let fail_on_condition = job(vec![
        exit_rule("Ignore", "In", vec![1]),
        condition_rule("FailJob", "DisruptionTarget"),
    ]);
    let m = match_pod(&fail_on_condition, &failed_pod(2, Some("DisruptionTarget")));
    assert_eq!(
        m.fail_job_message.as_deref(),
        Some("Pod default/mypod has condition DisruptionTarget matching FailJob rule at index 1")
    );
    let m = match_pod(&fail_on_condition, &failed_pod(1, Some("DisruptionTarget")));
    assert!(!m.count_failed, "the first matching rule decides");
}

#[test]
fn fail_job_rule_makes_the_failure_target() {
    let j = job(vec![exit_rule("FailJob", "In", vec![42])]);
    let pod = failed_pod(42, None);
    let refs = [&pod];
    let counts = reconcile::count(&j, &refs, &BTreeSet::new());
    let cond =
        reconcile::failure_or_success_target(&j, &refs, &counts, jiff::Timestamp::UNIX_EPOCH);
    assert_eq!(
        cond.as_ref().map(|c| c.type_.as_str()),
        Some("FailureTarget")
    );
    assert_eq!(
        cond.and_then(|c| c.reason).as_deref(),
        Some(REASON_POD_FAILURE_POLICY)
    );
}

#[test]
fn ignored_failures_do_not_count_against_backoff_limit() {
    let j = job(vec![condition_rule("Ignore", "DisruptionTarget")]);
    let pod = failed_pod(137, Some("DisruptionTarget"));
    let refs = [&pod];
    let counts = reconcile::count(&j, &refs, &BTreeSet::new());
    assert_eq!(counts.failed, 0);
    let none =
        reconcile::failure_or_success_target(&j, &refs, &counts, jiff::Timestamp::UNIX_EPOCH);
    assert!(none.is_none(), "backoffLimit 0 is not exceeded");
    let mut status = Default::default();
    let t = super::accounting::track_uncounted(
        &j,
        &mut status,
        &refs,
        &BTreeSet::new(),
        None,
        &BTreeSet::new(),
        &BTreeSet::new(),
    );
    assert_eq!(t.remove_finalizer.len(), 1, "the finalizer still goes");
    assert_eq!(
        status.uncounted_terminated_pods.and_then(|u| u.failed),
        None
    );
}
