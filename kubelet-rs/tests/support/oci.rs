//! Builds a single-layer OCI image archive (`ctr images import` input) from host files.

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
