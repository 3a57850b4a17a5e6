//! A private containerd for real-runtime tests (upstream's node e2e use a real runtime
//! too): its own root, state and socket in a temp dir, with a locally built pause image
//! and a busybox image imported, so the tests need no registry. Needs root, containerd,
//! ctr, runc, gcc and busybox.

use std::path::{Path, PathBuf};
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
            .filter(|tool| crate::prereq::on_path(tool).is_none())
            .collect();
        if !missing.is_empty() {
            crate::prereq::skip_or_fail(&format!(
                "the real-runtime tests need {} on PATH (Debian: apt-get install containerd runc gcc busybox)",
                missing.join(", ")
            ));
            return Ok(None);
        }
        let containerd = crate::prereq::on_path("containerd").ok_or("containerd not on PATH")?;
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
        let busybox = crate::prereq::on_path("busybox").ok_or("busybox not on PATH")?;
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

/// Builds a single-layer OCI image archive (`ctr images import` input) from host files.
mod oci {
    use std::path::Path;
    use std::process::Command;

    fn sha256(path: &Path) -> Result<String, String> {
        let out = Command::new("sha256sum")
            .arg(path)
            .output()
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&out.stdout);
        text.split_whitespace()
            .next()
            .map(str::to_string)
            .ok_or_else(|| format!("sha256sum gave nothing for {}", path.display()))
    }

    /// Writes `content` as a blob; returns (digest, size).
    fn put_blob(blobs: &Path, tmp: &Path, content: &[u8]) -> Result<(String, u64), String> {
        std::fs::write(tmp, content).map_err(|e| e.to_string())?;
        let digest = sha256(tmp)?;
        std::fs::rename(tmp, blobs.join(&digest)).map_err(|e| e.to_string())?;
        Ok((format!("sha256:{digest}"), content.len() as u64))
    }

    /// `files`: (host file, path in image); `links`: (path in image, symlink target).
    /// Returns the path of the archive.
    pub fn build_archive(
        dir: &Path,
        reference: &str,
        files: &[(&Path, &str)],
        links: &[(&str, &str)],
        entrypoint: &[&str],
    ) -> Result<std::path::PathBuf, String> {
        let rootfs = dir.join("rootfs");
        let layout = dir.join("layout");
        let blobs = layout.join("blobs/sha256");
        for d in [&rootfs, &blobs, &rootfs.join("etc"), &rootfs.join("tmp")] {
            std::fs::create_dir_all(d).map_err(|e| e.to_string())?;
        }
        for (src, dst) in files {
            let target = rootfs.join(dst);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
            }
            std::fs::copy(src, &target).map_err(|e| e.to_string())?;
        }
        for (path, target) in links {
            std::os::unix::fs::symlink(target, rootfs.join(path)).map_err(|e| e.to_string())?;
        }
        let layer_tmp = dir.join("layer.tar");
        let status = Command::new("tar")
            .args(["--owner=0", "--group=0", "-C"])
            .arg(&rootfs)
            .arg("-cf")
            .arg(&layer_tmp)
            .arg(".")
            .status()
            .map_err(|e| e.to_string())?;
        if !status.success() {
            return Err("tar of rootfs failed".into());
        }
        let layer_bytes = std::fs::read(&layer_tmp).map_err(|e| e.to_string())?;
        let (layer_digest, layer_size) = put_blob(&blobs, &layer_tmp, &layer_bytes)?;
        let config = serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {"Entrypoint": entrypoint, "Env": ["PATH=/bin"]},
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        });
        let (config_digest, config_size) = put_blob(
            &blobs,
            &dir.join("config.json"),
            config.to_string().as_bytes(),
        )?;
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer_size}],
        });
        let (manifest_digest, manifest_size) = put_blob(
            &blobs,
            &dir.join("manifest.json"),
            manifest.to_string().as_bytes(),
        )?;
        let index = serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest_digest,
                "size": manifest_size,
                "annotations": {
                    "io.containerd.image.name": reference,
                    "org.opencontainers.image.ref.name": reference,
                },
            }],
        });
        std::fs::write(layout.join("index.json"), index.to_string()).map_err(|e| e.to_string())?;
        std::fs::write(
            layout.join("oci-layout"),
            r#"{"imageLayoutVersion":"1.0.0"}"#,
        )
        .map_err(|e| e.to_string())?;
        let archive = dir.join("image.tar");
        let status = Command::new("tar")
            .arg("-C")
            .arg(&layout)
            .arg("-cf")
            .arg(&archive)
            .args(["oci-layout", "index.json", "blobs"])
            .status()
            .map_err(|e| e.to_string())?;
        if !status.success() {
            return Err("tar of OCI layout failed".into());
        }
        Ok(archive)
    }
}
