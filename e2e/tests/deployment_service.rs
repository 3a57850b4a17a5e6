//! The "first end-to-end slice" as a user sees it with stock Kubernetes:
//! a `web` Deployment of agnhost netexec (spread, self-healing, scaling),
//! Services in front of it (ClusterIP from a pod, DNS, NodePort), a rolling
//! update and its rollback, liveness/readiness probes, ConfigMap/Secret/
//! service-account token in pods, logs and exec, and cascading deletion.
//!
//! One test runs the points in order (they build on one another) and prints
//! a `RESULT <point> PASS|FAIL` line per point plus `METRIC` lines; it fails
//! if any point failed. Without a reachable cluster it fails saying why
//! (`FK_ALLOW_SKIP=1`: it prints `SKIP` and passes).

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use ferrokube_e2e::{
    E2eError,
    cluster::{Connection, connect, list_nodes, node_internal_ip, node_is_ready, skip_or_fail},
    exec::exec,
    netns::{control_plane_netns, http_get_from, netns_unusable},
    objects::{
        REVISION_ANNOTATION, first_image, history_revisions, is_ready, is_terminating, kubectl,
        live_and_ready, restart_count, revisions,
    },
    prereq,
    reach::resolve_in_pod,
    wait::wait_until,
    workloads::{
        WebImage, create_namespace, delete_namespace, node_port_service, unique_namespace_name,
        web_deployment,
    },
};
use futures::StreamExt;
use k8s_openapi::{
    api::{
        apps::v1::{Deployment, DeploymentStrategy, ReplicaSet, RollingUpdateDeployment},
        core::v1::{
            ConfigMap, ConfigMapEnvSource, ConfigMapKeySelector, ConfigMapVolumeSource, Container,
            EnvFromSource, EnvVar, EnvVarSource, Event, ExecAction, HTTPGetAction, Namespace, Node,
            Pod, PodSpec, Probe, Secret, SecretKeySelector, SecretVolumeSource, Service,
            ServicePort, ServiceSpec, Volume, VolumeMount,
        },
        discovery::v1::EndpointSlice,
    },
    apimachinery::pkg::util::intstr::IntOrString,
};
use kube::{
    Api, Client,
    api::{DeleteParams, ListParams, LogParams, ObjectMeta, Patch, PatchParams, PostParams},
    runtime::watcher,
};
use serde_json::json;

const APP: &str = "web";
const REPLICAS: i32 = 4;
const IMAGE_A: &str = "registry.k8s.io/e2e-test-images/agnhost:2.63.0";
const IMAGE_B: &str = "registry.k8s.io/e2e-test-images/agnhost:2.55";
/// Pods on this 2-core machine can take 10-30 s; leave ample room.
const POD_TIMEOUT: Duration = Duration::from_secs(180);

#[tokio::test]
async fn deployment_service_first_slice() -> Result<(), E2eError> {
    let client = match connect().await {
        Connection::Ready(c) => c,
        Connection::Unavailable(reason) => {
            skip_or_fail("deployment_service_first_slice", &reason);
            return Ok(());
        }
    };
    let started = Instant::now();
    let namespace = unique_namespace_name("fk-e2e-slice");
    create_namespace(&client, &namespace).await?;
    let mut results = Results::default();
    let outcome = run_points(&client, &namespace, &mut results).await;
    if let Err(e) = &outcome {
        results.record("setup", Err(E2eError::Check(e.to_string())));
    }
    // Point 7 (namespace part) doubles as the cleanup.
    let ns_deleted = delete_namespace_and_wait(&client, &namespace).await;
    results.record("7b namespace deletion removes everything", ns_deleted);
    println!(
        "METRIC e2e_slice_total_seconds={:.1}",
        started.elapsed().as_secs_f64()
    );
    results.finish()
}

/// Per-point outcomes, printed as they come and summed up at the end.
#[derive(Default)]
struct Results {
    lines: Vec<(String, Option<String>)>,
}

impl Results {
    fn record(&mut self, point: &str, outcome: Result<String, E2eError>) {
        match outcome {
            Ok(detail) => {
                println!("RESULT {point}: PASS {detail}");
                self.lines.push((point.into(), None));
            }
            Err(e) => {
                println!("RESULT {point}: FAIL {e}");
                self.lines.push((point.into(), Some(e.to_string())));
            }
        }
    }

    fn finish(self) -> Result<(), E2eError> {
        let failed: Vec<String> = self
            .lines
            .iter()
            .filter_map(|(p, e)| e.as_ref().map(|e| format!("{p}: {e}")))
            .collect();
        println!(
            "SUMMARY {} points, {} failed",
            self.lines.len(),
            failed.len()
        );
        if failed.is_empty() {
            Ok(())
        } else {
            Err(E2eError::Check(failed.join("\n")))
        }
    }
}

/// The points in order; `Err` only when a later point cannot run at all.
async fn run_points(
    client: &Client,
    namespace: &str,
    results: &mut Results,
) -> Result<(), E2eError> {
    let nodes = wait_until("2 Ready nodes", Duration::from_secs(120), || async {
        let nodes = list_nodes(client).await?;
        Ok((nodes.len() >= 2 && nodes.iter().all(node_is_ready)).then_some(nodes))
    })
    .await?;
    let ns = Ns::new(client, namespace);

    let created = create_and_spread(&ns).await;
    let created_ok = created.is_ok();
    results.record("1a deployment 4 Ready, spread", created);
    if !created_ok {
        return Err(E2eError::Check(
            "the web Deployment never became Ready".into(),
        ));
    }
    results.record("1b deleted pod replaced", replace_deleted_pod(&ns).await);
    results.record("1c scale 6 then 2", scale_up_and_down(&ns).await);
    scale_to(&ns, REPLICAS).await?;
    wait_exact_pods(&ns, REPLICAS as usize).await?;

    results.record("2 services, DNS, NodePort", services(&ns, &nodes).await);
    results.record("3 rolling update and rollback", rolling_update(&ns).await);
    results.record("4a liveness restarts", liveness(&ns).await);
    results.record("4b readiness leaves EndpointSlice", readiness(&ns).await);
    results.record("5a configmap/secret env+volumes", config_in_pods(&ns).await);
    results.record("5b service-account token", service_account_token(&ns).await);
    results.record("6 logs and exec", logs_and_exec(&ns).await);
    results.record("7a deployment cascade", delete_deployment(&ns).await);
    Ok(())
}

/// Typed handles on one namespace.
struct Ns {
    name: String,
    deployments: Api<Deployment>,
    replica_sets: Api<ReplicaSet>,
    pods: Api<Pod>,
    services: Api<Service>,
    slices: Api<EndpointSlice>,
    config_maps: Api<ConfigMap>,
    secrets: Api<Secret>,
    events: Api<Event>,
}

impl Ns {
    fn new(client: &Client, name: &str) -> Self {
        Ns {
            name: name.into(),
            deployments: Api::namespaced(client.clone(), name),
            replica_sets: Api::namespaced(client.clone(), name),
            pods: Api::namespaced(client.clone(), name),
            services: Api::namespaced(client.clone(), name),
            slices: Api::namespaced(client.clone(), name),
            config_maps: Api::namespaced(client.clone(), name),
            secrets: Api::namespaced(client.clone(), name),
            events: Api::namespaced(client.clone(), name),
        }
    }

    async fn web_pods(&self) -> Result<Vec<Pod>, E2eError> {
        Ok(self
            .pods
            .list(&ListParams::default().labels(&format!("app={APP}")))
            .await?
            .items)
    }
}

fn node_of(pod: &Pod) -> Option<String> {
    pod.spec.as_ref()?.node_name.clone()
}

fn name_of(pod: &Pod) -> String {
    pod.metadata.name.clone().unwrap_or_default()
}

/// The `web` Deployment: agnhost netexec via `command`, RollingUpdate with
/// maxSurge 1 / maxUnavailable 0.
fn web(replicas: i32) -> Deployment {
    let mut d = web_deployment(APP, &WebImage::Agnhost(IMAGE_A.into()), replicas);
    if let Some(spec) = d.spec.as_mut() {
        if let Some(pod) = spec.template.spec.as_mut() {
            for c in &mut pod.containers {
                c.command = Some(
                    ["/agnhost", "netexec", "--http-port=8080"]
                        .map(String::from)
                        .to_vec(),
                );
                c.args = None;
            }
        }
        spec.strategy = Some(DeploymentStrategy {
            type_: Some("RollingUpdate".into()),
            rolling_update: Some(RollingUpdateDeployment {
                max_surge: Some(IntOrString::Int(1)),
                max_unavailable: Some(IntOrString::Int(0)),
            }),
        });
    }
    d
}

/// Point 1a: 4 replicas Ready on both nodes; prints the time it took.
async fn create_and_spread(ns: &Ns) -> Result<String, E2eError> {
    let t0 = Instant::now();
    ns.deployments
        .create(&PostParams::default(), &web(REPLICAS))
        .await?;
    let ready = wait_until("4 web pods Ready", POD_TIMEOUT, || async {
        let pods = ns.web_pods().await?;
        let ready: Vec<Pod> = pods
            .into_iter()
            .filter(|p| !is_terminating(p) && is_ready(p))
            .collect();
        Ok((ready.len() == REPLICAS as usize).then_some(ready))
    })
    .await?;
    let secs = t0.elapsed().as_secs_f64();
    println!("METRIC deploy_4_ready_seconds={secs:.1}");
    let spread: BTreeMap<String, usize> = ready.iter().fold(BTreeMap::new(), |mut m, p| {
        *m.entry(node_of(p).unwrap_or_default()).or_default() += 1;
        m
    });
    if spread.len() < 2 {
        return Err(E2eError::Check(format!("pods not spread: {spread:?}")));
    }
    Ok(format!("in {secs:.1}s, per node {spread:?}"))
}

/// Point 1b: a deleted pod is replaced by a new one (new UID) that becomes
/// Ready, and the deleted one goes away.
async fn replace_deleted_pod(ns: &Ns) -> Result<String, E2eError> {
    let before = ns.web_pods().await?;
    let victim = before
        .first()
        .ok_or_else(|| E2eError::Check("no web pod to delete".into()))?;
    let victim_name = name_of(victim);
    let old_uids: BTreeSet<String> = before
        .iter()
        .filter_map(|p| p.metadata.uid.clone())
        .collect();
    ns.pods
        .delete(&victim_name, &DeleteParams::default())
        .await?;
    let t0 = Instant::now();
    let new_pod = wait_until("a Ready replacement pod", POD_TIMEOUT, || async {
        let pods = ns.web_pods().await?;
        let live: Vec<&Pod> = pods.iter().filter(|p| !is_terminating(p)).collect();
        let fresh = live.iter().find(|p| {
            p.metadata
                .uid
                .as_ref()
                .is_some_and(|u| !old_uids.contains(u))
        });
        let all_ready = live.len() == REPLICAS as usize && live.iter().all(|p| is_ready(p));
        let victim_gone = !pods.iter().any(|p| name_of(p) == victim_name);
        Ok(match fresh {
            Some(p) if all_ready && victim_gone => Some(name_of(p)),
            _ => None,
        })
    })
    .await?;
    Ok(format!(
        "{victim_name} -> {new_pod} Ready in {:.1}s",
        t0.elapsed().as_secs_f64()
    ))
}

async fn scale_to(ns: &Ns, replicas: i32) -> Result<(), E2eError> {
    ns.deployments
        .patch(
            APP,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": replicas}})),
        )
        .await?;
    Ok(())
}

/// Waits until exactly `n` web pods exist (terminated ones gone), all Ready,
/// and the Deployment status agrees.
async fn wait_exact_pods(ns: &Ns, n: usize) -> Result<(), E2eError> {
    wait_until(
        &format!("exactly {n} Ready web pods"),
        POD_TIMEOUT,
        || async {
            let pods = ns.web_pods().await?;
            let d = ns.deployments.get(APP).await?;
            let st = d.status.unwrap_or_default();
            let status_ok = st.replicas == Some(n as i32)
                && st.ready_replicas == Some(n as i32)
                && st.available_replicas == Some(n as i32);
            let pods_ok = pods.len() == n && pods.iter().all(|p| is_ready(p) && !is_terminating(p));
            Ok((status_ok && pods_ok).then_some(()))
        },
    )
    .await
}

/// Point 1c: scale to 6, then 2; counts converge exactly.
async fn scale_up_and_down(ns: &Ns) -> Result<String, E2eError> {
    let t0 = Instant::now();
    scale_to(ns, 6).await?;
    wait_exact_pods(ns, 6).await?;
    let up = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    scale_to(ns, 2).await?;
    wait_exact_pods(ns, 2).await?;
    Ok(format!(
        "6 Ready in {up:.1}s, 2 (extra pods gone) in {:.1}s",
        t1.elapsed().as_secs_f64()
    ))
}

/// Point 2: ClusterIP from a pod on node 1 reaches both nodes, DNS name
/// resolves to the ClusterIP, the NodePort answers on both node IPs from the
/// control-plane namespace.
async fn services(ns: &Ns, nodes: &[Node]) -> Result<String, E2eError> {
    let svc = ns
        .services
        .create(&PostParams::default(), &node_port_service(APP))
        .await?;
    let spec = svc.spec.clone().unwrap_or_default();
    let cluster_ip = spec
        .cluster_ip
        .clone()
        .ok_or_else(|| E2eError::Check("service has no clusterIP".into()))?;
    let pods = ns.web_pods().await?;
    let pod_nodes: BTreeMap<String, String> = pods
        .iter()
        .filter_map(|p| Some((name_of(p), node_of(p)?)))
        .collect();
    let node1 = nodes
        .first()
        .and_then(|n| n.metadata.name.clone())
        .unwrap_or_default();
    let client_pod = pod_nodes
        .iter()
        .find(|(_, n)| **n == node1)
        .map(|(p, _)| p.clone())
        .ok_or_else(|| E2eError::Check(format!("no web pod on {node1}")))?;

    // Endpoints must be programmed before the 30 requests count.
    let url = format!("http://{cluster_ip}/hostname");
    wait_until(
        &format!("{url} to answer"),
        Duration::from_secs(60),
        || async {
            let out = exec(
                &ns.pods,
                &client_pod,
                None,
                &["curl", "-sf", "-m", "3", &url],
            )
            .await?;
            Ok((out.exit_code == 0).then_some(()))
        },
    )
    .await?;
    let script = format!("for i in $(seq 30); do curl -s -m 3 {url} || echo FAILED; echo; done");
    let out = exec(&ns.pods, &client_pod, None, &["sh", "-c", &script]).await?;
    let answers: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    let failed = answers.iter().filter(|a| a.contains("FAILED")).count();
    let reached: BTreeSet<&String> = answers.iter().filter_map(|a| pod_nodes.get(*a)).collect();
    let per_pod: BTreeMap<&str, usize> = answers.iter().fold(BTreeMap::new(), |mut m, a| {
        *m.entry(*a).or_default() += 1;
        m
    });
    println!("30 x {url} from {client_pod} on {node1}: {per_pod:?}");
    if answers.len() != 30 || failed > 0 || reached.len() < 2 {
        return Err(E2eError::Check(format!(
            "30 requests to {url}: {} answers, {failed} failed, nodes reached {reached:?}",
            answers.len()
        )));
    }

    let fqdn = format!("{APP}.{}.svc.cluster.local", ns.name);
    let addresses = wait_until(
        &format!("{fqdn} to resolve"),
        Duration::from_secs(60),
        || async {
            let a = resolve_in_pod(&ns.pods, &client_pod, &fqdn).await?;
            Ok((!a.is_empty()).then_some(a))
        },
    )
    .await?;
    if addresses != [cluster_ip.clone()] {
        return Err(E2eError::Check(format!(
            "{fqdn} resolved to {addresses:?}, want [{cluster_ip}]"
        )));
    }
    let dig = exec(&ns.pods, &client_pod, None, &["dig", "+short", &fqdn]).await?;
    if dig.stdout.trim() != cluster_ip {
        return Err(E2eError::Check(format!(
            "dig +short {fqdn} said {:?}, want {cluster_ip}",
            dig.stdout.trim()
        )));
    }

    let node_port = node_port_answers(nodes, &spec, &pod_nodes).await?;
    Ok(format!(
        "30/30 answers from nodes {reached:?}; {fqdn} -> {cluster_ip}; {node_port}"
    ))
}

async fn node_port_answers(
    nodes: &[Node],
    spec: &ServiceSpec,
    pod_nodes: &BTreeMap<String, String>,
) -> Result<String, E2eError> {
    let netns = control_plane_netns();
    if let Some(why) = netns_unusable(&netns) {
        // An error, not a panic: the point fails and the namespace is still
        // cleaned up.
        prereq::skip_or_err(&format!(
            "NodePort part: {why} (the hack/local-up control-plane namespace, entered as root)"
        ))
        .map_err(E2eError::Check)?;
        return Ok(format!("NodePort skipped ({why})"));
    }
    let node_port = spec
        .ports
        .as_ref()
        .and_then(|p| p.first())
        .and_then(|p| p.node_port)
        .ok_or_else(|| E2eError::Check("service has no nodePort".into()))?;
    let mut seen = Vec::new();
    for node in nodes {
        let ip = node_internal_ip(node).ok_or_else(|| {
            E2eError::Check(format!("node {:?} has no InternalIP", node.metadata.name))
        })?;
        let url = format!("http://{ip}:{node_port}/hostname");
        let answer = wait_until(
            &format!("{url} from the control plane"),
            Duration::from_secs(60),
            || async { Ok(http_get_from(&netns, &url).await.ok()) },
        )
        .await?;
        if !pod_nodes.contains_key(&answer) {
            return Err(E2eError::Check(format!(
                "{url} answered {answer:?}, not a web pod"
            )));
        }
        seen.push(format!("{ip}:{node_port} -> {answer}"));
    }
    Ok(format!("NodePort {}", seen.join(", ")))
}

/// What the pod watch saw during a rollout.
#[derive(Debug, Default, Clone, Copy)]
struct RolloutBounds {
    max_live: usize,
    min_ready: usize,
    observations: usize,
}

/// Watches web pods and records, after every change, the number of live
/// (not terminating) pods and of Ready ones among them.
fn watch_bounds(ns: &Ns) -> (Arc<Mutex<RolloutBounds>>, tokio::task::JoinHandle<()>) {
    let bounds = Arc::new(Mutex::new(RolloutBounds {
        max_live: 0,
        min_ready: usize::MAX,
        observations: 0,
    }));
    let recorder = bounds.clone();
    let stream = watcher(
        ns.pods.clone(),
        watcher::Config::default().labels(&format!("app={APP}")),
    );
    let task = tokio::spawn(async move {
        let mut pods: BTreeMap<String, Pod> = BTreeMap::new();
        let mut initial: BTreeMap<String, Pod> = BTreeMap::new();
        let mut synced = false;
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(watcher::Event::Init) => initial.clear(),
                Ok(watcher::Event::InitApply(p)) => {
                    initial.insert(name_of(&p), p);
                }
                Ok(watcher::Event::InitDone) => {
                    pods = std::mem::take(&mut initial);
                    synced = true;
                }
                Ok(watcher::Event::Apply(p)) => {
                    pods.insert(name_of(&p), p);
                }
                Ok(watcher::Event::Delete(p)) => {
                    pods.remove(&name_of(&p));
                }
                Err(e) => println!("pod watch error (it retries): {e}"),
            }
            if synced {
                let refs: Vec<&Pod> = pods.values().collect();
                let (live, ready) = live_and_ready(&refs);
                if let Ok(mut b) = recorder.lock() {
                    b.max_live = b.max_live.max(live);
                    b.min_ready = b.min_ready.min(ready);
                    b.observations += 1;
                }
            }
        }
    });
    (bounds, task)
}

/// True when the Deployment's rollout is done (what `kubectl rollout status`
/// waits for) and only `replicas` pods of `image` exist.
async fn rollout_done(ns: &Ns, image: &str) -> Result<Option<()>, E2eError> {
    let d = ns.deployments.get(APP).await?;
    let generation = d.metadata.generation.unwrap_or(0);
    let st = d.status.unwrap_or_default();
    let status_done = st.observed_generation.unwrap_or(0) >= generation
        && st.updated_replicas == Some(REPLICAS)
        && st.replicas == Some(REPLICAS)
        && st.available_replicas == Some(REPLICAS);
    let pods = ns.web_pods().await?;
    let pods_done = pods.len() == REPLICAS as usize
        && pods
            .iter()
            .all(|p| first_image(p.spec.as_ref()).as_deref() == Some(image) && is_ready(p));
    Ok((status_done && pods_done).then_some(()))
}

/// Point 3: image A -> B under maxSurge 1 / maxUnavailable 0, watched; then
/// `kubectl rollout undo` back to A and `kubectl rollout history`.
async fn rolling_update(ns: &Ns) -> Result<String, E2eError> {
    let (bounds, watch) = watch_bounds(ns);
    // Let the watch sync before changing anything.
    wait_until("the pod watch to sync", Duration::from_secs(30), || async {
        Ok(bounds
            .lock()
            .ok()
            .filter(|b| b.observations > 0)
            .map(|_| ()))
    })
    .await?;
    let t0 = Instant::now();
    ns.deployments
        .patch(
            APP,
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [
                {"name": "web", "image": IMAGE_B}
            ]}}}})),
        )
        .await?;
    let mut max_rs_sum = 0;
    let rs_sum = || async {
        let list = ns.replica_sets.list(&ListParams::default()).await?;
        Ok::<i32, E2eError>(
            list.items
                .iter()
                .filter_map(|rs| rs.spec.as_ref()?.replicas)
                .sum(),
        )
    };
    let deadline = Instant::now() + POD_TIMEOUT;
    loop {
        max_rs_sum = max_rs_sum.max(rs_sum().await?);
        if rollout_done(ns, IMAGE_B).await?.is_some() {
            break;
        }
        if Instant::now() > deadline {
            watch.abort();
            return Err(E2eError::Timeout {
                what: format!("rollout to {IMAGE_B}"),
                after: POD_TIMEOUT,
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let rollout_secs = t0.elapsed().as_secs_f64();
    // Give the watch a moment to deliver the last events, then stop it.
    tokio::time::sleep(Duration::from_secs(1)).await;
    watch.abort();
    let seen = bounds.lock().map(|b| *b).unwrap_or_default();
    println!(
        "METRIC rolling_update_seconds={rollout_secs:.1} max_pods={} min_ready={} max_rs_replicas={max_rs_sum} events={}",
        seen.max_live, seen.min_ready, seen.observations
    );
    if seen.max_live > REPLICAS as usize + 1 || seen.min_ready < REPLICAS as usize {
        return Err(E2eError::Check(format!(
            "rollout bounds broken: up to {} live pods (max {}), down to {} Ready (min {REPLICAS})",
            seen.max_live,
            REPLICAS + 1,
            seen.min_ready
        )));
    }
    if max_rs_sum > REPLICAS + 1 {
        return Err(E2eError::Check(format!(
            "ReplicaSets asked for {max_rs_sum} replicas (max {})",
            REPLICAS + 1
        )));
    }

    let ns_arg = ns.name.as_str();
    kubectl(&["-n", ns_arg, "rollout", "undo", "deployment/web"]).await?;
    wait_until("rollback to the first image", POD_TIMEOUT, || {
        rollout_done(ns, IMAGE_A)
    })
    .await?;
    let status = kubectl(&[
        "-n",
        ns_arg,
        "rollout",
        "status",
        "deployment/web",
        "--timeout=60s",
    ])
    .await?;
    let d = ns.deployments.get(APP).await?;
    let image = first_image(d.spec.as_ref().and_then(|s| s.template.spec.as_ref()));
    if image.as_deref() != Some(IMAGE_A) {
        return Err(E2eError::Check(format!(
            "after undo the image is {image:?}"
        )));
    }
    let rs = ns
        .replica_sets
        .list(&ListParams::default().labels(&format!("app={APP}")))
        .await?;
    let revs = revisions(&rs.items);
    let want: BTreeMap<i64, String> = [(2, IMAGE_B.to_string()), (3, IMAGE_A.to_string())].into();
    let dep_rev = d
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REVISION_ANNOTATION).cloned());
    if revs != want || dep_rev.as_deref() != Some("3") {
        return Err(E2eError::Check(format!(
            "revisions: replicasets {revs:?} (want {want:?}), deployment {dep_rev:?} (want 3)"
        )));
    }
    let history = kubectl(&["-n", ns_arg, "rollout", "history", "deployment/web"]).await?;
    let listed = history_revisions(&history);
    if listed != [2, 3] {
        return Err(E2eError::Check(format!(
            "rollout history lists {listed:?}:\n{history}"
        )));
    }
    Ok(format!(
        "rollout {rollout_secs:.1}s, max {} pods, min {} Ready, max RS sum {max_rs_sum}; undo -> {IMAGE_A}; history {listed:?}; status: {}",
        seen.max_live,
        seen.min_ready,
        status.lines().last().unwrap_or_default().trim()
    ))
}

fn agnhost_pod(name: &str, labels: &[(&str, &str)], container: Container) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "main".into(),
                image: Some(IMAGE_A.into()),
                image_pull_policy: Some("IfNotPresent".into()),
                ..container
            }],
            termination_grace_period_seconds: Some(1),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn strings(v: &[&str]) -> Option<Vec<String>> {
    Some(v.iter().map(|s| s.to_string()).collect())
}

async fn wait_pod_ready(ns: &Ns, name: &str) -> Result<Pod, E2eError> {
    wait_until(&format!("pod {name} Ready"), POD_TIMEOUT, || async {
        let p = ns.pods.get(name).await?;
        Ok(is_ready(&p).then_some(p))
    })
    .await
}

async fn event_reasons(ns: &Ns, pod: &str) -> Result<BTreeSet<String>, E2eError> {
    let events = ns
        .events
        .list(&ListParams::default().fields(&format!("involvedObject.name={pod}")))
        .await?;
    Ok(events.items.into_iter().filter_map(|e| e.reason).collect())
}

/// Point 4a: `agnhost liveness` answers /healthz 200 for 10 s, then 500; a
/// liveness probe on it restarts the container, with Unhealthy and Killing
/// events.
async fn liveness(ns: &Ns) -> Result<String, E2eError> {
    let pod = agnhost_pod(
        "liveness",
        &[("test", "liveness")],
        Container {
            command: strings(&["/agnhost", "liveness"]),
            liveness_probe: Some(Probe {
                http_get: Some(HTTPGetAction {
                    path: Some("/healthz".into()),
                    port: IntOrString::Int(8080),
                    ..Default::default()
                }),
                initial_delay_seconds: Some(3),
                period_seconds: Some(1),
                failure_threshold: Some(1),
                ..Default::default()
            }),
            ..Default::default()
        },
    );
    ns.pods.create(&PostParams::default(), &pod).await?;
    let t0 = Instant::now();
    let restarts = wait_until("liveness pod restarted", POD_TIMEOUT, || async {
        let p = ns.pods.get("liveness").await?;
        let n = restart_count(&p);
        Ok((n >= 1).then_some(n))
    })
    .await?;
    let secs = t0.elapsed().as_secs_f64();
    let reasons = wait_until(
        "Unhealthy and Killing events",
        Duration::from_secs(60),
        || async {
            let r = event_reasons(ns, "liveness").await?;
            Ok((r.contains("Unhealthy") && r.contains("Killing")).then_some(r))
        },
    )
    .await?;
    Ok(format!(
        "restartCount {restarts} after {secs:.1}s; events {reasons:?}"
    ))
}

/// The `ready` endpoint conditions of pod `pod` in the Service's slices.
async fn endpoint_ready(ns: &Ns, service: &str, pod: &str) -> Result<Option<bool>, E2eError> {
    let slices = ns
        .slices
        .list(&ListParams::default().labels(&format!("kubernetes.io/service-name={service}")))
        .await?;
    Ok(slices
        .items
        .iter()
        .flat_map(|s| s.endpoints.iter().flatten())
        .find(|e| e.target_ref.as_ref().and_then(|t| t.name.as_deref()) == Some(pod))
        .map(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(false)))
}

/// Point 4b: an exec readiness probe on /tmp/ready; removing the file turns
/// the EndpointSlice endpoint ready=false (and back when restored).
async fn readiness(ns: &Ns) -> Result<String, E2eError> {
    let pod = agnhost_pod(
        "flip",
        &[("app", "flip")],
        Container {
            command: strings(&[
                "sh",
                "-c",
                "touch /tmp/ready; exec /agnhost netexec --http-port=8080",
            ]),
            readiness_probe: Some(Probe {
                exec: Some(ExecAction {
                    command: strings(&["cat", "/tmp/ready"]),
                }),
                period_seconds: Some(1),
                failure_threshold: Some(1),
                ..Default::default()
            }),
            ..Default::default()
        },
    );
    ns.pods.create(&PostParams::default(), &pod).await?;
    let svc = Service {
        metadata: ObjectMeta {
            name: Some("flip".into()),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            selector: Some([("app".to_string(), "flip".to_string())].into()),
            ports: Some(vec![ServicePort {
                port: 80,
                target_port: Some(IntOrString::Int(8080)),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    };
    ns.services.create(&PostParams::default(), &svc).await?;
    wait_pod_ready(ns, "flip").await?;
    let wait_endpoint = |want: bool| async move {
        wait_until(
            &format!("flip endpoint ready={want}"),
            Duration::from_secs(90),
            || async {
                Ok((endpoint_ready(ns, "flip", "flip").await? == Some(want)).then_some(()))
            },
        )
        .await
    };
    wait_endpoint(true).await?;
    exec(&ns.pods, "flip", None, &["rm", "/tmp/ready"]).await?;
    let t0 = Instant::now();
    wait_endpoint(false).await?;
    let out_secs = t0.elapsed().as_secs_f64();
    let p = ns.pods.get("flip").await?;
    if is_ready(&p) {
        return Err(E2eError::Check(
            "flip pod still Ready after rm /tmp/ready".into(),
        ));
    }
    exec(&ns.pods, "flip", None, &["touch", "/tmp/ready"]).await?;
    wait_endpoint(true).await?;
    Ok(format!(
        "endpoint ready=false {out_secs:.1}s after rm, ready=true again after touch"
    ))
}

/// Point 5a: ConfigMap and Secret as env (keyRef and envFrom) and volumes;
/// a ConfigMap update reaches the mounted file.
async fn config_in_pods(ns: &Ns) -> Result<String, E2eError> {
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some("settings".into()),
            ..Default::default()
        },
        data: Some(
            [("color", "blue"), ("greeting", "hello")]
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .into(),
        ),
        ..Default::default()
    };
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some("creds".into()),
            ..Default::default()
        },
        string_data: Some([("password".to_string(), "s3cr3t".to_string())].into()),
        ..Default::default()
    };
    ns.config_maps.create(&PostParams::default(), &cm).await?;
    ns.secrets.create(&PostParams::default(), &secret).await?;
    let mut pod = agnhost_pod(
        "config",
        &[("test", "config")],
        Container {
            command: strings(&["/agnhost", "pause"]),
            env: Some(vec![
                EnvVar {
                    name: "COLOR".into(),
                    value_from: Some(EnvVarSource {
                        config_map_key_ref: Some(ConfigMapKeySelector {
                            name: "settings".into(),
                            key: "color".into(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                EnvVar {
                    name: "PASSWORD".into(),
                    value_from: Some(EnvVarSource {
                        secret_key_ref: Some(SecretKeySelector {
                            name: "creds".into(),
                            key: "password".into(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            ]),
            env_from: Some(vec![EnvFromSource {
                prefix: Some("CM_".into()),
                config_map_ref: Some(ConfigMapEnvSource {
                    name: "settings".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }]),
            volume_mounts: Some(vec![
                VolumeMount {
                    name: "cm".into(),
                    mount_path: "/etc/cm".into(),
                    ..Default::default()
                },
                VolumeMount {
                    name: "secret".into(),
                    mount_path: "/etc/secret".into(),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        },
    );
    if let Some(spec) = pod.spec.as_mut() {
        spec.volumes = Some(vec![
            Volume {
                name: "cm".into(),
                config_map: Some(ConfigMapVolumeSource {
                    name: "settings".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            Volume {
                name: "secret".into(),
                secret: Some(SecretVolumeSource {
                    secret_name: Some("creds".into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ]);
    }
    ns.pods.create(&PostParams::default(), &pod).await?;
    wait_until("config pod Running", POD_TIMEOUT, || async {
        let p = ns.pods.get("config").await?;
        let running = p.status.and_then(|s| s.phase).as_deref() == Some("Running");
        Ok(running.then_some(()))
    })
    .await?;

    let env = exec(&ns.pods, "config", None, &["env"]).await?.stdout;
    for want in [
        "COLOR=blue",
        "PASSWORD=s3cr3t",
        "CM_color=blue",
        "CM_greeting=hello",
    ] {
        if !env.lines().any(|l| l == want) {
            return Err(E2eError::Check(format!("env lacks {want}:\n{env}")));
        }
    }
    let cat = |path: &'static str| async move {
        exec(&ns.pods, "config", None, &["cat", path])
            .await
            .map(|o| o.stdout)
    };
    let files = [
        ("/etc/cm/color", "blue"),
        ("/etc/cm/greeting", "hello"),
        ("/etc/secret/password", "s3cr3t"),
    ];
    for (path, want) in files {
        let got = cat(path).await?;
        if got != want {
            return Err(E2eError::Check(format!("{path} is {got:?}, want {want:?}")));
        }
    }
    ns.config_maps
        .patch(
            "settings",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"color": "green"}})),
        )
        .await?;
    let t0 = Instant::now();
    wait_until(
        "/etc/cm/color to become green",
        Duration::from_secs(120),
        || async { Ok((cat("/etc/cm/color").await? == "green").then_some(())) },
    )
    .await?;
    let secs = t0.elapsed().as_secs_f64();
    println!("METRIC configmap_volume_update_seconds={secs:.1}");
    Ok(format!(
        "env (keyRef, envFrom) and files right; update seen in the file after {secs:.1}s"
    ))
}

/// Point 5b: the projected token and CA authenticate the pod to the
/// apiserver as its service account.
async fn service_account_token(ns: &Ns) -> Result<String, E2eError> {
    const DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
    let token = exec(&ns.pods, "config", None, &["cat", &format!("{DIR}/token")]).await?;
    let ca = exec(&ns.pods, "config", None, &["cat", &format!("{DIR}/ca.crt")]).await?;
    let namespace = exec(
        &ns.pods,
        "config",
        None,
        &["cat", &format!("{DIR}/namespace")],
    )
    .await?;
    if token.stdout.split('.').count() != 3 || !ca.stdout.contains("BEGIN CERTIFICATE") {
        return Err(E2eError::Check(format!(
            "token/ca.crt not as expected: token {} chars, ca.crt starts {:?}",
            token.stdout.len(),
            ca.stdout.chars().take(30).collect::<String>()
        )));
    }
    if namespace.stdout != ns.name {
        return Err(E2eError::Check(format!(
            "namespace file says {:?}",
            namespace.stdout
        )));
    }
    let script = format!(
        "curl -s -m 10 -o /tmp/api.json -w '%{{http_code}}' --cacert {DIR}/ca.crt \
         -H \"Authorization: Bearer $(cat {DIR}/token)\" https://kubernetes.default.svc/api; \
         echo; cat /tmp/api.json"
    );
    let out = exec(&ns.pods, "config", None, &["sh", "-c", &script]).await?;
    let mut lines = out.stdout.splitn(2, '\n');
    let code = lines.next().unwrap_or_default().trim().to_string();
    let body = lines.next().unwrap_or_default();
    let user = format!("system:serviceaccount:{}:default", ns.name);
    let ok = match code.as_str() {
        "200" => body.contains("\"versions\""),
        "403" => body.contains(&user),
        _ => false,
    };
    if !ok {
        return Err(E2eError::Check(format!(
            "GET https://kubernetes.default.svc/api with the pod's token: {code} {body} (stderr {})",
            out.stderr
        )));
    }
    Ok(format!("GET /api with the projected token -> {code}"))
}

/// Point 6: logs return the container's output; exec returns stdout and the
/// exit code.
async fn logs_and_exec(ns: &Ns) -> Result<String, E2eError> {
    let pod = agnhost_pod(
        "logger",
        &[("test", "logger")],
        Container {
            command: strings(&[
                "sh",
                "-c",
                "echo first-line; echo second-line >&2; exec /agnhost pause",
            ]),
            ..Default::default()
        },
    );
    ns.pods.create(&PostParams::default(), &pod).await?;
    let logs = wait_until("logger output in its logs", POD_TIMEOUT, || async {
        let p = ns.pods.get("logger").await?;
        if p.status.and_then(|s| s.phase).as_deref() != Some("Running") {
            return Ok(None);
        }
        let logs = ns.pods.logs("logger", &LogParams::default()).await?;
        Ok((logs.contains("first-line") && logs.contains("second-line")).then_some(logs))
    })
    .await?;
    let out = exec(&ns.pods, "logger", None, &["sh", "-c", "echo hi; exit 3"]).await?;
    if out.stdout != "hi\n" || out.exit_code != 3 {
        return Err(E2eError::Check(format!(
            "exec 'echo hi; exit 3': stdout {:?}, exit code {}",
            out.stdout, out.exit_code
        )));
    }
    Ok(format!(
        "logs {:?}; exec stdout {:?} exit {}",
        logs.trim(),
        out.stdout,
        out.exit_code
    ))
}

/// Point 7a: deleting the Deployment (background propagation) removes its
/// ReplicaSets and pods.
async fn delete_deployment(ns: &Ns) -> Result<String, E2eError> {
    ns.deployments
        .delete(APP, &DeleteParams::background())
        .await?;
    let t0 = Instant::now();
    wait_until("web ReplicaSets and pods gone", POD_TIMEOUT, || async {
        let rs = ns
            .replica_sets
            .list(&ListParams::default().labels(&format!("app={APP}")))
            .await?;
        let pods = ns.web_pods().await?;
        let d = ns.deployments.get_opt(APP).await?;
        Ok((rs.items.is_empty() && pods.is_empty() && d.is_none()).then_some(()))
    })
    .await?;
    Ok(format!(
        "deployment, replicasets and pods gone in {:.1}s",
        t0.elapsed().as_secs_f64()
    ))
}

/// Point 7b: deleting the namespace removes its content and then itself.
async fn delete_namespace_and_wait(client: &Client, name: &str) -> Result<String, E2eError> {
    delete_namespace(client, name).await?;
    let t0 = Instant::now();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    wait_until(
        &format!("namespace {name} gone"),
        Duration::from_secs(240),
        || async { Ok(namespaces.get_opt(name).await?.is_none().then_some(())) },
    )
    .await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), name);
    let left = pods.list(&ListParams::default()).await?.items.len();
    if left > 0 {
        return Err(E2eError::Check(format!(
            "{left} pods left in deleted namespace {name}"
        )));
    }
    Ok(format!(
        "namespace and its objects gone in {:.1}s",
        t0.elapsed().as_secs_f64()
    ))
}
