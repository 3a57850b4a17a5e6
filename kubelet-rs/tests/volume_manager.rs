//! Volume manager on a temp root dir with an in-memory object source: upstream layout,
//! atomic-writer update semantics, modes, projected content, FailedMount messages,
//! tmpfs mounts (needs root) and teardown.

use test_support::prereq;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use k8s_openapi::ByteString;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestStatus};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapProjection, ConfigMapVolumeSource, Container, DownwardAPIProjection,
    DownwardAPIVolumeFile, EmptyDirVolumeSource, KeyToPath, ObjectFieldSelector, Pod, PodSpec,
    ProjectedVolumeSource, Secret, SecretVolumeSource, ServiceAccountTokenProjection, Volume,
    VolumeMount, VolumeProjection,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kubelet::volumemanager::{
    AtomicWriter, FileProjection, MountPropagation, ObjectSource, Payload, SourceError,
    VolumeManager, VolumeManagerConfig, is_mount_point,
};

#[derive(Default)]
struct FakeObjects {
    config_maps: Mutex<HashMap<String, ConfigMap>>,
    secrets: Mutex<HashMap<String, Secret>>,
    token_requests: Mutex<Vec<(String, TokenRequest)>>,
}

#[async_trait::async_trait]
impl ObjectSource for FakeObjects {
    async fn config_map(&self, _ns: &str, name: &str) -> Result<Option<ConfigMap>, SourceError> {
        Ok(self
            .config_maps
            .lock()
            .map_err(|e| SourceError(e.to_string()))?
            .get(name)
            .cloned())
    }
    async fn secret(&self, _ns: &str, name: &str) -> Result<Option<Secret>, SourceError> {
        Ok(self
            .secrets
            .lock()
            .map_err(|e| SourceError(e.to_string()))?
            .get(name)
            .cloned())
    }
    async fn request_token(
        &self,
        _ns: &str,
        sa: &str,
        request: &TokenRequest,
    ) -> Result<TokenRequest, SourceError> {
        let mut log = self
            .token_requests
            .lock()
            .map_err(|e| SourceError(e.to_string()))?;
        log.push((sa.to_string(), request.clone()));
        let ttl = request
            .spec
            .as_ref()
            .and_then(|s| s.expiration_seconds)
            .unwrap_or(3600);
        let mut response = request.clone();
        response.status = Some(TokenRequestStatus {
            token: Some(format!("token-{}", log.len())),
            expiration_timestamp: Some(Time(
                jiff::Timestamp::now() + jiff::SignedDuration::from_secs(ttl),
            )),
        });
        Ok(response)
    }
}

fn config_map(name: &str, data: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        ..Default::default()
    }
}

fn pod(uid: &str, volumes: Vec<Volume>, mounts: Vec<VolumeMount>) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("ns1".into()),
            uid: Some(uid.into()),
            labels: Some(BTreeMap::from([("app".to_string(), "web".to_string())])),
            ..Default::default()
        },
        spec: Some(PodSpec {
            service_account_name: Some("builder".into()),
            containers: vec![Container {
                name: "c".into(),
                volume_mounts: Some(mounts),
                ..Default::default()
            }],
            volumes: Some(volumes),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn volume(name: &str) -> Volume {
    Volume {
        name: name.into(),
        ..Default::default()
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(0)
}

fn manager(root: &Path, objects: Arc<FakeObjects>) -> VolumeManager {
    VolumeManager::new(
        VolumeManagerConfig {
            root_dir: root.to_path_buf(),
            node_allocatable: BTreeMap::new(),
        },
        objects,
    )
}

fn file(data: &str, mode: u32) -> FileProjection {
    FileProjection {
        data: data.as_bytes().to_vec(),
        mode,
        fs_user: None,
    }
}

#[test]
fn atomic_writer_swaps_data_and_prunes_old_paths() {
    let Ok(tmp) = tempfile::tempdir() else {
        panic!("tempdir")
    };
    let dir = tmp.path();
    let writer = AtomicWriter::new(dir, "test");
    let first = Payload::from([
        ("a".to_string(), file("one", 0o644)),
        ("sub/b".to_string(), file("two", 0o400)),
    ]);
    assert!(matches!(writer.write(&first), Ok(true)));
    let data_target = std::fs::read_link(dir.join("..data")).unwrap_or_default();
    let ts = data_target.to_string_lossy().into_owned();
    assert!(
        ts.starts_with("..") && ts.len() > "..2006_01_02_15_04_05.".len(),
        "{ts}"
    );
    assert_eq!(
        std::fs::read_link(dir.join("a")).unwrap_or_default(),
        Path::new("..data/a")
    );
    assert_eq!(
        std::fs::read_link(dir.join("sub")).unwrap_or_default(),
        Path::new("..data/sub")
    );
    assert_eq!(read(&dir.join("sub/b")), "two");
    assert_eq!(mode(&dir.join(&ts).join("sub/b")), 0o400);
    assert_eq!(mode(&dir.join(&ts)), 0o755);

    // Same content: nothing rewritten, same timestamped dir.
    assert!(matches!(writer.write(&first), Ok(false)));
    assert_eq!(
        std::fs::read_link(dir.join("..data")).unwrap_or_default(),
        data_target
    );

    // New content without `sub`: new ts dir, old one and the `sub` link gone.
    let second = Payload::from([
        ("a".to_string(), file("uno", 0o644)),
        ("c".to_string(), file("three", 0o644)),
    ]);
    assert!(matches!(writer.write(&second), Ok(true)));
    let new_target = std::fs::read_link(dir.join("..data")).unwrap_or_default();
    assert_ne!(new_target, data_target);
    assert!(!dir.join(&ts).exists(), "old data dir removed");
    assert!(
        std::fs::symlink_metadata(dir.join("sub")).is_err(),
        "stale link pruned"
    );
    assert_eq!(read(&dir.join("a")), "uno");
    assert_eq!(read(&dir.join("c")), "three");
    assert!(std::fs::symlink_metadata(dir.join("..data_tmp")).is_err());
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    assert_eq!(names.len(), 4, "{names:?}"); // ..<ts>, ..data, a, c

    // Invalid paths are refused before touching the directory.
    let bad = Payload::from([("../escape".to_string(), file("x", 0o644))]);
    assert!(writer.write(&bad).is_err());
}

#[tokio::test]
async fn configmap_volume_layout_items_modes_and_updates() {
    let Ok(tmp) = tempfile::tempdir() else {
        panic!("tempdir")
    };
    let objects = Arc::new(FakeObjects::default());
    if let Ok(mut cms) = objects.config_maps.lock() {
        cms.insert(
            "cfg".into(),
            config_map("cfg", &[("app.conf", "v1"), ("other", "x")]),
        );
    }
    let vm = manager(tmp.path(), objects.clone());
    let mut v = volume("config");
    v.config_map = Some(ConfigMapVolumeSource {
        name: "cfg".into(),
        items: Some(vec![KeyToPath {
            key: "app.conf".into(),
            path: "conf/app.conf".into(),
            mode: Some(0o600),
        }]),
        default_mode: Some(0o640),
        ..Default::default()
    });
    let mut whole = volume("whole");
    whole.config_map = Some(ConfigMapVolumeSource {
        name: "cfg".into(),
        ..Default::default()
    });
    let mount = VolumeMount {
        name: "config".into(),
        mount_path: "/etc/app".into(),
        ..Default::default()
    };
    let p = pod("uid-1", vec![v, whole], vec![mount]);

    let volumes = vm.setup_pod(&p).await.unwrap_or_else(|e| panic!("{e}"));
    let dir = tmp
        .path()
        .join("pods/uid-1/volumes/kubernetes.io~configmap/config");
    assert_eq!(volumes.volumes.get("config"), Some(&dir));
    assert_eq!(read(&dir.join("conf/app.conf")), "v1");
    assert_eq!(
        mode(
            &dir.join("..data/conf/app.conf")
                .canonicalize()
                .unwrap_or_default()
        ),
        0o600
    );
    assert!(!dir.join("other").exists(), "items limit the keys");
    let whole_dir = tmp
        .path()
        .join("pods/uid-1/volumes/kubernetes.io~configmap/whole");
    assert_eq!(
        mode(&whole_dir.join("other").canonicalize().unwrap_or_default()),
        0o644
    );

    let mounts = vm.container_mounts(
        &p,
        &p.spec
            .as_ref()
            .map(|s| s.containers[0].clone())
            .unwrap_or_default(),
        &BTreeMap::new(),
    );
    let mounts = mounts.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(mounts.len(), 1);
    assert_eq!(mounts[0].host_path, dir);
    assert!(
        mounts[0].read_only,
        "configMap volumes are always read-only"
    );
    assert_eq!(mounts[0].propagation, MountPropagation::Private);

    // An update reaches the file on the next sync.
    if let Ok(mut cms) = objects.config_maps.lock() {
        cms.insert("cfg".into(), config_map("cfg", &[("app.conf", "v2")]));
    }
    vm.setup_pod(&p).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(read(&dir.join("conf/app.conf")), "v2");
    assert!(
        std::fs::symlink_metadata(whole_dir.join("other")).is_err(),
        "removed key pruned"
    );

    vm.teardown_pod("uid-1").unwrap_or_else(|e| panic!("{e}"));
    assert!(!tmp.path().join("pods/uid-1").exists());
}

#[tokio::test]
async fn missing_objects_fail_like_upstream_unless_optional() {
    let Ok(tmp) = tempfile::tempdir() else {
        panic!("tempdir")
    };
    let vm = manager(tmp.path(), Arc::new(FakeObjects::default()));
    let mut missing = volume("x");
    missing.config_map = Some(ConfigMapVolumeSource {
        name: "y".into(),
        ..Default::default()
    });
    let mut optional = volume("opt");
    optional.config_map = Some(ConfigMapVolumeSource {
        name: "z".into(),
        optional: Some(true),
        ..Default::default()
    });
    let mut secret = volume("s");
    secret.secret = Some(SecretVolumeSource {
        secret_name: Some("nope".into()),
        ..Default::default()
    });
    let p = pod("uid-2", vec![missing, optional, secret], vec![]);
    let errors = match vm.setup_pod(&p).await {
        Err(e) => e.0,
        Ok(v) => panic!("expected failures, got {v:?}"),
    };
    let messages: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(
        messages,
        [
            "MountVolume.SetUp failed for volume \"x\" : configmap \"y\" not found",
            "MountVolume.SetUp failed for volume \"s\" : secret \"nope\" not found",
        ]
    );
    let opt_dir = tmp
        .path()
        .join("pods/uid-2/volumes/kubernetes.io~configmap/opt");
    assert!(
        opt_dir.join("..data").exists(),
        "optional missing configMap gives an empty volume"
    );
}

#[tokio::test]
async fn projected_kube_api_access_volume() {
    let Ok(tmp) = tempfile::tempdir() else {
        panic!("tempdir")
    };
    let objects = Arc::new(FakeObjects::default());
    if let Ok(mut cms) = objects.config_maps.lock() {
        cms.insert(
            "kube-root-ca.crt".into(),
            config_map("kube-root-ca.crt", &[("ca.crt", "PEM")]),
        );
    }
    let vm = manager(tmp.path(), objects.clone());
    let mut v = volume("kube-api-access-abcde");
    v.projected = Some(ProjectedVolumeSource {
        default_mode: Some(0o644),
        sources: Some(vec![
            VolumeProjection {
                service_account_token: Some(ServiceAccountTokenProjection {
                    expiration_seconds: Some(3607),
                    path: "token".into(),
                    audience: None,
                }),
                ..Default::default()
            },
            VolumeProjection {
                config_map: Some(ConfigMapProjection {
                    name: "kube-root-ca.crt".into(),
                    items: Some(vec![KeyToPath {
                        key: "ca.crt".into(),
                        path: "ca.crt".into(),
                        mode: None,
                    }]),
                    optional: None,
                }),
                ..Default::default()
            },
            VolumeProjection {
                downward_api: Some(DownwardAPIProjection {
                    items: Some(vec![DownwardAPIVolumeFile {
                        path: "namespace".into(),
                        field_ref: Some(ObjectFieldSelector {
                            field_path: "metadata.namespace".into(),
                            api_version: Some("v1".into()),
                        }),
                        ..Default::default()
                    }]),
                }),
                ..Default::default()
            },
        ]),
    });
    let p = pod("uid-3", vec![v], vec![]);
    vm.setup_pod(&p).await.unwrap_or_else(|e| panic!("{e}"));
    let dir = tmp
        .path()
        .join("pods/uid-3/volumes/kubernetes.io~projected/kube-api-access-abcde");
    assert_eq!(read(&dir.join("token")), "token-1");
    assert_eq!(read(&dir.join("ca.crt")), "PEM");
    assert_eq!(read(&dir.join("namespace")), "ns1");
    assert_eq!(
        mode(&dir.join("token").canonicalize().unwrap_or_default()),
        0o644
    );

    let requests = objects
        .token_requests
        .lock()
        .map(|r| r.clone())
        .unwrap_or_default();
    assert_eq!(requests.len(), 1);
    let (sa, req) = &requests[0];
    assert_eq!(sa, "builder");
    let spec = req.spec.clone().unwrap_or_default();
    assert_eq!(spec.expiration_seconds, Some(3607));
    let bound = spec.bound_object_ref.unwrap_or_default();
    assert_eq!(
        (
            bound.kind.as_deref(),
            bound.name.as_deref(),
            bound.uid.as_deref()
        ),
        (Some("Pod"), Some("web"), Some("uid-3"))
    );

    // A fresh token is reused on resync instead of requested again.
    vm.setup_pod(&p).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        objects.token_requests.lock().map(|r| r.len()).unwrap_or(0),
        1
    );
    vm.teardown_pod("uid-3").unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test]
async fn secret_and_memory_emptydir_use_tmpfs_when_root() {
    if !nix::unistd::geteuid().is_root() {
        prereq::skip_or_fail("not root: tmpfs mounts need CAP_SYS_ADMIN (run the tests as root)");
        return;
    }
    let Ok(tmp) = tempfile::tempdir() else {
        panic!("tempdir")
    };
    let objects = Arc::new(FakeObjects::default());
    if let Ok(mut secrets) = objects.secrets.lock() {
        secrets.insert(
            "creds".into(),
            Secret {
                data: Some(BTreeMap::from([(
                    "password".to_string(),
                    ByteString(b"hunter2".to_vec()),
                )])),
                ..Default::default()
            },
        );
    }
    let vm = manager(tmp.path(), objects);
    let mut s = volume("creds");
    s.secret = Some(SecretVolumeSource {
        secret_name: Some("creds".into()),
        default_mode: Some(0o400),
        ..Default::default()
    });
    let mut mem = volume("cache");
    mem.empty_dir = Some(EmptyDirVolumeSource {
        medium: Some("Memory".into()),
        size_limit: Some(k8s_openapi::apimachinery::pkg::api::resource::Quantity(
            "8Mi".into(),
        )),
    });
    let mut disk = volume("scratch");
    disk.empty_dir = Some(EmptyDirVolumeSource::default());
    let mounts = vec![VolumeMount {
        name: "scratch".into(),
        mount_path: "/data".into(),
        sub_path: Some("logs".into()),
        ..Default::default()
    }];
    let p = pod("uid-4", vec![s, mem, disk], mounts);
    vm.setup_pod(&p).await.unwrap_or_else(|e| panic!("{e}"));
    let base = tmp.path().join("pods/uid-4/volumes");
    let secret_dir = base.join("kubernetes.io~secret/creds");
    let mem_dir = base.join("kubernetes.io~empty-dir/cache");
    let disk_dir = base.join("kubernetes.io~empty-dir/scratch");
    assert!(
        is_mount_point(&secret_dir).unwrap_or(false),
        "secret on tmpfs"
    );
    assert!(
        is_mount_point(&mem_dir).unwrap_or(false),
        "memory emptyDir on tmpfs"
    );
    assert!(
        !is_mount_point(&disk_dir).unwrap_or(true),
        "disk emptyDir is a plain dir"
    );
    assert_eq!(mode(&disk_dir), 0o777);
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mem_line = mountinfo
        .lines()
        .find(|l| l.contains(mem_dir.to_string_lossy().as_ref()))
        .unwrap_or_default();
    assert!(mem_line.contains("size=8192k"), "{mem_line}");
    assert_eq!(read(&secret_dir.join("password")), "hunter2");
    assert_eq!(
        mode(
            &secret_dir
                .join("password")
                .canonicalize()
                .unwrap_or_default()
        ),
        0o400
    );

    let container = p
        .spec
        .as_ref()
        .map(|s| s.containers[0].clone())
        .unwrap_or_default();
    let mounts = vm
        .container_mounts(&p, &container, &BTreeMap::new())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        mounts[0].host_path,
        disk_dir.join("logs").canonicalize().unwrap_or_default()
    );
    assert!(!mounts[0].read_only);

    // Orphan cleanup unmounts and removes pods that are no longer active.
    let errors = vm.cleanup_orphaned_pods(&HashSet::new());
    assert!(errors.is_empty(), "{errors:?}");
    assert!(!is_mount_point(&secret_dir).unwrap_or(true));
    assert!(!tmp.path().join("pods/uid-4").exists());
}
