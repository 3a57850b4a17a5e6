//! `subPath` / `subPathExpr` of a volume mount (upstream kubelet_pods.go `makeMounts`,
//! `kubecontainer.ExpandContainerVolumeMounts`, `ValidatePathNoBacksteps` and the
//! `subpath` package's `SafeMakeDir`).
//!
//! `subPathExpr` expands `$(VAR)` from the container's final environment; a reference to
//! a variable that is unset or empty fails the container start
//! (`CreateContainerConfigError`), and the next sync tries again, so fixing the pod (an
//! annotation behind a `fieldRef`) lets it start. A missing sub-directory is created with
//! the volume root's permissions, so it is as writable as the volume.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::core::v1::VolumeMount;

use crate::expansion::expand;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubPathError {
    #[error("missing value for {0}")]
    MissingValue(String),
    #[error("error SubPath `{0}` must not be an absolute path")]
    Absolute(String),
    #[error("unable to provision SubPath `{0}`: must not contain '..'")]
    Backsteps(String),
    /// Details stay in the kubelet log: they describe the host's filesystem.
    #[error(
        "failed to create subPath directory for volumeMount {mount:?} of container {container:?}"
    )]
    Create { mount: String, container: String },
    #[error("failed to prepare subPath for volumeMount {mount:?} of container {container:?}")]
    Prepare { mount: String, container: String },
}

/// The mount's sub-path: `subPath` as written, or `subPathExpr` expanded from `env`
/// (upstream `ExpandContainerVolumeMounts`); empty when it has neither. Validated.
pub fn sub_path(
    mount: &VolumeMount,
    env: &BTreeMap<String, String>,
) -> Result<String, SubPathError> {
    let path = match mount.sub_path_expr.as_deref().filter(|e| !e.is_empty()) {
        Some(expr) => {
            let missing = std::cell::RefCell::new(BTreeSet::new());
            let expanded = expand(expr, |name| match env.get(name) {
                Some(v) if !v.is_empty() => v.clone(),
                _ => {
                    missing.borrow_mut().insert(name.to_string());
                    String::new()
                }
            });
            let missing = missing.into_inner();
            if !missing.is_empty() {
                return Err(SubPathError::MissingValue(
                    missing.into_iter().collect::<Vec<_>>().join(", "),
                ));
            }
            expanded
        }
        None => mount.sub_path.clone().unwrap_or_default(),
    };
    if path.is_empty() {
        return Ok(path);
    }
    if Path::new(&path).is_absolute() {
        return Err(SubPathError::Absolute(path));
    }
    if path.split('/').any(|part| part == "..") {
        return Err(SubPathError::Backsteps(path));
    }
    Ok(path)
}

/// The host path to bind for `sub_path` inside the volume at `volume`: created (each
/// missing level with the volume root's permissions) if absent, symlinks resolved, and
/// refused if it resolves outside the volume.
pub fn prepare(
    volume: &Path,
    sub_path: &str,
    mount: &str,
    container: &str,
) -> Result<PathBuf, SubPathError> {
    let create_err = || SubPathError::Create {
        mount: mount.to_string(),
        container: container.to_string(),
    };
    let prepare_err = || SubPathError::Prepare {
        mount: mount.to_string(),
        container: container.to_string(),
    };
    let volume_resolved = volume.canonicalize().map_err(|e| {
        tracing::error!(path = %volume.display(), error = %e, "cannot resolve volume path");
        prepare_err()
    })?;
    let full = volume.join(sub_path);
    if std::fs::symlink_metadata(&full).is_err() {
        let perm = std::fs::metadata(volume)
            .map_err(|e| {
                tracing::error!(path = %volume.display(), error = %e, "cannot read volume mode");
                create_err()
            })?
            .permissions()
            .mode()
            & 0o7777;
        let mut current = volume.to_path_buf();
        for part in Path::new(sub_path).components() {
            let Component::Normal(name) = part else {
                continue;
            };
            current.push(name);
            if std::fs::symlink_metadata(&current).is_ok() {
                continue;
            }
            let made = std::fs::create_dir(&current).and_then(|()| {
                // Explicit chmod: the umask applies to the create mode.
                std::fs::set_permissions(&current, std::fs::Permissions::from_mode(perm))
            });
            if let Err(e) = made {
                tracing::error!(path = %current.display(), error = %e, "cannot create subPath directory");
                return Err(create_err());
            }
        }
    }
    // A symlink inside the volume must not lead the mount out of it.
    let resolved = full.canonicalize().map_err(|e| {
        tracing::error!(path = %full.display(), error = %e, "cannot resolve subPath");
        prepare_err()
    })?;
    if !resolved.starts_with(&volume_resolved) {
        tracing::error!(subpath = %resolved.display(), volume = %volume_resolved.display(), "subPath resolves outside its volume");
        return Err(prepare_err());
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount(sub_path: Option<&str>, expr: Option<&str>) -> VolumeMount {
        VolumeMount {
            name: "workdir1".into(),
            mount_path: "/subpath_mount".into(),
            sub_path: sub_path.map(str::to_string),
            sub_path_expr: expr.map(str::to_string),
            ..Default::default()
        }
    }

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Upstream `TestExpandVolumeMounts*` and the Variable Expansion conformance shapes.
    #[test]
    fn expands_and_validates_like_upstream() {
        let e = env(&[("POD_NAME", "foo"), ("ANNOTATION", "mypath"), ("EMPTY", "")]);
        let cases = [
            (mount(Some("a/b"), None), Ok("a/b".to_string())),
            (
                mount(None, Some("$(ANNOTATION)/$(POD_NAME)")),
                Ok("mypath/foo".to_string()),
            ),
            (mount(None, None), Ok(String::new())),
            (
                mount(None, Some("$(MISSING)/$(EMPTY)/$(POD_NAME)")),
                Err("missing value for EMPTY, MISSING".to_string()),
            ),
            (
                mount(Some("/tmp"), None),
                Err("error SubPath `/tmp` must not be an absolute path".to_string()),
            ),
            (
                mount(None, Some("$(POD_NAME)/..")),
                Err("unable to provision SubPath `foo/..`: must not contain '..'".to_string()),
            ),
            (mount(Some("a..b"), None), Ok("a..b".to_string())),
        ];
        for (m, want) in cases {
            assert_eq!(sub_path(&m, &e).map_err(|e| e.to_string()), want, "{m:?}");
        }
        let abs = env(&[("POD_NAME", "/tmp")]);
        assert_eq!(
            sub_path(&mount(None, Some("$(POD_NAME)")), &abs).map_err(|e| e.to_string()),
            Err("error SubPath `/tmp` must not be an absolute path".to_string())
        );
    }

    #[test]
    fn creates_missing_levels_with_the_volume_mode() {
        let tmp = tempfile::tempdir().unwrap();
        let volume = tmp.path().join("vol");
        std::fs::create_dir(&volume).unwrap();
        std::fs::set_permissions(&volume, std::fs::Permissions::from_mode(0o777)).unwrap();
        let got = prepare(&volume, "mypath/foo", "workdir1", "c").unwrap();
        assert_eq!(got, volume.canonicalize().unwrap().join("mypath/foo"));
        for dir in ["mypath", "mypath/foo"] {
            let mode = std::fs::metadata(volume.join(dir))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o777, "{dir}");
        }
        std::os::unix::fs::symlink("/etc", volume.join("escape")).unwrap();
        assert_eq!(
            prepare(&volume, "escape", "workdir1", "c").map_err(|e| e.to_string()),
            Err(
                "failed to prepare subPath for volumeMount \"workdir1\" of container \"c\""
                    .to_string()
            )
        );
    }
}
