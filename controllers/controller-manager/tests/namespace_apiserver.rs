//! The namespace controller against a real apiserver: deleting a namespace
//! removes its content, reports what remains in the upstream conditions,
//! and finalizes the namespace once it is empty. Fails without the binaries,
//! unless `FK_ALLOW_SKIP=1`.

#[path = "garbagecollector_support/mod.rs"]
mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

const LIMIT: Duration = Duration::from_secs(60);

fn parse<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
    match serde_json::from_value(v) {
        Ok(t) => t,
        Err(e) => panic!("fixture: {e}"),
    }
}

fn condition(ns: &Namespace, ty: &str) -> Option<(String, String, String)> {
    let c = ns
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == ty)?;
    Some((
        c.status.clone(),
        c.reason.clone().unwrap_or_default(),
        c.message.clone().unwrap_or_default(),
    ))
}

#[tokio::test]
async fn deleted_namespace_is_emptied_and_finalized() {
    let Some(server) = support::TestApiServer::start().await else {
        return;
    };
    let client = server.client().await;
    support::create_namespace(&client, "doomed").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "doomed");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "doomed");
    for cm in [
        json!({"metadata": {"name": "plain"}, "data": {"k": "v"}}),
        json!({"metadata": {"name": "held", "finalizers": ["example.com/hold"]}, "data": {"k": "v"}}),
    ] {
        if let Err(e) = cms.create(&PostParams::default(), &parse(cm)).await {
            panic!("create configmap: {e}");
        }
    }
    if let Err(e) = secrets
        .create(
            &PostParams::default(),
            &parse(json!({"metadata": {"name": "s"}})),
        )
        .await
    {
        panic!("create secret: {e}");
    }

    let (ctx, shutdown) =
        support::context(&client, &kube_controller_manager::namespace::DESCRIPTOR);
    let controller = tokio::spawn(kube_controller_manager::namespace::start(ctx));
    let namespaces: Api<Namespace> = Api::all(client.clone());
    if let Err(e) = namespaces.delete("doomed", &DeleteParams::default()).await {
        panic!("delete namespace: {e}");
    }

    // The held ConfigMap keeps the namespace; the conditions say why.
    let ns = support::wait_for("finalizers-remaining condition", LIMIT, || async {
        let ns = namespaces.get_opt("doomed").await.ok().flatten()?;
        let (status, ..) = condition(&ns, "NamespaceFinalizersRemaining")?;
        (status == "True").then_some(ns)
    })
    .await;
    assert_eq!(
        condition(&ns, "NamespaceFinalizersRemaining").map(|c| c.2),
        Some("Some content in the namespace has finalizers remaining: example.com/hold in 1 resource instances".into())
    );
    assert_eq!(
        condition(&ns, "NamespaceContentRemaining").map(|c| (c.1, c.2)),
        Some((
            "SomeResourcesRemain".into(),
            "Some resources are remaining: configmaps. has 1 resource instances".into()
        ))
    );
    assert_eq!(
        condition(&ns, "NamespaceDeletionDiscoveryFailure").map(|c| c.0),
        Some("False".into())
    );
    assert!(
        secrets.get_opt("s").await.ok().flatten().is_none(),
        "secret deleted"
    );
    assert!(
        cms.get_opt("plain").await.ok().flatten().is_none(),
        "plain configmap deleted"
    );

    // Release the hold: the namespace is finalized and disappears.
    let release = json!({"metadata": {"finalizers": null}});
    if let Err(e) = cms
        .patch("held", &PatchParams::default(), &Patch::Merge(&release))
        .await
    {
        panic!("release finalizer: {e}");
    }
    support::wait_for("namespace gone", LIMIT, || async {
        matches!(namespaces.get_opt("doomed").await, Ok(None)).then_some(())
    })
    .await;

    shutdown.cancel();
    let _ = controller.await;
}
