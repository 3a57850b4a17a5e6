//! What the kubelet puts into and reads out of a container, on a real containerd: the
//! managed `/etc/hosts`, `subPathExpr` from a `fieldRef`, the `fsGroup` supplemental
//! group and emptyDir ownership, a `postStart` exec hook, and termination messages from
//! a file at a custom path and from the logs (`FallbackToLogsOnError`).

mod support;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, EmptyDirVolumeSource, EnvVar, EnvVarSource, ExecAction, HostAlias,
    Lifecycle, LifecycleHandler, ObjectFieldSelector, Pod, PodSecurityContext, PodSpec, Secret,
    Volume, VolumeMount,
};
use kubelet::cri::{self, ImageService, RuntimeService};
use kubelet::kuberuntime::manager::{RuntimeDeps, RuntimeManager, RuntimeSettings};
use kubelet::pod_workers::{PodWorkers, WorkerContext};
use kubelet::volumemanager::{ObjectSource, SourceError, VolumeManager, VolumeManagerConfig};
use support::Recorder;
use tokio_util::sync::CancellationToken;

const UID: &str = "5d1e0c2a-container-files";
const FS_GROUP: i64 = 4321;

/// The pod reads no API objects.
struct NoObjects;

#[async_trait::async_trait]
impl ObjectSource for NoObjects {
    async fn config_map(&self, _: &str, _: &str) -> Result<Option<ConfigMap>, SourceError> {
        Ok(None)
    }
    async fn secret(&self, _: &str, _: &str) -> Result<Option<Secret>, SourceError> {
        Ok(None)
    }
    async fn request_token(
        &self,
        _: &str,
        _: &str,
        _: &TokenRequest,
    ) -> Result<TokenRequest, SourceError> {
        Err(SourceError("no tokens in this test".into()))
    }
}

fn env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        value_from: None,
    }
}

fn pod() -> Pod {
    let sh = |script: &str| Some(vec!["sh".to_string(), "-c".to_string(), script.to_string()]);
    let main = Container {
        name: "main".into(),
        image: Some(support::BUSYBOX_IMAGE.into()),
        command: sh(
            "sleep 2; touch /sub/written; cat /vol/hook; id -G > /dev/termination-custom; exit 3",
        ),
        env: Some(vec![
            env("POD", "foo"),
            EnvVar {
                name: "ANNOTATION".into(),
                value: None,
                value_from: Some(EnvVarSource {
                    field_ref: Some(ObjectFieldSelector {
                        api_version: Some("v1".into()),
                        field_path: "metadata.annotations['mysubpath']".into(),
                    }),
                    ..Default::default()
                }),
            },
        ]),
        volume_mounts: Some(vec![
            VolumeMount {
                name: "vol".into(),
                mount_path: "/vol".into(),
                ..Default::default()
            },
            VolumeMount {
                name: "vol".into(),
                mount_path: "/sub".into(),
                sub_path_expr: Some("$(ANNOTATION)/$(POD)".into()),
                ..Default::default()
            },
        ]),
        termination_message_path: Some("/dev/termination-custom".into()),
        termination_message_policy: Some("File".into()),
        lifecycle: Some(Lifecycle {
            post_start: Some(LifecycleHandler {
                exec: Some(ExecAction {
                    command: sh("echo poststart > /vol/hook"),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let logs = Container {
        name: "logs".into(),
        image: Some(support::BUSYBOX_IMAGE.into()),
        command: sh("echo -n DONE; exit 1"),
        termination_message_path: Some("/dev/termination-log".into()),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        ..Default::default()
    };
    Pod {
        metadata: kube::api::ObjectMeta {
            name: Some("files".into()),
            namespace: Some("default".into()),
            uid: Some(UID.into()),
            annotations: Some(BTreeMap::from([(
                "mysubpath".to_string(),
                "mypath".to_string(),
            )])),
            ..Default::default()
        },
        spec: Some(PodSpec {
            host_network: Some(true),
            restart_policy: Some("Never".into()),
            termination_grace_period_seconds: Some(1),
            host_aliases: Some(vec![HostAlias {
                ip: "10.9.8.7".into(),
                hostnames: Some(vec!["alias-a".into(), "alias-b".into()]),
            }]),
            security_context: Some(PodSecurityContext {
                fs_group: Some(FS_GROUP),
                ..Default::default()
            }),
            volumes: Some(vec![Volume {
                name: "vol".into(),
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Default::default()
            }]),
            containers: vec![main, logs],
            ..Default::default()
        }),
        status: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_files_on_containerd() {
    let Some(containerd) = support::Containerd::start().expect("start containerd") else {
        return;
    };
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("kubelet=debug")
        .try_init();
    let channel = cri::connect(&containerd.socket).expect("channel");
    let runtime = RuntimeService::new(channel.clone(), Duration::from_secs(60));
    runtime
        .wait_ready(Duration::from_secs(20))
        .await
        .expect("containerd ready");
    let root = containerd.dir.path().join("kubelet");
    let volumes = Arc::new(VolumeManager::new(
        VolumeManagerConfig {
            root_dir: root.clone(),
            node_allocatable: BTreeMap::new(),
        },
        Arc::new(NoObjects),
    ));
    let manager = RuntimeManager::new(RuntimeDeps {
        runtime,
        images: ImageService::new(channel, Duration::from_secs(60)),
        client: None,
        settings: RuntimeSettings {
            log_root: containerd.dir.path().join("pods"),
            memory_capacity: 8 << 30,
            host_ips: vec!["127.0.0.1".into()],
            ..Default::default()
        },
        volumes: Some(volumes),
        events: kubelet::events::noop(),
    });
    let recorder = Arc::new(Recorder::default());
    let shutdown = CancellationToken::new();
    let workers = PodWorkers::new(
        WorkerContext {
            manager: Arc::new(manager),
            status: recorder.clone(),
            runtime_name: "containerd".into(),
            host_ips: vec!["127.0.0.1".into()],
            resync: Duration::from_millis(300),
            probes: None,
            exec: None,
        },
        shutdown.clone(),
    );
    let pod = pod();
    workers.update_pod(pod.clone());
    let mut failed = None;
    for _ in 0..200 {
        if let Some(s) = recorder
            .last()
            .filter(|s| s.phase.as_deref() == Some("Failed"))
        {
            failed = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        workers.wake(UID);
    }
    let status = failed.unwrap_or_else(|| {
        panic!(
            "pod never failed; last {:?}\n{}",
            recorder.last(),
            containerd.log()
        )
    });
    let statuses = status.container_statuses.clone().unwrap_or_default();
    let terminated = |name: &str| {
        statuses
            .iter()
            .find(|s| s.name == name)
            .and_then(|s| s.state.clone())
            .and_then(|s| s.terminated)
            .unwrap_or_else(|| panic!("{name} terminated: {statuses:?}"))
    };
    // The file at the custom path, holding the container's groups: fsGroup among them.
    let main = terminated("main");
    assert_eq!(main.exit_code, 3);
    let groups = main.message.unwrap_or_default();
    assert!(
        groups.split_whitespace().any(|g| g == FS_GROUP.to_string()),
        "groups {groups:?}"
    );
    // Nothing in the file, a failure: the log output.
    assert_eq!(terminated("logs").message.as_deref(), Some("DONE"));

    let pod_dir = root.join("pods").join(UID);
    let hosts = std::fs::read_to_string(pod_dir.join("etc-hosts")).expect("etc-hosts");
    assert!(
        hosts.starts_with("# Kubernetes-managed hosts file (host network).\n"),
        "{hosts}"
    );
    assert!(
        hosts.ends_with("\n# Entries added by HostAliases.\n10.9.8.7\talias-a\talias-b\n"),
        "{hosts}"
    );
    let vol = pod_dir.join("volumes/kubernetes.io~empty-dir/vol");
    assert_eq!(
        std::fs::read_to_string(vol.join("hook")).ok().as_deref(),
        Some("poststart\n"),
        "the postStart hook ran in the container"
    );
    assert!(vol.join("mypath/foo/written").exists(), "subPathExpr mount");
    let meta = std::fs::metadata(&vol).expect("emptyDir");
    assert_eq!(meta.gid(), FS_GROUP as u32);
    assert_eq!(meta.mode() & 0o7777, 0o2777, "setgid, group rwx");

    workers.remove_pod(&pod);
    for _ in 0..100 {
        if recorder
            .terminated
            .lock()
            .map(|t| !t.is_empty())
            .unwrap_or(false)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    shutdown.cancel();
}
