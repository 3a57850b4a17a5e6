//! Replays a Deployment sync's plan against the apiserver (upstream's
//! writes in `sync.go`/`rolling.go`, and `getNewReplicaSet`'s error
//! branches), through the narrow [`ObjectControl`] writers.

use std::collections::HashMap;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};

use super::model::Action;
use super::{Controller, util};
use crate::error::Error;
use crate::events::EventSpec;
use component_base::ownerref;

impl Controller {
    /// Replays the plan; stops at the first failed write.
    pub(super) async fn apply(&self, d: &Deployment, actions: Vec<Action>) -> Result<(), Error> {
        let ns = d.metadata.namespace.clone().unwrap_or_default();
        let regarding = d.object_ref(&());
        // Later writes of the same object must carry the version the
        // previous write returned, or they would conflict with ourselves.
        let mut rs_versions: HashMap<String, Option<String>> = HashMap::new();
        let mut d_version = d.metadata.resource_version.clone();
        for action in actions {
            match action {
                Action::CreateReplicaSet(rs) => {
                    let name = rs.name_any();
                    match self.rs_control.create(&ns, &rs).await {
                        Ok(created) => {
                            rs_versions.insert(name, created.metadata.resource_version);
                        }
                        Err(err) => {
                            return Err(self.create_failed(d, &d_version, &rs, err).await);
                        }
                    }
                }
                Action::UpdateReplicaSet(mut rs) => {
                    let name = rs.name_any();
                    if let Some(v) = rs_versions.get(&name) {
                        rs.metadata.resource_version = v.clone();
                    }
                    let updated = self.rs_control.update(&ns, &rs).await?;
                    rs_versions.insert(name, updated.metadata.resource_version);
                }
                Action::DeleteReplicaSet(name) => {
                    if let Err(err) = self.rs_control.delete(&ns, &name).await
                        && !err.is_not_found()
                    {
                        return Err(err);
                    }
                }
                Action::UpdateDeploymentStatus(mut next) => {
                    next.metadata.resource_version = d_version.clone();
                    let updated = self.d_control.update_status(&ns, &next).await?;
                    d_version = updated.metadata.resource_version;
                }
                Action::Event(e) => self.events.publish(&regarding, &e),
            }
        }
        Ok(())
    }

    /// Upstream's error branches of `getNewReplicaSet`'s create: a name
    /// collision bumps `status.collisionCount` (the next hash differs); other
    /// failures set `ReplicaSetCreateError` and emit an event.
    async fn create_failed(
        &self,
        d: &Deployment,
        version: &Option<String>,
        rs: &ReplicaSet,
        err: Error,
    ) -> Error {
        let ns = d.metadata.namespace.clone().unwrap_or_default();
        let mut next = d.clone();
        next.metadata.resource_version = version.clone();
        let name = rs.name_any();
        if err.is_already_exists() {
            // Like upstream, a name the cache does not know yet (our own
            // create racing the informer) is retried, not a collision.
            let Some(existing) = self.replicasets.get(&ObjectRef::new(&name).within(&ns)) else {
                return err;
            };
            let ours =
                ownerref::is_controlled_by(
                    &existing.metadata,
                    d.metadata.uid.as_deref().unwrap_or_default(),
                ) && util::equal_ignore_hash(&util::rs_template(&existing), &util::template(d));
            if !ours {
                let status = next.status.get_or_insert_with(Default::default);
                status.collision_count = Some(status.collision_count.unwrap_or(0) + 1);
                if let Err(e) = self.d_control.update_status(&ns, &next).await {
                    tracing::debug!(error = %e, "failed to bump collisionCount");
                }
            }
            return err;
        }
        if err.is_namespace_terminating() {
            return err;
        }
        let msg = format!(
            "Failed to create new replica set {name:?}: {}",
            err.api_message()
        );
        if util::progress_deadline_seconds(d).is_some() {
            let now = Timestamp::from_second(Timestamp::now().as_second())
                .unwrap_or(Timestamp::UNIX_EPOCH);
            let status = next.status.get_or_insert_with(Default::default);
            util::set_condition(
                status,
                util::new_condition(
                    util::CONDITION_PROGRESSING,
                    "False",
                    util::FAILED_RS_CREATE_REASON,
                    msg.clone(),
                    now,
                ),
            );
            let _ = self.d_control.update_status(&ns, &next).await;
        }
        self.events.publish(
            &d.object_ref(&()),
            &EventSpec::warning(util::FAILED_RS_CREATE_REASON, msg),
        );
        err
    }
}
