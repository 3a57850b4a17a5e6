//! PrioritySort: higher priority first, then earlier queue timestamp.

use crate::framework::{Plugin, QueueSortPlugin, QueuedPodView};
use crate::pod::priority as pod_priority;

use super::names;

pub struct PrioritySort;

impl Plugin for PrioritySort {
    fn name(&self) -> &'static str {
        names::PRIORITY_SORT
    }
    fn as_queue_sort(&self) -> Option<&dyn QueueSortPlugin> {
        Some(self)
    }
}

impl QueueSortPlugin for PrioritySort {
    fn less(&self, a: &QueuedPodView<'_>, b: &QueuedPodView<'_>) -> bool {
        let (pa, pb) = (pod_priority(a.pod), pod_priority(b.pod));
        pa > pb || (pa == pb && a.timestamp < b.timestamp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{pod_named, with_priority};
    use std::time::Duration;
    use tokio::time::Instant;

    #[test]
    fn ordering_table() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(1);
        let hi = with_priority(pod_named("hi", vec![]), 10);
        let lo = pod_named("lo", vec![]);
        let cases = [
            (&hi, t1, &lo, t0, true),
            (&lo, t0, &hi, t1, false),
            (&lo, t0, &lo, t1, true),
            (&lo, t1, &lo, t0, false),
        ];
        for (a, ta, b, tb, want) in cases {
            let va = QueuedPodView {
                pod: a,
                timestamp: ta,
            };
            let vb = QueuedPodView {
                pod: b,
                timestamp: tb,
            };
            assert_eq!(PrioritySort.less(&va, &vb), want);
        }
    }
}
