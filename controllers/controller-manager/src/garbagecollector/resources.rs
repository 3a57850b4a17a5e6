//! Which resources the collector watches and how owner references map onto
//! them (upstream `GetDeletableResources` + the REST mapper), refreshed by
//! periodic discovery.

use std::collections::{BTreeMap, HashMap};

use kube::Client;
use kube::api::ApiResource;
use kube::discovery::{Discovery, Scope, verbs};

use crate::error::Error;

/// Upstream `DefaultIgnoredResources`: (group, resource) never collected.
pub const IGNORED_RESOURCES: &[(&str, &str)] = &[("", "events"), ("events.k8s.io", "events")];

/// One watchable, deletable resource.
#[derive(Clone, Debug)]
pub struct Resource {
    pub api: ApiResource,
    pub namespaced: bool,
}

/// `group/version/plural`, the graph's name for a resource.
pub fn resource_key(ar: &ApiResource) -> String {
    format!("{}/{}/{}", ar.group, ar.version, ar.plural)
}

/// Resources by key, plus `(group, kind)` → key for owner references.
#[derive(Clone, Debug, Default)]
pub struct ResourceTable {
    pub by_key: BTreeMap<String, Resource>,
    by_group_kind: HashMap<(String, String), String>,
}

/// The group part of an `apiVersion` (`apps/v1` → `apps`, `v1` → ``).
pub fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(g, _)| g)
}

impl ResourceTable {
    pub fn insert(&mut self, resource: Resource) {
        let key = resource_key(&resource.api);
        self.by_group_kind.insert(
            (resource.api.group.clone(), resource.api.kind.clone()),
            key.clone(),
        );
        self.by_key.insert(key, resource);
    }

    /// The resource an owner reference points at, if discovery knows it.
    pub fn for_owner(&self, api_version: &str, kind: &str) -> Option<&Resource> {
        let key = self
            .by_group_kind
            .get(&(group_of(api_version).to_string(), kind.to_string()))?;
        self.by_key.get(key)
    }

    pub fn get(&self, key: &str) -> Option<&Resource> {
        self.by_key.get(key)
    }

    /// Keeps what `keep` accepts (used to apply the verb/ignore filters).
    pub fn from_discovered(found: Vec<(ApiResource, Vec<String>, bool)>) -> Self {
        let mut table = Self::default();
        for (api, operations, namespaced) in found {
            let has = |v: &str| operations.iter().any(|o| o == v);
            let ignored = IGNORED_RESOURCES
                .iter()
                .any(|(g, r)| api.group == *g && api.plural == *r);
            if ignored || !(has(verbs::LIST) && has(verbs::WATCH) && has(verbs::DELETE)) {
                continue;
            }
            table.insert(Resource { api, namespaced });
        }
        table
    }
}

/// Runs discovery (aggregated first) and returns the deletable resources.
pub async fn discover(client: &Client) -> Result<ResourceTable, Error> {
    let discovery = match Discovery::new(client.clone()).run_aggregated().await {
        Ok(d) => d,
        Err(err) => {
            tracing::debug!(error = %err, "aggregated discovery failed; falling back");
            Discovery::new(client.clone()).run().await?
        }
    };
    let mut found = Vec::new();
    for group in discovery.groups() {
        for (ar, caps) in group.recommended_resources() {
            let namespaced = caps.scope == Scope::Namespaced;
            found.push((ar, caps.operations.clone(), namespaced));
        }
    }
    Ok(ResourceTable::from_discovered(found))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ar(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
        ApiResource {
            group: group.into(),
            version: version.into(),
            api_version: if group.is_empty() {
                version.into()
            } else {
                format!("{group}/{version}")
            },
            kind: kind.into(),
            plural: plural.into(),
        }
    }

    #[test]
    fn keeps_watchable_deletable_resources_and_maps_owner_refs() {
        let all: Vec<String> = ["list", "watch", "delete", "get"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let table = ResourceTable::from_discovered(vec![
            (
                ar("apps", "v1", "Deployment", "deployments"),
                all.clone(),
                true,
            ),
            (ar("", "v1", "Event", "events"), all.clone(), true),
            (
                ar("", "v1", "Binding", "bindings"),
                vec!["create".into()],
                true,
            ),
            (ar("", "v1", "Node", "nodes"), all, false),
        ]);
        assert_eq!(
            table.by_key.keys().collect::<Vec<_>>(),
            vec!["/v1/nodes", "apps/v1/deployments"]
        );
        // Owner references may name another served version of the group.
        assert_eq!(
            table
                .for_owner("apps/v1beta2", "Deployment")
                .map(|r| r.namespaced),
            Some(true)
        );
        assert_eq!(
            table.for_owner("v1", "Node").map(|r| r.namespaced),
            Some(false)
        );
        assert!(table.for_owner("v1", "Event").is_none());
        assert!(table.for_owner("example.com/v1", "Widget").is_none());
    }
}
