//! Volume manager against a real etcd + kube-apiserver: a pod with the admission-injected
//! kube-api-access volume, a configMap and a secret volume. The projected token must pass
//! a TokenReview as the pod's service account, bound to the pod.
//! Fails when the binaries are missing, unless `FK_ALLOW_SKIP=1`.

use test_support::apiserver;

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::ByteString;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, Pod, PodSpec, Secret, SecretVolumeSource,
    ServiceAccount, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};
use kubelet::volumemanager::{KubeObjectSource, VolumeManager, VolumeManagerConfig};

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: Some("default".into()),
        ..Default::default()
    }
}

fn config_map(name: &str, key: &str, value: &str) -> ConfigMap {
    ConfigMap {
        metadata: meta(name),
        data: Some(BTreeMap::from([(key.to_string(), value.to_string())])),
        ..Default::default()
    }
}

async fn create<K>(api: &Api<K>, obj: &K) -> K
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    match api.create(&PostParams::default(), obj).await {
        Ok(o) => o,
        Err(e) => panic!("create {obj:?}: {e}"),
    }
}

#[tokio::test]
async fn sets_up_real_token_configmap_and_secret_volumes() {
    let Some(server) = apiserver::TestApiServer::start().await else {
        return;
    };
    let client = server.client().await;
    create(
        &Api::<ServiceAccount>::namespaced(client.clone(), "default"),
        &ServiceAccount {
            metadata: meta("builder"),
            ..Default::default()
        },
    )
    .await;
    let cms = Api::<ConfigMap>::namespaced(client.clone(), "default");
    // Normally published by kube-controller-manager's root-ca-cert-publisher.
    create(&cms, &config_map("kube-root-ca.crt", "ca.crt", "PEM DATA")).await;
    // The OpenShift-built apiserver on this machine also projects this configMap into
    // kube-api-access volumes (an OpenShift carry patch).
    create(
        &cms,
        &config_map("openshift-service-ca.crt", "service-ca.crt", "SERVICE CA"),
    )
    .await;
    create(&cms, &config_map("app", "settings", "v1")).await;
    let secret = Secret {
        metadata: meta("creds"),
        data: Some(BTreeMap::from([(
            "password".to_string(),
            ByteString(b"s3cret".to_vec()),
        )])),
        ..Default::default()
    };
    create(
        &Api::<Secret>::namespaced(client.clone(), "default"),
        &secret,
    )
    .await;

    let pod = Pod {
        metadata: meta("web"),
        spec: Some(PodSpec {
            service_account_name: Some("builder".into()),
            containers: vec![Container {
                name: "c".into(),
                image: Some("busybox".into()),
                ..Default::default()
            }],
            volumes: Some(vec![
                Volume {
                    name: "app".into(),
                    config_map: Some(ConfigMapVolumeSource {
                        name: "app".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                Volume {
                    name: "creds".into(),
                    secret: Some(SecretVolumeSource {
                        secret_name: Some("creds".into()),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        }),
        ..Default::default()
    };
    let pod = create(&Api::<Pod>::namespaced(client.clone(), "default"), &pod).await;
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let api_access = pod
        .spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .find(|v| v.name.starts_with("kube-api-access-"))
        .map(|v| v.name.clone())
        .unwrap_or_else(|| panic!("ServiceAccount admission did not inject kube-api-access"));

    let Ok(root) = tempfile::tempdir() else {
        panic!("tempdir")
    };
    let vm = VolumeManager::new(
        VolumeManagerConfig {
            root_dir: root.path().to_path_buf(),
            node_allocatable: BTreeMap::new(),
        },
        Arc::new(KubeObjectSource::new(client.clone())),
    );
    vm.setup_pod(&pod).await.unwrap_or_else(|e| panic!("{e}"));

    let volumes = root.path().join("pods").join(&uid).join("volumes");
    let read = |p: std::path::PathBuf| {
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    };
    let projected = volumes.join("kubernetes.io~projected").join(&api_access);
    assert_eq!(read(projected.join("ca.crt")), "PEM DATA");
    assert_eq!(read(projected.join("namespace")), "default");
    assert_eq!(
        read(volumes.join("kubernetes.io~configmap/app/settings")),
        "v1"
    );
    assert_eq!(
        read(volumes.join("kubernetes.io~secret/creds/password")),
        "s3cret"
    );

    let token = read(projected.join("token"));
    let review = TokenReview {
        spec: TokenReviewSpec {
            token,
            audiences: None,
        },
        ..Default::default()
    };
    let reviewed = match Api::<TokenReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
    {
        Ok(r) => r,
        Err(e) => panic!("TokenReview: {e}"),
    };
    let status = reviewed.status.unwrap_or_default();
    assert_eq!(status.authenticated, Some(true), "{status:?}");
    let user = status.user.unwrap_or_default();
    assert_eq!(
        user.username.as_deref(),
        Some("system:serviceaccount:default:builder")
    );
    let extra = user.extra.unwrap_or_default();
    assert_eq!(
        extra.get("authentication.kubernetes.io/pod-name"),
        Some(&vec!["web".to_string()])
    );
    assert_eq!(
        extra.get("authentication.kubernetes.io/pod-uid"),
        Some(&vec![uid.clone()])
    );

    // configMap changes reach the volume on the next sync.
    if let Err(e) = cms
        .replace("app", &PostParams::default(), &{
            let mut cm = cms.get("app").await.unwrap_or_else(|e| panic!("get: {e}"));
            cm.data = Some(BTreeMap::from([("settings".to_string(), "v2".to_string())]));
            cm
        })
        .await
    {
        panic!("update configmap: {e}");
    }
    vm.setup_pod(&pod).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        read(volumes.join("kubernetes.io~configmap/app/settings")),
        "v2"
    );

    vm.teardown_pod(&uid).unwrap_or_else(|e| panic!("{e}"));
    assert!(!root.path().join("pods").join(&uid).exists());
}
