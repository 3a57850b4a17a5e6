//! The finalizer decision shared by the storage protection controllers
//! (upstream `pkg/util/protectionutil`): a live object gets the finalizer,
//! a deleted one loses it once nothing uses it.

use kube::Resource;
use kube::api::{Api, ObjectMeta, PostParams};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Error;

/// What a protection controller does to one object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinalizerAction {
    Add,
    Remove,
    Keep,
}

fn has(meta: &ObjectMeta, finalizer: &str) -> bool {
    meta.finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|x| x == finalizer))
}

/// Upstream `IsDeletionCandidate`: being deleted and still holding `finalizer`.
pub fn is_deletion_candidate(meta: &ObjectMeta, finalizer: &str) -> bool {
    meta.deletion_timestamp.is_some() && has(meta, finalizer)
}

/// Upstream `NeedToAddFinalizer`: live and missing `finalizer`.
pub fn need_to_add_finalizer(meta: &ObjectMeta, finalizer: &str) -> bool {
    meta.deletion_timestamp.is_none() && !has(meta, finalizer)
}

/// Upstream `processPVC`/`processPV`/`processVAC`: `in_use` is asked only
/// for a deletion candidate.
pub fn decide(
    meta: &ObjectMeta,
    finalizer: &str,
    in_use: impl FnOnce() -> bool,
) -> FinalizerAction {
    if is_deletion_candidate(meta, finalizer) {
        return if in_use() {
            FinalizerAction::Keep
        } else {
            FinalizerAction::Remove
        };
    }
    if need_to_add_finalizer(meta, finalizer) {
        return FinalizerAction::Add;
    }
    FinalizerAction::Keep
}

/// `meta`'s finalizers after `action` (appended, or every copy removed).
pub fn apply(meta: &ObjectMeta, finalizer: &str, action: FinalizerAction) -> Vec<String> {
    let mut finalizers = meta.finalizers.clone().unwrap_or_default();
    match action {
        FinalizerAction::Add => finalizers.push(finalizer.to_string()),
        FinalizerAction::Remove => finalizers.retain(|f| f != finalizer),
        FinalizerAction::Keep => {}
    }
    finalizers
}

/// Writes `obj` back with `finalizer` changed per `action` (a no-op for
/// `Keep`). An object deleted meanwhile is not an error: upstream ignores
/// NotFound there, and a conflict is retried by the caller's requeue.
pub async fn write_finalizers<K>(
    api: &Api<K>,
    obj: &K,
    finalizer: &str,
    action: FinalizerAction,
) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + Serialize + DeserializeOwned + std::fmt::Debug,
{
    if action == FinalizerAction::Keep {
        return Ok(());
    }
    let name = obj.meta().name.clone().unwrap_or_default();
    let mut updated = obj.clone();
    updated.meta_mut().finalizers = Some(apply(obj.meta(), finalizer, action));
    match api.replace(&name, &PostParams::default(), &updated).await {
        Ok(_) => {
            tracing::debug!(kind = %K::kind(&()), %name, ?action, finalizer, "updated protection finalizer");
            Ok(())
        }
        Err(err) => {
            let err = Error::from(err);
            if err.is_not_found() {
                return Ok(());
            }
            Err(err)
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;

    const F: &str = "kubernetes.io/pv-protection";

    fn meta(deleted: bool, finalizers: &[&str]) -> ObjectMeta {
        ObjectMeta {
            deletion_timestamp: deleted.then_some(Time(jiff::Timestamp::UNIX_EPOCH)),
            finalizers: Some(finalizers.iter().map(|f| f.to_string()).collect()),
            ..Default::default()
        }
    }

    #[test]
    fn decisions() {
        let cases = [
            (meta(false, &[]), true, FinalizerAction::Add),
            (meta(false, &[F]), false, FinalizerAction::Keep),
            (meta(true, &[F]), true, FinalizerAction::Keep),
            (meta(true, &[F]), false, FinalizerAction::Remove),
            // Deleted without our finalizer: nothing to add or remove.
            (meta(true, &["other"]), false, FinalizerAction::Keep),
        ];
        for (m, used, want) in cases {
            assert_eq!(decide(&m, F, || used), want, "{m:?} used={used}");
        }
    }

    #[test]
    fn apply_keeps_other_finalizers() {
        let m = meta(true, &["a", F, "b"]);
        assert_eq!(apply(&m, F, FinalizerAction::Remove), vec!["a", "b"]);
        assert_eq!(
            apply(&meta(false, &["a"]), F, FinalizerAction::Add),
            vec!["a", F]
        );
    }
}
