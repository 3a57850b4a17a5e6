//! Image pulls (upstream `kuberuntime_image.go` / `images.EnsureImageExists`): pull
//! policy, pull back-off, and the `Pulling`/`Pulled`/`Failed` events.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Container, Pod};

use super::manager::RuntimeManager;
use super::sync_result::StartFailure;
use crate::cri::api;
use crate::events::{container_ref, reasons};
use component_base::events::EventType;

pub const ERR_IMAGE_PULL: &str = "ErrImagePull";
pub const IMAGE_PULL_BACKOFF: &str = "ImagePullBackOff";
pub const ERR_IMAGE_NEVER_PULL: &str = "ErrImageNeverPull";

/// Upstream default pull policy: `Always` for `:latest` or untagged, else `IfNotPresent`.
pub fn effective_pull_policy(c: &Container) -> String {
    if let Some(p) = c.image_pull_policy.as_deref().filter(|p| !p.is_empty()) {
        return p.to_string();
    }
    let image = c.image.as_deref().unwrap_or_default();
    let last = image.rsplit('/').next().unwrap_or(image);
    if image.contains('@') {
        return "IfNotPresent".into();
    }
    match last.split_once(':') {
        Some((_, "latest")) | None => "Always".into(),
        Some(_) => "IfNotPresent".into(),
    }
}

impl RuntimeManager {
    /// `EnsureImageExists`: returns the image ref to run.
    pub(super) async fn ensure_image(
        &self,
        pod: &Pod,
        c: &Container,
        sandbox: &api::PodSandboxConfig,
    ) -> Result<String, StartFailure> {
        let image = c.image.clone().unwrap_or_default();
        let policy = effective_pull_policy(c);
        let regarding = container_ref(pod, &c.name);
        let present = self.images.image_status(&image).await.ok().flatten();
        if policy != "Always"
            && let Some(img) = &present
        {
            // Upstream v1.36 has KubeletEnsureSecretPulledImages on by default.
            self.events.record(
                &regarding,
                EventType::Normal,
                reasons::PULLED_IMAGE,
                &format!(
                    "Container image \"{image}\" already present on machine and can be accessed by the pod"
                ),
            );
            return Ok(img.id.clone());
        }
        if policy == "Never" {
            self.events.record(
                &regarding,
                EventType::Warning,
                reasons::ERR_IMAGE_NEVER_PULL_POLICY,
                &format!("Container image \"{image}\" is not present with pull policy of Never"),
            );
            return Err(StartFailure {
                reason: ERR_IMAGE_NEVER_PULL.into(),
                message: format!(
                    "Container image \"{image}\" is not present with pull policy of Never"
                ),
            });
        }
        let key = format!("{}_{image}", crate::types::pod_uid(pod));
        let now = Timestamp::now();
        {
            let b = self.image_backoff.lock().unwrap_or_else(|p| p.into_inner());
            if b.is_in_backoff_since(&key, now, now) {
                self.events.record(
                    &regarding,
                    EventType::Normal,
                    reasons::BACK_OFF_PULL_IMAGE,
                    &format!("Back-off pulling image \"{image}\""),
                );
                return Err(StartFailure {
                    reason: IMAGE_PULL_BACKOFF.into(),
                    message: format!("Back-off pulling image \"{image}\""),
                });
            }
        }
        self.pull(pod, c, &image, sandbox, &key, now).await
    }

    /// The pull itself, with `Pulling` then `Pulled` or `Failed` (which starts back-off).
    async fn pull(
        &self,
        pod: &Pod,
        c: &Container,
        image: &str,
        sandbox: &api::PodSandboxConfig,
        key: &str,
        now: Timestamp,
    ) -> Result<String, StartFailure> {
        let regarding = container_ref(pod, &c.name);
        self.events.record(
            &regarding,
            EventType::Normal,
            reasons::PULLING_IMAGE,
            &format!("Pulling image \"{image}\""),
        );
        let pull_started = tokio::time::Instant::now();
        match self
            .images
            .pull_image(image, None, Some(sandbox.clone()))
            .await
        {
            Ok(r) => {
                let took = component_base::config::format_duration(pull_started.elapsed());
                let size = match self.images.image_status(&r).await {
                    Ok(Some(img)) => img.size,
                    _ => 0,
                };
                self.events.record(
                    &regarding,
                    EventType::Normal,
                    reasons::PULLED_IMAGE,
                    &format!(
                        "Successfully pulled image \"{image}\" in {took} ({took} including waiting). Image size: {size} bytes."
                    ),
                );
                Ok(r)
            }
            Err(e) => {
                self.events.record(
                    &regarding,
                    EventType::Warning,
                    reasons::FAILED_TO_PULL_IMAGE,
                    &format!("Failed to pull image \"{image}\": {e}"),
                );
                self.image_backoff
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .next(key, now);
                Err(StartFailure {
                    reason: ERR_IMAGE_PULL.into(),
                    message: format!("failed to pull and unpack image \"{image}\": {e}"),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_policy_defaults() {
        let c = |image: &str| Container {
            name: "c".into(),
            image: Some(image.into()),
            ..Default::default()
        };
        assert_eq!(effective_pull_policy(&c("busybox")), "Always");
        assert_eq!(effective_pull_policy(&c("busybox:latest")), "Always");
        assert_eq!(effective_pull_policy(&c("busybox:1.36")), "IfNotPresent");
        assert_eq!(
            effective_pull_policy(&c("localhost:5000/busybox")),
            "Always"
        );
        assert_eq!(
            effective_pull_policy(&c("busybox@sha256:abc")),
            "IfNotPresent"
        );
    }
}
