//! `KubeSchedulerConfiguration` (kubescheduler.config.k8s.io/v1) with upstream defaulting.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::plugins::names;

pub const DEFAULT_SCHEDULER_NAME: &str = "default-scheduler";
pub const API_VERSION: &str = "kubescheduler.config.k8s.io/v1";
pub const KIND: &str = "KubeSchedulerConfiguration";

/// One plugin reference in a plugin set; `weight` only matters for Score.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginRef {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i32>,
}

impl PluginRef {
    pub fn new(name: &str, weight: Option<i32>) -> Self {
        PluginRef {
            name: name.to_string(),
            weight,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginSet {
    #[serde(default)]
    pub enabled: Vec<PluginRef>,
    #[serde(default)]
    pub disabled: Vec<PluginRef>,
}

/// Plugins per extension point (upstream `v1.Plugins`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plugins {
    #[serde(default)]
    pub pre_enqueue: PluginSet,
    #[serde(default)]
    pub queue_sort: PluginSet,
    #[serde(default)]
    pub pre_filter: PluginSet,
    #[serde(default)]
    pub filter: PluginSet,
    #[serde(default)]
    pub post_filter: PluginSet,
    #[serde(default)]
    pub pre_score: PluginSet,
    #[serde(default)]
    pub score: PluginSet,
    #[serde(default)]
    pub reserve: PluginSet,
    #[serde(default)]
    pub permit: PluginSet,
    #[serde(default)]
    pub pre_bind: PluginSet,
    #[serde(default)]
    pub bind: PluginSet,
    #[serde(default)]
    pub post_bind: PluginSet,
    #[serde(default)]
    pub multi_point: PluginSet,
}

/// The extension points, in the order the framework runs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExtensionPoint {
    PreEnqueue,
    QueueSort,
    PreFilter,
    Filter,
    PostFilter,
    PreScore,
    Score,
    Reserve,
    Permit,
    PreBind,
    Bind,
    PostBind,
}

impl ExtensionPoint {
    pub const ALL: [ExtensionPoint; 12] = [
        ExtensionPoint::PreEnqueue,
        ExtensionPoint::QueueSort,
        ExtensionPoint::PreFilter,
        ExtensionPoint::Filter,
        ExtensionPoint::PostFilter,
        ExtensionPoint::PreScore,
        ExtensionPoint::Score,
        ExtensionPoint::Reserve,
        ExtensionPoint::Permit,
        ExtensionPoint::PreBind,
        ExtensionPoint::Bind,
        ExtensionPoint::PostBind,
    ];
}

impl Plugins {
    pub fn set(&self, ep: ExtensionPoint) -> &PluginSet {
        match ep {
            ExtensionPoint::PreEnqueue => &self.pre_enqueue,
            ExtensionPoint::QueueSort => &self.queue_sort,
            ExtensionPoint::PreFilter => &self.pre_filter,
            ExtensionPoint::Filter => &self.filter,
            ExtensionPoint::PostFilter => &self.post_filter,
            ExtensionPoint::PreScore => &self.pre_score,
            ExtensionPoint::Score => &self.score,
            ExtensionPoint::Reserve => &self.reserve,
            ExtensionPoint::Permit => &self.permit,
            ExtensionPoint::PreBind => &self.pre_bind,
            ExtensionPoint::Bind => &self.bind,
            ExtensionPoint::PostBind => &self.post_bind,
        }
    }

    /// Upstream `getDefaultPlugins()` for v1 (DynamicResources is appended by its GA feature gate).
    pub fn upstream_default() -> Self {
        let w = |n: &str, weight: i32| PluginRef::new(n, Some(weight));
        let p = |n: &str| PluginRef::new(n, None);
        Plugins {
            multi_point: PluginSet {
                enabled: vec![
                    p(names::SCHEDULING_GATES),
                    p(names::PRIORITY_SORT),
                    p(names::NODE_UNSCHEDULABLE),
                    p(names::NODE_NAME),
                    w(names::TAINT_TOLERATION, 3),
                    w(names::NODE_AFFINITY, 2),
                    p(names::NODE_PORTS),
                    w(names::NODE_RESOURCES_FIT, 1),
                    p(names::VOLUME_RESTRICTIONS),
                    p(names::NODE_VOLUME_LIMITS),
                    p(names::VOLUME_BINDING),
                    p(names::VOLUME_ZONE),
                    w(names::POD_TOPOLOGY_SPREAD, 2),
                    w(names::INTER_POD_AFFINITY, 2),
                    p(names::DEFAULT_PREEMPTION),
                    w(names::NODE_RESOURCES_BALANCED_ALLOCATION, 1),
                    w(names::IMAGE_LOCALITY, 1),
                    p(names::DEFAULT_BINDER),
                    p(names::DYNAMIC_RESOURCES),
                ],
                disabled: vec![],
            },
            ..Default::default()
        }
    }

    fn set_mut(&mut self, ep: Option<ExtensionPoint>) -> &mut PluginSet {
        match ep {
            None => &mut self.multi_point,
            Some(ExtensionPoint::PreEnqueue) => &mut self.pre_enqueue,
            Some(ExtensionPoint::QueueSort) => &mut self.queue_sort,
            Some(ExtensionPoint::PreFilter) => &mut self.pre_filter,
            Some(ExtensionPoint::Filter) => &mut self.filter,
            Some(ExtensionPoint::PostFilter) => &mut self.post_filter,
            Some(ExtensionPoint::PreScore) => &mut self.pre_score,
            Some(ExtensionPoint::Score) => &mut self.score,
            Some(ExtensionPoint::Reserve) => &mut self.reserve,
            Some(ExtensionPoint::Permit) => &mut self.permit,
            Some(ExtensionPoint::PreBind) => &mut self.pre_bind,
            Some(ExtensionPoint::Bind) => &mut self.bind,
            Some(ExtensionPoint::PostBind) => &mut self.post_bind,
        }
    }

    /// Upstream `mergePlugins(defaults, custom)`, applied to every plugin set.
    pub fn merged_with_defaults(custom: &Plugins) -> Plugins {
        let defaults = Plugins::upstream_default();
        let mut out = Plugins::default();
        let points = std::iter::once(None).chain(ExtensionPoint::ALL.iter().copied().map(Some));
        for ep in points {
            let d = match ep {
                None => &defaults.multi_point,
                Some(e) => defaults.set(e),
            };
            let c = match ep {
                None => &custom.multi_point,
                Some(e) => custom.set(e),
            };
            *out.set_mut(ep) = merge_plugin_set(d, c);
        }
        out
    }
}

/// Upstream `mergePluginSet`: custom disables (or `*`) drop defaults, custom re-configuration of
/// a default keeps the default's position, other custom plugins are appended.
fn merge_plugin_set(default: &PluginSet, custom: &PluginSet) -> PluginSet {
    let mut disabled: Vec<PluginRef> = custom.disabled.clone();
    disabled.extend(default.disabled.iter().cloned());
    let is_disabled = |n: &str| disabled.iter().any(|d| d.name == n);
    let mut replaced = vec![false; custom.enabled.len()];
    let mut enabled = Vec::new();
    if !is_disabled("*") {
        for d in &default.enabled {
            if is_disabled(&d.name) {
                continue;
            }
            match custom.enabled.iter().position(|c| c.name == d.name) {
                Some(i) => {
                    replaced[i] = true;
                    enabled.push(custom.enabled[i].clone());
                }
                None => enabled.push(d.clone()),
            }
        }
    }
    for (i, c) in custom.enabled.iter().enumerate() {
        if !replaced[i] {
            enabled.push(c.clone());
        }
    }
    PluginSet { enabled, disabled }
}

/// One scheduling profile.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileConfig {
    pub scheduler_name: String,
    pub percentage_of_nodes_to_score: Option<i32>,
    /// Already merged with the upstream defaults.
    pub plugins: Plugins,
    /// Plugin name -> args object (the `args` of a `pluginConfig` entry).
    pub plugin_config: BTreeMap<String, serde_json::Value>,
}

impl ProfileConfig {
    pub fn default_profile() -> Self {
        ProfileConfig {
            scheduler_name: DEFAULT_SCHEDULER_NAME.to_string(),
            percentage_of_nodes_to_score: None,
            plugins: Plugins::upstream_default(),
            plugin_config: BTreeMap::new(),
        }
    }
}

/// Scheduler configuration derived from a KubeSchedulerConfiguration.
#[derive(Debug, Clone, PartialEq)]
pub struct SchedulerConfig {
    pub parallelism: usize,
    /// 0 means adaptive (upstream `numFeasibleNodesToFind`).
    pub percentage_of_nodes_to_score: i32,
    pub pod_initial_backoff: Duration,
    pub pod_max_backoff: Duration,
    pub profiles: Vec<ProfileConfig>,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            parallelism: 16,
            percentage_of_nodes_to_score: 0,
            pod_initial_backoff: Duration::from_secs(1),
            pod_max_backoff: Duration::from_secs(10),
            profiles: vec![ProfileConfig::default_profile()],
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawConfig {
    api_version: Option<String>,
    kind: Option<String>,
    parallelism: Option<i64>,
    percentage_of_nodes_to_score: Option<i32>,
    pod_initial_backoff_seconds: Option<i64>,
    pod_max_backoff_seconds: Option<i64>,
    #[serde(default)]
    profiles: Vec<RawProfile>,
    #[serde(default)]
    extenders: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawProfile {
    scheduler_name: Option<String>,
    percentage_of_nodes_to_score: Option<i32>,
    #[serde(default)]
    plugins: Option<Plugins>,
    #[serde(default)]
    plugin_config: Vec<RawPluginConfig>,
}

#[derive(Deserialize)]
struct RawPluginConfig {
    name: String,
    #[serde(default)]
    args: serde_json::Value,
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::InvalidConfig(msg.into())
}

impl SchedulerConfig {
    /// Parses and defaults a KubeSchedulerConfiguration given as JSON (YAML callers convert first).
    pub fn from_component_config(value: serde_json::Value) -> Result<Self, Error> {
        let raw: RawConfig =
            serde_json::from_value(value).map_err(|e| invalid(format!("decoding: {e}")))?;
        if let Some(v) = raw.api_version.as_deref()
            && v != API_VERSION
        {
            return Err(invalid(format!(
                "unsupported apiVersion {v:?}, want {API_VERSION}"
            )));
        }
        if let Some(k) = raw.kind.as_deref()
            && k != KIND
        {
            return Err(invalid(format!("unsupported kind {k:?}, want {KIND}")));
        }
        let d = SchedulerConfig::default();
        let parallelism = match raw.parallelism {
            None => d.parallelism,
            Some(p) if p > 0 => p as usize,
            Some(p) => {
                return Err(invalid(format!(
                    "parallelism: {p} should be an integer value greater than zero"
                )));
            }
        };
        let pct = raw.percentage_of_nodes_to_score.unwrap_or(0);
        validate_percentage("percentageOfNodesToScore", pct)?;
        let initial = raw.pod_initial_backoff_seconds.unwrap_or(1);
        let max = raw.pod_max_backoff_seconds.unwrap_or(10);
        if initial <= 0 {
            return Err(invalid("podInitialBackoffSeconds must be greater than 0"));
        }
        if max < initial {
            return Err(invalid(
                "podMaxBackoffSeconds must be greater than or equal to podInitialBackoffSeconds",
            ));
        }
        if !raw.extenders.is_empty() {
            tracing::warn!(
                count = raw.extenders.len(),
                "scheduler extenders are not supported; ignoring them"
            );
        }
        let mut profiles = Vec::new();
        for p in raw.profiles {
            let name = p
                .scheduler_name
                .unwrap_or_else(|| DEFAULT_SCHEDULER_NAME.to_string());
            if profiles
                .iter()
                .any(|x: &ProfileConfig| x.scheduler_name == name)
            {
                return Err(invalid(format!(
                    "duplicate profile with scheduler name {name:?}"
                )));
            }
            if let Some(pp) = p.percentage_of_nodes_to_score {
                validate_percentage("profiles.percentageOfNodesToScore", pp)?;
            }
            let plugins = match p.plugins {
                Some(custom) => Plugins::merged_with_defaults(&custom),
                None => Plugins::upstream_default(),
            };
            let mut plugin_config = BTreeMap::new();
            for pc in p.plugin_config {
                if plugin_config.insert(pc.name.clone(), pc.args).is_some() {
                    return Err(invalid(format!(
                        "duplicate pluginConfig for plugin {:?}",
                        pc.name
                    )));
                }
            }
            profiles.push(ProfileConfig {
                scheduler_name: name,
                percentage_of_nodes_to_score: p.percentage_of_nodes_to_score,
                plugins,
                plugin_config,
            });
        }
        if profiles.is_empty() {
            profiles.push(ProfileConfig::default_profile());
        }
        Ok(SchedulerConfig {
            parallelism,
            percentage_of_nodes_to_score: pct,
            pod_initial_backoff: Duration::from_secs(initial as u64),
            pod_max_backoff: Duration::from_secs(max as u64),
            profiles,
        })
    }
}

fn validate_percentage(field: &str, v: i32) -> Result<(), Error> {
    if !(0..=100).contains(&v) {
        return Err(invalid(format!("{field}: {v} not in valid range [0-100]")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn empty_config_equals_default() {
        let c = SchedulerConfig::from_component_config(json!({
            "apiVersion": API_VERSION, "kind": KIND
        }));
        assert_eq!(c.ok(), Some(SchedulerConfig::default()));
    }

    #[test]
    fn profile_overrides_merge_like_upstream() {
        let c = SchedulerConfig::from_component_config(json!({
            "apiVersion": API_VERSION, "kind": KIND,
            "podInitialBackoffSeconds": 2, "podMaxBackoffSeconds": 20,
            "profiles": [{
                "schedulerName": "custom",
                "plugins": {"multiPoint": {
                    "enabled": [{"name": "TaintToleration", "weight": 7}, {"name": "MyPlugin"}],
                    "disabled": [{"name": "ImageLocality"}]
                }},
                "pluginConfig": [{"name": "NodeResourcesFit", "args": {"scoringStrategy": {"type": "MostAllocated"}}}]
            }]
        }))
        .map_err(|e| e.to_string());
        let c = c.as_ref().map(|c| &c.profiles[0]);
        let Ok(p) = c else {
            panic!("config rejected: {c:?}");
        };
        let mp = &p.plugins.multi_point.enabled;
        let pos = |n: &str| mp.iter().position(|x| x.name == n);
        assert_eq!(
            pos("TaintToleration"),
            Some(4),
            "re-configured default keeps its place"
        );
        assert_eq!(mp[4].weight, Some(7));
        assert_eq!(pos("ImageLocality"), None);
        assert_eq!(mp.last().map(|x| x.name.as_str()), Some("MyPlugin"));
        assert!(p.plugin_config.contains_key("NodeResourcesFit"));
    }

    #[test]
    fn star_disables_all_defaults() {
        let custom = Plugins {
            multi_point: PluginSet {
                enabled: vec![PluginRef::new("PrioritySort", None)],
                disabled: vec![PluginRef::new("*", None)],
            },
            ..Default::default()
        };
        let m = Plugins::merged_with_defaults(&custom);
        assert_eq!(
            m.multi_point.enabled,
            vec![PluginRef::new("PrioritySort", None)]
        );
    }

    #[test]
    fn invalid_values_rejected() {
        for bad in [
            json!({"percentageOfNodesToScore": 101}),
            json!({"podInitialBackoffSeconds": 5, "podMaxBackoffSeconds": 1}),
            json!({"apiVersion": "kubescheduler.config.k8s.io/v1beta3"}),
            json!({"profiles": [{"schedulerName": "a"}, {"schedulerName": "a"}]}),
        ] {
            assert!(
                SchedulerConfig::from_component_config(bad.clone()).is_err(),
                "{bad}"
            );
        }
    }
}
