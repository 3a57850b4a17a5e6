//! The write half of a Deployment sync against fake writers:
//! resourceVersion threading between writes and name collisions.

use std::sync::Arc;

use component_base::events::EventBroadcaster;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::Resource;
use kube::runtime::reflector::store::Writer;
use kube::runtime::watcher;
use tokio_util::sync::CancellationToken;

use super::Controller;
use super::model::Action;
use super::util;
use crate::control::fake::{FakeObjectControl, Write, api_error};
use crate::events::EventSink;

fn template(image: &str) -> PodTemplateSpec {
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

fn deployment(progress_deadline: Option<i32>) -> Deployment {
    Deployment {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("ns".into()),
            uid: Some("d-uid".into()),
            resource_version: Some("5".into()),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            selector: LabelSelector::default(),
            template: template("nginx"),
            progress_deadline_seconds: progress_deadline,
            ..Default::default()
        }),
        status: None,
    }
}

fn replicaset(name: &str, owner_uid: Option<&str>, image: &str) -> ReplicaSet {
    let mut rs = ReplicaSet {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("ns".into()),
            uid: Some(format!("{name}-uid")),
            ..Default::default()
        },
        spec: Some(ReplicaSetSpec {
            template: Some(template(image)),
            ..Default::default()
        }),
        status: None,
    };
    if let Some(uid) = owner_uid {
        let mut owner = deployment(None);
        owner.metadata.uid = Some(uid.into());
        rs.metadata.owner_references =
            Some(vec![component_base::ownerref::new_controller_ref_for(
                &owner,
            )]);
    }
    rs
}

struct Harness {
    ctl: Controller,
    rss: Arc<FakeObjectControl<ReplicaSet>>,
    deployments: Arc<FakeObjectControl<Deployment>>,
    shutdown: CancellationToken,
}

impl Harness {
    /// The controller with `cached` ReplicaSets in its informer cache.
    fn new(cached: Vec<ReplicaSet>) -> Self {
        let mut rs_cache = Writer::<ReplicaSet>::default();
        for rs in cached {
            rs_cache.apply_watcher_event(&watcher::Event::Apply(rs));
        }
        let shutdown = CancellationToken::new();
        let config = kube::Config::new("http://127.0.0.1:9".parse().expect("url"));
        let client = kube::Client::try_from(config).expect("client");
        let events = EventBroadcaster::start(client, shutdown.clone());
        let rss = Arc::new(FakeObjectControl::default());
        let deployments = Arc::new(FakeObjectControl::default());
        let ctl = Controller {
            deployments: Writer::default().as_reader(),
            replicasets: rs_cache.as_reader(),
            pods: Writer::default().as_reader(),
            rs_control: rss.clone(),
            d_control: deployments.clone(),
            events: EventSink::new(&events, super::DEPLOYMENT_CONTROLLER),
        };
        Self {
            ctl,
            rss,
            deployments,
            shutdown,
        }
    }

    fn status_writes(&self) -> Vec<Deployment> {
        self.deployments
            .writes()
            .into_iter()
            .filter_map(|w| match w {
                Write::UpdateStatus(d) => Some(d),
                _ => None,
            })
            .collect()
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn version<K: Resource>(obj: &K) -> Option<String> {
    obj.meta().resource_version.clone()
}

#[tokio::test]
async fn later_writes_carry_the_version_the_previous_write_returned() {
    let h = Harness::new(Vec::new());
    let d = deployment(None);
    let created = replicaset("web-1", Some("d-uid"), "nginx");
    let mut scaled = created.clone();
    if let Some(spec) = scaled.spec.as_mut() {
        spec.replicas = Some(3);
    }
    let actions = vec![
        Action::CreateReplicaSet(created),
        Action::UpdateReplicaSet(scaled),
        Action::UpdateDeploymentStatus(d.clone()),
        Action::UpdateDeploymentStatus(d.clone()),
    ];
    assert!(h.ctl.apply(&d, actions).await.is_ok());
    let rs_writes = h.rss.writes();
    let Some(Write::Update(updated)) = rs_writes.get(1) else {
        panic!("want an update second, got {rs_writes:?}");
    };
    // The fake returns version 101 for its first write.
    assert_eq!(version(updated), Some("101".into()));
    let statuses = h.status_writes();
    assert_eq!(
        statuses.iter().map(version).collect::<Vec<_>>(),
        vec![Some("5".into()), Some("101".into())]
    );
}

#[tokio::test]
async fn a_failed_write_stops_the_plan() {
    let h = Harness::new(Vec::new());
    let d = deployment(None);
    h.rss.script([Some(api_error(409, "Conflict"))]);
    let actions = vec![
        Action::UpdateReplicaSet(replicaset("web-1", Some("d-uid"), "nginx")),
        Action::UpdateDeploymentStatus(d.clone()),
    ];
    let err = h.ctl.apply(&d, actions).await.expect_err("conflict");
    assert!(err.is_conflict());
    assert!(h.status_writes().is_empty());
}

#[tokio::test]
async fn a_name_collision_bumps_collision_count() {
    // Someone else's ReplicaSet holds the name.
    let h = Harness::new(vec![replicaset("web-1", Some("other-uid"), "nginx")]);
    let mut d = deployment(None);
    d.status = Some(Default::default());
    h.rss.script([Some(api_error(409, "AlreadyExists"))]);
    let actions = vec![Action::CreateReplicaSet(replicaset(
        "web-1",
        Some("d-uid"),
        "nginx",
    ))];
    let err = h.ctl.apply(&d, actions).await.expect_err("collision");
    assert!(err.is_already_exists());
    let statuses = h.status_writes();
    assert_eq!(statuses.len(), 1);
    assert_eq!(
        statuses[0].status.as_ref().and_then(|s| s.collision_count),
        Some(1)
    );
    assert_eq!(version(&statuses[0]), Some("5".into()));
}

#[tokio::test]
async fn a_collision_with_our_own_replica_set_or_an_unseen_one_is_retried() {
    for cached in [
        vec![replicaset("web-1", Some("d-uid"), "nginx")],
        Vec::new(),
    ] {
        let h = Harness::new(cached);
        let d = deployment(None);
        h.rss.script([Some(api_error(409, "AlreadyExists"))]);
        let actions = vec![Action::CreateReplicaSet(replicaset(
            "web-1",
            Some("d-uid"),
            "nginx",
        ))];
        let err = h.ctl.apply(&d, actions).await.expect_err("collision");
        assert!(err.is_already_exists());
        assert!(h.status_writes().is_empty(), "no collisionCount bump");
    }
}

#[tokio::test]
async fn a_failed_create_sets_replica_set_create_error() {
    let h = Harness::new(Vec::new());
    let d = deployment(Some(600));
    h.rss.script([Some(api_error(500, "InternalError"))]);
    let actions = vec![Action::CreateReplicaSet(replicaset(
        "web-1",
        Some("d-uid"),
        "nginx",
    ))];
    assert!(h.ctl.apply(&d, actions).await.is_err());
    let statuses = h.status_writes();
    let reasons: Vec<Option<String>> = statuses
        .iter()
        .flat_map(|d| d.status.iter().flat_map(|s| s.conditions.iter().flatten()))
        .filter(|c| c.type_ == util::CONDITION_PROGRESSING)
        .map(|c| c.reason.clone())
        .collect();
    assert_eq!(
        reasons,
        vec![Some(util::FAILED_RS_CREATE_REASON.to_string())]
    );
}
