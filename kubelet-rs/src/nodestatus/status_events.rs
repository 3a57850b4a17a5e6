//! Node condition transitions → node events (upstream's `recordEventFunc` calls in
//! the condition setters): `NodeReady`/`NodeNotReady` when Ready flips, and
//! `NodeHas(In)Sufficient…`/`NodeHas(No)DiskPressure` when a pressure condition
//! appears or flips. All are `Normal`, with message "Node <name> status is now: <reason>".

use k8s_openapi::api::core::v1::NodeCondition;

fn status_of<'a>(conditions: &'a [NodeCondition], type_: &str) -> Option<&'a str> {
    conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.status.as_str())
}

/// The event reasons the move from `previous` to `next` conditions records, in
/// upstream's setter order (memory, disk, PID, Ready).
pub fn condition_events(previous: &[NodeCondition], next: &[NodeCondition]) -> Vec<&'static str> {
    let pressure = [
        (
            "MemoryPressure",
            "NodeHasInsufficientMemory",
            "NodeHasSufficientMemory",
        ),
        (
            "DiskPressure",
            "NodeHasDiskPressure",
            "NodeHasNoDiskPressure",
        ),
        (
            "PIDPressure",
            "NodeHasInsufficientPID",
            "NodeHasSufficientPID",
        ),
    ];
    let mut out = Vec::new();
    for (type_, when_true, when_false) in pressure {
        let Some(now) = status_of(next, type_) else {
            continue;
        };
        // A missing condition counts as Unknown, so its first value is an event.
        if status_of(previous, type_) != Some(now) {
            out.push(if now == "True" { when_true } else { when_false });
        }
    }
    // Ready only records a change of an existing condition.
    if let (Some(before), Some(now)) = (status_of(previous, "Ready"), status_of(next, "Ready"))
        && before != now
    {
        out.push(if now == "True" {
            "NodeReady"
        } else {
            "NodeNotReady"
        });
    }
    out
}

/// Upstream `recordNodeStatusEvent` message.
pub fn node_status_message(node_name: &str, reason: &str) -> String {
    format!("Node {node_name} status is now: {reason}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conds(list: &[(&str, &str)]) -> Vec<NodeCondition> {
        list.iter()
            .map(|(t, s)| NodeCondition {
                type_: t.to_string(),
                status: s.to_string(),
                ..Default::default()
            })
            .collect()
    }

    /// (name, conditions before, conditions after, expected reasons).
    type Case = (
        &'static str,
        Vec<(&'static str, &'static str)>,
        Vec<(&'static str, &'static str)>,
        Vec<&'static str>,
    );

    #[test]
    fn transitions() {
        let healthy = [
            ("MemoryPressure", "False"),
            ("DiskPressure", "False"),
            ("PIDPressure", "False"),
            ("Ready", "True"),
        ];
        let cases: [Case; 5] = [
            (
                "first status: pressure events, no Ready event",
                vec![],
                healthy.to_vec(),
                vec![
                    "NodeHasSufficientMemory",
                    "NodeHasNoDiskPressure",
                    "NodeHasSufficientPID",
                ],
            ),
            ("steady", healthy.to_vec(), healthy.to_vec(), vec![]),
            (
                "becomes ready",
                vec![("Ready", "False")],
                vec![("Ready", "True")],
                vec!["NodeReady"],
            ),
            (
                "becomes not ready",
                vec![("Ready", "True")],
                vec![("Ready", "Unknown")],
                vec!["NodeNotReady"],
            ),
            (
                "memory pressure",
                vec![("MemoryPressure", "False")],
                vec![("MemoryPressure", "True")],
                vec!["NodeHasInsufficientMemory"],
            ),
        ];
        for (name, before, after, want) in cases {
            assert_eq!(
                condition_events(&conds(&before), &conds(&after)),
                want,
                "{name}"
            );
        }
        assert_eq!(
            node_status_message("n1", "NodeReady"),
            "Node n1 status is now: NodeReady"
        );
    }
}
