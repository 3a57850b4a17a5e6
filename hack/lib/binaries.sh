# shellcheck shell=bash
# Which binary runs each component: ours (target/{release,debug}) when listed
# in hack/lib/ours-ready and not forced upstream, else the stock one (found by
# fk_stock_bin, hack/lib/stock.sh).

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

# fk_select_binaries FORCED_UPSTREAM PROFILE BUILD: sets FK_BIN_<component>.
# FORCED_UPSTREAM is a comma list or "all"; PROFILE release|debug; BUILD 0|1.
fk_select_binaries() {
  local forced=",$1," profile=$2 build=$3 c var ours stock
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
    stock=$(fk_stock_bin "$(fk_stock_name "$c")") || fk_die "$c: no stock $(fk_stock_name "$c")"
    printf -v "$var" '%s' "$stock"
  done
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
