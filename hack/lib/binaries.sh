# shellcheck shell=bash
# Which binary runs each component: ours (target/{release,debug}) when listed
# in hack/lib/ours-ready and not forced upstream, else the stock one.

FK_COMPONENTS=(scheduler controller-manager kubelet proxy)

fk_stock_name() {
  case "$1" in
    scheduler) echo kube-scheduler ;;
    controller-manager) echo kube-controller-manager ;;
    kubelet) echo kubelet ;;
    proxy) echo kube-proxy ;;
  esac
}
fk_ours_name() { echo "$(fk_stock_name "$1")-rs"; }
fk_ours_package() { fk_ours_name "$1"; }  # package and binary share the name

# FK_OURS=scheduler,kubelet (or "none") replaces the file's list for one run,
# to try a component before marking it ready.
fk_ours_ready() {
  if [[ -n "${FK_OURS:-}" ]]; then
    [[ ",$FK_OURS," == *",$1,"* ]]
  else
    grep -qxE "[[:space:]]*$1[[:space:]]*" "$FK_ROOT/hack/lib/ours-ready" 2>/dev/null
  fi
}

# _fk_download NAME DIR: the official release binary with its sha256 check.
_fk_download() {
  local name=$1 dir=$2 url="https://dl.k8s.io/release/$FK_KUBE_VERSION/bin/linux/amd64/$1" sum
  mkdir -p "$dir"
  curl -fsSL --max-time 300 -o "$dir/$name.tmp" "$url" || return 1
  sum=$(curl -fsSL --max-time 30 "$url.sha256") || return 1
  echo "$sum  $dir/$name.tmp" | sha256sum -c --quiet - || { rm -f "$dir/$name.tmp"; return 1; }
  chmod +x "$dir/$name.tmp" && mv "$dir/$name.tmp" "$dir/$name"
}

# fk_stock_binaries_check NAME...: every NAME present in the stock directory,
# downloading into the cache when that is where we look; dies otherwise.
fk_stock_binaries_check() {
  local dir name missing=()
  dir=$(fk_kube_bin_dir)
  for name in "$@"; do
    [[ -x "$dir/$name" ]] && continue
    if [[ "$dir" == "$FK_KUBE_BIN_CACHE" && "${FK_NO_DOWNLOAD:-0}" != 1 ]]; then
      fk_log "downloading $name $FK_KUBE_VERSION into $dir"
      _fk_download "$name" "$dir" && continue
    fi
    missing+=("$name")
  done
  if ((${#missing[@]})); then
    fk_die "stock binaries missing: ${missing[*]} (looked in $dir$([[ $dir == "$FK_KUBE_BIN_CACHE" ]] && echo "; download of $FK_KUBE_VERSION from dl.k8s.io failed or was disabled")). Set KUBE_BIN_DIR to a directory with them."
  fi
}

# fk_select_binaries FORCED_UPSTREAM PROFILE BUILD: sets FK_BIN_<component>.
# FORCED_UPSTREAM is a comma list or "all"; PROFILE release|debug; BUILD 0|1.
fk_select_binaries() {
  local forced=",$1," profile=$2 build=$3 c var ours stock_needed=(kube-apiserver)
  local build_pkgs=() cargo_args=(build)
  [[ $profile == release ]] && cargo_args+=(--release)
  for c in "${FK_COMPONENTS[@]}"; do
    var=FK_BIN_${c//-/_}
    if [[ "$forced" == *,all,* || "$forced" == *",$c,"* ]]; then
      fk_notice "$c: upstream forced by --upstream: stock $(fk_stock_name "$c")"
    elif ! fk_ours_ready "$c"; then
      fk_notice "$c: $(fk_ours_name "$c") is not marked ready (hack/lib/ours-ready${FK_OURS:+, FK_OURS=$FK_OURS}): falling back to stock $(fk_stock_name "$c")"
    else
      ours=$FK_ROOT/target/$profile/$(fk_ours_name "$c")
      printf -v "$var" '%s' "$ours"
      [[ "$build" == 1 ]] && build_pkgs+=(-p "$(fk_ours_package "$c")")
      fk_log "$c: ours ($ours)"
      continue
    fi
    stock_needed+=("$(fk_stock_name "$c")")
    printf -v "$var" '%s' "$(fk_kube_bin_dir)/$(fk_stock_name "$c")"
  done
  # fk_kubectl falls back to the kubectl on PATH.
  command -v kubectl >/dev/null || stock_needed+=(kubectl)
  fk_stock_binaries_check "${stock_needed[@]}"
  if ((${#build_pkgs[@]})); then
    fk_log "building ours: cargo ${cargo_args[*]} ${build_pkgs[*]}"
    (cd "$FK_ROOT" && cargo "${cargo_args[@]}" "${build_pkgs[@]}") ||
      fk_die "cargo build failed"
  fi
  for c in "${FK_COMPONENTS[@]}"; do
    var=FK_BIN_${c//-/_}
    [[ -x "${!var}" ]] || fk_die "$c: ${!var} does not exist (build it, or pass --upstream $c)"
  done
}
