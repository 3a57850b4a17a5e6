# shellcheck shell=bash disable=SC2034  # settings used by the scripts that source this
# Shared settings and helpers for hack/local-up, hack/local-down, hack/logs
# and hack/e2e. Sourced, never executed.

FK_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
FK_OUT=${FK_OUT:-$FK_ROOT/_output/local}
FK_LOGS=$FK_OUT/logs
FK_PIDS=$FK_OUT/pids
FK_PKI=$FK_OUT/pki
FK_KUBECONFIGS=$FK_OUT/kubeconfig
FK_ADMIN_KUBECONFIG=$FK_OUT/admin.kubeconfig
FK_CLUSTER_ENV=$FK_OUT/cluster.env
# Sockets and containerd state live on tmpfs (short unix socket paths).
FK_RUN=${FK_RUN:-/run/ferrokube}
FK_IMAGES=${FK_IMAGES:-$FK_ROOT/_output/images}

# The stock binaries: pinned release, cache, and the one resolver.
# shellcheck source=hack/lib/stock.sh
source "$FK_ROOT/hack/lib/stock.sh"

# Network layout (all of it exists only inside namespaces made here).
FK_NS_PREFIX=${FK_NS_PREFIX:-fk-}
FK_SWITCH_NS=${FK_NS_PREFIX}switch
FK_CP_NS=${FK_NS_PREFIX}control-plane
FK_NODE_SUBNET_PREFIX=172.30.0      # /24 on the bridge in the switch namespace
FK_CP_IP=$FK_NODE_SUBNET_PREFIX.2
FK_CLUSTER_CIDR=10.244.0.0/16       # kubeadm/kind pod network
FK_SERVICE_CIDR=10.96.0.0/16        # kubeadm default
FK_KUBERNETES_SVC_IP=10.96.0.1
FK_DNS_IP=10.96.0.10
FK_DNS_DOMAIN=cluster.local
FK_API_PORT=6443
# The host reaches the apiserver through a forward on loopback.
FK_HOST_API_ADDR=${FK_HOST_API_ADDR:-127.0.0.1}
FK_HOST_API_PORT=${FK_HOST_API_PORT:-16443}
FK_CGROUP_PARENT=ferrokube

# The sandbox image kubelet/e2e v1.36 expect (e2e.test --list-images).
FK_PAUSE_IMAGE=registry.k8s.io/pause:3.10.2
FK_BUSYBOX_IMAGE=docker.io/library/busybox:1.36

fk_node_name() { echo "${FK_NS_PREFIX}node-$1"; }       # node index 1..N
fk_node_ip() { echo "$FK_NODE_SUBNET_PREFIX.$((10 + $1))"; }
fk_node_pod_cidr() { echo "10.244.$1.0/24"; }
fk_node_pod_gw() { echo "10.244.$1.1"; }
fk_node_dir() { echo "$FK_OUT/nodes/$(fk_node_name "$1")"; }
fk_node_run() { echo "$FK_RUN/$(fk_node_name "$1")"; }
fk_node_sock() { echo "$(fk_node_run "$1")/containerd.sock"; }
fk_nsenter() { local ns=$1; shift; nsenter --net="/var/run/netns/$ns" -- "$@"; }

fk_log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }
fk_notice() { printf '[%s] NOTICE: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
fk_die() { printf '[%s] ERROR: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; exit 1; }

fk_require_root() {
  [[ $(id -u) -eq 0 ]] || fk_die "$(basename "$0") needs root (network namespaces, mounts, cgroups)"
}

# fk_kubectl ARGS...: the stock kubectl of the pinned release (never a
# kubectl of another version from PATH: version skew fails kubectl specs).
fk_kubectl() {
  local k
  k=$(fk_stock_bin kubectl) || fk_die "no stock kubectl"
  "$k" --kubeconfig "$FK_ADMIN_KUBECONFIG" "$@"
}

# fk_start NAME NETNS LOGNAME CMD...: runs CMD in the background inside NETNS
# (only the network namespace: the mount namespace, /sys and the cgroup
# mounts stay the host's), logs to $FK_LOGS/LOGNAME.log, records its PID.
fk_start() {
  local name=$1 ns=$2 logname=$3; shift 3
  mkdir -p "$FK_LOGS" "$FK_PIDS"
  # setsid: its own session, so a Ctrl-C on local-up does not kill it.
  setsid nsenter --net="/var/run/netns/$ns" -- "$@" >>"$FK_LOGS/$logname.log" 2>&1 </dev/null &
  echo $! >"$FK_PIDS/$name.pid"
}

fk_pid_alive() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

# fk_stop_pidfiles TIMEOUT FILE...: SIGTERM to all at once, wait up to
# TIMEOUT seconds for all of them, SIGKILL what is left; removes the FILEs.
fk_stop_pidfiles() {
  local timeout=$1 f pid i alive; shift
  local pids=()
  for f in "$@"; do
    [[ -f "$f" ]] || continue
    pid=$(cat "$f")
    kill -0 "$pid" 2>/dev/null && { kill -TERM "$pid" 2>/dev/null; pids+=("$pid"); }
  done
  for ((i = 0; i < timeout * 10 && ${#pids[@]} > 0; i++)); do
    alive=()
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive+=("$pid"); done
    pids=("${alive[@]}")
    ((${#pids[@]})) && sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null; done
  rm -f "$@"
}

# fk_wait_for DESCRIPTION TIMEOUT_S CMD...: polls CMD every 0.5 s.
fk_wait_for() {
  local what=$1 timeout=$2 deadline; shift 2
  deadline=$(($(date +%s) + timeout))
  until "$@" >/dev/null 2>&1; do
    if (($(date +%s) >= deadline)); then
      fk_log "timed out after ${timeout}s waiting for $what"
      return 1
    fi
    sleep 0.5
  done
}

fk_cgroup_v2() { [[ -f /sys/fs/cgroup/cgroup.controllers ]]; }

# fk_cgroup_dirs NODE: every cgroup directory that is the node's root.
fk_cgroup_dirs() {
  local node=$1 d
  if fk_cgroup_v2; then
    echo "/sys/fs/cgroup/$FK_CGROUP_PARENT/$node"
  else
    for d in /sys/fs/cgroup/*/; do
      d=${d%/}
      [[ -L "$d" ]] && continue  # cpu,cpuacct-style alias links
      [[ -f "$d/cgroup.procs" ]] || continue
      echo "$d/$FK_CGROUP_PARENT/$node"
    done
  fi
}

# The DNS add-on image: kubeadm v1.36's CoreDNS tag (constants.CoreDNSVersion).
FK_COREDNS_IMAGE=registry.k8s.io/coredns/coredns:v1.14.2
