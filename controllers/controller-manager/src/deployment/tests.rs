//! Table-driven tests of one Deployment sync on plain objects.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStatus, DeploymentStrategy, ReplicaSet, ReplicaSetSpec,
    ReplicaSetStatus, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::model::{Action, Model, Plan};
use super::reconcile::sync_deployment;
use super::util::*;

fn ts(s: i64) -> Timestamp {
    Timestamp::from_second(s).unwrap_or(Timestamp::UNIX_EPOCH)
}

const NOW: i64 = 1_000_000;

fn pod_template(image: &str) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some([("app".to_string(), "web".to_string())].into()),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "web".into(),
                image: Some(image.into()),
                ..Default::default()
            }],
            ..Default::default()
        }),
    }
}

fn deployment(replicas: i32, image: &str) -> Deployment {
    Deployment {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("ns".into()),
            uid: Some("d-uid".into()),
            generation: Some(1),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some([("app".to_string(), "web".to_string())].into()),
                ..Default::default()
            },
            template: pod_template(image),
            ..Default::default()
        }),
        status: None,
    }
}

fn with_strategy(mut d: Deployment, surge: IntOrString, unavailable: IntOrString) -> Deployment {
    if let Some(spec) = d.spec.as_mut() {
        spec.strategy = Some(DeploymentStrategy {
            type_: Some("RollingUpdate".into()),
            rolling_update: Some(RollingUpdateDeployment {
                max_surge: Some(surge),
                max_unavailable: Some(unavailable),
            }),
        });
    }
    d
}

fn recreate(mut d: Deployment) -> Deployment {
    if let Some(spec) = d.spec.as_mut() {
        spec.strategy = Some(DeploymentStrategy {
            type_: Some("Recreate".into()),
            rolling_update: None,
        });
    }
    d
}

/// An RS as the deployment controller would have made it for `image`,
/// with status as the RS controller would report.
fn rs(image: &str, revision: i64, replicas: i32, available: i32, created: i64) -> ReplicaSet {
    let mut tmpl = pod_template(image);
    let hash = compute_hash(&tmpl, None);
    if let Some(meta) = tmpl.metadata.as_mut() {
        meta.labels
            .get_or_insert_with(BTreeMap::new)
            .insert(POD_TEMPLATE_HASH_LABEL.into(), hash.clone());
    }
    let d = deployment(3, image);
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some(format!("web-{hash}")),
            namespace: Some("ns".into()),
            uid: Some(format!("rs-{image}")),
            generation: Some(1),
            creation_timestamp: Some(Time(ts(created))),
            annotations: Some(
                [
                    (REVISION_ANNOTATION.to_string(), revision.to_string()),
                    // Sized for a Deployment of 3 with a surge of 1.
                    (DESIRED_REPLICAS_ANNOTATION.to_string(), "3".to_string()),
                    (MAX_REPLICAS_ANNOTATION.to_string(), "4".to_string()),
                ]
                .into(),
            ),
            owner_references: Some(vec![component_base::ownerref::new_controller_ref_for(&d)]),
            ..Default::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(replicas),
            min_ready_seconds: Some(0),
            selector: Default::default(),
            template: Some(tmpl),
        }),
        status: Some(ReplicaSetStatus {
            replicas,
            ready_replicas: Some(available),
            available_replicas: Some(available),
            observed_generation: Some(1),
            terminating_replicas: Some(0),
            ..Default::default()
        }),
    }
}

/// The RS as sized for a Deployment of `desired` (max `max`).
fn sized_for(mut rs: ReplicaSet, desired: i32, max: i32) -> ReplicaSet {
    if let Some(a) = rs.metadata.annotations.as_mut() {
        a.insert(DESIRED_REPLICAS_ANNOTATION.into(), desired.to_string());
        a.insert(MAX_REPLICAS_ANNOTATION.into(), max.to_string());
    }
    rs
}

fn plan(d: Deployment, rss: Vec<ReplicaSet>) -> Plan {
    sync_deployment(Model::new(d, rss, BTreeMap::new(), ts(NOW)))
}

fn rs_writes(p: &Plan) -> Vec<(String, String, i32)> {
    p.actions
        .iter()
        .filter_map(|a| match a {
            Action::CreateReplicaSet(rs) => Some(("create", rs)),
            Action::UpdateReplicaSet(rs) => Some(("update", rs)),
            _ => None,
        })
        .map(|(op, rs)| {
            (
                op.to_string(),
                rs.metadata.name.clone().unwrap_or_default(),
                rs_replicas(rs),
            )
        })
        .collect()
}

fn events(p: &Plan) -> Vec<String> {
    p.actions
        .iter()
        .filter_map(|a| match a {
            Action::Event(e) => Some(format!("{}: {}", e.reason, e.message)),
            _ => None,
        })
        .collect()
}

fn last_status(p: &Plan) -> Option<Deployment> {
    p.actions.iter().rev().find_map(|a| match a {
        Action::UpdateDeploymentStatus(d) => Some(d.clone()),
        _ => None,
    })
}

fn progressing_reason(d: &Deployment) -> Option<String> {
    d.status
        .as_ref()
        .and_then(|s| get_condition(s, CONDITION_PROGRESSING))
        .and_then(|c| c.reason.clone())
}

fn name_for(image: &str) -> String {
    format!("web-{}", compute_hash(&pod_template(image), None))
}

#[test]
fn new_deployment_creates_first_replica_set() {
    let p = plan(deployment(3, "nginx:1"), vec![]);
    let created = match p.actions.first() {
        Some(Action::CreateReplicaSet(rs)) => rs.clone(),
        other => panic!("expected a create first, got {other:?}"),
    };
    let name = name_for("nginx:1");
    assert_eq!(created.metadata.name.as_deref(), Some(name.as_str()));
    assert_eq!(rs_replicas(&created), 3);
    let a = created.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(a.get(REVISION_ANNOTATION).map(String::as_str), Some("1"));
    assert_eq!(
        a.get(DESIRED_REPLICAS_ANNOTATION).map(String::as_str),
        Some("3")
    );
    assert_eq!(
        a.get(MAX_REPLICAS_ANNOTATION).map(String::as_str),
        Some("4")
    );
    let hash = compute_hash(&pod_template("nginx:1"), None);
    let rs_labels = created
        .spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    assert_eq!(rs_labels.get(POD_TEMPLATE_HASH_LABEL), Some(&hash));
    let selector = created
        .spec
        .as_ref()
        .map(|s| s.selector.clone())
        .unwrap_or_default();
    assert_eq!(
        selector
            .match_labels
            .unwrap_or_default()
            .get(POD_TEMPLATE_HASH_LABEL),
        Some(&hash)
    );
    assert_eq!(
        events(&p),
        vec![format!(
            "ScalingReplicaSet: Scaled up replica set {name} from 0 to 3"
        )]
    );
    let d = last_status(&p).expect("status written");
    assert_eq!(
        d.metadata
            .annotations
            .unwrap_or_default()
            .get(REVISION_ANNOTATION)
            .map(String::as_str),
        Some("1")
    );
    let status = d.status.unwrap_or_default();
    let progressing = get_condition(&status, CONDITION_PROGRESSING)
        .cloned()
        .unwrap_or_default();
    assert_eq!(progressing.reason.as_deref(), Some(NEW_REPLICA_SET_REASON));
    assert_eq!(
        progressing.message,
        Some(format!("Created new replica set {name:?}"))
    );
    let available = get_condition(&status, CONDITION_AVAILABLE)
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        (available.status.as_str(), available.reason.as_deref()),
        ("False", Some(MINIMUM_REPLICAS_UNAVAILABLE))
    );
}

#[test]
fn rolling_update_steps() {
    let int = IntOrString::Int;
    let pct = |s: &str| IntOrString::String(s.into());
    let old = name_for("nginx:1");
    let new = name_for("nginx:2");
    struct Case {
        name: &'static str,
        d: Deployment,
        rss: Vec<ReplicaSet>,
        want: Vec<(&'static str, String, i32)>,
    }
    let cases = vec![
        Case {
            name: "surge=1 unavailable=0: create new RS at 1, keep old",
            d: with_strategy(deployment(3, "nginx:2"), int(1), int(0)),
            rss: vec![rs("nginx:1", 1, 3, 3, 10)],
            want: vec![("create", new.clone(), 1)],
        },
        Case {
            name: "surge=1 unavailable=0: new pod available, scale old down by one",
            d: with_strategy(deployment(3, "nginx:2"), int(1), int(0)),
            rss: vec![rs("nginx:1", 1, 3, 3, 10), rs("nginx:2", 2, 1, 1, 20)],
            want: vec![("update", old.clone(), 2)],
        },
        Case {
            name: "surge=1 unavailable=0: new pod not yet available, wait",
            d: with_strategy(deployment(3, "nginx:2"), int(1), int(0)),
            rss: vec![rs("nginx:1", 1, 3, 3, 10), rs("nginx:2", 2, 1, 0, 20)],
            want: vec![],
        },
        Case {
            name: "surge=1 unavailable=0: old scaled down, grow new",
            d: with_strategy(deployment(3, "nginx:2"), int(1), int(0)),
            rss: vec![rs("nginx:1", 1, 2, 2, 10), rs("nginx:2", 2, 1, 1, 20)],
            want: vec![("update", new.clone(), 2)],
        },
        Case {
            name: "25%/25% of 4: create new at 1 and scale old to 3 in one sync",
            d: with_strategy(deployment(4, "nginx:2"), pct("25%"), pct("25%")),
            rss: vec![sized_for(rs("nginx:1", 1, 4, 4, 10), 4, 5)],
            want: vec![("create", new.clone(), 1), ("update", old.clone(), 3)],
        },
        Case {
            name: "unavailable old pods are cleaned up first",
            d: with_strategy(deployment(4, "nginx:2"), pct("25%"), pct("25%")),
            rss: vec![
                sized_for(rs("nginx:1", 1, 4, 2, 10), 4, 5),
                sized_for(rs("nginx:2", 2, 1, 1, 20), 4, 5),
            ],
            // maxScaledDown = 5 - 3 - 0 = 2, both unavailable old pods go.
            want: vec![("update", old.clone(), 2)],
        },
    ];
    for case in cases {
        let p = plan(case.d, case.rss);
        let want: Vec<_> = case
            .want
            .into_iter()
            .map(|(a, b, c)| (a.to_string(), b, c))
            .collect();
        assert_eq!(rs_writes(&p), want, "{}", case.name);
    }
}

#[test]
fn completed_rollout_reports_conditions_and_status() {
    let mut d = deployment(3, "nginx:2");
    d.metadata.annotations = Some([(REVISION_ANNOTATION.to_string(), "2".to_string())].into());
    d.status = Some(DeploymentStatus {
        conditions: Some(vec![new_condition(
            CONDITION_PROGRESSING,
            "True",
            REPLICA_SET_UPDATED_REASON,
            "x".into(),
            ts(NOW - 10),
        )]),
        ..Default::default()
    });
    let p = plan(
        d,
        vec![rs("nginx:1", 1, 0, 0, 10), rs("nginx:2", 2, 3, 3, 20)],
    );
    assert!(rs_writes(&p).is_empty());
    let written = last_status(&p).expect("status");
    let s = written.status.clone().unwrap_or_default();
    assert_eq!(
        (
            s.observed_generation,
            s.replicas,
            s.updated_replicas,
            s.ready_replicas,
            s.available_replicas,
            s.unavailable_replicas
        ),
        (Some(1), Some(3), Some(3), Some(3), Some(3), None)
    );
    assert_eq!(
        progressing_reason(&written).as_deref(),
        Some(NEW_RS_AVAILABLE_REASON)
    );
    let c = get_condition(&s, CONDITION_PROGRESSING)
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        c.message,
        Some(format!(
            "ReplicaSet {:?} has successfully progressed.",
            name_for("nginx:2")
        ))
    );
    // Same status and reason: the transition time is kept.
    assert_eq!(c.last_transition_time, Some(Time(ts(NOW - 10))));
    let a = get_condition(&s, CONDITION_AVAILABLE)
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        (a.status.as_str(), a.reason.as_deref()),
        ("True", Some(MINIMUM_REPLICAS_AVAILABLE))
    );

    // A second sync on the written status changes nothing.
    let again = plan(
        written,
        vec![rs("nginx:1", 1, 0, 0, 10), rs("nginx:2", 2, 3, 3, 20)],
    );
    assert!(again.actions.is_empty(), "{:?}", again.actions);
}

#[test]
fn stuck_rollout_times_out() {
    let mut d = deployment(3, "nginx:2");
    d.metadata.annotations = Some([(REVISION_ANNOTATION.to_string(), "2".to_string())].into());
    if let Some(spec) = d.spec.as_mut() {
        spec.progress_deadline_seconds = Some(600);
    }
    let old_update = ts(NOW - 601);
    d.status = Some(DeploymentStatus {
        observed_generation: Some(1),
        replicas: Some(4),
        updated_replicas: Some(1),
        available_replicas: Some(3),
        ready_replicas: Some(3),
        unavailable_replicas: Some(1),
        conditions: Some(vec![new_condition(
            CONDITION_PROGRESSING,
            "True",
            REPLICA_SET_UPDATED_REASON,
            "x".into(),
            old_update,
        )]),
        ..Default::default()
    });
    let rss = vec![rs("nginx:1", 1, 3, 3, 10), rs("nginx:2", 2, 1, 0, 20)];
    let d = with_strategy(d, IntOrString::Int(1), IntOrString::Int(0));
    let p = plan(d.clone(), rss.clone());
    let written = last_status(&p).expect("status");
    assert_eq!(
        progressing_reason(&written).as_deref(),
        Some(TIMED_OUT_REASON)
    );
    let c = written
        .status
        .as_ref()
        .and_then(|s| get_condition(s, CONDITION_PROGRESSING))
        .cloned()
        .unwrap_or_default();
    assert_eq!(c.status, "False");
    assert_eq!(
        c.message,
        Some(format!(
            "ReplicaSet {:?} has timed out progressing.",
            name_for("nginx:2")
        ))
    );

    // Before the deadline: no write, but a requeue for when it passes.
    let mut fresh = d;
    if let Some(s) = fresh.status.as_mut() {
        s.conditions = Some(vec![new_condition(
            CONDITION_PROGRESSING,
            "True",
            REPLICA_SET_UPDATED_REASON,
            "x".into(),
            ts(NOW - 100),
        )]);
        s.conditions
            .get_or_insert_with(Vec::new)
            .push(new_condition(
                CONDITION_AVAILABLE,
                "True",
                MINIMUM_REPLICAS_AVAILABLE,
                "Deployment has minimum availability.".into(),
                ts(NOW - 100),
            ));
        s.terminating_replicas = Some(0);
    }
    let p = plan(fresh, rss);
    assert!(p.actions.is_empty(), "{:?}", p.actions);
    assert_eq!(p.requeue_after, Some(std::time::Duration::from_secs(501)));
}

#[test]
fn recreate_scales_down_then_creates() {
    let d = recreate(deployment(3, "nginx:2"));
    let p = plan(d.clone(), vec![rs("nginx:1", 1, 3, 3, 10)]);
    assert_eq!(
        rs_writes(&p),
        vec![("update".to_string(), name_for("nginx:1"), 0)]
    );
    assert!(events(&p).contains(&format!(
        "ScalingReplicaSet: Scaled down replica set {} from 3 to 0",
        name_for("nginx:1")
    )));

    // Old RS at 0 but its pods still reported: wait.
    let mut draining = rs("nginx:1", 1, 0, 0, 10);
    if let Some(s) = draining.status.as_mut() {
        s.replicas = 2;
    }
    assert!(rs_writes(&plan(d.clone(), vec![draining])).is_empty());

    // All old pods gone: create the new RS at full size.
    let p = plan(d, vec![rs("nginx:1", 1, 0, 0, 10)]);
    assert_eq!(
        rs_writes(&p),
        vec![("create".to_string(), name_for("nginx:2"), 3)]
    );
}

#[test]
fn rollback_reuses_old_replica_set_and_bumps_its_revision() {
    // Template set back to nginx:1 (what `kubectl rollout undo` does).
    let d = deployment(3, "nginx:1");
    let p = plan(
        d,
        vec![rs("nginx:1", 1, 0, 0, 10), rs("nginx:2", 2, 3, 3, 20)],
    );
    let reused = match p.actions.first() {
        Some(Action::UpdateReplicaSet(rs)) => rs.clone(),
        other => panic!("expected the old RS to be updated first, got {other:?}"),
    };
    assert_eq!(reused.metadata.name, Some(name_for("nginx:1")));
    let a = reused.metadata.annotations.unwrap_or_default();
    assert_eq!(a.get(REVISION_ANNOTATION).map(String::as_str), Some("3"));
    assert_eq!(
        a.get(REVISION_HISTORY_ANNOTATION).map(String::as_str),
        Some("1")
    );
    assert!(
        !p.actions
            .iter()
            .any(|a| matches!(a, Action::CreateReplicaSet(_)))
    );

    // Next sync (annotations stored): the Deployment takes revision 3.
    let mut stored = rs("nginx:1", 3, 0, 0, 10);
    if let Some(a) = stored.metadata.annotations.as_mut() {
        a.insert(REVISION_HISTORY_ANNOTATION.into(), "1".into());
    }
    let p = plan(
        deployment(3, "nginx:1"),
        vec![stored, rs("nginx:2", 2, 3, 3, 20)],
    );
    let d = p.actions.iter().find_map(|a| match a {
        Action::UpdateDeploymentStatus(d) => Some(d.clone()),
        _ => None,
    });
    let revision = d
        .and_then(|d| d.metadata.annotations)
        .and_then(|a| a.get(REVISION_ANNOTATION).cloned());
    assert_eq!(revision.as_deref(), Some("3"));
}

#[test]
fn paused_deployment_does_not_roll_out_but_scales() {
    let mut d = deployment(3, "nginx:2");
    if let Some(spec) = d.spec.as_mut() {
        spec.paused = Some(true);
    }
    let p = plan(d.clone(), vec![rs("nginx:1", 1, 3, 3, 10)]);
    assert!(rs_writes(&p).is_empty(), "{:?}", rs_writes(&p));
    let first = p.actions.iter().find_map(|a| match a {
        Action::UpdateDeploymentStatus(d) => Some(d.clone()),
        _ => None,
    });
    assert_eq!(
        first.as_ref().and_then(progressing_reason).as_deref(),
        Some(PAUSED_DEPLOY_REASON)
    );

    if let Some(spec) = d.spec.as_mut() {
        spec.replicas = Some(5);
    }
    let p = plan(d, vec![rs("nginx:1", 1, 3, 3, 10)]);
    assert_eq!(
        rs_writes(&p),
        vec![("update".to_string(), name_for("nginx:1"), 5)]
    );
}

#[test]
fn proportional_scaling_during_rollout() {
    // 10 -> 20 replicas while old (6) and new (4) are both active; the RSs
    // were sized for max 13 (10 + 25% surge).
    let mut old = rs("nginx:1", 1, 6, 6, 10);
    let mut new = rs("nginx:2", 2, 4, 0, 20);
    for rs in [&mut old, &mut new] {
        if let Some(a) = rs.metadata.annotations.as_mut() {
            a.insert(DESIRED_REPLICAS_ANNOTATION.into(), "10".into());
            a.insert(MAX_REPLICAS_ANNOTATION.into(), "13".into());
        }
    }
    let p = plan(deployment(20, "nginx:2"), vec![old, new]);
    let mut writes = rs_writes(&p);
    writes.sort();
    let mut want = vec![
        ("update".to_string(), name_for("nginx:1"), 17),
        ("update".to_string(), name_for("nginx:2"), 8),
    ];
    want.sort();
    assert_eq!(writes, want);
}

#[test]
fn history_beyond_limit_is_cleaned_up() {
    let mut d = deployment(1, "nginx:99");
    if let Some(spec) = d.spec.as_mut() {
        spec.revision_history_limit = Some(2);
    }
    // Cleanup happens once the previous sync recorded a complete rollout.
    d.status = Some(DeploymentStatus {
        observed_generation: Some(1),
        replicas: Some(1),
        updated_replicas: Some(1),
        available_replicas: Some(1),
        ..Default::default()
    });
    let mut rss: Vec<ReplicaSet> = (1..=4)
        .map(|i| rs(&format!("nginx:{i}"), i, 0, 0, i * 10))
        .collect();
    rss.push(sized_for(rs("nginx:99", 5, 1, 1, 100), 1, 2));
    let p = plan(d, rss);
    let deleted: Vec<String> = p
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::DeleteReplicaSet(n) => Some(n.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(deleted, vec![name_for("nginx:1"), name_for("nginx:2")]);
}

#[test]
fn empty_selector_is_refused() {
    let mut d = deployment(1, "nginx:1");
    if let Some(spec) = d.spec.as_mut() {
        spec.selector = LabelSelector::default();
    }
    let p = plan(d, vec![]);
    assert_eq!(events(&p), vec!["SelectingAll: This deployment is selecting all pods. A non-empty selector is required.".to_string()]);
    assert!(rs_writes(&p).is_empty());
}
