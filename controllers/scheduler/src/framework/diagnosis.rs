//! Why a pod did not fit, and the user-visible message built from it (upstream `FitError`).

use std::collections::{BTreeSet, HashMap};

use super::interface::NodeToStatus;
use super::status::{Code, Status};

#[derive(Debug, Clone, Default)]
pub struct Diagnosis {
    pub node_to_status: NodeToStatus,
    /// Plugins that rejected the pod; the queue uses them to decide which events requeue it.
    pub unschedulable_plugins: BTreeSet<&'static str>,
    pub pending_plugins: BTreeSet<&'static str>,
    pub pre_filter_msg: String,
    pub post_filter_msg: String,
}

impl Diagnosis {
    /// Upstream `Diagnosis.AddPluginStatus`.
    pub fn add_plugin_status(&mut self, s: &Status) {
        if s.plugin().is_empty() {
            return;
        }
        if s.is_rejected() {
            self.unschedulable_plugins.insert(s.plugin());
        }
        if s.code() == Code::Pending {
            self.pending_plugins.insert(s.plugin());
        }
    }
}

#[derive(Debug, Clone)]
pub struct FitError {
    pub num_all_nodes: usize,
    pub diagnosis: Diagnosis,
}

impl std::fmt::Display for FitError {
    /// `0/X nodes are available: <PreFilterMsg>. <sorted "count reason" list>. <PostFilterMsg>`
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "0/{} nodes are available:", self.num_all_nodes)?;
        let d = &self.diagnosis;
        if !d.pre_filter_msg.is_empty() {
            write!(f, " {}.", d.pre_filter_msg)?;
        } else {
            let mut counts: HashMap<&str, usize> = HashMap::new();
            for status in d.node_to_status.explicit.values() {
                for r in status.reasons() {
                    *counts.entry(r.as_ref()).or_default() += 1;
                }
            }
            let explicit = d.node_to_status.explicit.len();
            if explicit < self.num_all_nodes {
                for r in d.node_to_status.absent_nodes_status.reasons() {
                    *counts.entry(r.as_ref()).or_default() += self.num_all_nodes - explicit;
                }
            }
            // Go sorts the formatted "<count> <reason>" strings bytewise; so do we.
            let mut parts: Vec<String> = counts.iter().map(|(r, c)| format!("{c} {r}")).collect();
            parts.sort();
            if !parts.is_empty() {
                write!(f, " {}.", parts.join(", "))?;
            }
        }
        if !d.post_filter_msg.is_empty() {
            write!(f, " {}", d.post_filter_msg)?;
        }
        Ok(())
    }
}

impl std::error::Error for FitError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_sorts_counted_reasons() {
        let mut d = Diagnosis::default();
        d.node_to_status.explicit.insert(
            "a".into(),
            Status::unresolvable("node(s) had untolerated taint {k: }"),
        );
        d.node_to_status
            .explicit
            .insert("b".into(), Status::unschedulable("Insufficient cpu"));
        d.node_to_status
            .explicit
            .insert("c".into(), Status::unschedulable("Insufficient cpu"));
        let e = FitError {
            num_all_nodes: 3,
            diagnosis: d,
        };
        assert_eq!(
            e.to_string(),
            "0/3 nodes are available: 1 node(s) had untolerated taint {k: }, 2 Insufficient cpu."
        );
    }

    #[test]
    fn prefilter_message_replaces_histogram_and_absent_nodes_count() {
        let mut d = Diagnosis {
            pre_filter_msg: "pod affinity terms conflict".into(),
            ..Default::default()
        };
        d.node_to_status.absent_nodes_status = Status::unresolvable("x");
        let e = FitError {
            num_all_nodes: 2,
            diagnosis: d.clone(),
        };
        assert_eq!(
            e.to_string(),
            "0/2 nodes are available: pod affinity terms conflict."
        );
        d.pre_filter_msg.clear();
        d.node_to_status.absent_nodes_status =
            Status::unresolvable("node(s) didn't satisfy plugin(s) [NodeAffinity]");
        d.post_filter_msg = "preemption: not eligible due to preemptionPolicy=Never.".into();
        let e = FitError {
            num_all_nodes: 2,
            diagnosis: d,
        };
        assert_eq!(
            e.to_string(),
            "0/2 nodes are available: 2 node(s) didn't satisfy plugin(s) [NodeAffinity]. preemption: not eligible due to preemptionPolicy=Never."
        );
    }
}
