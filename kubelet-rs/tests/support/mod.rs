//! Test helpers: a private containerd with a locally built pause image and a busybox
//! image, so real-runtime tests need no registry.
#![allow(dead_code)]

pub mod apiserver;
pub mod fake_cri;
pub mod oci;
// The workspace-wide lookup of binaries and the skip-or-fail policy.
pub use test_support::prereq;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use k8s_openapi::api::core::v1::{Pod, PodStatus};
use kubelet::pod_workers::StatusSink;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const PAUSE_IMAGE: &str = "registry.k8s.io/pause:ferrokube-test";
pub const BUSYBOX_IMAGE: &str = "docker.io/library/busybox:ferrokube-test";

/// A containerd process with its own root, state and socket in a temp dir; killed on drop.
pub struct Containerd {
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    child: Child,
}

const PAUSE_C: &str = r#"
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>
static void on_term(int sig) { (void)sig; _exit(0); }
static void on_child(int sig) { (void)sig; }
int main(void) {
    signal(SIGINT, on_term);
    signal(SIGTERM, on_term);
    signal(SIGCHLD, on_child);
    for (;;) pause();
    return 1;
}
"#;

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

impl Containerd {
    /// Starts containerd with the test images imported. A missing tool fails
    /// the test, or is `Ok(None)` (with `SKIP: ...` printed) under
    /// `FK_ALLOW_SKIP=1`.
    pub fn start() -> Result<Option<Self>, String> {
        // Checked up front so the failure names every missing tool at once
        // rather than surfacing as a spawn error halfway through.
        let missing: Vec<&str> = ["containerd", "ctr", "runc", "gcc", "busybox"]
            .into_iter()
            .filter(|tool| prereq::on_path(tool).is_none())
            .collect();
        if !missing.is_empty() {
            prereq::skip_or_fail(&format!(
                "the real-runtime tests need {} on PATH (Debian: apt-get install containerd runc gcc busybox)",
                missing.join(", ")
            ));
            return Ok(None);
        }
        let containerd = prereq::on_path("containerd").ok_or("containerd not on PATH")?;
        let dir = tempfile::Builder::new()
            .prefix("kubelet-containerd-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let root = dir.path();
        let socket = root.join("containerd.sock");
        let config = format!(
            r#"version = 2
root = "{root}/root"
state = "{root}/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "{sock}"
[ttrpc]
  address = "{sock}.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "{root}/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause}"
  restrict_oom_score_adj = true
  stream_server_port = "0"
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "native"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{root}/cni"
"#,
            root = root.display(),
            sock = socket.display(),
            pause = PAUSE_IMAGE,
        );
        let config_path = root.join("config.toml");
        std::fs::write(&config_path, config).map_err(|e| e.to_string())?;
        let log = std::fs::File::create(root.join("containerd.log")).map_err(|e| e.to_string())?;
        let log_err = log.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new(containerd)
            .arg("--config")
            .arg(&config_path)
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .spawn()
            .map_err(|e| format!("spawn containerd: {e}"))?;
        let me = Self { dir, socket, child };
        me.wait_socket()?;
        me.import_images()?;
        Ok(Some(me))
    }

    fn wait_socket(&self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.socket.exists() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!(
            "containerd socket never appeared; log:\n{}",
            self.log()
        ))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    fn import_images(&self) -> Result<(), String> {
        let work = self.dir.path().join("images");
        std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
        // pause: a static C binary like hack/images/pause.
        let src = work.join("pause.c");
        std::fs::write(&src, PAUSE_C).map_err(|e| e.to_string())?;
        let pause_bin = work.join("pause");
        run(Command::new("gcc")
            .args(["-static", "-Os", "-o"])
            .arg(&pause_bin)
            .arg(&src))?;
        let pause_tar = oci::build_archive(
            &work.join("pause-image"),
            PAUSE_IMAGE,
            &[(pause_bin.as_path(), "pause")],
            &[],
            &["/pause"],
        )?;
        self.import(&pause_tar)?;
        let busybox = prereq::on_path("busybox").ok_or("busybox not on PATH")?;
        let busybox_tar = oci::build_archive(
            &work.join("busybox-image"),
            BUSYBOX_IMAGE,
            &[(busybox.as_path(), "bin/busybox")],
            &[
                ("bin/sh", "busybox"),
                ("bin/sleep", "busybox"),
                ("bin/echo", "busybox"),
            ],
            &["sh"],
        )?;
        self.import(&busybox_tar)
    }

    fn import(&self, archive: &Path) -> Result<(), String> {
        run(Command::new("ctr")
            .arg("-n")
            .arg("k8s.io")
            .arg("-a")
            .arg(&self.socket)
            .args(["images", "import", "--snapshotter", "native"])
            .arg(archive))
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A status sink that records what the pod workers report.
#[derive(Default)]
pub struct Recorder {
    pub statuses: Mutex<Vec<PodStatus>>,
    pub terminated: Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl StatusSink for Recorder {
    async fn set_pod_status(&self, _pod: &Pod, status: &PodStatus) -> Result<(), kubelet::Error> {
        self.statuses
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(status.clone());
        Ok(())
    }
    async fn pod_terminated(&self, pod: &Pod) -> Result<(), kubelet::Error> {
        self.terminated
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(pod.metadata.uid.clone().unwrap_or_default());
        Ok(())
    }
}

impl Recorder {
    pub fn last(&self) -> Option<PodStatus> {
        self.statuses.lock().ok()?.last().cloned()
    }
}
