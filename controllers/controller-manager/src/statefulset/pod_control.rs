//! Pod and claim writes of the StatefulSet controller (upstream
//! `stateful_pod_control.go` `StatefulPodControl`), with upstream's event
//! reasons and messages, and the PVC retention policy expressed as owner
//! references on the claims (upstream `updateClaimOwnerRefForSetAndPod`).

use std::sync::Arc;

use futures::future::BoxFuture;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource as _, ResourceExt};

use super::control::StatefulPodOps;
use super::utils::*;
use crate::control::ObjectControl;
use crate::error::Error;
use crate::events::{EventSink, EventSpec};

/// [`StatefulPodOps`] against the apiserver, reading claims from the cache.
pub struct KubeStatefulPodControl {
    pub pods: Arc<dyn ObjectControl<Pod>>,
    pub claims: Arc<dyn ObjectControl<PersistentVolumeClaim>>,
    pub claim_store: Store<PersistentVolumeClaim>,
    pub events: EventSink,
}

fn policy(set: &StatefulSet) -> (String, String) {
    let p = set
        .spec
        .as_ref()
        .and_then(|s| s.persistent_volume_claim_retention_policy.as_ref());
    let get = |v: Option<&String>| v.cloned().unwrap_or_else(|| "Retain".into());
    (
        get(p.and_then(|p| p.when_deleted.as_ref())),
        get(p.and_then(|p| p.when_scaled.as_ref())),
    )
}

fn has_owner_ref(meta: &ObjectMeta, uid: &str) -> bool {
    meta.owner_references.iter().flatten().any(|r| r.uid == uid)
}

fn set_owner_ref(meta: &mut ObjectMeta, api_version: &str, kind: &str, owner: &ObjectMeta) -> bool {
    let uid = owner.uid.clone().unwrap_or_default();
    if has_owner_ref(meta, &uid) {
        return false;
    }
    meta.owner_references
        .get_or_insert_with(Vec::new)
        .push(OwnerReference {
            api_version: api_version.into(),
            kind: kind.into(),
            name: owner.name.clone().unwrap_or_default(),
            uid,
            ..Default::default()
        });
    true
}

fn remove_owner_ref(meta: &mut ObjectMeta, owner: &ObjectMeta) -> bool {
    let uid = owner.uid.as_deref().unwrap_or_default();
    let Some(refs) = meta.owner_references.as_mut() else {
        return false;
    };
    let before = refs.len();
    refs.retain(|r| r.uid != uid);
    refs.len() != before
}

/// Upstream `updateClaimOwnerRefForSetAndPod`: which of the set and the
/// pod own the claim under the retention policy; true when it changed.
pub fn update_claim_owner_refs(
    claim: &mut PersistentVolumeClaim,
    set: &StatefulSet,
    pod: &Pod,
) -> bool {
    let (when_deleted, when_scaled) = policy(set);
    let meta = &mut claim.metadata;
    let scaled_down = !in_ordinal_range(pod, set);
    let mut changed = false;
    let (set_owns, pod_owns) = match (when_scaled.as_str(), when_deleted.as_str()) {
        ("Delete", "Retain") => (false, scaled_down),
        ("Delete", "Delete") => (!scaled_down, scaled_down),
        ("Retain", "Delete") => (true, false),
        // Retain/Retain, and anything unknown is treated as Retain.
        _ => (false, false),
    };
    if set_owns {
        changed |= set_owner_ref(meta, "apps/v1", "StatefulSet", &set.metadata);
    } else {
        changed |= remove_owner_ref(meta, &set.metadata);
    }
    if pod_owns {
        changed |= set_owner_ref(meta, "v1", "Pod", &pod.metadata);
    } else {
        changed |= remove_owner_ref(meta, &pod.metadata);
    }
    changed
}

/// Upstream `hasStaleOwnerRef`: owned by a pod of this name but another UID.
fn has_stale_pod_ref(claim: &PersistentVolumeClaim, pod: &Pod) -> bool {
    claim.metadata.owner_references.iter().flatten().any(|r| {
        r.kind == "Pod"
            && Some(&r.name) == pod.metadata.name.as_ref()
            && Some(&r.uid) != pod.metadata.uid.as_ref()
    })
}

impl KubeStatefulPodControl {
    fn cached_claim(&self, claim: &PersistentVolumeClaim) -> Option<Arc<PersistentVolumeClaim>> {
        let ns = claim.metadata.namespace.as_deref().unwrap_or_default();
        self.claim_store
            .get(&ObjectRef::new(&claim.name_any()).within(ns))
    }

    fn event(&self, set: &StatefulSet, spec: EventSpec) {
        self.events.publish(&set.object_ref(&()), &spec);
    }

    /// Upstream `recordPodEvent`.
    fn pod_event(&self, verb: &str, set: &StatefulSet, pod: &Pod, err: Option<&Error>) {
        let (set_name, pod_name) = (set.name_any(), pod.name_any());
        let reason = format!(
            "{}{}",
            if err.is_some() {
                "Failed"
            } else {
                "Successful"
            },
            capitalize(verb)
        );
        let spec = match err {
            None => EventSpec::normal(
                &reason,
                format!("{verb} Pod {pod_name} in StatefulSet {set_name} successful"),
            ),
            Some(err) => EventSpec::warning(
                &reason,
                format!(
                    "{verb} Pod {pod_name} in StatefulSet {set_name} failed error: {}",
                    err.api_message()
                ),
            ),
        };
        self.event(set, spec);
    }

    /// Upstream `recordClaimEvent`.
    fn claim_event(
        &self,
        verb: &str,
        set: &StatefulSet,
        pod: &Pod,
        claim: &PersistentVolumeClaim,
        err: Option<&Error>,
    ) {
        let (set_name, pod_name, claim_name) = (set.name_any(), pod.name_any(), claim.name_any());
        let reason = format!(
            "{}{}",
            if err.is_some() {
                "Failed"
            } else {
                "Successful"
            },
            capitalize(verb)
        );
        let spec = match err {
            None => EventSpec::normal(
                &reason,
                format!(
                    "{verb} Claim {claim_name} Pod {pod_name} in StatefulSet {set_name} success"
                ),
            ),
            Some(err) => EventSpec::warning(
                &reason,
                format!(
                    "{verb} Claim {claim_name} for Pod {pod_name} in StatefulSet {set_name} failed error: {}",
                    err.api_message()
                ),
            ),
        };
        self.event(set, spec);
    }

    /// Upstream `createPersistentVolumeClaims` / `createMissingPersistentVolumeClaims`.
    async fn create_claims(&self, set: &StatefulSet, pod: &Pod) -> Result<(), Error> {
        let mut errors = Vec::new();
        for (_, mut claim) in claims_for(set, pod) {
            match self.cached_claim(&claim) {
                None => {
                    update_claim_owner_refs(&mut claim, set, pod);
                    let ns = claim.namespace().unwrap_or_default();
                    match self.claims.create(&ns, &claim).await {
                        Ok(_) => self.claim_event("create", set, pod, &claim, None),
                        Err(err) if err.is_already_exists() => {}
                        Err(err) => {
                            self.claim_event("create", set, pod, &claim, Some(&err));
                            errors.push(format!(
                                "failed to create PVC {}: {}",
                                claim.name_any(),
                                err.api_message()
                            ));
                        }
                    }
                }
                Some(existing) if existing.metadata.deletion_timestamp.is_some() => {
                    errors.push(format!("pvc {} is being deleted", claim.name_any()));
                }
                Some(_) => {}
            }
        }
        match errors.len() {
            0 => Ok(()),
            count => Err(Error::Multiple {
                count,
                first: errors.remove(0),
            }),
        }
    }
}

fn capitalize(verb: &str) -> String {
    let mut chars = verb.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

impl StatefulPodOps for KubeStatefulPodControl {
    fn create_stateful_pod<'a>(
        &'a self,
        set: &'a StatefulSet,
        pod: &'a Pod,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            self.create_claims(set, pod).await?;
            let ns = set.namespace().unwrap_or_default();
            match self.pods.create(&ns, pod).await {
                Ok(_) => {
                    self.pod_event("create", set, pod, None);
                    Ok(())
                }
                // Already there: the cache will show it.
                Err(err) if err.is_already_exists() => Err(err),
                Err(err) => {
                    self.pod_event("create", set, pod, Some(&err));
                    Err(err)
                }
            }
        })
    }

    fn update_stateful_pod<'a>(
        &'a self,
        set: &'a StatefulSet,
        pod: &'a Pod,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let ns = set.namespace().unwrap_or_default();
            let mut pod = pod.clone();
            for attempt in 0..5 {
                let mut consistent = true;
                if !identity_matches(set, &pod) {
                    update_identity(set, &mut pod);
                    consistent = false;
                }
                if !storage_matches(set, &pod) {
                    update_storage(set, &mut pod);
                    consistent = false;
                    self.create_claims(set, &pod).await?;
                }
                if !self.claims_match_retention_policy(set, &pod)? {
                    self.update_claims_for_retention_policy(set, &pod).await?;
                }
                if consistent {
                    return Ok(());
                }
                match self.pods.update(&ns, &pod).await {
                    Ok(_) => {
                        self.pod_event("update", set, &pod, None);
                        return Ok(());
                    }
                    Err(err) if err.is_conflict() && attempt < 4 => {
                        pod = self.pods.get(&ns, &pod.name_any()).await?;
                    }
                    Err(err) => {
                        self.pod_event("update", set, &pod, Some(&err));
                        return Err(err);
                    }
                }
            }
            Ok(())
        })
    }

    fn delete_stateful_pod<'a>(
        &'a self,
        set: &'a StatefulSet,
        pod: &'a Pod,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let ns = set.namespace().unwrap_or_default();
            match self.pods.delete(&ns, &pod.name_any()).await {
                Ok(()) => {
                    self.pod_event("delete", set, pod, None);
                    Ok(())
                }
                Err(err) => {
                    self.pod_event("delete", set, pod, Some(&err));
                    Err(err)
                }
            }
        })
    }

    fn create_missing_claims<'a>(
        &'a self,
        set: &'a StatefulSet,
        pod: &'a Pod,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(self.create_claims(set, pod))
    }

    fn claims_match_retention_policy(&self, set: &StatefulSet, pod: &Pod) -> Result<bool, Error> {
        for (_, claim) in claims_for(set, pod) {
            if let Some(existing) = self.cached_claim(&claim) {
                let mut copy = existing.as_ref().clone();
                if update_claim_owner_refs(&mut copy, set, pod) {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    fn update_claims_for_retention_policy<'a>(
        &'a self,
        set: &'a StatefulSet,
        pod: &'a Pod,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            for (_, claim) in claims_for(set, pod) {
                let Some(existing) = self.cached_claim(&claim) else {
                    continue;
                };
                let mut updated = existing.as_ref().clone();
                if update_claim_owner_refs(&mut updated, set, pod) {
                    let ns = updated.namespace().unwrap_or_default();
                    if let Err(err) = self.claims.update(&ns, &updated).await
                        && !err.is_not_found()
                    {
                        return Err(err);
                    }
                }
            }
            Ok(())
        })
    }

    fn pod_claim_is_stale(&self, set: &StatefulSet, pod: &Pod) -> Result<bool, Error> {
        if policy(set).1 == "Retain" {
            return Ok(false);
        }
        Ok(claims_for(set, pod)
            .iter()
            .filter_map(|(_, claim)| self.cached_claim(claim))
            .any(|claim| has_stale_pod_ref(&claim, pod)))
    }

    fn record(&self, set: &StatefulSet, warning: bool, reason: &str, message: String) {
        let spec = if warning {
            EventSpec::warning(reason, message)
        } else {
            EventSpec::normal(reason, message)
        };
        self.event(set, spec);
    }
}
