# shellcheck shell=bash
# etcd, kube-apiserver, kube-scheduler, kube-controller-manager in the
# control-plane namespace, flags as kubeadm v1.36 writes them in its static
# pod manifests (adapted to plain processes and this network).

# fk_cp_start_etcd BINARY
fk_cp_start_etcd() {
  local bin=$1
  mkdir -p "$FK_OUT/etcd"
  # Plain HTTP on the namespace's loopback: nothing else can reach it.
  fk_start etcd "$FK_CP_NS" etcd "$bin" \
    --name=control-plane --data-dir="$FK_OUT/etcd" \
    --listen-client-urls=http://127.0.0.1:2379 --advertise-client-urls=http://127.0.0.1:2379 \
    --listen-peer-urls=http://127.0.0.1:2380 --initial-advertise-peer-urls=http://127.0.0.1:2380 \
    --initial-cluster=control-plane=http://127.0.0.1:2380 \
    --listen-metrics-urls=http://127.0.0.1:2381 \
    --snapshot-count=10000 --quota-backend-bytes=2147483648
}

fk_cp_etcd_healthy() { fk_nsenter "$FK_CP_NS" curl -sf --max-time 2 http://127.0.0.1:2379/health | grep -q '"health":"true"'; }

fk_cp_start_apiserver() {
  local bin=$1
  fk_start kube-apiserver "$FK_CP_NS" kube-apiserver "$bin" \
    --advertise-address="$FK_CP_IP" --bind-address=0.0.0.0 --secure-port="$FK_API_PORT" \
    --etcd-servers=http://127.0.0.1:2379 \
    --allow-privileged=true \
    --authorization-mode=Node,RBAC \
    --enable-admission-plugins=NodeRestriction \
    --enable-bootstrap-token-auth=true \
    --client-ca-file="$FK_PKI/ca.crt" \
    --tls-cert-file="$FK_PKI/apiserver.crt" --tls-private-key-file="$FK_PKI/apiserver.key" \
    --kubelet-client-certificate="$FK_PKI/apiserver-kubelet-client.crt" \
    --kubelet-client-key="$FK_PKI/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority="$FK_PKI/ca.crt" \
    --kubelet-preferred-address-types=InternalIP \
    --proxy-client-cert-file="$FK_PKI/front-proxy-client.crt" \
    --proxy-client-key-file="$FK_PKI/front-proxy-client.key" \
    --requestheader-client-ca-file="$FK_PKI/front-proxy-ca.crt" \
    --requestheader-allowed-names=front-proxy-client \
    --requestheader-extra-headers-prefix=X-Remote-Extra- \
    --requestheader-group-headers=X-Remote-Group \
    --requestheader-username-headers=X-Remote-User \
    --service-account-issuer="https://kubernetes.default.svc.$FK_DNS_DOMAIN" \
    --service-account-key-file="$FK_PKI/sa.pub" \
    --service-account-signing-key-file="$FK_PKI/sa.key" \
    --service-cluster-ip-range="$FK_SERVICE_CIDR" \
    --v="${FK_V:-2}"
}

fk_cp_apiserver_ready() {
  fk_nsenter "$FK_CP_NS" curl -sf --max-time 2 --cacert "$FK_PKI/ca.crt" \
    --cert "$FK_PKI/admin.crt" --key "$FK_PKI/admin.key" \
    "https://$FK_CP_IP:$FK_API_PORT/readyz" >/dev/null
}

# The host's way in: 127.0.0.1:16443 -> unix socket -> apiserver in the
# control-plane namespace. Unix sockets are not tied to a network namespace,
# so two socat processes bridge them without a route from the host.
fk_cp_start_forward() {
  local sock=$FK_RUN/apiserver.sock
  mkdir -p "$FK_RUN"
  rm -f "$sock"
  fk_start api-forward-ns "$FK_CP_NS" api-forward \
    socat "UNIX-LISTEN:$sock,fork,unlink-early,mode=600" "TCP:$FK_CP_IP:$FK_API_PORT"
  mkdir -p "$FK_LOGS" "$FK_PIDS"
  setsid socat "TCP-LISTEN:$FK_HOST_API_PORT,bind=$FK_HOST_API_ADDR,reuseaddr,fork" "UNIX-CONNECT:$sock" \
    >>"$FK_LOGS/api-forward.log" 2>&1 </dev/null &
  echo $! >"$FK_PIDS/api-forward-host.pid"
}

fk_cp_start_scheduler() {
  local bin=$1 kc=$FK_KUBECONFIGS/scheduler.kubeconfig
  fk_start kube-scheduler "$FK_CP_NS" kube-scheduler "$bin" \
    --kubeconfig="$kc" --authentication-kubeconfig="$kc" --authorization-kubeconfig="$kc" \
    --bind-address=127.0.0.1 --leader-elect=true --v="${FK_V:-2}"
}

fk_cp_start_controller_manager() {
  local bin=$1 kc=$FK_KUBECONFIGS/controller-manager.kubeconfig
  fk_start kube-controller-manager "$FK_CP_NS" kube-controller-manager "$bin" \
    --kubeconfig="$kc" --authentication-kubeconfig="$kc" --authorization-kubeconfig="$kc" \
    --bind-address=127.0.0.1 --leader-elect=true \
    --client-ca-file="$FK_PKI/ca.crt" \
    --requestheader-client-ca-file="$FK_PKI/front-proxy-ca.crt" \
    --cluster-name=ferrokube \
    --cluster-signing-cert-file="$FK_PKI/ca.crt" --cluster-signing-key-file="$FK_PKI/ca.key" \
    --root-ca-file="$FK_PKI/ca.crt" \
    --service-account-private-key-file="$FK_PKI/sa.key" \
    --use-service-account-credentials=true \
    --controllers='*,bootstrapsigner,tokencleaner' \
    --allocate-node-cidrs=true --cluster-cidr="$FK_CLUSTER_CIDR" --node-cidr-mask-size=24 \
    --service-cluster-ip-range="$FK_SERVICE_CIDR" \
    --v="${FK_V:-2}"
}

# fk_cp_bootstrap: RBAC kubeadm adds after the control plane is up.
fk_cp_bootstrap() {
  fk_kubectl apply --validate=false -f - >/dev/null <<'YAML'
# The apiserver's kubelet client certificate may use the kubelet API.
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: ferrokube:apiserver-kubelet-client
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: system:kubelet-api-admin
subjects:
- apiGroup: rbac.authorization.k8s.io
  kind: User
  name: kube-apiserver-kubelet-client
YAML
}

# fk_cp_openshift_apiserver BIN: true for kube-apiserver builds of OpenShift's
# fork (their admission code names the ConfigMap it injects).
fk_cp_openshift_apiserver() {
  grep -aq 'openshift-service-ca.crt' "$1"
}

# fk_cp_start_compat_service_ca: see hack/lib/compat-service-ca. Runs on the
# host (it talks to the apiserver through the host forward), tracked by PID
# like every other process.
fk_cp_start_compat_service_ca() {
  local k
  k=$(fk_stock_bin kubectl) || fk_die "no stock kubectl"
  mkdir -p "$FK_LOGS" "$FK_PIDS"
  setsid "$FK_ROOT/hack/lib/compat-service-ca" "$k" "$FK_ADMIN_KUBECONFIG" "$FK_PKI/ca.crt" \
    >>"$FK_LOGS/compat-service-ca.log" 2>&1 </dev/null &
  echo $! >"$FK_PIDS/compat-service-ca.pid"
}

# fk_cp_start_proxy BINARY: kube-proxy in the control-plane namespace, as
# kubeadm runs the kube-proxy DaemonSet on its control-plane node too. It is
# what lets the apiserver reach Services: admission webhooks, aggregated
# APIs (APIService -> Service) and CRD conversion webhooks, exactly as on a
# kubeadm cluster (no --enable-aggregator-routing, which kubeadm does not
# set). There is no kubelet here, so no Node object: kube-proxy is told its
# address by bindAddress.
fk_cp_start_proxy() {
  local bin=$1 dir=$FK_OUT/control-plane
  mkdir -p "$dir"
  fk_proxy_config "$dir/kube-proxy-config.yaml" "$FK_CP_NS" "$FK_CP_IP"
  fk_start kube-proxy-control-plane "$FK_CP_NS" kube-proxy-control-plane "$bin" \
    --config="$dir/kube-proxy-config.yaml" --v="${FK_V:-2}"
}
