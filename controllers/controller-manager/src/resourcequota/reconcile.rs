//! The pure half of the ResourceQuota controller (upstream
//! `quota.CalculateUsage`, `generic.CalculateUsageStats` and
//! `syncResourceQuota`'s decision): a quota and its namespace's objects in,
//! the status to write (if any) out.

use std::sync::Arc;
use std::time::SystemTime;

use component_base::quantity::ParsedQuantity;
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, Pod, ResourceQuota, ResourceQuotaStatus,
    ScopedResourceSelectorRequirement, Service,
};

use super::evaluator::{self, Evaluator, GroupResource, ScopeError};
use super::resources::{self, ResourceList};

/// Why part of a quota's usage could not be computed; the rest is still
/// written and the key retried.
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error("invalid quantity on {object}: {source}")]
    Quantity {
        object: String,
        source: component_base::quantity::QuantityError,
    },
    #[error(transparent)]
    Scope(#[from] ScopeError),
    #[error("usage of {0:?} is not known yet: its monitor has not synced")]
    NotSynced(GroupResource),
}

/// What the evaluators read for one namespace (upstream's listers).
pub struct NamespaceObjects<'a> {
    pub pods: Vec<Arc<Pod>>,
    pub services: Vec<Arc<Service>>,
    pub pvcs: Vec<Arc<PersistentVolumeClaim>>,
    /// Stored objects of a generically counted resource; `None` while its
    /// monitor has not listed it.
    pub count: &'a (dyn Fn(&GroupResource) -> Option<usize> + Sync),
    pub now: SystemTime,
}

/// The quota's scopes as selector requirements (upstream
/// `CalculateUsageStats`: each `spec.scopes` entry is an `Exists`
/// requirement; `scopeSelector` expressions are ANDed on).
fn scope_requirements(quota: &ResourceQuota) -> Vec<ScopedResourceSelectorRequirement> {
    let spec = quota.spec.as_ref();
    let scopes = spec
        .and_then(|s| s.scopes.as_ref())
        .into_iter()
        .flatten()
        .map(|scope| ScopedResourceSelectorRequirement {
            scope_name: scope.clone(),
            operator: "Exists".into(),
            values: None,
        });
    let selector = spec
        .and_then(|s| s.scope_selector.as_ref())
        .and_then(|s| s.match_expressions.clone())
        .into_iter()
        .flatten();
    scopes.chain(selector).collect()
}

fn all_match<T>(
    reqs: &[ScopedResourceSelectorRequirement],
    obj: &T,
    f: fn(&ScopedResourceSelectorRequirement, &T) -> Result<bool, ScopeError>,
) -> Result<bool, ScopeError> {
    for req in reqs {
        if !f(req, obj)? {
            return Ok(false);
        }
    }
    Ok(true)
}

fn parse_err(
    kind: &str,
    meta: &kube::api::ObjectMeta,
) -> impl Fn(component_base::quantity::QuantityError) -> UsageError {
    let object = format!(
        "{kind} {}/{}",
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default()
    );
    move |source| UsageError::Quantity {
        object: object.clone(),
        source,
    }
}

/// Upstream `UsageStats` of one evaluator: zero for each matched resource,
/// plus the usage of every object matching the quota's scopes.
fn usage_stats(
    evaluator: &Evaluator,
    matched: &[String],
    scopes: &[ScopedResourceSelectorRequirement],
    objects: &NamespaceObjects<'_>,
) -> Result<ResourceList, UsageError> {
    let mut used: ResourceList = matched
        .iter()
        .map(|r| (r.clone(), ParsedQuantity::zero()))
        .collect();
    match evaluator {
        Evaluator::Pods => {
            for pod in &objects.pods {
                if all_match(scopes, pod.as_ref(), evaluator::pod_matches_scope)? {
                    let usage = evaluator::pod_usage(pod, objects.now)
                        .map_err(parse_err("pod", &pod.metadata))?;
                    resources::add(&mut used, &usage);
                }
            }
        }
        // Services and object counts match no scope (upstream
        // `MatchesNoScopeFunc`): a scoped quota counts none of them.
        Evaluator::Services => {
            if scopes.is_empty() {
                for svc in &objects.services {
                    resources::add(&mut used, &evaluator::service_usage(svc));
                }
            }
        }
        Evaluator::PersistentVolumeClaims => {
            for pvc in &objects.pvcs {
                if all_match(scopes, pvc.as_ref(), evaluator::pvc_matches_scope)? {
                    let usage = evaluator::pvc_usage(pvc)
                        .map_err(parse_err("persistentvolumeclaim", &pvc.metadata))?;
                    resources::add(&mut used, &usage);
                }
            }
        }
        Evaluator::ObjectCount { resource, alias } => {
            if scopes.is_empty() {
                let n = (objects.count)(resource)
                    .ok_or_else(|| UsageError::NotSynced(resource.clone()))?;
                let n = ParsedQuantity::new(
                    i64::try_from(n).unwrap_or(i64::MAX),
                    component_base::quantity::Format::DecimalSI,
                );
                let mut usage = ResourceList::from([(resource.count_name(), n.clone())]);
                if let Some(alias) = alias {
                    usage.insert((*alias).to_string(), n);
                }
                resources::add(&mut used, &usage);
            }
        }
    }
    Ok(used)
}

/// Upstream `quota.CalculateUsage`: the usage of every hard resource some
/// evaluator computes (others are left out), plus the evaluators that failed.
pub fn calculate_usage(
    quota: &ResourceQuota,
    hard: &ResourceList,
    registry: &[Evaluator],
    objects: &NamespaceObjects<'_>,
) -> (ResourceList, Vec<UsageError>) {
    let scopes = scope_requirements(quota);
    let mut usage = ResourceList::new();
    let mut errors = Vec::new();
    let mut matched_all = Vec::new();
    for evaluator in registry {
        let matched = evaluator.matching_resources(hard.keys().map(String::as_str));
        if matched.is_empty() {
            continue;
        }
        match usage_stats(evaluator, &matched, &scopes, objects) {
            Ok(used) => resources::add(&mut usage, &used),
            Err(err) => errors.push(err),
        }
        matched_all.extend(matched);
    }
    usage.retain(|name, _| matched_all.contains(name));
    (usage, errors)
}

/// Upstream `syncResourceQuota`'s decision: `status.hard` mirrors
/// `spec.hard`; `status.used` keeps previous values for resources no
/// evaluator computed, takes the new ones, and is trimmed to the hard
/// names. Returns the status to write when anything changed.
pub fn desired_status(
    quota: &ResourceQuota,
    hard: &ResourceList,
    new_usage: ResourceList,
) -> Result<Option<ResourceQuotaStatus>, component_base::quantity::QuantityError> {
    let status = quota.status.as_ref();
    let old_hard = status.and_then(|s| s.hard.as_ref());
    let old_used = status.and_then(|s| s.used.as_ref());
    let old_hard_parsed = resources::parse_list(old_hard)?;
    let old_used_parsed = resources::parse_list(old_used)?;
    // Semantic equality: a missing and an empty list are the same.
    let hard_dirty = !resources::equals(hard, &old_hard_parsed);
    let mut used = old_used_parsed.clone();
    used.extend(new_usage);
    used.retain(|name, _| hard.contains_key(name));
    let dirty = hard_dirty
        || old_hard.is_none()
        || old_used.is_none()
        || !resources::equals(&used, &old_used_parsed);
    Ok(dirty.then(|| ResourceQuotaStatus {
        hard: Some(resources::to_api(hard)),
        used: Some(resources::to_api(&used)),
    }))
}

/// Upstream `replenishQuota`'s filter: a change to `resource` concerns the
/// quotas whose `status.hard` names something its evaluator computes.
pub fn concerns(quota: &ResourceQuota, evaluator: &Evaluator) -> bool {
    quota
        .status
        .as_ref()
        .and_then(|s| s.hard.as_ref())
        .is_some_and(|hard| {
            !evaluator
                .matching_resources(hard.keys().map(String::as_str))
                .is_empty()
        })
}
