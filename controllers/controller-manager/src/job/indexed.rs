//! Indexed completion mode (upstream `pkg/controller/job/indexed_job_utils.go`):
//! completion indexes on pods, the compressed `status.completedIndexes`
//! format, the first pending indexes, duplicate-index removal and the
//! per-index pod template.

use std::collections::BTreeSet;

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{
    Container, EnvVar, EnvVarSource, ObjectFieldSelector, Pod, PodTemplateSpec,
};

use super::reconcile::has_tracking_finalizer;
use crate::controller_utils::{pod_phase, sort_pods_for_deletion};

/// Upstream `batch.JobCompletionIndexAnnotation` (also the label's key).
pub const COMPLETION_INDEX_ANNOTATION: &str = "batch.kubernetes.io/job-completion-index";
/// Upstream `completionIndexEnvName`.
pub const COMPLETION_INDEX_ENV: &str = "JOB_COMPLETION_INDEX";
/// Upstream `names.MaxGeneratedNameLength` (63 minus the 5 random chars).
const MAX_GENERATED_NAME_LENGTH: usize = 58;

pub fn is_indexed(job: &Job) -> bool {
    job.spec.as_ref().and_then(|s| s.completion_mode.as_deref()) == Some("Indexed")
}

/// Upstream `getCompletionIndex`: the annotation's non-negative value.
pub fn completion_index(pod: &Pod) -> Option<i32> {
    let v = pod
        .metadata
        .annotations
        .as_ref()?
        .get(COMPLETION_INDEX_ANNOTATION)?;
    v.parse::<i32>().ok().filter(|i| *i >= 0)
}

/// The pod's index when it lies in `[0, completions)`.
pub fn valid_index(pod: &Pod, completions: i32) -> Option<i32> {
    completion_index(pod).filter(|i| *i < completions)
}

/// Upstream `succeededIndexesFromString`: corrupt intervals are skipped,
/// indexes at or past `completions` dropped.
pub fn parse_indexes(s: &str, completions: i32) -> BTreeSet<i32> {
    let mut out = BTreeSet::new();
    if s.is_empty() {
        return out;
    }
    for part in s.split(',') {
        let mut limits = part.split('-');
        let Some(Ok(first)) = limits.next().map(str::parse::<i32>) else {
            continue;
        };
        if first >= completions {
            break;
        }
        let last = match limits.next().map(str::parse::<i32>) {
            None => first,
            Some(Ok(last)) => last.min(completions - 1),
            Some(Err(_)) => continue,
        };
        out.extend(first..=last);
    }
    out
}

/// Upstream `orderedIntervals.String`: runs of three or more as `a-b`, a
/// pair as `a,b`.
pub fn format_indexes(set: &BTreeSet<i32>) -> String {
    let mut runs: Vec<(i32, i32)> = Vec::new();
    for &i in set {
        match runs.last_mut() {
            Some(run) if run.1 + 1 == i => run.1 = i,
            _ => runs.push((i, i)),
        }
    }
    let parts: Vec<String> = runs
        .into_iter()
        .map(|(a, b)| match b - a {
            0 => a.to_string(),
            1 => format!("{a},{b}"),
            _ => format!("{a}-{b}"),
        })
        .collect();
    parts.join(",")
}

/// Upstream `calculateSucceededIndexes`: (previous from status, previous
/// plus succeeded pods still carrying the finalizer).
pub fn succeeded_indexes(job: &Job, pods: &[&Pod]) -> (BTreeSet<i32>, BTreeSet<i32>) {
    let completions = super::reconcile::completions(job).unwrap_or(0);
    let status = job
        .status
        .as_ref()
        .and_then(|s| s.completed_indexes.as_deref());
    let prev = parse_indexes(status.unwrap_or_default(), completions);
    let mut all = prev.clone();
    all.extend(
        pods.iter()
            .filter(|p| pod_phase(p) == "Succeeded" && has_tracking_finalizer(p))
            .filter_map(|p| valid_index(p, completions)),
    );
    (prev, all)
}

/// Upstream `firstPendingIndexes`: up to `count` indexes below
/// `completions` neither succeeded nor held by an active pod.
pub fn first_pending(
    active: &[&Pod],
    succeeded: &BTreeSet<i32>,
    count: usize,
    completions: i32,
) -> Vec<i32> {
    let taken: BTreeSet<i32> = active.iter().filter_map(|p| completion_index(p)).collect();
    (0..completions)
        .filter(|i| !succeeded.contains(i) && !taken.contains(i))
        .take(count)
        .collect()
}

/// Upstream `activePodsForRemoval` for Indexed Jobs: pods without a valid
/// index, all but the most advanced pod of a repeated index, then the
/// earliest-stage pods until `rm_at_least`.
pub fn for_removal<'a>(
    active: &[&'a Pod],
    completions: i32,
    rm_at_least: usize,
    now: Timestamp,
) -> Vec<&'a Pod> {
    let mut rm: Vec<&Pod> = Vec::new();
    let mut left: Vec<&Pod> = Vec::new();
    let mut by_index: std::collections::BTreeMap<i32, Vec<&Pod>> = Default::default();
    for p in active {
        match valid_index(p, completions) {
            Some(i) => by_index.entry(i).or_default().push(p),
            None => rm.push(p),
        }
    }
    for (_, pods) in by_index {
        let mut ranked: Vec<(&Pod, usize)> = pods.into_iter().map(|p| (p, 0)).collect();
        sort_pods_for_deletion(&mut ranked, now);
        let keep = ranked.pop();
        rm.extend(ranked.into_iter().map(|(p, _)| p));
        left.extend(keep.map(|(p, _)| p));
    }
    if rm.len() < rm_at_least {
        let mut ranked: Vec<(&Pod, usize)> = left.into_iter().map(|p| (p, 0)).collect();
        sort_pods_for_deletion(&mut ranked, now);
        let more = rm_at_least - rm.len();
        rm.extend(ranked.into_iter().take(more).map(|(p, _)| p));
    }
    rm
}

/// Upstream `podGenerateNameWithIndex` without the trailing dash (the pod
/// control appends it): `<job>-<index>`, the job name cut to fit.
pub fn name_prefix(job_name: &str, index: i32) -> String {
    let append = format!("-{index}-");
    let full = format!("{job_name}{append}");
    let prefix = if full.len() > MAX_GENERATED_NAME_LENGTH {
        let keep = MAX_GENERATED_NAME_LENGTH.saturating_sub(append.len());
        format!("{}{append}", &full[..keep.min(job_name.len())])
    } else {
        full
    };
    prefix.trim_end_matches('-').to_string()
}

/// The template of one index: annotation and label, hostname
/// `<job>-<index>`, `JOB_COMPLETION_INDEX` in every container (from the
/// label through the downward API, as upstream with PodIndexLabel).
pub fn template_for_index(
    template: &PodTemplateSpec,
    job_name: &str,
    index: i32,
) -> PodTemplateSpec {
    let mut t = template.clone();
    let meta = t.metadata.get_or_insert_with(Default::default);
    let value = index.to_string();
    meta.annotations
        .get_or_insert_with(Default::default)
        .insert(COMPLETION_INDEX_ANNOTATION.into(), value.clone());
    meta.labels
        .get_or_insert_with(Default::default)
        .insert(COMPLETION_INDEX_ANNOTATION.into(), value);
    if let Some(spec) = t.spec.as_mut() {
        spec.hostname = Some(format!("{job_name}-{index}"));
        for c in spec.init_containers.iter_mut().flatten() {
            add_index_env(c);
        }
        for c in spec.containers.iter_mut() {
            add_index_env(c);
        }
    }
    t
}

fn add_index_env(c: &mut Container) {
    let env = c.env.get_or_insert_with(Vec::new);
    if env.iter().any(|e| e.name == COMPLETION_INDEX_ENV) {
        return;
    }
    env.push(EnvVar {
        name: COMPLETION_INDEX_ENV.into(),
        value: None,
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                api_version: None,
                field_path: format!("metadata.labels['{COMPLETION_INDEX_ANNOTATION}']"),
            }),
            ..Default::default()
        }),
    });
}

/// Upstream `matchSuccessPolicy`: the message of the first rule the
/// succeeded indexes satisfy.
pub fn match_success_policy(job: &Job, succeeded: &BTreeSet<i32>) -> Option<String> {
    let policy = job.spec.as_ref()?.success_policy.as_ref()?;
    if succeeded.is_empty() {
        return None;
    }
    let completions = super::reconcile::completions(job).unwrap_or(0);
    for (i, rule) in policy.rules.iter().enumerate() {
        let met = match (&rule.succeeded_indexes, rule.succeeded_count) {
            (Some(indexes), count) => {
                let required = parse_indexes(indexes, completions);
                if required.is_empty() {
                    continue;
                }
                let overlap = required.intersection(succeeded).count();
                match count {
                    Some(c) => overlap >= c.max(0) as usize,
                    None => overlap == required.len(),
                }
            }
            (None, Some(c)) => succeeded.len() >= c.max(0) as usize,
            (None, None) => false,
        };
        if met {
            return Some(format!("Matched rules at index {i}"));
        }
    }
    None
}
