//! The objects the ReplicaSet engine serves (upstream runs the
//! ReplicationController through `replicaset.NewBaseController` with the
//! adapters of `pkg/controller/replication/conversion.go`): each kind shows
//! itself as a ReplicaSet to the pure reconcile and takes its status back.

use std::borrow::Cow;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use serde::Serialize;

use component_base::informers::Informable;
use kube::Resource;

/// A "replica set-like" object: ReplicaSet itself, or ReplicationController.
/// Its kind and apiVersion (from [`kube::Resource`]) go into the pods'
/// controller references.
pub trait ReplicaSetLike:
    Informable + Resource<Scope = NamespaceResourceScope> + Serialize
{
    /// Whether `status.terminatingReplicas` exists on this kind (not on
    /// ReplicationController), so a status without it is not "changed".
    const HAS_TERMINATING_REPLICAS: bool;

    /// The object as the ReplicaSet the decisions are made on (selector
    /// as a `LabelSelector`, replicas, template, minReadySeconds, status).
    fn as_replica_set(&self) -> Cow<'_, ReplicaSet>;

    /// A copy of this object carrying `status`, for the status update.
    fn with_status(&self, status: &ReplicaSetStatus) -> Self;
}

impl ReplicaSetLike for ReplicaSet {
    const HAS_TERMINATING_REPLICAS: bool = true;

    fn as_replica_set(&self) -> Cow<'_, ReplicaSet> {
        Cow::Borrowed(self)
    }

    fn with_status(&self, status: &ReplicaSetStatus) -> Self {
        let mut next = self.clone();
        next.status = Some(status.clone());
        next
    }
}

/// Whether a controller reference with this `api_version`/`kind` points
/// at a `K` (group compared, version not: `apps/v1beta2` owners count).
pub fn is_kind<K: Resource<DynamicType = ()>>(api_version: &str, kind: &str) -> bool {
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    kind == K::kind(&()) && group == K::group(&())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ReplicationController;

    #[test]
    fn owner_kinds() {
        assert!(is_kind::<ReplicaSet>("apps/v1", "ReplicaSet"));
        assert!(!is_kind::<ReplicaSet>("v1", "ReplicaSet"));
        assert!(!is_kind::<ReplicaSet>("apps/v1", "ReplicationController"));
        assert!(is_kind::<ReplicationController>(
            "v1",
            "ReplicationController"
        ));
        assert!(!is_kind::<ReplicationController>(
            "apps/v1",
            "ReplicationController"
        ));
    }
}
