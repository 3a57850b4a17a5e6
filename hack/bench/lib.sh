# shellcheck shell=bash
# Shared bring-up for the hack/bench/* benchmarks: a throwaway etcd and
# kube-apiserver on loopback (temp dir, openssl PKI, kubeconfigs with the
# upstream component identities), process measurement (peak RSS, CPU time)
# and the comparison table. Sourced by hack/bench/{scheduler,proxy,controller-manager}.
#
# Everything a benchmark starts goes through bench_spawn, so the EXIT trap
# can stop exactly those processes (by PID) and remove the temp dir.

set -euo pipefail

BENCH_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# The stock binaries come from the one resolver hack/local-up uses too
# ($KUBE_BIN_DIR, the cache, the release download, hack/kube-bin/build).
FK_ROOT=$BENCH_REPO
# shellcheck source=hack/lib/stock.sh
source "$BENCH_REPO/hack/lib/stock.sh"
BENCH_PIDS=()
BENCH_CLEANUP_HOOKS=()
BENCH_ROWS=()
BENCH_DIR=""
# Address the apiserver binds to; the proxy bench uses a host-side veth
# address so kube-proxy inside its network namespace can reach it.
BENCH_API_ADDR=${BENCH_API_ADDR:-127.0.0.1}

bench_log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
bench_die() { bench_log "ERROR: $*"; exit 1; }
bench_skip() { echo "SKIP: $*"; exit 0; }
bench_now() { date +%s.%N; }

# bench_stock NAME: path of the stock binary NAME (fetched or built once).
bench_stock() { fk_stock_bin "$1" || bench_die "no stock $1 ($FK_KUBE_VERSION)"; }

# bench_require_stock NAME...: every stock binary the benchmark runs, ready
# before any timing starts; a missing tool is an error, not a skip.
bench_require_stock() {
  local b
  for b in kube-apiserver kubectl etcd "$@"; do bench_stock "$b" >/dev/null; done
  command -v openssl >/dev/null || bench_die "openssl not on PATH (apt-get install openssl)"
}

# bench_ours NAME: path of our release binary, built unless BENCH_NO_BUILD=1.
# BENCH_OURS=PATH runs that binary in the "ours" slot instead (e.g. the stock
# one, to see run-to-run noise).
bench_ours() {
  local name=$1 bin="$BENCH_REPO/target/release/$1"
  if [[ -n "${BENCH_OURS:-}" ]]; then echo "$BENCH_OURS"; return; fi
  if [[ "${BENCH_NO_BUILD:-0}" != 1 ]]; then
    bench_log "cargo build --release -p $name"
    (cd "$BENCH_REPO" && cargo build --release -q -p "$name") >&2 ||
      bench_die "cargo build -p $name failed"
  fi
  [[ -x "$bin" ]] || bench_die "$bin missing (build it or unset BENCH_NO_BUILD)"
  echo "$bin"
}

bench_cleanup() {
  local rc=$? pid hook
  trap - EXIT INT TERM
  for hook in "${BENCH_CLEANUP_HOOKS[@]}"; do $hook || true; done
  # Reverse order: components first, apiserver, then etcd.
  for ((i = ${#BENCH_PIDS[@]} - 1; i >= 0; i--)); do
    pid=${BENCH_PIDS[i]}
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${BENCH_PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [[ -n "$BENCH_DIR" && -d "$BENCH_DIR" ]]; then
    if [[ -n "${BENCH_KEEP_LOGS:-}" ]]; then
      mkdir -p "$BENCH_KEEP_LOGS" && cp "$BENCH_DIR"/*.log "$BENCH_KEEP_LOGS"/ 2>/dev/null || true
    fi
    rm -rf "$BENCH_DIR"
  fi
  exit "$rc"
}

bench_init() {
  BENCH_DIR=$(mktemp -d "${TMPDIR:-/tmp}/fk-bench.XXXXXX")
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
  mkdir -p "$BENCH_DIR/pki"
}

bench_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# bench_spawn LOG CMD...: start CMD in the background; sets BENCH_LAST_PID.
bench_spawn() {
  local log=$1; shift
  "$@" >"$log" 2>&1 &
  BENCH_LAST_PID=$!
  BENCH_PIDS+=("$BENCH_LAST_PID")
}

# bench_stop PID: TERM, wait up to 10 s, then KILL.
bench_stop() {
  local pid=$1
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# ---- PKI -------------------------------------------------------------------

_bench_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# bench_cert NAME SUBJECT USAGE [SANS]: leaf cert signed by the bench CA.
bench_cert() {
  local name=$1 subj=$2 usage=$3 sans=${4:-} pki="$BENCH_DIR/pki" ext
  ext="$pki/$name.ext"
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature"
    echo "extendedKeyUsage=$usage"
    [[ -n "$sans" ]] && echo "subjectAltName=$sans"
  } >"$ext"
  _bench_key "$pki/$name.key"
  openssl req -new -key "$pki/$name.key" -subj "$subj" -out "$pki/$name.csr" 2>/dev/null
  openssl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
    -CAcreateserial -sha256 -days 2 -extfile "$ext" -out "$pki/$name.crt" 2>/dev/null
}

# bench_kubeconfig NAME CN [O]: client cert for CN and $BENCH_DIR/NAME.kubeconfig.
bench_kubeconfig() {
  local name=$1 cn=$2 org=${3:-} subj pki="$BENCH_DIR/pki"
  subj="/CN=$cn"
  [[ -n "$org" ]] && subj="/O=$org/CN=$cn"
  bench_cert "$name" "$subj" clientAuth
  cat >"$BENCH_DIR/$name.kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: bench
  cluster:
    server: https://$BENCH_API_ADDR:$BENCH_API_PORT
    certificate-authority: $pki/ca.crt
users:
- name: $cn
  user:
    client-certificate: $pki/$name.crt
    client-key: $pki/$name.key
contexts:
- name: bench
  context: {cluster: bench, user: "$cn"}
current-context: bench
KC
}

bench_pki() {
  local pki="$BENCH_DIR/pki"
  _bench_key "$pki/ca.key"
  openssl req -x509 -new -key "$pki/ca.key" -sha256 -days 2 -subj "/CN=bench-ca" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,digitalSignature,keyCertSign" -out "$pki/ca.crt" 2>/dev/null
  bench_cert apiserver "/CN=kube-apiserver" serverAuth \
    "DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:10.96.0.1,IP:$BENCH_API_ADDR"
  openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
  openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
  bench_kubeconfig admin kubernetes-admin system:masters
}

# ---- control plane -----------------------------------------------------------

# bench_kubectl ARGS...: kubectl as cluster admin.
bench_kubectl() { "$(bench_stock kubectl)" --kubeconfig "$BENCH_DIR/admin.kubeconfig" "$@"; }

# bench_control_plane: etcd + kube-apiserver, waits for /readyz.
bench_control_plane() {
  local client peer t0 i
  client=$(bench_free_port); peer=$(bench_free_port)
  BENCH_API_PORT=$(bench_free_port)
  bench_pki
  bench_log "etcd on 127.0.0.1:$client, kube-apiserver on $BENCH_API_ADDR:$BENCH_API_PORT (dir $BENCH_DIR)"
  bench_spawn "$BENCH_DIR/etcd.log" "$(bench_stock etcd)" --name bench --data-dir "$BENCH_DIR/etcd" \
    --listen-client-urls "http://127.0.0.1:$client" --advertise-client-urls "http://127.0.0.1:$client" \
    --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
    --initial-cluster "bench=http://127.0.0.1:$peer" --quota-backend-bytes=4294967296
  export BENCH_ETCD_PID=$BENCH_LAST_PID # for callers that inspect etcd
  bench_spawn "$BENCH_DIR/kube-apiserver.log" "$(bench_stock kube-apiserver)" \
    --etcd-servers="http://127.0.0.1:$client" \
    --bind-address="$BENCH_API_ADDR" --secure-port="$BENCH_API_PORT" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$BENCH_DIR/pki/sa.pub" \
    --service-account-signing-key-file="$BENCH_DIR/pki/sa.key" \
    --service-cluster-ip-range=10.96.0.0/16 \
    --client-ca-file="$BENCH_DIR/pki/ca.crt" \
    --tls-cert-file="$BENCH_DIR/pki/apiserver.crt" --tls-private-key-file="$BENCH_DIR/pki/apiserver.key" \
    --authorization-mode=Node,RBAC \
    --max-requests-inflight=800 --max-mutating-requests-inflight=400
  BENCH_APISERVER_PID=$BENCH_LAST_PID
  t0=$(bench_now)
  for i in $(seq 600); do
    kill -0 "$BENCH_APISERVER_PID" 2>/dev/null ||
      { tail -20 "$BENCH_DIR/kube-apiserver.log" >&2; bench_die "kube-apiserver exited"; }
    if curl -sf --cacert "$BENCH_DIR/pki/ca.crt" --cert "$BENCH_DIR/pki/admin.crt" \
      --key "$BENCH_DIR/pki/admin.key" "https://$BENCH_API_ADDR:$BENCH_API_PORT/readyz" >/dev/null 2>&1; then
      # RBAC bootstrap (system:kube-scheduler etc.) is done once readyz is
      # ok. The scripts create with --validate=false: /openapi/v2 answers
      # 503 for a while after readyz on this apiserver.
      if bench_kubectl get namespace kube-system >/dev/null 2>&1; then
        bench_log "kube-apiserver ready after $(bench_secs "$t0")s"
        return 0
      fi
    fi
    sleep 0.2
  done
  bench_die "kube-apiserver not ready after 120 s"
}

# ---- measurement ---------------------------------------------------------------

# bench_secs T0 [T1]: seconds between two bench_now stamps (T1 default now).
bench_secs() { awk -v a="$1" -v b="${2:-$(bench_now)}" 'BEGIN { printf "%.2f", b - a }'; }

# bench_proc_stats PID: "PEAK_RSS_MIB CPU_SECONDS" of a live process; CPU
# includes reaped children (cutime+cstime: e.g. nft runs kube-proxy spawns).
bench_proc_stats() {
  local pid=$1 hwm tck stat
  hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo 0)
  tck=$(getconf CLK_TCK)
  # Fields after the ")" of comm: utime is the 12th, stime 13th, cutime 14th, cstime 15th.
  stat=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null || echo "")
  awk -v h="${hwm:-0}" -v t="$tck" -v s="$stat" 'BEGIN {
    n = split(s, f, " ");
    cpu = (n >= 15) ? (f[12] + f[13] + f[14] + f[15]) / t : 0;
    printf "%.1f %.2f\n", h / 1024, cpu }'
}

# bench_row METRIC UPSTREAM OURS [lower|higher]: one table row; the ratio is ours/upstream.
bench_row() { BENCH_ROWS+=("$1|$2|$3|${4:-lower}"); }

bench_table() {
  local title=$1 row
  echo
  echo "== $title ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores) =="
  printf '%-40s %14s %14s %12s\n' metric upstream ours ours/upstream
  for row in "${BENCH_ROWS[@]}"; do
    IFS='|' read -r m u o better <<<"$row"
    awk -v m="$m" -v u="$u" -v o="$o" -v b="$better" 'BEGIN {
      r = "n/a";
      if (u ~ /^[0-9.]+$/ && o ~ /^[0-9.]+$/ && u + 0 > 0) r = sprintf("%.2f", o / u);
      printf "%-40s %14s %14s %12s\n", m " (" b " is better)", u, o, r }'
  done
}

# bench_error_lines LOG: count of klog E-lines / ERROR lines in a component log.
bench_error_lines() { grep -cE '^E[0-9]{4} |(^|[ \t])ERROR[ \t]' "$1" 2>/dev/null || true; }
