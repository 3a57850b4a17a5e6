//! `generateContainerConfig`: the CRI container for one spec container.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod};

use super::env::expand_command;
use super::labels;
use super::resources::linux_container_resources;
use crate::cri::api;

/// `<container>/<restartCount>.log`, relative to the sandbox log directory.
pub fn container_log_path(name: &str, restart_count: i32) -> String {
    format!("{name}/{restart_count}.log")
}

pub struct ContainerParams<'a> {
    pub env: &'a BTreeMap<String, String>,
    pub restart_count: i32,
    pub init: bool,
    pub memory_capacity: i64,
    pub cpu_cfs_quota: bool,
    pub image_ref: &'a str,
}

fn security_context(c: &Container, pod: &Pod) -> api::LinuxContainerSecurityContext {
    let sc = c.security_context.clone().unwrap_or_default();
    let psc = pod
        .spec
        .as_ref()
        .and_then(|s| s.security_context.clone())
        .unwrap_or_default();
    let caps = sc.capabilities.clone().unwrap_or_default();
    api::LinuxContainerSecurityContext {
        capabilities: Some(api::Capability {
            add_capabilities: caps.add.unwrap_or_default(),
            drop_capabilities: caps.drop.unwrap_or_default(),
            ..Default::default()
        }),
        privileged: sc.privileged.unwrap_or(false),
        run_as_user: sc
            .run_as_user
            .or(psc.run_as_user)
            .map(|v| api::Int64Value { value: v }),
        run_as_group: sc
            .run_as_group
            .or(psc.run_as_group)
            .map(|v| api::Int64Value { value: v }),
        readonly_rootfs: sc.read_only_root_filesystem.unwrap_or(false),
        no_new_privs: sc.allow_privilege_escalation == Some(false),
        // fsGroup first, as upstream's determineEffectiveSecurityContext.
        supplemental_groups: psc
            .fs_group
            .into_iter()
            .chain(psc.supplemental_groups.unwrap_or_default())
            .collect(),
        ..Default::default()
    }
}

pub fn generate_container_config(
    pod: &Pod,
    c: &Container,
    p: &ContainerParams<'_>,
) -> api::ContainerConfig {
    let (command, args) = expand_command(
        c.command.as_deref().unwrap_or_default(),
        c.args.as_deref().unwrap_or_default(),
        p.env,
    );
    api::ContainerConfig {
        metadata: Some(api::ContainerMetadata {
            name: c.name.clone(),
            attempt: p.restart_count.max(0) as u32,
        }),
        image: Some(api::ImageSpec {
            image: p.image_ref.to_string(),
            user_specified_image: c.image.clone().unwrap_or_default(),
            ..Default::default()
        }),
        command,
        args,
        working_dir: c.working_dir.clone().unwrap_or_default(),
        envs: p
            .env
            .iter()
            .map(|(k, v)| api::KeyValue {
                key: k.clone(),
                value: v.clone(),
            })
            .collect(),
        labels: labels::container_labels(pod, c, p.init),
        annotations: labels::container_annotations(pod, c, p.restart_count),
        log_path: container_log_path(&c.name, p.restart_count),
        stdin: c.stdin.unwrap_or(false),
        stdin_once: c.stdin_once.unwrap_or(false),
        tty: c.tty.unwrap_or(false),
        linux: Some(api::LinuxContainerConfig {
            resources: Some(linux_container_resources(
                pod,
                c,
                p.memory_capacity,
                p.cpu_cfs_quota,
            )),
            security_context: Some(security_context(c, pod)),
        }),
        ..Default::default()
    }
}
