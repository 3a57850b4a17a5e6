# shellcheck shell=bash
# Where every stock binary comes from. One decision, used by hack/local-up,
# hack/e2e, hack/conformance, hack/bench/* and (through hack/kube-bin/path)
# the Rust integration tests. For each NAME, first hit wins:
#   1. $KUBE_BIN_DIR/NAME            (a user's own binaries)
#   2. the cache _output/kube-bin/$FK_KUBE_VERSION/NAME
#   3. the official release download (component binaries and kubectl only;
#      for machines with internet; FK_NO_DOWNLOAD=1 skips it)
#   4. hack/kube-bin/build NAME      (from the Go module proxy)
# Sourced by common.sh; needs FK_ROOT.

# The pinned release is the one hack/kube-bin/go.mod requires (and the only
# one hack/kube-bin/build can make); FK_KUBE_VERSION may name another whose
# binaries a user supplies.
FK_KUBE_PINNED=$(awk '$1 == "k8s.io/kubernetes" { print $2 }' "$FK_ROOT/hack/kube-bin/go.mod")
FK_KUBE_VERSION=${FK_KUBE_VERSION:-$FK_KUBE_PINNED}
FK_KUBE_BIN_CACHE=${FK_KUBE_BIN_CACHE:-$FK_ROOT/_output/kube-bin/$FK_KUBE_VERSION}

# What dl.k8s.io publishes per release; everything else is only built.
_FK_RELEASE_BINARIES=" kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubelet kubectl kubeadm "

_fk_stock_log() { printf '[%s] stock: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# _fk_stock_download NAME: the official release binary into the cache, with
# its sha256 check. Fails fast (and is remembered for this process) when the
# host has no route out.
_fk_stock_download() {
  local name=$1 dir=$FK_KUBE_BIN_CACHE sum
  local url="https://dl.k8s.io/release/$FK_KUBE_VERSION/bin/linux/amd64/$name"
  [[ "${FK_NO_DOWNLOAD:-0}" == 1 || "${_FK_NO_ROUTE:-0}" == 1 ]] && return 1
  [[ $_FK_RELEASE_BINARIES == *" $name "* ]] || return 1
  mkdir -p "$dir"
  if ! curl -fsSL --connect-timeout 5 --max-time 300 -o "$dir/$name.tmp" "$url" 2>/dev/null; then
    rm -f "$dir/$name.tmp"
    _FK_NO_ROUTE=1
    return 1
  fi
  sum=$(curl -fsSL --max-time 30 "$url.sha256") || { rm -f "$dir/$name.tmp"; return 1; }
  echo "$sum  $dir/$name.tmp" | sha256sum -c --quiet - || { rm -f "$dir/$name.tmp"; return 1; }
  chmod +x "$dir/$name.tmp" && mv "$dir/$name.tmp" "$dir/$name"
}

# fk_stock_bin NAME: prints the path of the stock binary NAME, fetching or
# building it if need be; fails with a message naming what is missing.
fk_stock_bin() {
  local name=$1
  _fk_stock_at_hand "$name" && return 0
  if _fk_stock_download "$name"; then
    _fk_stock_log "$name $FK_KUBE_VERSION downloaded into $FK_KUBE_BIN_CACHE"
    echo "$FK_KUBE_BIN_CACHE/$name"
    return 0
  fi
  # The build compiles what hack/kube-bin/go.mod pins; never file it under
  # another release's name.
  if [[ $FK_KUBE_VERSION != "$FK_KUBE_PINNED" ]]; then
    _fk_stock_log "error: $name $FK_KUBE_VERSION is not at hand and hack/kube-bin builds $FK_KUBE_PINNED only (set KUBE_BIN_DIR, or change the require in hack/kube-bin/go.mod)"
    return 1
  fi
  _fk_stock_log "$name: not in ${KUBE_BIN_DIR:+\$KUBE_BIN_DIR=$KUBE_BIN_DIR or }$FK_KUBE_BIN_CACHE; building it from the Go module proxy (hack/kube-bin/build $name)"
  FK_KUBE_BIN_OUT=$FK_KUBE_BIN_CACHE "$FK_ROOT/hack/kube-bin/build" "$name" >&2 || {
    _fk_stock_log "error: $name $FK_KUBE_VERSION could not be built (see the output above)"
    return 1
  }
  echo "$FK_KUBE_BIN_CACHE/$name"
}

# fk_stock_bins NAME...: fk_stock_bin for each, dying on the first failure.
fk_stock_bins() {
  local name
  for name in "$@"; do fk_stock_bin "$name" >/dev/null || fk_die "stock $name is not available"; done
}

# _fk_stock_at_hand NAME: prints NAME's path when $KUBE_BIN_DIR or the cache
# has it (no fetch, no build); false otherwise.
_fk_stock_at_hand() {
  local dir
  for dir in ${KUBE_BIN_DIR:+"$KUBE_BIN_DIR"} "$FK_KUBE_BIN_CACHE"; do
    [[ -x "$dir/$1" ]] && { echo "$dir/$1"; return 0; }
  done
  return 1
}

# fk_stock_have NAME: true when NAME is already at hand (no fetch, no build).
fk_stock_have() { _fk_stock_at_hand "$1" >/dev/null; }
