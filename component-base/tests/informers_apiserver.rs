//! The shared informer layer against a real etcd + stock kube-apiserver: one
//! informer per (type, scope), add/update/delete notifications with the old
//! object, scoped (field-selector) and metadata-only informers, and the named
//! cache sync.

// Test helpers outside #[test] fns may unwrap: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use component_base::informers::{
    Change, SharedInformerFactory, Subscription, WatchScope, wait_for_named_cache_sync,
};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{DeleteParams, ObjectMeta, PostParams};
use kube::{Api, ResourceExt};
use test_support::apiserver::TestApiServer;
use tokio_util::sync::CancellationToken;

fn config_map(name: &str, value: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            ..ObjectMeta::default()
        },
        data: Some([("k".to_string(), value.to_string())].into()),
        ..ConfigMap::default()
    }
}

/// The next change for an object named `name`, skipping others (the
/// apiserver publishes its own ConfigMaps, such as `kube-root-ca.crt`).
async fn next_for<K: Clone + kube::Resource>(sub: &mut Subscription<K>, name: &str) -> Change<K> {
    let wait = async {
        loop {
            let change = sub.recv().await.expect("informer running");
            let about = match &change {
                Change::Added(o) | Change::Deleted(o) => o.meta().name.clone(),
                Change::Updated { new, .. } => new.meta().name.clone(),
                Change::Resync => return change,
            };
            if about.as_deref() == Some(name) {
                return change;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), wait)
        .await
        .expect("a change within 20s")
}

fn data(cm: &ConfigMap) -> String {
    cm.data
        .as_ref()
        .and_then(|d| d.get("k").cloned())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_informers_notify_and_share_one_watch_per_scope() {
    let Some(server) = TestApiServer::start().await else {
        return;
    };
    let client = server.client().await;
    let shutdown = CancellationToken::new();
    let factory = SharedInformerFactory::new(client.clone(), shutdown.clone());

    let all = factory.informer::<ConfigMap>();
    assert!(Arc::ptr_eq(&all, &factory.informer::<ConfigMap>()));
    let scope = WatchScope::fields("metadata.name=picked");
    let picked = factory.scoped::<ConfigMap>(scope.clone());
    assert!(!Arc::ptr_eq(&all, &picked));
    assert!(Arc::ptr_eq(&picked, &factory.scoped::<ConfigMap>(scope)));
    let meta = factory.metadata::<ConfigMap>(WatchScope::all());

    let mut all_changes = all.subscribe();
    let mut picked_changes = picked.subscribe();
    let mut meta_changes = meta.subscribe();
    assert!(
        wait_for_named_cache_sync(
            "test",
            &shutdown,
            &[all.synced(), picked.synced(), meta.synced()]
        )
        .await
    );

    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    api.create(&PostParams::default(), &config_map("picked", "1"))
        .await
        .expect("create picked");
    api.create(&PostParams::default(), &config_map("other", "1"))
        .await
        .expect("create other");

    match next_for(&mut all_changes, "picked").await {
        Change::Added(cm) => assert_eq!(data(&cm), "1"),
        other => panic!("want Added, got {other:?}"),
    }
    match next_for(&mut picked_changes, "picked").await {
        Change::Added(cm) => assert_eq!(cm.name_any(), "picked"),
        other => panic!("want Added, got {other:?}"),
    }
    match next_for(&mut meta_changes, "other").await {
        Change::Added(m) => assert_eq!(m.metadata.namespace.as_deref(), Some("default")),
        other => panic!("want Added, got {other:?}"),
    }

    api.replace(
        "picked",
        &PostParams::default(),
        &ConfigMap {
            metadata: api.get("picked").await.expect("get").metadata,
            ..config_map("picked", "2")
        },
    )
    .await
    .expect("update");
    match next_for(&mut all_changes, "picked").await {
        Change::Updated { old, new } => {
            assert_eq!((data(&old), data(&new)), ("1".into(), "2".into()))
        }
        other => panic!("want Updated, got {other:?}"),
    }
    assert!(matches!(
        next_for(&mut picked_changes, "picked").await,
        Change::Updated { .. }
    ));

    api.delete("picked", &DeleteParams::default())
        .await
        .expect("delete");
    match next_for(&mut picked_changes, "picked").await {
        Change::Deleted(cm) => assert_eq!(data(&cm), "2"),
        other => panic!("want Deleted, got {other:?}"),
    }
    assert!(
        all.store()
            .state()
            .iter()
            .all(|cm| cm.name_any() != "picked")
    );
    // The scoped informer never held the other object.
    assert!(
        picked
            .store()
            .state()
            .iter()
            .all(|cm| cm.name_any() == "picked")
    );
    shutdown.cancel();
}
