//! ImageLocality: favours nodes that already have the pod's images, weighted by how widely
//! each image is spread (so one node with a popular image does not attract everything).

use k8s_openapi::api::core::v1::Pod;

use super::names;
use crate::framework::{CycleState, MAX_NODE_SCORE, NodeInfo, Plugin, ScorePlugin, Status};

const MB: i64 = 1024 * 1024;
/// Below this the image is too small for locality to matter (upstream `minThreshold`).
const MIN_THRESHOLD: i64 = 23 * MB;
/// Per-container cap (upstream `maxContainerThreshold`).
const MAX_CONTAINER_THRESHOLD: i64 = 1000 * MB;

pub struct ImageLocality;

/// Upstream `normalizedImageName`: an image without a tag means `:latest`.
pub fn normalized_image_name(name: &str) -> String {
    let colon = name.rfind(':');
    let slash = name.rfind('/');
    if colon <= slash {
        format!("{name}:latest")
    } else {
        name.to_string()
    }
}

fn sum_image_scores(node: &NodeInfo, pod: &Pod) -> i64 {
    let Some(spec) = pod.spec.as_ref() else {
        return 0;
    };
    spec.init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
        .filter_map(|c| c.image.as_deref())
        .filter_map(|image| node.image_states.get(&normalized_image_name(image)))
        .filter(|s| s.total_nodes > 0)
        .map(|s| (s.size as f64 * (s.num_nodes as f64 / s.total_nodes as f64)) as i64)
        .sum()
}

/// Upstream `calculatePriority`.
fn calculate_priority(sum: i64, num_containers: usize) -> i64 {
    let max_threshold = MAX_CONTAINER_THRESHOLD * num_containers as i64;
    if max_threshold <= MIN_THRESHOLD {
        return 0;
    }
    let clamped = sum.clamp(MIN_THRESHOLD, max_threshold);
    MAX_NODE_SCORE * (clamped - MIN_THRESHOLD) / (max_threshold - MIN_THRESHOLD)
}

impl Plugin for ImageLocality {
    fn name(&self) -> &'static str {
        names::IMAGE_LOCALITY
    }
    fn as_score(&self) -> Option<&dyn ScorePlugin> {
        Some(self)
    }
}

impl ScorePlugin for ImageLocality {
    fn score(&self, _state: &CycleState, pod: &Pod, node: &NodeInfo) -> Result<i64, Status> {
        let containers = pod.spec.as_ref().map_or(0, |s| {
            s.containers.len() + s.init_containers.as_ref().map_or(0, Vec::len)
        });
        Ok(calculate_priority(sum_image_scores(node, pod), containers))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::node_info::ImageStateSummary;
    use crate::testing::{container, node, pod_named};
    use std::sync::Arc;

    #[test]
    fn normalizes_names() {
        assert_eq!(normalized_image_name("nginx"), "nginx:latest");
        assert_eq!(normalized_image_name("nginx:1.25"), "nginx:1.25");
        assert_eq!(
            normalized_image_name("localhost:5000/app"),
            "localhost:5000/app:latest"
        );
    }

    #[test]
    fn score_table() {
        let mut c = container(&[]);
        c.image = Some("big".into());
        let pod = pod_named("p", vec![c]);
        let state = |size: i64, num: usize, total: usize| ImageStateSummary {
            size,
            num_nodes: num,
            total_nodes: total,
        };
        let cases = [
            (None, 0),
            (Some(state(10 * MB, 1, 1)), 0),
            (Some(state(1000 * MB, 1, 1)), 100),
            (Some(state(1000 * MB, 1, 2)), 48),
            (Some(state(5000 * MB, 2, 2)), 100),
        ];
        for (st, want) in cases {
            let mut ni = NodeInfo::new(Arc::new(node("n", "1", "1Gi", "10")));
            if let Some(s) = st {
                ni.image_states.insert("big:latest".into(), s);
            }
            assert_eq!(
                ImageLocality.score(&CycleState::new(), &pod, &ni).ok(),
                Some(want),
                "{st:?}"
            );
        }
    }
}
