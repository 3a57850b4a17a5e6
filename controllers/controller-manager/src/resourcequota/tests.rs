//! Table tests for the quota evaluators and the status decision, taking
//! upstream's `pods_test.go`, `services_test.go`,
//! `persistent_volume_claims_test.go` and `resource_quota_controller_test.go`
//! cases as the specification.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use component_base::quantity::{ParsedQuantity, Quantity};
use k8s_openapi::api::core::v1::{
    Container, PersistentVolumeClaim, PersistentVolumeClaimSpec, PersistentVolumeClaimStatus, Pod,
    PodSpec, PodStatus, ResourceQuota, ResourceQuotaSpec, ResourceQuotaStatus,
    ResourceRequirements, ScopeSelector, ScopedResourceSelectorRequirement, Service, ServicePort,
    ServiceSpec, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::ObjectMeta;

use super::evaluator::{self, Evaluator, GroupResource};
use super::reconcile::{self, NamespaceObjects};
use super::resources::{self, ResourceList};

fn list(pairs: &[(&str, &str)]) -> BTreeMap<String, Quantity> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
        .collect()
}

fn parsed(pairs: &[(&str, &str)]) -> ResourceList {
    pairs
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                v.parse::<ParsedQuantity>().expect("quantity"),
            )
        })
        .collect()
}

fn container(name: &str, requests: &[(&str, &str)], limits: &[(&str, &str)]) -> Container {
    Container {
        name: name.into(),
        resources: Some(ResourceRequirements {
            requests: (!requests.is_empty()).then(|| list(requests)),
            limits: (!limits.is_empty()).then(|| list(limits)),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn pod(name: &str, containers: Vec<Container>) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("ns".into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers,
            ..Default::default()
        }),
        status: Some(PodStatus {
            phase: Some("Running".into()),
            ..Default::default()
        }),
    }
}

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000)
}

#[test]
fn pod_usage_table() {
    let mut init = pod(
        "init",
        vec![container("app", &[("cpu", "1"), ("memory", "1Gi")], &[])],
    );
    if let Some(spec) = init.spec.as_mut() {
        spec.init_containers = Some(vec![container("init", &[("cpu", "2")], &[])]);
    }
    let mut sidecar = pod(
        "sidecar",
        vec![container("app", &[("cpu", "1")], &[("cpu", "2")])],
    );
    if let Some(spec) = sidecar.spec.as_mut() {
        let mut side = container("side", &[("cpu", "500m")], &[("cpu", "500m")]);
        side.restart_policy = Some("Always".into());
        spec.init_containers = Some(vec![side]);
        spec.overhead = Some(list(&[("cpu", "100m")]));
    }
    let mut failed = pod("failed", vec![container("app", &[("cpu", "1")], &[])]);
    failed.status = Some(PodStatus {
        phase: Some("Failed".into()),
        ..Default::default()
    });
    let mut expired = pod("expired", vec![container("app", &[("cpu", "1")], &[])]);
    expired.metadata.deletion_timestamp =
        Some(Time(jiff::Timestamp::from_second(999_000).expect("ts")));
    expired.metadata.deletion_grace_period_seconds = Some(30);
    let mut grace = expired.clone();
    grace.metadata.deletion_grace_period_seconds = Some(10_000);
    let extended = pod(
        "ext",
        vec![container(
            "app",
            &[("example.com/dongle", "2"), ("hugepages-2Mi", "4Mi")],
            &[],
        )],
    );
    let cases: Vec<(&str, Pod, ResourceList)> = vec![
        (
            "init container larger than app containers",
            init,
            parsed(&[
                ("count/pods", "1"),
                ("pods", "1"),
                ("cpu", "2"),
                ("requests.cpu", "2"),
                ("memory", "1Gi"),
                ("requests.memory", "1Gi"),
            ]),
        ),
        (
            "sidecar adds to app containers, overhead added",
            sidecar,
            parsed(&[
                ("count/pods", "1"),
                ("pods", "1"),
                ("cpu", "1600m"),
                ("requests.cpu", "1600m"),
                ("limits.cpu", "2600m"),
            ]),
        ),
        (
            "terminal pod only counts as an object",
            failed,
            parsed(&[("count/pods", "1")]),
        ),
        (
            "pod past its deletion grace period",
            expired,
            parsed(&[("count/pods", "1")]),
        ),
        (
            "pod within its deletion grace period",
            grace,
            parsed(&[
                ("count/pods", "1"),
                ("pods", "1"),
                ("cpu", "1"),
                ("requests.cpu", "1"),
            ]),
        ),
        (
            "extended resources and hugepages",
            extended,
            parsed(&[
                ("count/pods", "1"),
                ("pods", "1"),
                ("requests.example.com/dongle", "2"),
                ("hugepages-2Mi", "4Mi"),
                ("requests.hugepages-2Mi", "4Mi"),
            ]),
        ),
    ];
    for (name, pod, want) in cases {
        let got = evaluator::pod_usage(&pod, now()).expect("usage");
        assert!(resources::equals(&got, &want), "{name}: got {got:?}");
    }
}

#[test]
fn best_effort_and_scopes() {
    let be = pod("be", vec![container("app", &[], &[])]);
    let burstable = pod("b", vec![container("app", &[("cpu", "1")], &[])]);
    let mut terminating = be.clone();
    if let Some(s) = terminating.spec.as_mut() {
        s.active_deadline_seconds = Some(60);
        s.priority_class_name = Some("high".into());
    }
    let req = |scope: &str, op: &str, values: &[&str]| ScopedResourceSelectorRequirement {
        scope_name: scope.into(),
        operator: op.into(),
        values: (!values.is_empty()).then(|| values.iter().map(|v| v.to_string()).collect()),
    };
    let cases = [
        (req("BestEffort", "Exists", &[]), &be, true),
        (req("BestEffort", "Exists", &[]), &burstable, false),
        (req("NotBestEffort", "Exists", &[]), &burstable, true),
        (req("Terminating", "Exists", &[]), &terminating, true),
        (req("NotTerminating", "Exists", &[]), &terminating, false),
        (req("PriorityClass", "In", &["high"]), &terminating, true),
        (req("PriorityClass", "NotIn", &["high"]), &be, true),
        (req("PriorityClass", "Exists", &[]), &be, false),
        (req("CrossNamespacePodAffinity", "Exists", &[]), &be, false),
    ];
    for (sel, pod, want) in cases {
        assert_eq!(
            evaluator::pod_matches_scope(&sel, pod).expect("valid"),
            want,
            "{sel:?} on {:?}",
            pod.metadata.name
        );
    }
}

fn service(type_: &str, ports: usize, allocate: Option<bool>) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some("svc".into()),
            namespace: Some("ns".into()),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            type_: Some(type_.into()),
            ports: Some(
                (0..ports)
                    .map(|i| ServicePort {
                        port: 80 + i32::try_from(i).unwrap_or(0),
                        node_port: (i == 0).then_some(30000),
                        ..Default::default()
                    })
                    .collect(),
            ),
            allocate_load_balancer_node_ports: allocate,
            ..Default::default()
        }),
        status: None,
    }
}

#[test]
fn service_usage_table() {
    let base = |np: &str, lb: &str| {
        parsed(&[
            ("count/services", "1"),
            ("services", "1"),
            ("services.nodeports", np),
            ("services.loadbalancers", lb),
        ])
    };
    let cases = [
        ("ClusterIP", service("ClusterIP", 2, None), base("0", "0")),
        ("NodePort", service("NodePort", 2, None), base("2", "0")),
        (
            "LoadBalancer",
            service("LoadBalancer", 2, None),
            base("2", "1"),
        ),
        (
            "LoadBalancer without node port allocation counts explicit ones",
            service("LoadBalancer", 2, Some(false)),
            base("1", "1"),
        ),
    ];
    for (name, svc, want) in cases {
        assert!(
            resources::equals(&evaluator::service_usage(&svc), &want),
            "{name}"
        );
    }
}

fn pvc(class: Option<&str>, request: &str, allocated: Option<&str>) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some("claim".into()),
            namespace: Some("ns".into()),
            ..Default::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            storage_class_name: class.map(str::to_string),
            resources: Some(VolumeResourceRequirements {
                requests: Some(list(&[("storage", request)])),
                ..Default::default()
            }),
            ..Default::default()
        }),
        status: Some(PersistentVolumeClaimStatus {
            allocated_resources: allocated.map(|a| list(&[("storage", a)])),
            ..Default::default()
        }),
    }
}

#[test]
fn pvc_usage_table() {
    let cases = [
        (
            "no class",
            pvc(None, "10Gi", None),
            parsed(&[
                ("persistentvolumeclaims", "1"),
                ("count/persistentvolumeclaims", "1"),
                ("requests.storage", "10Gi"),
            ]),
        ),
        (
            "gold class, larger allocation wins, fractional bytes round up",
            pvc(Some("gold"), "1500m", Some("2Gi")),
            parsed(&[
                ("persistentvolumeclaims", "1"),
                ("count/persistentvolumeclaims", "1"),
                (
                    "gold.storageclass.storage.k8s.io/persistentvolumeclaims",
                    "1",
                ),
                ("requests.storage", "2Gi"),
                ("gold.storageclass.storage.k8s.io/requests.storage", "2Gi"),
            ]),
        ),
        (
            "fractional request rounds up to whole bytes",
            pvc(None, "1500m", None),
            parsed(&[
                ("persistentvolumeclaims", "1"),
                ("count/persistentvolumeclaims", "1"),
                ("requests.storage", "2"),
            ]),
        ),
    ];
    for (name, claim, want) in cases {
        let got = evaluator::pvc_usage(&claim).expect("usage");
        assert!(resources::equals(&got, &want), "{name}: {got:?}");
    }
}

#[test]
fn matching_resources() {
    let hard = [
        "pods",
        "cpu",
        "requests.example.com/dongle",
        "requests.hugepages-2Mi",
        "services.nodeports",
        "gold.storageclass.storage.k8s.io/requests.storage",
        "configmaps",
        "count/configmaps",
        "count/replicasets.apps",
        "example.com/unknown",
    ];
    let names = |e: Evaluator| e.matching_resources(hard.iter().copied());
    assert_eq!(
        names(Evaluator::Pods),
        vec![
            "pods",
            "cpu",
            "requests.example.com/dongle",
            "requests.hugepages-2Mi"
        ]
    );
    assert_eq!(names(Evaluator::Services), vec!["services.nodeports"]);
    assert_eq!(
        names(Evaluator::PersistentVolumeClaims),
        vec!["gold.storageclass.storage.k8s.io/requests.storage"]
    );
    assert_eq!(
        names(Evaluator::object_count(GroupResource::new(
            "",
            "configmaps"
        ))),
        vec!["configmaps", "count/configmaps"]
    );
    assert_eq!(
        names(Evaluator::object_count(GroupResource::new(
            "apps",
            "replicasets"
        ))),
        vec!["count/replicasets.apps"]
    );
}

fn quota(hard: &[(&str, &str)], status: Option<ResourceQuotaStatus>) -> ResourceQuota {
    ResourceQuota {
        metadata: ObjectMeta {
            name: Some("quota".into()),
            namespace: Some("ns".into()),
            ..Default::default()
        },
        spec: Some(ResourceQuotaSpec {
            hard: Some(list(hard)),
            ..Default::default()
        }),
        status,
    }
}

fn registry() -> Vec<Evaluator> {
    vec![
        Evaluator::Pods,
        Evaluator::Services,
        Evaluator::PersistentVolumeClaims,
        Evaluator::object_count(GroupResource::new("", "configmaps")),
        Evaluator::object_count(GroupResource::new("apps", "replicasets")),
    ]
}

fn objects<'a>(
    pods: Vec<Pod>,
    count: &'a (dyn Fn(&GroupResource) -> Option<usize> + Sync),
) -> NamespaceObjects<'a> {
    NamespaceObjects {
        pods: pods.into_iter().map(Arc::new).collect(),
        services: vec![Arc::new(service("NodePort", 1, None))],
        pvcs: Vec::new(),
        count,
        now: now(),
    }
}

/// Upstream `TestSyncResourceQuota`: usage is computed for every hard
/// resource an evaluator matches; unknown ones keep their previous value.
#[test]
fn status_from_usage() {
    let q = quota(
        &[
            ("pods", "5"),
            ("requests.cpu", "4"),
            ("services.nodeports", "3"),
            ("configmaps", "10"),
            ("count/replicasets.apps", "5"),
            ("example.com/unknown", "1"),
        ],
        Some(ResourceQuotaStatus {
            hard: None,
            used: Some(list(&[("example.com/unknown", "1"), ("secrets", "3")])),
        }),
    );
    let mut done = pod("done", vec![container("app", &[("cpu", "1")], &[])]);
    done.status = Some(PodStatus {
        phase: Some("Succeeded".into()),
        ..Default::default()
    });
    let count = |gr: &GroupResource| match gr.resource.as_str() {
        "configmaps" => Some(2),
        _ => Some(0),
    };
    let objs = objects(
        vec![
            pod("a", vec![container("app", &[("cpu", "500m")], &[])]),
            done,
        ],
        &count,
    );
    let hard = resources::parse_list(q.spec.as_ref().and_then(|s| s.hard.as_ref())).expect("hard");
    let (usage, errors) = reconcile::calculate_usage(&q, &hard, &registry(), &objs);
    assert!(errors.is_empty());
    let status = reconcile::desired_status(&q, &hard, usage)
        .expect("parse")
        .expect("changed");
    assert_eq!(
        status.used,
        Some(list(&[
            ("configmaps", "2"),
            ("count/replicasets.apps", "0"),
            ("example.com/unknown", "1"),
            ("pods", "1"),
            ("requests.cpu", "500m"),
            ("services.nodeports", "1"),
        ]))
    );
    assert_eq!(status.hard, q.spec.as_ref().and_then(|s| s.hard.clone()));

    // Written back unchanged, the next sync has nothing to do.
    let synced = quota(
        &[
            ("pods", "5"),
            ("requests.cpu", "4"),
            ("services.nodeports", "3"),
            ("configmaps", "10"),
            ("count/replicasets.apps", "5"),
            ("example.com/unknown", "1"),
        ],
        Some(status),
    );
    let (usage, _) = reconcile::calculate_usage(&synced, &hard, &registry(), &objs);
    assert_eq!(
        reconcile::desired_status(&synced, &hard, usage).expect("parse"),
        None
    );
}

#[test]
fn scoped_quota_counts_matching_pods_only() {
    let mut q = quota(&[("pods", "5"), ("count/pods", "5")], None);
    if let Some(spec) = q.spec.as_mut() {
        spec.scopes = Some(vec!["BestEffort".into()]);
        spec.scope_selector = Some(ScopeSelector {
            match_expressions: Some(vec![ScopedResourceSelectorRequirement {
                scope_name: "NotTerminating".into(),
                operator: "Exists".into(),
                values: None,
            }]),
        });
    }
    let count = |_: &GroupResource| Some(7);
    let objs = objects(
        vec![
            pod("be", vec![container("app", &[], &[])]),
            pod(
                "burstable",
                vec![container("app", &[("memory", "1Mi")], &[])],
            ),
        ],
        &count,
    );
    let hard = parsed(&[("pods", "5"), ("count/pods", "5")]);
    let (usage, errors) = reconcile::calculate_usage(&q, &hard, &registry(), &objs);
    assert!(errors.is_empty());
    assert!(resources::equals(
        &usage,
        &parsed(&[("pods", "1"), ("count/pods", "1")])
    ));
}

#[test]
fn unsynced_monitor_is_an_error_not_a_zero() {
    let q = quota(&[("configmaps", "5"), ("pods", "2")], None);
    let count = |_: &GroupResource| None;
    let objs = objects(Vec::new(), &count);
    let hard = parsed(&[("configmaps", "5"), ("pods", "2")]);
    let (usage, errors) = reconcile::calculate_usage(&q, &hard, &registry(), &objs);
    assert_eq!(errors.len(), 1);
    assert!(resources::equals(&usage, &parsed(&[("pods", "0")])));
}

#[test]
fn replenishment_targets_quotas_tracking_the_resource() {
    let tracked = quota(
        &[],
        Some(ResourceQuotaStatus {
            hard: Some(list(&[("count/replicasets.apps", "1")])),
            used: None,
        }),
    );
    let rs = Evaluator::object_count(GroupResource::new("apps", "replicasets"));
    assert!(reconcile::concerns(&tracked, &rs));
    assert!(!reconcile::concerns(&tracked, &Evaluator::Pods));
    let new = quota(&[("count/replicasets.apps", "1")], None);
    assert!(!reconcile::concerns(&new, &rs));
}

#[test]
fn pvc_update_filter() {
    let a = pvc(None, "1Gi", Some("1Gi"));
    let b = pvc(None, "1Gi", Some("2Gi"));
    assert!(evaluator::pvc_requires_replenish(&b, &a));
    assert!(!evaluator::pvc_requires_replenish(&a, &a.clone()));
}
