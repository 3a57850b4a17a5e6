//! Pure decisions of the garbage collector (upstream `garbagecollector.go`:
//! `attemptToDeleteItem`, `classifyReferences`,
//! `processDeletingDependentsItem`, `orphanDependents`), on plain objects.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use super::graph::{FINALIZER_FOREGROUND, FINALIZER_ORPHAN, Node};

/// What a live GET of an owner reference found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OwnerState {
    /// Exists with the referenced UID and is not waiting for dependents.
    Solid,
    /// Absent, or present with a different UID.
    Dangling,
    /// Exists and is being deleted in the foreground.
    WaitingForDependentsDeletion,
}

/// Propagation policy for deleting a dependent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Propagation {
    Background,
    Foreground,
    Orphan,
}

/// What to do with one dependent whose owners were checked.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    Nothing,
    /// Some owners remain: keep the object, drop these references.
    RemoveOwnerReferences(Vec<String>),
    /// Owners wait in the foreground and this object has dependents of its
    /// own: stop blocking them, then delete in the foreground too.
    UnblockAndDeleteForeground(Vec<String>),
    Delete(Propagation),
}

/// Upstream `attemptToDeleteItem` after owners were classified. `owners`
/// pairs every owner reference with its state.
pub fn decide(
    item: &Node,
    owners: &[(OwnerReference, OwnerState)],
    has_dependents: bool,
) -> Decision {
    if owners.is_empty() {
        return Decision::Nothing;
    }
    let uids = |state: OwnerState| -> Vec<String> {
        owners
            .iter()
            .filter(|(_, s)| *s == state)
            .map(|(r, _)| r.uid.clone())
            .collect()
    };
    let solid = uids(OwnerState::Solid);
    let dangling = uids(OwnerState::Dangling);
    let waiting = uids(OwnerState::WaitingForDependentsDeletion);
    if !solid.is_empty() {
        if dangling.is_empty() && waiting.is_empty() {
            return Decision::Nothing;
        }
        let mut drop = dangling;
        drop.extend(waiting);
        return Decision::RemoveOwnerReferences(drop);
    }
    if !waiting.is_empty() && has_dependents {
        let blocking: Vec<String> = owners
            .iter()
            .filter(|(r, s)| {
                *s == OwnerState::WaitingForDependentsDeletion
                    && r.block_owner_deletion == Some(true)
            })
            .map(|(r, _)| r.uid.clone())
            .collect();
        return Decision::UnblockAndDeleteForeground(blocking);
    }
    let policy = if item.finalizers.iter().any(|f| f == FINALIZER_ORPHAN) {
        Propagation::Orphan
    } else if item.finalizers.iter().any(|f| f == FINALIZER_FOREGROUND) {
        Propagation::Foreground
    } else {
        Propagation::Background
    };
    Decision::Delete(policy)
}

/// Upstream `processDeletingDependentsItem`: the dependents that still
/// block a foreground-deleting owner. Empty means the owner's
/// `foregroundDeletion` finalizer can go.
pub fn blocking_dependents<'a>(owner_uid: &str, dependents: &[&'a Node]) -> Vec<&'a Node> {
    dependents
        .iter()
        .copied()
        .filter(|d| {
            d.owners
                .iter()
                .any(|r| r.uid == owner_uid && r.block_owner_deletion == Some(true))
        })
        .collect()
}

/// Owner references without the given UIDs.
pub fn without_owners(refs: &[OwnerReference], uids: &[String]) -> Vec<OwnerReference> {
    refs.iter()
        .filter(|r| !uids.contains(&r.uid))
        .cloned()
        .collect()
}

/// Owner references with `blockOwnerDeletion=false` for the given UIDs
/// (upstream `unblockOwnerReferencesStrategicMergePatch`).
pub fn unblocked(refs: &[OwnerReference], uids: &[String]) -> Vec<OwnerReference> {
    refs.iter()
        .cloned()
        .map(|mut r| {
            if uids.contains(&r.uid) {
                r.block_owner_deletion = Some(false);
            }
            r
        })
        .collect()
}

/// Finalizers without `finalizer`.
pub fn without_finalizer(finalizers: &[String], finalizer: &str) -> Vec<String> {
    finalizers
        .iter()
        .filter(|f| *f != finalizer)
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oref(uid: &str, block: bool) -> OwnerReference {
        OwnerReference {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            name: format!("n-{uid}"),
            uid: uid.into(),
            controller: None,
            block_owner_deletion: Some(block),
        }
    }

    fn item(finalizers: &[&str], owners: Vec<OwnerReference>) -> Node {
        Node {
            resource: "v1/configmaps".into(),
            namespace: Some("ns".into()),
            name: "dep".into(),
            uid: "dep".into(),
            owners,
            being_deleted: false,
            finalizers: finalizers.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn background_orphan_and_foreground_decisions() {
        use OwnerState::*;
        let a = oref("a", true);
        let b = oref("b", false);
        let it = item(&[], vec![a.clone(), b.clone()]);
        type Case = (Node, Vec<(OwnerReference, OwnerState)>, bool, Decision);
        let cases: Vec<Case> = vec![
            (it.clone(), vec![], false, Decision::Nothing),
            (
                it.clone(),
                vec![(a.clone(), Solid), (b.clone(), Solid)],
                false,
                Decision::Nothing,
            ),
            // One owner left: only the dangling reference goes.
            (
                it.clone(),
                vec![(a.clone(), Solid), (b.clone(), Dangling)],
                false,
                Decision::RemoveOwnerReferences(vec!["b".into()]),
            ),
            (
                it.clone(),
                vec![
                    (a.clone(), Solid),
                    (b.clone(), WaitingForDependentsDeletion),
                ],
                false,
                Decision::RemoveOwnerReferences(vec!["b".into()]),
            ),
            // All owners gone: background delete.
            (
                it.clone(),
                vec![(a.clone(), Dangling), (b.clone(), Dangling)],
                true,
                Decision::Delete(Propagation::Background),
            ),
            // Owner deleting in foreground, item has its own dependents.
            (
                it.clone(),
                vec![
                    (a.clone(), WaitingForDependentsDeletion),
                    (b.clone(), Dangling),
                ],
                true,
                Decision::UnblockAndDeleteForeground(vec!["a".into()]),
            ),
            // ... without dependents: plain delete.
            (
                it.clone(),
                vec![(a.clone(), WaitingForDependentsDeletion)],
                false,
                Decision::Delete(Propagation::Background),
            ),
            // The item's own finalizers pick the policy.
            (
                item(&[FINALIZER_ORPHAN], vec![a.clone()]),
                vec![(a.clone(), Dangling)],
                false,
                Decision::Delete(Propagation::Orphan),
            ),
            (
                item(&[FINALIZER_FOREGROUND], vec![a.clone()]),
                vec![(a.clone(), Dangling)],
                false,
                Decision::Delete(Propagation::Foreground),
            ),
        ];
        for (i, (node, owners, has_deps, want)) in cases.into_iter().enumerate() {
            assert_eq!(decide(&node, &owners, has_deps), want, "case {i}");
        }
    }

    #[test]
    fn only_blocking_references_hold_a_foreground_owner() {
        let blocking = item(&[], vec![oref("owner", true)]);
        let mut free = item(&[], vec![oref("owner", false)]);
        free.uid = "free".into();
        let got = blocking_dependents("owner", &[&blocking, &free]);
        assert_eq!(
            got.iter().map(|n| n.uid.as_str()).collect::<Vec<_>>(),
            vec!["dep"]
        );
        assert!(blocking_dependents("owner", &[&free]).is_empty());
    }

    #[test]
    fn reference_and_finalizer_edits() {
        let refs = vec![oref("a", true), oref("b", true)];
        assert_eq!(without_owners(&refs, &["a".into()]), vec![oref("b", true)]);
        assert_eq!(
            unblocked(&refs, &["b".into()]),
            vec![oref("a", true), oref("b", false)]
        );
        assert_eq!(
            without_finalizer(&["orphan".into(), "x".into()], FINALIZER_ORPHAN),
            vec!["x".to_string()]
        );
    }
}
