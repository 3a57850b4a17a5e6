//! The CRI client against a real, private containerd: sandbox + container lifecycle,
//! exit code and log file.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use kubelet::cri::{self, ImageService, RuntimeService, api};

fn sandbox_config(log_dir: &std::path::Path) -> api::PodSandboxConfig {
    api::PodSandboxConfig {
        metadata: Some(api::PodSandboxMetadata {
            name: "cri-test".into(),
            uid: "uid-1".into(),
            namespace: "default".into(),
            attempt: 0,
        }),
        // Host-network sandboxes share the node UTS namespace: no hostname, like upstream.
        hostname: String::new(),
        log_directory: log_dir.display().to_string(),
        labels: HashMap::from([("io.kubernetes.pod.name".to_string(), "cri-test".to_string())]),
        linux: Some(api::LinuxPodSandboxConfig {
            security_context: Some(api::LinuxSandboxSecurityContext {
                namespace_options: Some(api::NamespaceOption {
                    network: api::NamespaceMode::Node as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_and_container_lifecycle_on_containerd() {
    let Some(containerd) = support::Containerd::start().expect("start containerd") else {
        return;
    };
    let channel = cri::connect(&containerd.socket).expect("channel");
    let runtime = RuntimeService::new(channel.clone(), Duration::from_secs(60));
    let images = ImageService::new(channel, Duration::from_secs(60));

    let version = runtime
        .wait_ready(Duration::from_secs(20))
        .await
        .expect("containerd answers Version");
    assert_eq!(version.runtime_name, "containerd");
    let present = images
        .image_status(support::BUSYBOX_IMAGE)
        .await
        .expect("ImageStatus");
    assert!(
        present.is_some(),
        "imported busybox image is visible through CRI"
    );

    let log_dir = containerd.dir.path().join("pods/default_cri-test_uid-1");
    std::fs::create_dir_all(&log_dir).expect("log dir");
    let sb_config = sandbox_config(&log_dir);
    let sandbox = runtime
        .run_pod_sandbox(sb_config.clone(), String::new())
        .await
        .unwrap_or_else(|e| panic!("RunPodSandbox: {e}\n{}", containerd.log()));

    let container_config = api::ContainerConfig {
        metadata: Some(api::ContainerMetadata {
            name: "main".into(),
            attempt: 0,
        }),
        image: Some(api::ImageSpec {
            image: support::BUSYBOX_IMAGE.into(),
            ..Default::default()
        }),
        command: vec!["sh".into()],
        args: vec!["-c".into(), "echo hello from $GREETING; exit 3".into()],
        envs: vec![api::KeyValue {
            key: "GREETING".into(),
            value: "busybox".into(),
        }],
        log_path: "main/0.log".into(),
        ..Default::default()
    };
    let id = runtime
        .create_container(&sandbox, container_config, sb_config)
        .await
        .unwrap_or_else(|e| panic!("CreateContainer: {e}\n{}", containerd.log()));
    runtime.start_container(&id).await.expect("StartContainer");

    let mut status = runtime.container_status(&id).await.expect("status");
    for _ in 0..100 {
        if status.state == api::ContainerState::ContainerExited as i32 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        status = runtime.container_status(&id).await.expect("status");
    }
    assert_eq!(status.state, api::ContainerState::ContainerExited as i32);
    assert_eq!(status.exit_code, 3);
    assert_eq!(status.reason, "Error");

    let log = std::fs::read_to_string(log_dir.join("main/0.log")).expect("container log file");
    assert!(
        log.contains(" stdout F hello from busybox"),
        "CRI log line in {log:?}"
    );

    let listed = runtime.list_containers(None).await.expect("ListContainers");
    assert!(listed.iter().any(|c| c.id == id));
    runtime
        .remove_container(&id)
        .await
        .expect("RemoveContainer");
    runtime
        .stop_pod_sandbox(&sandbox)
        .await
        .expect("StopPodSandbox");
    runtime
        .remove_pod_sandbox(&sandbox)
        .await
        .expect("RemovePodSandbox");
    let err = runtime
        .pod_sandbox_status(&sandbox)
        .await
        .expect_err("removed sandbox is gone");
    assert!(err.is_not_found(), "{err}");
}
