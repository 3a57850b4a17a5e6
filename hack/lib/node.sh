# shellcheck shell=bash
# One node = one network namespace with its own containerd, kubelet and
# kube-proxy; state under $FK_OUT/nodes/<node>, sockets under $FK_RUN/<node>.

# fk_node_prepare I: directories, cgroup root, containerd and CNI config.
fk_node_prepare() {
  local i=$1 node dir run
  node=$(fk_node_name "$i"); dir=$(fk_node_dir "$i"); run=$(fk_node_run "$i")
  mkdir -p "$dir"/{containerd,kubelet,pod-logs,cni/net.d,cni/ipam,opt} "$run"
  fk_cgroups_create "$node"
  cat >"$dir/containerd.toml" <<TOML
version = 2
root = "$dir/containerd"
state = "$run/containerd"
[grpc]
  address = "$run/containerd.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "$dir/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$FK_PAUSE_IMAGE"
  # No CAP_SYS_RESOURCE here: never lower oom_score_adj below our own.
  restrict_oom_score_adj = true
  # Pod network namespaces under our state dir, so local-down finds them.
  netns_mounts_under_state_dir = true
  enable_selinux = false
  disable_apparmor = true
  tolerate_missing_hugetlb_controller = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "runc"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$dir/cni/net.d"
    max_conf_num = 1
TOML
  # bridge + host-local + portmap, the per-node pod /24; routes to other
  # nodes' pods are in the node namespace (fk_net_create), so no masquerade
  # is needed inside the cluster.
  cat >"$dir/cni/net.d/10-ferrokube.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "ferrokube",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$dir/cni/ipam",
        "ranges": [[{"subnet": "$(fk_node_pod_cidr "$i")", "gateway": "$(fk_node_pod_gw "$i")"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
JSON
}

fk_node_start_containerd() {
  local i=$1 node
  node=$(fk_node_name "$i")
  fk_start "containerd-$node" "$node" "containerd-$node" \
    containerd --config "$(fk_node_dir "$i")/containerd.toml" --log-level info
}

fk_node_containerd_ready() {
  ctr -a "$(fk_node_sock "$1")" version >/dev/null 2>&1
}

# fk_node_ctr I ARGS...: ctr against node I's containerd, CRI namespace.
fk_node_ctr() { local i=$1; shift; ctr -a "$(fk_node_sock "$i")" -n k8s.io "$@"; }

# fk_node_import_images I ARCHIVE...
fk_node_import_images() {
  local i=$1 a; shift
  for a in "$@"; do
    fk_node_ctr "$i" images import --no-unpack=false "$a" >/dev/null ||
      fk_die "importing $a into $(fk_node_name "$i") failed"
  done
}

# fk_node_write_configs I: kubelet and kube-proxy configuration files.
fk_node_write_configs() {
  local i=$1 node dir ip
  node=$(fk_node_name "$i"); dir=$(fk_node_dir "$i"); ip=$(fk_node_ip "$i")
  # Pods with dnsPolicy Default get this file: no upstream resolver at all.
  printf 'search %s\noptions ndots:5\n' "$FK_DNS_DOMAIN" >"$dir/resolv.conf"
  cat >"$dir/kubelet-config.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $ip
port: 10250
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: $FK_PKI/ca.crt
authorization:
  mode: Webhook
tlsCertFile: $FK_PKI/kubelet-serving-$node.crt
tlsPrivateKeyFile: $FK_PKI/kubelet-serving-$node.key
containerRuntimeEndpoint: unix://$(fk_node_sock "$i")
cgroupDriver: cgroupfs
cgroupRoot: /$FK_CGROUP_PARENT/$node
cgroupsPerQOS: true
failCgroupV1: false
failSwapOn: false
clusterDNS:
- $FK_DNS_IP
clusterDomain: $FK_DNS_DOMAIN
resolvConf: $dir/resolv.conf
podLogsDir: $dir/pod-logs
rotateCertificates: false
serverTLSBootstrap: false
serializeImagePulls: false
# The host's disk is shared by every node: do not evict on its fill level.
evictionHard:
  memory.available: 100Mi
  nodefs.available: 1%
  imagefs.available: 1%
  nodefs.inodesFree: 1%
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
YAML
  fk_proxy_config "$dir/kube-proxy-config.yaml" "$node" 0.0.0.0
}

# fk_proxy_config FILE HOSTNAME BIND_ADDRESS: the KubeProxyConfiguration of
# every kube-proxy here (nodes and the control plane), as kubeadm's
# kube-proxy ConfigMap has it, with this cluster's CIDR and mode.
fk_proxy_config() {
  local file=$1 hostname=$2 bind=$3
  cat >"$file" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: $FK_KUBECONFIGS/kube-proxy.kubeconfig
hostnameOverride: $hostname
bindAddress: $bind
healthzBindAddress: $bind:10256
metricsBindAddress: 127.0.0.1:10249
clusterCIDR: $FK_CLUSTER_CIDR
mode: ${FK_PROXY_MODE:-iptables}
conntrack:
  # nf_conntrack_max is read-only outside the initial network namespace.
  maxPerCore: 0
YAML
}

# fk_node_start_kubelet I BINARY
fk_node_start_kubelet() {
  local i=$1 bin=$2 node dir
  node=$(fk_node_name "$i"); dir=$(fk_node_dir "$i")
  fk_start "kubelet-$node" "$node" "kubelet-$node" "$bin" \
    --config="$dir/kubelet-config.yaml" \
    --kubeconfig="$FK_KUBECONFIGS/kubelet-$node.kubeconfig" \
    --root-dir="$dir/kubelet" \
    --hostname-override="$node" \
    --node-ip="$(fk_node_ip "$i")" \
    --node-labels="ferrokube.io/node-index=$i" \
    --v="${FK_V:-2}"
}

# fk_node_start_proxy I BINARY
fk_node_start_proxy() {
  local i=$1 bin=$2 node
  node=$(fk_node_name "$i")
  fk_start "kube-proxy-$node" "$node" "kube-proxy-$node" "$bin" \
    --config="$(fk_node_dir "$i")/kube-proxy-config.yaml" --v="${FK_V:-2}"
}

# fk_node_precreate I: the Node object with its pod CIDR, before the kubelet
# registers, so the CIDR always matches the node's CNI config.
fk_node_precreate() {
  local i=$1 node
  node=$(fk_node_name "$i")
  fk_kubectl get node "$node" >/dev/null 2>&1 && return 0
  fk_kubectl create --validate=false -f - >/dev/null <<YAML
apiVersion: v1
kind: Node
metadata:
  name: $node
  labels:
    kubernetes.io/hostname: $node
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
spec:
  podCIDR: $(fk_node_pod_cidr "$i")
  podCIDRs:
  - $(fk_node_pod_cidr "$i")
YAML
}
