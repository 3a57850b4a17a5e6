# shellcheck shell=bash
# Local OCI image archives (no registry, no docker) for the cluster and the
# upstream e2e/conformance suite, cached in $FK_IMAGES and imported into
# every node's containerd with `ctr images import`. Sourced after common.sh
# (needs FK_ROOT, FK_IMAGES, FK_PAUSE_IMAGE, FK_BUSYBOX_IMAGE,
# FK_COREDNS_IMAGE and stock.sh's fk_stock_bin / fk_stock_have).
#
# Each image is built like its upstream Dockerfile, from this host's Debian
# programs (copied with their shared libraries) and stock Go binaries, in
# layers (hack/images/oci-build --base, like FROM) so the big ones share blobs:
#   busybox                 busybox applets; sh is ash, or bash for env names like data-1
#   |- nonroot, nonewprivs, sample-apiserver, regression-issue-74839, nginx
#   `- glibc-dns-testing    + dig, getent, curl, OpenBSD nc, ip, ss, ipcs
#      `- agnhost           + /agnhost, /agnhost-2, certs, users, /coredns
#         `- kitten, nautilus  + their data files (agnhost test-webserver)
#   pause, etcd, coredns    on their own
# Host packages: busybox-static, bash, curl, bind9-dnsutils, netcat-openbsd,
# iproute2, util-linux, libc-bin, nginx (or nginx-light), openssl, gcc.

FK_OCI_BUILD=$FK_ROOT/hack/images/oci-build
_FK_E2E_REPO=registry.k8s.io/e2e-test-images

# The e2e image names this file provides, as `e2e.test --list-images` of the
# pinned v1.36 release prints them (test/utils/image/manifest.go, plus
# busybox:1.36.1-1 of the CSI test manifests): used until e2e.test is built,
# then its own list decides the tags.
FK_E2E_IMAGES_DEFAULT="
$_FK_E2E_REPO/agnhost:2.55
$_FK_E2E_REPO/agnhost:2.63.0
$_FK_E2E_REPO/busybox:1.36.1-1
$_FK_E2E_REPO/busybox:1.37.0-1
$_FK_E2E_REPO/glibc-dns-testing:2.0.0
$_FK_E2E_REPO/kitten:1.8
$_FK_E2E_REPO/nautilus:1.8
$_FK_E2E_REPO/nginx:1.15-4
$_FK_E2E_REPO/nginx:1.27-0
$_FK_E2E_REPO/nonewprivs:1.4
$_FK_E2E_REPO/nonroot:1.5
$_FK_E2E_REPO/regression-issue-74839:1.4
$_FK_E2E_REPO/sample-apiserver:1.29.2
registry.k8s.io/etcd:3.6.8-0
registry.k8s.io/pause:3.10.2
"

# Every archive depends on the builder and on this file (rebuilt when either
# changes).
_FK_IMAGE_INPUTS=("$FK_OCI_BUILD" "$FK_ROOT/hack/lib/images.sh")

_fk_images_log() { printf '[%s] images: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# _fk_e2e_image_list: every image name the e2e suite uses: `e2e.test
# --list-images` when e2e.test is already at hand (it is slow to build, so
# never built here), else the defaults above.
_fk_e2e_image_list() {
  local e2e list
  if fk_stock_have e2e.test && e2e=$(fk_stock_bin e2e.test) &&
    list=$("$e2e" --list-images 2>/dev/null) && [[ -n "$list" ]]; then
    echo "$list"
  else
    echo "$FK_E2E_IMAGES_DEFAULT"
  fi
}

# _fk_refs REPO [NAME...]: REPO's names (every tag) in $_FK_E2E_LIST, or in
# the defaults when the list lacks REPO, plus the NAMEs; sorted, one a line.
# Only exact repositories match: the suite's private and invalid registries
# (expected to fail pulling) never do.
_fk_refs() {
  local repo=$1 names; shift
  names=$(awk -F: -v r="$repo" 'NF == 2 && $1 == r' <<<"$_FK_E2E_LIST")
  [[ -n "$names" ]] || names=$(awk -F: -v r="$repo" 'NF == 2 && $1 == r' <<<"$FK_E2E_IMAGES_DEFAULT")
  printf '%s\n' "$names" "$@" | sed '/^$/d' | sort -u
}

# _fk_fresh ARCHIVE REFS INPUT...: true when ARCHIVE exists, was built for
# exactly REFS (newline list, kept in ARCHIVE.refs) and is newer than INPUTs.
_fk_fresh() {
  local out=$1 refs=$2 f; shift 2
  [[ -s "$out" && -f "$out.refs" && "$(cat "$out.refs")" == "$refs" ]] || return 1
  for f in "$@" "${_FK_IMAGE_INPUTS[@]}"; do [[ "$f" -nt "$out" ]] && return 1; done
  return 0
}

# _fk_build ARCHIVE REFS OCI_BUILD_ARGS...: oci-build with one --ref per
# name (its log to stderr), then records the names and prints ARCHIVE.
_fk_build() {
  local out=$1 refs=$2 ref; shift 2
  local args=()
  while read -r ref; do [[ -n "$ref" ]] && args+=(--ref "$ref"); done <<<"$refs"
  "$FK_OCI_BUILD" "${args[@]}" --out "$out" "$@" >&2 || fk_die "building $out failed"
  echo "$refs" >"$out.refs"
  echo "$out"
}

# _fk_host_bin NAME PACKAGE: this host's program NAME (Debian paths), or die
# naming the package that provides it.
_fk_host_bin() {
  local d
  for d in /usr/bin /usr/sbin /bin /sbin; do
    [[ -x "$d/$1" ]] && { echo "$d/$1"; return 0; }
  done
  fk_die "$1 is missing on this host; install it (apt-get install $2)"
}

# _fk_rootfs_dir: a new empty rootfs directory. Mode 0755: the directory
# itself becomes the image's /, and mktemp's 0700 would lock out every
# non-root container user.
_fk_rootfs_dir() {
  local r
  r=$(mktemp -d) && chmod 0755 "$r" && echo "$r"
}

# _fk_rootfs_base DIR: the /etc basics every image gets. The kubelet mounts
# its own /etc/hosts over this one; the image's is for `ctr run` and the like
# (etcd cannot even resolve localhost without it).
_fk_rootfs_base() {
  local r=$1
  mkdir -p "$r"/{etc,tmp,root,proc,sys,dev,run,var/run}
  chmod 1777 "$r/tmp"
  printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$r/etc/hosts"
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$r/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$r/etc/group"
  printf 'hosts: files dns\n' >"$r/etc/nsswitch.conf"
}

# _fk_etc_add DIR FILE LINE...: lines appended to DIR/etc/FILE (passwd,
# group). A layer's file replaces the base's, so a layer adding users starts
# from _fk_rootfs_base.
_fk_etc_add() {
  local r=$1 f=$2; shift 2
  printf '%s\n' "$@" >>"$r/etc/$f"
}

# _fk_busybox_into DIR [SKIP...]: busybox and a symlink per applet in /bin,
# except the names in SKIP (provided by real programs instead).
_fk_busybox_into() {
  local r=$1 applet; shift
  local -A skip=()
  for applet in "$@"; do skip[$applet]=1; done
  mkdir -p "$r/bin"
  cp /bin/busybox "$r/bin/busybox"
  for applet in $(/bin/busybox --list); do
    [[ -n "${skip[$applet]:-}" || "$applet" == busybox ]] && continue
    ln -sf busybox "$r/bin/$applet"
  done
}

# _fk_copy_with_libs DIR BINARY [DEST]: BINARY at DEST (default: the same
# path) plus its shared libraries and the dynamic loader, as ldd resolves
# them on this host (paths kept, so the loader's default dirs find them).
_fk_copy_with_libs() {
  local r=$1 bin=$2 dest=${3:-$2} lib
  mkdir -p "$r$(dirname "$dest")"
  rm -f "$r$dest" # never write through an applet symlink into busybox
  cp -L "$bin" "$r$dest"
  for lib in $(ldd "$bin" 2>/dev/null | grep -o '/[^ ]*'); do
    [[ -e "$r$lib" ]] && continue
    mkdir -p "$r$(dirname "$lib")"
    cp -L "$lib" "$r$lib"
  done
}

# _fk_kube_src: the unpacked k8s.io/kubernetes module of the pinned release
# (test/images data files), empty when the binaries came from elsewhere.
_fk_kube_src() {
  local d=${FK_GOMODCACHE:-$FK_ROOT/_output/go/mod}/k8s.io/kubernetes@$FK_KUBE_VERSION
  [[ -d "$d/test/images" ]] && echo "$d"
  return 0
}

# fk_image_pause REFS: the project's pause (hack/images/pause/pause.c).
fk_image_pause() {
  local refs=$1 out=$FK_IMAGES/pause.tar src=$FK_ROOT/hack/images/pause/pause.c r
  _fk_fresh "$out" "$refs" "$src" && { echo "$out"; return; }
  r=$(_fk_rootfs_dir)
  gcc -static -Os -Wall -o "$r/pause" "$src" || fk_die "compiling $src failed (gcc and static libc needed)"
  strip "$r/pause"
  _fk_build "$out" "$refs" --rootfs "$r" --entrypoint '["/pause"]' --user 65535:65535
  rm -rf "$r"
}

# fk_image_busybox REFS: Debian's static busybox for every applet but sh,
# which is hack/images/busybox/sh.c (ash, or bash when the environment holds
# names such as data-1 that Debian's ash drops and the real image keeps),
# and wget, a wrapper that avoids the applet's
# -T crash (hack/images/busybox/wget); printenv and getconf, which upstream
# busybox has and Debian's lacks, are the host's. The base of most images.
fk_image_busybox() {
  local refs=$1 out=$FK_IMAGES/busybox.tar wget=$FK_ROOT/hack/images/busybox/wget r t
  local sh_src=$FK_ROOT/hack/images/busybox/sh.c printenv getconf
  printenv=$(_fk_host_bin printenv coreutils)
  getconf=$(_fk_host_bin getconf libc-bin)
  _fk_fresh "$out" "$refs" /bin/busybox /bin/bash "$wget" "$sh_src" "$printenv" "$getconf" && { echo "$out"; return; }
  [[ -x /bin/busybox ]] || fk_die "/bin/busybox is missing on this host; install it (apt-get install busybox-static)"
  r=$(_fk_rootfs_dir)
  _fk_rootfs_base "$r"
  _fk_busybox_into "$r" sh bash wget printenv getconf
  _fk_copy_with_libs "$r" /bin/bash
  gcc -static -Os -Wall -Werror -o "$r/bin/sh" "$sh_src" || fk_die "compiling $sh_src failed (gcc and static libc needed)"
  strip "$r/bin/sh"
  for t in "$printenv" "$getconf"; do _fk_copy_with_libs "$r" "$t" "/bin/$(basename "$t")"; done
  install -m 0755 "$wget" "$r/bin/wget"
  _fk_build "$out" "$refs" --rootfs "$r" --cmd '["sh"]'
  rm -rf "$r"
}

# fk_image_nonroot REFS BASE: busybox with USER 1234 (test/images/nonroot).
fk_image_nonroot() {
  local refs=$1 base=$2 out=$FK_IMAGES/nonroot.tar
  _fk_fresh "$out" "$refs" "$base" && { echo "$out"; return; }
  _fk_build "$out" "$refs" --base "$base" --user 1234
}

# fk_image_binary NAME REFS BASE BINARY PATH MODE [OCI_BUILD_ARGS...]: BASE
# plus BINARY at PATH with MODE, e.g. sample-apiserver, nonewprivs (setuid).
fk_image_binary() {
  local name=$1 refs=$2 base=$3 bin=$4 path=$5 mode=$6 out r; shift 6
  out=$FK_IMAGES/$name.tar
  _fk_fresh "$out" "$refs" "$base" "$bin" && { echo "$out"; return; }
  r=$(_fk_rootfs_dir)
  mkdir -p "$r$(dirname "$path")"
  install -m "$mode" "$bin" "$r$path"
  _fk_build "$out" "$refs" --base "$base" --rootfs "$r" "$@"
  rm -rf "$r"
}

# fk_image_glibc_dns REFS BASE: the DNS prober image (upstream: Debian with
# dnsutils): glibc's getent and dig, plus curl, OpenBSD nc, ip, ss and ipcs
# that agnhost (built on it) needs. Default command bash, like Debian's.
fk_image_glibc_dns() {
  local refs=$1 base=$2 out=$FK_IMAGES/glibc-dns-testing.tar r t
  local -A tools=([dig]=bind9-dnsutils [getent]=libc-bin [curl]=curl [nc.openbsd]=netcat-openbsd
    [ip]=iproute2 [ss]=iproute2 [ipcs]=util-linux)
  local srcs=()
  for t in "${!tools[@]}"; do srcs+=("$(_fk_host_bin "$t" "${tools[$t]}")"); done
  _fk_fresh "$out" "$refs" "$base" "${srcs[@]}" && { echo "$out"; return; }
  r=$(_fk_rootfs_dir)
  for t in "${srcs[@]}"; do _fk_copy_with_libs "$r" "$t" "/usr/bin/$(basename "$t")"; done
  # OpenBSD nc (as in upstream agnhost; its output is what specs expect),
  # over busybox's nc in /bin too.
  mv "$r/usr/bin/nc.openbsd" "$r/usr/bin/nc"
  mkdir -p "$r/bin"
  ln -s /usr/bin/nc "$r/bin/nc"
  # Debian's /bin/sh looks commands up on PATH; busybox ash (the base's sh)
  # runs its own applets first, so `sh -c 'nc -v ...'` in agnhost would get
  # busybox's nc, which has no -v (the Services reachability checks).
  ln -s bash "$r/bin/sh"
  _fk_build "$out" "$refs" --base "$base" --rootfs "$r" --cmd '["bash"]'
  rm -rf "$r"
}

# _fk_agnhost_certs DIR: /localhost.crt and /localhost.key: upstream's
# porter pair from the module source, else one generated once (cached, so
# rebuilds stay reproducible).
_fk_agnhost_certs() {
  local r=$1 src
  src=$(_fk_kube_src)
  if [[ -n "$src" && -f "$src/test/images/agnhost/porter/localhost.crt" ]]; then
    install -m 0644 "$src/test/images/agnhost/porter/localhost."{crt,key} "$r/"
    return
  fi
  if [[ ! -s "$FK_IMAGES/localhost.key" ]]; then
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj /CN=localhost \
      -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
      -keyout "$FK_IMAGES/localhost.key" -out "$FK_IMAGES/localhost.crt" 2>/dev/null ||
      fk_die "openssl could not make the agnhost certificate"
  fi
  install -m 0644 "$FK_IMAGES/localhost."{crt,key} "$r/"
}

# fk_image_agnhost REFS BASE AGNHOST [COREDNS]: like test/images/agnhost's
# Dockerfile: /agnhost (+ the /agnhost-2 link entrypoint specs run),
# /localhost.{crt,key}, /uploads, /coredns, user-defined-in-image (1000) in
# group-defined-in-image (50000) for the SupplementalGroups spec.
fk_image_agnhost() {
  local refs=$1 base=$2 agnhost=$3 coredns=${4:-} out=$FK_IMAGES/agnhost.tar r
  _fk_fresh "$out" "$refs" "$base" "$agnhost" ${coredns:+"$coredns"} && { echo "$out"; return; }
  r=$(_fk_rootfs_dir)
  _fk_rootfs_base "$r"
  _fk_etc_add "$r" passwd 'user-defined-in-image:x:1000:1000::/home/user-defined-in-image:/bin/sh'
  _fk_etc_add "$r" group 'user-defined-in-image:x:1000:' 'group-defined-in-image:x:50000:user-defined-in-image'
  mkdir -p "$r/home/user-defined-in-image" "$r/uploads"
  cp -L "$agnhost" "$r/agnhost"
  ln -s agnhost "$r/agnhost-2"
  [[ -n "$coredns" ]] && cp -L "$coredns" "$r/coredns"
  _fk_agnhost_certs "$r"
  _fk_build "$out" "$refs" --base "$base" --rootfs "$r" --entrypoint '["/agnhost"]' --cmd '["pause"]'
  rm -rf "$r"
}

# fk_image_update_demo NAME REFS BASE: kitten / nautilus (kubectl Update
# Demo): agnhost serving /NAME.jpg and /data.json with test-webserver.
fk_image_update_demo() {
  local name=$1 refs=$2 base=$3 out=$FK_IMAGES/$1.tar r src
  _fk_fresh "$out" "$refs" "$base" && { echo "$out"; return; }
  r=$(_fk_rootfs_dir)
  printf '{\n  "image": "%s.jpg"\n}\n' "$name" >"$r/data.json"
  src=$(_fk_kube_src)
  if [[ -n "$src" && -f "$src/test/images/$name/html/$name.jpg" ]]; then
    install -m 0644 "$src/test/images/$name/html/$name.jpg" "$r/$name.jpg"
  fi
  _fk_build "$out" "$refs" --base "$base" --rootfs "$r" --cmd '["test-webserver"]'
  rm -rf "$r"
}

# fk_image_nginx REFS BASE: Debian's nginx with the official image's layout:
# /etc/nginx/{nginx.conf,conf.d/default.conf}, /usr/share/nginx/html, logs
# to stdout/stderr, workers as user nginx (101), `nginx -g 'daemon off;'`
# in the foreground on :80, stopped with SIGQUIT (graceful).
fk_image_nginx() {
  local refs=$1 base=$2 out=$FK_IMAGES/nginx.tar d=$FK_ROOT/hack/images/nginx nginx r
  nginx=$(_fk_host_bin nginx nginx)
  _fk_fresh "$out" "$refs" "$base" "$nginx" /etc/nginx/mime.types "$d"/* && { echo "$out"; return; }
  [[ -f /etc/nginx/mime.types ]] || fk_die "/etc/nginx/mime.types is missing on this host; install it (apt-get install nginx)"
  r=$(_fk_rootfs_dir)
  _fk_rootfs_base "$r"
  _fk_etc_add "$r" passwd 'nginx:x:101:101:nginx:/var/cache/nginx:/sbin/nologin'
  _fk_etc_add "$r" group 'nginx:x:101:'
  _fk_copy_with_libs "$r" "$nginx" /usr/sbin/nginx
  mkdir -p "$r"/etc/nginx/conf.d "$r"/usr/share/nginx/html "$r"/var/log/nginx "$r"/var/cache/nginx "$r"/var/lib/nginx
  install -m 0644 "$d/nginx.conf" /etc/nginx/mime.types "$r/etc/nginx/"
  install -m 0644 "$d/default.conf" "$r/etc/nginx/conf.d/"
  install -m 0644 "$d/index.html" "$d/50x.html" "$r/usr/share/nginx/html/"
  ln -s /dev/stdout "$r/var/log/nginx/access.log"
  ln -s /dev/stderr "$r/var/log/nginx/error.log"
  _fk_build "$out" "$refs" --base "$base" --rootfs "$r" \
    --cmd '["nginx", "-g", "daemon off;"]' --stop-signal SIGQUIT
  rm -rf "$r"
}

# fk_image_etcd REFS ETCD [ETCDCTL]: registry.k8s.io/etcd: the binaries in
# /usr/local/bin (the aggregator spec runs /usr/local/bin/etcd), no shell.
fk_image_etcd() {
  local refs=$1 etcd=$2 etcdctl=${3:-} out=$FK_IMAGES/etcd.tar r
  _fk_fresh "$out" "$refs" "$etcd" ${etcdctl:+"$etcdctl"} && { echo "$out"; return; }
  r=$(_fk_rootfs_dir)
  _fk_rootfs_base "$r"
  mkdir -p "$r/usr/local/bin"
  cp -L "$etcd" "$r/usr/local/bin/etcd"
  [[ -n "$etcdctl" ]] && cp -L "$etcdctl" "$r/usr/local/bin/etcdctl"
  _fk_build "$out" "$refs" --rootfs "$r" --cmd '["/usr/local/bin/etcd"]'
  rm -rf "$r"
}

# fk_image_single_binary NAME REF BINARY PATH_IN_IMAGE: e.g. coredns at /coredns.
fk_image_single_binary() {
  local name=$1 ref=$2 bin=$3 path=$4 out r
  out=$FK_IMAGES/$name.tar
  _fk_fresh "$out" "$ref" "$bin" && { echo "$out"; return; }
  r=$(_fk_rootfs_dir)
  _fk_rootfs_base "$r"
  cp -L "$bin" "$r$path"
  _fk_build "$out" "$ref" --rootfs "$r" --entrypoint "[\"$path\"]"
  rm -rf "$r"
}

# _fk_bin NAME: fk_stock_bin NAME (built if missing), or a notice and
# failure: the images that need it are skipped, and what uses them fails
# visibly later.
_fk_bin() {
  fk_stock_bin "$1" && return 0
  fk_notice "stock $1 is not available: the images that need it are not built"
  return 1
}

# _fk_base VAR ARCHIVE: ARCHIVE (a base image) into VAR and printed; dies
# when the build failed (it ran in a subshell, where fk_die cannot stop us).
_fk_base() {
  [[ -s "$2" ]] || fk_die "the $1 base image could not be built"
  printf -v "$1" '%s' "$2"
  echo "$2"
}

# fk_images_build: builds (or reuses) every image; prints the archive paths,
# one a line, for `ctr images import` on each node. Logs go to stderr.
fk_images_build() {
  local bb dns agn bin etcdctl coredns=""
  mkdir -p "$FK_IMAGES"
  _FK_E2E_LIST=$(_fk_e2e_image_list)
  _fk_images_log "building or reusing the images in $FK_IMAGES"
  fk_image_pause "$(_fk_refs registry.k8s.io/pause "$FK_PAUSE_IMAGE")"
  _fk_base bb "$(fk_image_busybox "$(_fk_refs $_FK_E2E_REPO/busybox "$FK_BUSYBOX_IMAGE")")"
  fk_image_nonroot "$(_fk_refs $_FK_E2E_REPO/nonroot)" "$bb"
  fk_image_nginx "$(_fk_refs $_FK_E2E_REPO/nginx docker.io/library/nginx:latest)" "$bb"
  if coredns=$(_fk_bin coredns); then
    fk_image_single_binary coredns "$FK_COREDNS_IMAGE" "$coredns" /coredns
  fi
  _fk_base dns "$(fk_image_glibc_dns "$(_fk_refs $_FK_E2E_REPO/glibc-dns-testing)" "$bb")"
  if bin=$(_fk_bin agnhost); then
    _fk_base agn "$(fk_image_agnhost "$(_fk_refs $_FK_E2E_REPO/agnhost)" "$dns" "$bin" "$coredns")"
    fk_image_update_demo kitten "$(_fk_refs $_FK_E2E_REPO/kitten)" "$agn"
    fk_image_update_demo nautilus "$(_fk_refs $_FK_E2E_REPO/nautilus)" "$agn"
  fi
  if bin=$(_fk_bin sample-apiserver); then
    fk_image_binary sample-apiserver "$(_fk_refs $_FK_E2E_REPO/sample-apiserver)" "$bb" "$bin" \
      /sample-apiserver 0755 --entrypoint '["/sample-apiserver"]'
  fi
  if bin=$(_fk_bin nonewprivs); then # setuid root, as upstream's `chmod +s`
    fk_image_binary nonewprivs "$(_fk_refs $_FK_E2E_REPO/nonewprivs)" "$bb" "$bin" \
      /usr/local/bin/nnp 4755 --cmd '["nnp"]'
  fi
  if bin=$(_fk_bin regression-issue-74839); then
    fk_image_binary regression-issue-74839 "$(_fk_refs $_FK_E2E_REPO/regression-issue-74839)" "$bb" "$bin" \
      /regression-issue-74839 0755 --entrypoint '["/regression-issue-74839"]'
  fi
  if bin=$(_fk_bin etcd); then
    etcdctl=""
    fk_stock_have etcdctl && etcdctl=$(fk_stock_bin etcdctl)
    fk_image_etcd "$(_fk_refs registry.k8s.io/etcd)" "$bin" "$etcdctl"
  fi
  return 0
}
