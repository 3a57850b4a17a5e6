//! Labels and annotations the kubelet puts on sandboxes and containers (upstream
//! `kuberuntime/labels.go`), and reading them back.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{Container, Pod};

pub const POD_NAME: &str = "io.kubernetes.pod.name";
pub const POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
pub const POD_UID: &str = "io.kubernetes.pod.uid";
pub const CONTAINER_NAME: &str = "io.kubernetes.container.name";
pub const CONTAINER_TYPE: &str = "io.kubernetes.container.type";
pub const CONTAINER_HASH: &str = "io.kubernetes.container.hash";
pub const CONTAINER_RESTART_COUNT: &str = "io.kubernetes.container.restartCount";
pub const TERMINATION_MESSAGE_PATH: &str = "io.kubernetes.container.terminationMessagePath";
pub const TERMINATION_MESSAGE_POLICY: &str = "io.kubernetes.container.terminationMessagePolicy";
pub const POD_TERMINATION_GRACE_PERIOD: &str = "io.kubernetes.pod.terminationGracePeriod";
pub const CONTAINER_PORTS: &str = "io.kubernetes.container.ports";
/// `kubernetes_docker_type` style marker: init containers vs regular ones.
pub const CONTAINER_TYPE_INIT: &str = "INIT";
pub const CONTAINER_TYPE_REGULAR: &str = "CONTAINER";

fn meta(pod: &Pod) -> (String, String, String) {
    let m = &pod.metadata;
    (
        m.name.clone().unwrap_or_default(),
        m.namespace.clone().unwrap_or_default(),
        m.uid.clone().unwrap_or_default(),
    )
}

/// Pod labels plus the three kubelet labels.
pub fn sandbox_labels(pod: &Pod) -> HashMap<String, String> {
    let (name, ns, uid) = meta(pod);
    let mut labels: HashMap<String, String> = pod
        .metadata
        .labels
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    labels.insert(POD_NAME.into(), name);
    labels.insert(POD_NAMESPACE.into(), ns);
    labels.insert(POD_UID.into(), uid);
    labels
}

pub fn container_labels(pod: &Pod, container: &Container, init: bool) -> HashMap<String, String> {
    let (name, ns, uid) = meta(pod);
    HashMap::from([
        (POD_NAME.to_string(), name),
        (POD_NAMESPACE.to_string(), ns),
        (POD_UID.to_string(), uid),
        (CONTAINER_NAME.to_string(), container.name.clone()),
        (
            CONTAINER_TYPE.to_string(),
            if init {
                CONTAINER_TYPE_INIT
            } else {
                CONTAINER_TYPE_REGULAR
            }
            .to_string(),
        ),
    ])
}

/// FNV-1a 32-bit, the hash upstream uses for container specs.
fn fnv32a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

/// `HashContainer`: hash of the spec without resources (resizes don't restart).
pub fn hash_container(container: &Container) -> String {
    let mut c = container.clone();
    c.resources = None;
    let json = serde_json::to_vec(&c).unwrap_or_default();
    format!("{:x}", fnv32a(&json))
}

pub fn container_annotations(
    pod: &Pod,
    container: &Container,
    restart_count: i32,
) -> HashMap<String, String> {
    let mut a: HashMap<String, String> = HashMap::new();
    a.insert(CONTAINER_HASH.into(), hash_container(container));
    a.insert(CONTAINER_RESTART_COUNT.into(), restart_count.to_string());
    a.insert(
        TERMINATION_MESSAGE_PATH.into(),
        container
            .termination_message_path
            .clone()
            .unwrap_or_else(|| "/dev/termination-log".into()),
    );
    a.insert(
        TERMINATION_MESSAGE_POLICY.into(),
        container
            .termination_message_policy
            .clone()
            .unwrap_or_else(|| "File".into()),
    );
    if let Some(g) = pod
        .spec
        .as_ref()
        .and_then(|s| s.termination_grace_period_seconds)
    {
        a.insert(POD_TERMINATION_GRACE_PERIOD.into(), g.to_string());
    }
    if let Some(ports) = container.ports.as_ref().filter(|p| !p.is_empty())
        && let Ok(json) = serde_json::to_string(ports)
    {
        a.insert(CONTAINER_PORTS.into(), json);
    }
    a
}

/// Sorted copy of a CRI map, for stable output.
pub fn sorted(map: &HashMap<String, String>) -> BTreeMap<String, String> {
    map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}
