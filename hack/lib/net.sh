# shellcheck shell=bash
# Network namespaces, veths, routes and per-node cgroup roots.
#
#   fk-switch         bridge br0 (no address): the "top of rack" switch
#   fk-control-plane  eth0 172.30.0.2/24        etcd, apiserver, scheduler, KCM
#   fk-node-<i>       eth0 172.30.0.(10+i)/24   containerd, kubelet, kube-proxy;
#                     cni0 10.244.<i>.1/24 (made by the CNI bridge plugin)
# Every namespace routes each node's pod /24 via that node's eth0 address.
# Nothing has a default route, so traffic can only stay inside these
# namespaces. The host reaches the apiserver through a loopback forward.

_fk_ns_add() {
  local ns=$1
  ip netns add "$ns"
  ip -n "$ns" link set lo up
}

# _fk_attach NS VETH_NAME IP: a veth from the switch bridge to NS's eth0.
_fk_attach() {
  local ns=$1 veth=$2 ip=$3
  ip -n "$FK_SWITCH_NS" link add "$veth" type veth peer name eth0 netns "$ns"
  ip -n "$FK_SWITCH_NS" link set "$veth" master br0 up
  ip -n "$ns" addr add "$ip/24" dev eth0
  ip -n "$ns" link set eth0 up
}

# fk_net_create NODES
fk_net_create() {
  local nodes=$1 i j ns
  _fk_ns_add "$FK_SWITCH_NS"
  ip -n "$FK_SWITCH_NS" link add br0 type bridge
  ip -n "$FK_SWITCH_NS" link set br0 up
  _fk_ns_add "$FK_CP_NS"
  _fk_attach "$FK_CP_NS" vcp "$FK_CP_IP"
  # The apiserver and the conformance runner reach ClusterIPs through the
  # control plane's own kube-proxy (fk_cp_start_proxy).
  ip -n "$FK_CP_NS" route add "$FK_SERVICE_CIDR" dev eth0
  for ((i = 1; i <= nodes; i++)); do
    ns=$(fk_node_name "$i")
    _fk_ns_add "$ns"
    _fk_attach "$ns" "vnode$i" "$(fk_node_ip "$i")"
    fk_nsenter "$ns" sysctl -qw net.ipv4.ip_forward=1
    # kube-proxy needs bridged pod traffic to pass through iptables/nft
    # (hairpin to a Service backend on the same node).
    if [[ -e /proc/sys/net/bridge/bridge-nf-call-iptables ]]; then
      fk_nsenter "$ns" sysctl -qw net.bridge.bridge-nf-call-iptables=1 net.bridge.bridge-nf-call-ip6tables=1 ||
        fk_notice "could not enable bridge-nf-call-iptables in $ns"
    fi
    # Locally generated traffic to a ClusterIP needs a route before
    # kube-proxy's DNAT rewrites it.
    ip -n "$ns" route add "$FK_SERVICE_CIDR" dev eth0
  done
  for ((j = 1; j <= nodes; j++)); do
    ip -n "$FK_CP_NS" route add "$(fk_node_pod_cidr "$j")" via "$(fk_node_ip "$j")"
    for ((i = 1; i <= nodes; i++)); do
      ((i == j)) && continue
      ip -n "$(fk_node_name "$i")" route add "$(fk_node_pod_cidr "$j")" via "$(fk_node_ip "$j")"
    done
  done
}

# fk_net_namespaces: every namespace of ours that exists now.
fk_net_namespaces() {
  ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^${FK_NS_PREFIX}(switch|control-plane|node-[0-9]+)$" || true
}

fk_net_delete() {
  local ns
  for ns in $(fk_net_namespaces); do
    ip netns delete "$ns" 2>/dev/null || fk_notice "could not delete netns $ns"
  done
}

# fk_cgroups_create NODE: the node's cgroup root, given to its kubelet as
# --cgroup-root=/ferrokube/NODE and used by its containerd's runc.
fk_cgroups_create() {
  local node=$1 d parent c ctrls
  if fk_cgroup_v2; then
    mkdir -p "/sys/fs/cgroup/$FK_CGROUP_PARENT/$node"
    ctrls=$(cat /sys/fs/cgroup/cgroup.controllers)
    for parent in /sys/fs/cgroup "/sys/fs/cgroup/$FK_CGROUP_PARENT" "/sys/fs/cgroup/$FK_CGROUP_PARENT/$node"; do
      for c in $ctrls; do echo "+$c" >"$parent/cgroup.subtree_control" 2>/dev/null || true; done
    done
    return 0
  fi
  for d in $(fk_cgroup_dirs "$node"); do
    mkdir -p "$d"
    # cpuset children start empty in v1; copy the parent's sets down.
    if [[ -f "$d/cpuset.cpus" ]]; then
      for parent in "$(dirname "$d")" "$d"; do
        cat "$(dirname "$parent")/cpuset.cpus" >"$parent/cpuset.cpus"
        cat "$(dirname "$parent")/cpuset.mems" >"$parent/cpuset.mems"
      done
    fi
  done
}

# _fk_cgroup_kill_tree DIR: SIGKILL every process in DIR and below.
_fk_cgroup_kill_tree() {
  local dir=$1 pid f
  [[ -d "$dir" ]] || return 0
  while IFS= read -r f; do
    { while read -r pid; do kill -KILL "$pid" 2>/dev/null || true; done <"$f"; } 2>/dev/null
  done < <(find "$dir" -name cgroup.procs 2>/dev/null)
}

# fk_cgroups_delete NODE: kill what is left inside, remove dirs bottom-up.
fk_cgroups_delete() {
  local node=$1 d
  for d in $(fk_cgroup_dirs "$node"); do
    [[ -d "$d" ]] || continue
    for _ in 1 2 3 4 5 6 7 8 9 10; do
      _fk_cgroup_kill_tree "$d"
      find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
      [[ -d "$d" ]] || break
      sleep 0.3
    done
    [[ -d "$d" ]] && fk_notice "cgroup $d still exists (processes left: $(find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null | tr '\n' ' '))"
  done
  for d in $(fk_cgroup_dirs ""); do
    rmdir "$d" 2>/dev/null || true   # the ferrokube parent, once empty
  done
  return 0
}
