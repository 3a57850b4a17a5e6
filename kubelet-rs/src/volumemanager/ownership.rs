//! Volume ownership for `fsGroup` (upstream pkg/volume/volume_linux.go
//! `SetVolumeOwnership` / `changeFilePermission`).
//!
//! Every file and directory of the volume (symlinks not followed) gets group `fsGroup`;
//! files and directories gain group read (read-only volumes: `r--r-----`) or read-write
//! (`rw-rw----`) bits, directories also setgid and the execute bits so new files inherit
//! the group. configMap, secret, downwardAPI and projected volumes are read-only and are
//! re-owned whenever new data is written; an emptyDir once, when it is created.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use k8s_openapi::api::core::v1::Pod;

const RW_MASK: u32 = 0o660;
const RO_MASK: u32 = 0o440;
const EXEC_MASK: u32 = 0o110;
const SETGID: u32 = 0o2000;

/// The pod's `securityContext.fsGroup`, if any.
pub(crate) fn fs_group(pod: &Pod) -> Option<u32> {
    pod.spec
        .as_ref()
        .and_then(|s| s.security_context.as_ref())
        .and_then(|sc| sc.fs_group)
        .and_then(|g| u32::try_from(g).ok())
}

/// Upstream `FsUserFrom`: the user every init and regular container runs as (its own
/// `runAsUser`, else the pod's), when they all have one and agree.
pub(crate) fn fs_user(pod: &Pod) -> Option<u32> {
    let spec = pod.spec.as_ref()?;
    let pod_user = spec.security_context.as_ref().and_then(|sc| sc.run_as_user);
    let mut users = spec
        .init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
        .map(|c| {
            c.security_context
                .as_ref()
                .and_then(|sc| sc.run_as_user)
                .or(pod_user)
        });
    let first = users.next()??;
    users
        .all(|u| u == Some(first))
        .then(|| u32::try_from(first).ok())
        .flatten()
}

/// `changeFilePermission`'s mode: what `mode` (permission bits incl. setgid) becomes.
pub(crate) fn owned_mode(mode: u32, is_dir: bool, read_only: bool) -> u32 {
    let mut mask = if read_only { RO_MASK } else { RW_MASK };
    if is_dir {
        mask |= SETGID | EXEC_MASK;
    }
    (mode & 0o7777) | mask
}

fn change_file_permission(path: &Path, fs_group: u32, read_only: bool) -> io::Result<bool> {
    let meta = std::fs::symlink_metadata(path)?;
    // Like upstream, a failed chown/chmod is logged and the walk goes on.
    if let Err(e) = std::os::unix::fs::lchown(path, None, Some(fs_group)) {
        tracing::error!(path = %path.display(), error = %e, "lchown failed");
    }
    // chmod would follow a symlink and override the target's mode: skip them.
    if meta.file_type().is_symlink() {
        return Ok(false);
    }
    let mode = owned_mode(meta.permissions().mode(), meta.is_dir(), read_only);
    if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)) {
        tracing::error!(path = %path.display(), error = %e, "chmod failed");
    }
    Ok(meta.is_dir())
}

fn walk(path: &Path, fs_group: u32, read_only: bool) -> io::Result<()> {
    if change_file_permission(path, fs_group, read_only)? {
        for entry in std::fs::read_dir(path)? {
            walk(&entry?.path(), fs_group, read_only)?;
        }
    }
    Ok(())
}

/// `SetVolumeOwnership` with no `fsGroupChangePolicy` (always re-own).
pub(crate) fn set_volume_ownership(dir: &Path, fs_group: u32, read_only: bool) -> io::Result<()> {
    walk(dir, fs_group, read_only)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn modes_like_upstream() {
        // A secret file with defaultMode 0440, and one with 0400.
        assert_eq!(owned_mode(0o440, false, true), 0o440);
        assert_eq!(owned_mode(0o400, false, true), 0o440);
        assert_eq!(owned_mode(0o644, false, false), 0o664);
        // The atomic writer's 0755 timestamp directory and a tmpfs root with sticky bit.
        assert_eq!(owned_mode(0o755, true, true), 0o2755);
        assert_eq!(owned_mode(0o1777, true, false), 0o3777);
    }

    #[test]
    fn fs_user_needs_every_container_to_agree() {
        use k8s_openapi::api::core::v1::{Container, PodSecurityContext, PodSpec, SecurityContext};
        let c = |user: Option<i64>| Container {
            security_context: user.map(|u| SecurityContext {
                run_as_user: Some(u),
                ..Default::default()
            }),
            ..Default::default()
        };
        let pod = |pod_user: Option<i64>, fs_group: Option<i64>, containers: Vec<Container>| Pod {
            spec: Some(PodSpec {
                containers,
                security_context: Some(PodSecurityContext {
                    run_as_user: pod_user,
                    fs_group,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            fs_user(&pod(Some(1000), None, vec![c(None), c(None)])),
            Some(1000)
        );
        assert_eq!(
            fs_user(&pod(None, None, vec![c(Some(7)), c(Some(7))])),
            Some(7)
        );
        assert_eq!(
            fs_user(&pod(None, None, vec![c(Some(7)), c(Some(8))])),
            None
        );
        assert_eq!(fs_user(&pod(None, None, vec![c(Some(7)), c(None)])), None);
        assert_eq!(fs_group(&pod(None, Some(1001), vec![])), Some(1001));
        assert_eq!(fs_group(&pod(None, None, vec![])), None);
    }

    #[test]
    fn re_owns_a_tree_without_following_symlinks() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("vol");
        std::fs::create_dir_all(root.join("..data_ts")).unwrap();
        std::fs::set_permissions(root.join("..data_ts"), PermissionsExt::from_mode(0o755)).unwrap();
        let file = root.join("..data_ts/data-1");
        std::fs::write(&file, "v").unwrap();
        std::fs::set_permissions(&file, PermissionsExt::from_mode(0o400)).unwrap();
        std::os::unix::fs::symlink("..data_ts/data-1", root.join("data-1")).unwrap();
        // Our own group: changing to it needs no privilege.
        let gid = std::fs::metadata(&root).unwrap().gid();
        set_volume_ownership(&root, gid, true).unwrap();
        let mode = |p: &Path| std::fs::symlink_metadata(p).unwrap().mode() & 0o7777;
        assert_eq!(mode(&file), 0o440);
        assert_eq!(mode(&root.join("..data_ts")), 0o2755);
        assert_eq!(std::fs::metadata(&file).unwrap().gid(), gid);
        assert!(
            std::fs::symlink_metadata(root.join("data-1"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
    }
}
