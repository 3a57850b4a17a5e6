//! A profile's instantiated plugins and the code that runs each extension point over them
//! (upstream `framework/runtime/framework.go`).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;

use super::cycle_state::CycleState;
use super::events::{ClusterEvent, ClusterEventWithHint};
use super::interface::{
    MAX_NODE_SCORE, MIN_NODE_SCORE, NodeScore, NodeToStatus, Plugin, PluginsRunner,
    PostFilterResult, PreFilterResult, QueuedPodView,
};
use super::node_info::NodeInfo;
use super::registry::{Handle, Registry};
use super::status::{Code, Status};
use crate::Error;
use crate::config::{ExtensionPoint, PluginSet, ProfileConfig};

type PluginRef = Arc<dyn Plugin>;

fn implements(p: &dyn Plugin, ep: ExtensionPoint) -> bool {
    match ep {
        ExtensionPoint::PreEnqueue => p.as_pre_enqueue().is_some(),
        ExtensionPoint::QueueSort => p.as_queue_sort().is_some(),
        ExtensionPoint::PreFilter => p.as_pre_filter().is_some(),
        ExtensionPoint::Filter => p.as_filter().is_some(),
        ExtensionPoint::PostFilter => p.as_post_filter().is_some(),
        ExtensionPoint::PreScore => p.as_pre_score().is_some(),
        ExtensionPoint::Score => p.as_score().is_some(),
        ExtensionPoint::Reserve => p.as_reserve().is_some(),
        ExtensionPoint::Permit => p.as_permit().is_some(),
        ExtensionPoint::PreBind => p.as_pre_bind().is_some(),
        ExtensionPoint::Bind => p.as_bind().is_some(),
        ExtensionPoint::PostBind => p.as_post_bind().is_some(),
    }
}

/// A registered event and the plugin that registered it.
#[derive(Clone)]
pub struct RegisteredEvent {
    pub event: ClusterEventWithHint,
    pub plugin: PluginRef,
}

pub struct Framework {
    profile_name: String,
    percentage_of_nodes_to_score: Option<i32>,
    points: HashMap<ExtensionPoint, Vec<PluginRef>>,
    score_weights: HashMap<&'static str, i64>,
    events: Vec<RegisteredEvent>,
}

impl std::fmt::Debug for Framework {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Framework");
        d.field("profile", &self.profile_name);
        for ep in ExtensionPoint::ALL {
            let names: Vec<_> = self.plugins(ep).iter().map(|p| p.name()).collect();
            d.field(&format!("{ep:?}"), &names);
        }
        d.finish()
    }
}

/// Plugin order for one extension point (upstream `expandMultiPointPlugins`): plugins configured
/// explicitly at the point and also in multiPoint first (explicit order), then the remaining
/// multiPoint plugins, then the other explicit ones.
fn expand_point(
    ep: ExtensionPoint,
    explicit: &PluginSet,
    multi: &PluginSet,
    instances: &HashMap<String, PluginRef>,
) -> Result<Vec<String>, Error> {
    let disabled = |n: &str| {
        explicit
            .disabled
            .iter()
            .any(|d| d.name == n || d.name == "*")
    };
    let in_explicit = |n: &str| explicit.enabled.iter().any(|e| e.name == n);
    let mut part1 = Vec::new();
    let mut part2 = Vec::new();
    for m in &multi.enabled {
        let Some(p) = instances.get(&m.name) else {
            continue;
        };
        if !implements(p.as_ref(), ep) || disabled(&m.name) {
            continue;
        }
        if !in_explicit(&m.name) {
            part2.push(m.name.clone());
        }
    }
    let mut part3 = Vec::new();
    for e in &explicit.enabled {
        let Some(p) = instances.get(&e.name) else {
            continue;
        };
        if !implements(p.as_ref(), ep) {
            return Err(Error::InvalidConfig(format!(
                "plugin {:?} does not extend {ep:?} plugin",
                e.name
            )));
        }
        if multi.enabled.iter().any(|m| m.name == e.name) {
            part1.push(e.name.clone());
        } else {
            part3.push(e.name.clone());
        }
    }
    let mut out = part1;
    out.extend(part2);
    out.extend(part3);
    let mut seen = BTreeSet::new();
    for n in &out {
        if !seen.insert(n.as_str()) {
            return Err(Error::InvalidConfig(format!(
                "plugin {n:?} already registered as {ep:?}"
            )));
        }
    }
    Ok(out)
}

impl PluginsRunner for Framework {
    fn run_filter(&self, state: &CycleState, pod: &Pod, node: &NodeInfo) -> Status {
        Framework::run_filter(self, state, pod, node)
    }
}

impl Framework {
    pub fn new(
        profile: &ProfileConfig,
        registry: &Registry,
        handle: &Handle,
    ) -> Result<Self, Error> {
        let plugins = &profile.plugins;
        let mut wanted: Vec<&str> = plugins
            .multi_point
            .enabled
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        for ep in ExtensionPoint::ALL {
            wanted.extend(plugins.set(ep).enabled.iter().map(|p| p.name.as_str()));
        }
        let mut instances: HashMap<String, PluginRef> = HashMap::new();
        for name in wanted {
            if instances.contains_key(name) {
                continue;
            }
            if let Some(p) = registry.new_plugin(name, profile.plugin_config.get(name), handle)? {
                instances.insert(name.to_string(), p);
            }
        }
        let mut points = HashMap::new();
        for ep in ExtensionPoint::ALL {
            let names = expand_point(ep, plugins.set(ep), &plugins.multi_point, &instances)?;
            let list: Vec<PluginRef> = names
                .iter()
                .filter_map(|n| instances.get(n).cloned())
                .collect();
            points.insert(ep, list);
        }
        let mut score_weights = HashMap::new();
        for p in points.get(&ExtensionPoint::Score).into_iter().flatten() {
            let explicit = plugins.score.enabled.iter().find(|x| x.name == p.name());
            let multi = plugins
                .multi_point
                .enabled
                .iter()
                .find(|x| x.name == p.name());
            let w = explicit
                .and_then(|x| x.weight)
                .or_else(|| multi.and_then(|x| x.weight))
                .filter(|w| *w != 0)
                .unwrap_or(1);
            score_weights.insert(p.name(), i64::from(w));
        }
        let fw = Framework {
            profile_name: profile.scheduler_name.clone(),
            percentage_of_nodes_to_score: profile.percentage_of_nodes_to_score,
            events: Self::collect_events(&instances),
            points,
            score_weights,
        };
        if fw.plugins(ExtensionPoint::QueueSort).len() != 1 {
            return Err(Error::InvalidConfig(format!(
                "profile {:?}: exactly one queue sort plugin required, got {}",
                fw.profile_name,
                fw.plugins(ExtensionPoint::QueueSort).len()
            )));
        }
        if fw.plugins(ExtensionPoint::Bind).is_empty() {
            return Err(Error::InvalidConfig(format!(
                "profile {:?}: at least one bind plugin is needed",
                fw.profile_name
            )));
        }
        Ok(fw)
    }

    fn collect_events(instances: &HashMap<String, PluginRef>) -> Vec<RegisteredEvent> {
        let mut events = Vec::new();
        let mut names: Vec<&String> = instances.keys().collect();
        names.sort();
        for n in names {
            let p = &instances[n];
            for event in p.events_to_register() {
                events.push(RegisteredEvent {
                    event,
                    plugin: p.clone(),
                });
            }
        }
        events
    }

    pub fn profile_name(&self) -> &str {
        &self.profile_name
    }

    pub fn percentage_of_nodes_to_score(&self) -> Option<i32> {
        self.percentage_of_nodes_to_score
    }

    pub fn plugins(&self, ep: ExtensionPoint) -> &[PluginRef] {
        self.points.get(&ep).map(Vec::as_slice).unwrap_or(&[])
    }

    pub fn registered_events(&self) -> &[RegisteredEvent] {
        &self.events
    }

    pub fn has_filter_plugins(&self) -> bool {
        !self.plugins(ExtensionPoint::Filter).is_empty()
    }

    pub fn has_score_plugins(&self) -> bool {
        !self.plugins(ExtensionPoint::Score).is_empty()
    }

    pub fn has_post_filter_plugins(&self) -> bool {
        !self.plugins(ExtensionPoint::PostFilter).is_empty()
    }

    /// First failing PreEnqueue status, with the plugin recorded.
    pub fn run_pre_enqueue(&self, pod: &Pod) -> Status {
        for p in self.plugins(ExtensionPoint::PreEnqueue) {
            if let Some(pe) = p.as_pre_enqueue() {
                let s = pe.pre_enqueue(pod);
                if !s.is_success() {
                    return s.with_plugin(p.name());
                }
            }
        }
        Status::success()
    }

    pub fn less(&self, a: &QueuedPodView<'_>, b: &QueuedPodView<'_>) -> bool {
        self.plugins(ExtensionPoint::QueueSort)
            .first()
            .and_then(|p| p.as_queue_sort())
            .is_some_and(|qs| qs.less(a, b))
    }

    /// Upstream `RunPreFilterPlugins`; the third value lists the plugins whose results
    /// narrowed the node set.
    pub fn run_pre_filter(
        &self,
        state: &mut CycleState,
        pod: &Pod,
        nodes: &[Arc<NodeInfo>],
    ) -> (PreFilterResult, Status, BTreeSet<&'static str>) {
        let mut result = PreFilterResult::default();
        let mut with_nodes: Vec<&'static str> = Vec::new();
        for p in self.plugins(ExtensionPoint::PreFilter) {
            let Some(pf) = p.as_pre_filter() else {
                continue;
            };
            let (r, s) = pf.pre_filter(state, pod, nodes);
            if s.is_skip() {
                state.skip_filter_plugins.insert(p.name());
                continue;
            }
            if !s.is_success() {
                let s = if s.is_rejected() {
                    s
                } else {
                    Status::error(format!("running PreFilter plugin {:?}: {s}", p.name()))
                };
                return (result, s.with_plugin(p.name()), BTreeSet::new());
            }
            let r = r.unwrap_or_default();
            if !r.all_nodes() {
                with_nodes.push(p.name());
            }
            result = result.merge(r);
            if result.node_names.as_ref().is_some_and(|n| n.is_empty()) {
                let msg = if with_nodes.len() == 1 {
                    format!("node(s) didn't satisfy plugin {}", with_nodes[0])
                } else {
                    format!(
                        "node(s) didn't satisfy plugin(s) [{}] simultaneously",
                        with_nodes.join(" ")
                    )
                };
                let set = with_nodes.iter().copied().collect();
                return (result, Status::unresolvable(msg), set);
            }
        }
        (result, Status::success(), with_nodes.into_iter().collect())
    }

    /// Upstream `RunFilterPlugins`: the first rejecting plugin decides.
    pub fn run_filter(&self, state: &CycleState, pod: &Pod, node: &NodeInfo) -> Status {
        for p in self.plugins(ExtensionPoint::Filter) {
            if state.skip_filter_plugins.contains(p.name()) {
                continue;
            }
            let Some(f) = p.as_filter() else {
                continue;
            };
            let s = f.filter(state, pod, node);
            if !s.is_success() {
                let s = if s.is_rejected() {
                    s
                } else {
                    Status::error(format!("running {:?} filter plugin: {s}", p.name()))
                };
                return s.with_plugin(p.name());
            }
        }
        Status::success()
    }

    /// Upstream `RunFilterPluginsWithNominatedPods`: pods nominated to the node with priority at
    /// least the pod's count as present (they preempted for that space); the pod must fit both
    /// with and without them.
    pub fn run_filter_with_nominated(
        &self,
        state: &CycleState,
        pod: &Pod,
        node: &NodeInfo,
        nominated: &[Arc<Pod>],
    ) -> Status {
        let prio = crate::pod::priority(pod);
        let relevant: Vec<&Arc<Pod>> = nominated
            .iter()
            .filter(|n| n.metadata.uid != pod.metadata.uid && crate::pod::priority(n) >= prio)
            .collect();
        if !relevant.is_empty() {
            let mut with = node.clone();
            for n in relevant {
                let mut placed = (**n).clone();
                placed.spec.get_or_insert_with(Default::default).node_name =
                    Some(node.name().to_string());
                with.add_pod(Arc::new(placed));
            }
            let s = self.run_filter(state, pod, &with);
            if !s.is_success() {
                return s;
            }
        }
        self.run_filter(state, pod, node)
    }

    /// Upstream `RunPostFilterPlugins`: the first success wins; otherwise the rejection messages.
    pub fn run_post_filter(
        &self,
        state: &CycleState,
        pod: &Pod,
        statuses: &NodeToStatus,
        nodes: &[Arc<NodeInfo>],
    ) -> (Option<PostFilterResult>, Status) {
        let mut rejections = Vec::new();
        for p in self.plugins(ExtensionPoint::PostFilter) {
            let Some(pf) = p.as_post_filter() else {
                continue;
            };
            let (result, s) = pf.post_filter(state, pod, statuses, nodes, self);
            if s.is_success() {
                return (result, s);
            }
            if !s.is_rejected() {
                return (None, s.with_plugin(p.name()));
            }
            rejections.extend(s.reasons().iter().cloned());
        }
        (None, Status::with_reasons(Code::Unschedulable, rejections))
    }

    pub fn run_pre_score(
        &self,
        state: &mut CycleState,
        pod: &Pod,
        nodes: &[Arc<NodeInfo>],
    ) -> Status {
        for p in self.plugins(ExtensionPoint::PreScore) {
            let Some(ps) = p.as_pre_score() else {
                continue;
            };
            let s = ps.pre_score(state, pod, nodes);
            if s.is_skip() {
                state.skip_score_plugins.insert(p.name());
                continue;
            }
            if !s.is_success() {
                return Status::error(format!("running PreScore plugin {:?}: {s}", p.name()));
            }
        }
        Status::success()
    }

    /// Upstream `RunScorePlugins`: score, normalise, weight and sum per node.
    pub fn run_score(
        &self,
        state: &CycleState,
        pod: &Pod,
        nodes: &[Arc<NodeInfo>],
    ) -> Result<Vec<NodeScore>, Status> {
        let mut totals: Vec<NodeScore> = nodes
            .iter()
            .map(|n| NodeScore {
                name: n.name().to_string(),
                score: 0,
            })
            .collect();
        let mut scores = vec![0_i64; nodes.len()];
        for p in self.plugins(ExtensionPoint::Score) {
            if state.skip_score_plugins.contains(p.name()) {
                continue;
            }
            let Some(sp) = p.as_score() else {
                continue;
            };
            for (i, n) in nodes.iter().enumerate() {
                scores[i] = sp.score(state, pod, n).map_err(|s| {
                    Status::error(format!("running Score plugin {:?}: {s}", p.name()))
                })?;
            }
            let s = sp.normalize_score(state, pod, &mut scores);
            if !s.is_success() {
                return Err(Status::error(format!(
                    "running Normalize on Score plugins: {s}"
                )));
            }
            let weight = self.score_weights.get(p.name()).copied().unwrap_or(1);
            for (i, v) in scores.iter().enumerate() {
                if !(MIN_NODE_SCORE..=MAX_NODE_SCORE).contains(v) {
                    return Err(Status::error(format!(
                        "plugin {:?} returns an invalid score {v}, it should in the range of [{MIN_NODE_SCORE}, {MAX_NODE_SCORE}] after normalizing",
                        p.name()
                    )));
                }
                totals[i].score += v * weight;
            }
        }
        Ok(totals)
    }

    /// Runs Reserve in order; on failure the caller must run `run_unreserve`.
    pub fn run_reserve(&self, state: &mut CycleState, pod: &Pod, node: &str) -> Status {
        for p in self.plugins(ExtensionPoint::Reserve) {
            if let Some(r) = p.as_reserve() {
                let s = r.reserve(state, pod, node);
                if !s.is_success() {
                    return s.with_plugin(p.name());
                }
            }
        }
        Status::success()
    }

    /// Unreserve runs in reverse order, like upstream.
    pub fn run_unreserve(&self, state: &mut CycleState, pod: &Pod, node: &str) {
        for p in self.plugins(ExtensionPoint::Reserve).iter().rev() {
            if let Some(r) = p.as_reserve() {
                r.unreserve(state, pod, node);
            }
        }
    }

    /// Returns the combined Permit verdict and the longest wait requested.
    pub fn run_permit(&self, state: &CycleState, pod: &Pod, node: &str) -> (Status, Duration) {
        let mut wait = None;
        for p in self.plugins(ExtensionPoint::Permit) {
            let Some(pp) = p.as_permit() else {
                continue;
            };
            let (s, timeout) = pp.permit(state, pod, node);
            if s.is_wait() {
                let t: Duration = wait.unwrap_or_default();
                wait = Some(t.max(timeout));
                continue;
            }
            if !s.is_success() {
                return (s.with_plugin(p.name()), Duration::ZERO);
            }
        }
        match wait {
            Some(t) => (Status::code_only(Code::Wait), t),
            None => (Status::success(), Duration::ZERO),
        }
    }

    pub async fn run_pre_bind(&self, state: &CycleState, pod: &Pod, node: &str) -> Status {
        for p in self.plugins(ExtensionPoint::PreBind) {
            if let Some(pb) = p.as_pre_bind() {
                let s = pb.pre_bind(state, pod, node).await;
                if !s.is_success() {
                    return s.with_plugin(p.name());
                }
            }
        }
        Status::success()
    }

    pub async fn run_bind(&self, state: &CycleState, pod: &Pod, node: &str) -> Status {
        for p in self.plugins(ExtensionPoint::Bind) {
            if let Some(b) = p.as_bind() {
                let s = b.bind(state, pod, node).await;
                if s.is_skip() {
                    continue;
                }
                return s.with_plugin(p.name());
            }
        }
        Status::skip()
    }

    pub async fn run_post_bind(&self, state: &CycleState, pod: &Pod, node: &str) {
        for p in self.plugins(ExtensionPoint::PostBind) {
            if let Some(pb) = p.as_post_bind() {
                pb.post_bind(state, pod, node).await;
            }
        }
    }

    /// Plugins whose registered events match `event`.
    pub fn plugins_interested_in(
        &self,
        event: &ClusterEvent,
    ) -> impl Iterator<Item = &RegisteredEvent> {
        self.events
            .iter()
            .filter(move |r| r.event.event.matches(event))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{PluginRef as Ref, Plugins, SchedulerConfig};
    use crate::plugins::registry;

    fn names(fw: &Framework, ep: ExtensionPoint) -> Vec<&'static str> {
        fw.plugins(ep).iter().map(|p| p.name()).collect()
    }

    #[test]
    fn default_profile_expands_multipoint() {
        let cfg = SchedulerConfig::default();
        let fw = Framework::new(&cfg.profiles[0], &registry::in_tree(), &Handle::default());
        let Ok(fw) = fw else {
            panic!("default profile rejected: {fw:?}");
        };
        assert_eq!(names(&fw, ExtensionPoint::QueueSort), ["PrioritySort"]);
        assert_eq!(
            names(&fw, ExtensionPoint::Filter),
            [
                "NodeUnschedulable",
                "NodeName",
                "TaintToleration",
                "NodeAffinity",
                "NodePorts",
                "NodeResourcesFit",
                "PodTopologySpread",
                "InterPodAffinity"
            ]
        );
        assert_eq!(
            names(&fw, ExtensionPoint::Score),
            [
                "TaintToleration",
                "NodeAffinity",
                "NodeResourcesFit",
                "PodTopologySpread",
                "InterPodAffinity",
                "NodeResourcesBalancedAllocation",
                "ImageLocality"
            ]
        );
        assert_eq!(fw.score_weights.get("TaintToleration"), Some(&3));
        assert_eq!(fw.score_weights.get("PodTopologySpread"), Some(&2));
        assert_eq!(fw.score_weights.get("InterPodAffinity"), Some(&2));
        assert_eq!(names(&fw, ExtensionPoint::Bind), ["DefaultBinder"]);
        assert_eq!(
            names(&fw, ExtensionPoint::PostFilter),
            ["DefaultPreemption"]
        );
        assert_eq!(names(&fw, ExtensionPoint::PreEnqueue), ["SchedulingGates"]);
    }

    #[test]
    fn explicit_point_config_overrides_multipoint() {
        let mut profile = crate::config::ProfileConfig::default_profile();
        profile.plugins = Plugins::merged_with_defaults(&Plugins {
            score: crate::config::PluginSet {
                enabled: vec![Ref::new("NodeResourcesFit", Some(5))],
                disabled: vec![Ref::new("TaintToleration", None)],
            },
            filter: crate::config::PluginSet {
                enabled: vec![],
                disabled: vec![Ref::new("*", None)],
            },
            ..Default::default()
        });
        let fw = Framework::new(&profile, &registry::in_tree(), &Handle::default());
        let Ok(fw) = fw else {
            panic!("profile rejected: {fw:?}");
        };
        assert!(names(&fw, ExtensionPoint::Filter).is_empty());
        assert_eq!(
            names(&fw, ExtensionPoint::Score),
            [
                "NodeResourcesFit",
                "NodeAffinity",
                "PodTopologySpread",
                "InterPodAffinity",
                "NodeResourcesBalancedAllocation",
                "ImageLocality"
            ]
        );
        assert_eq!(fw.score_weights.get("NodeResourcesFit"), Some(&5));
    }

    #[test]
    fn unknown_plugin_is_an_error() {
        let mut profile = crate::config::ProfileConfig::default_profile();
        profile
            .plugins
            .multi_point
            .enabled
            .push(Ref::new("NoSuchPlugin", None));
        assert!(Framework::new(&profile, &registry::in_tree(), &Handle::default()).is_err());
    }
}
