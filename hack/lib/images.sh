# shellcheck shell=bash
# Local OCI image archives (no registry, no docker), cached in $FK_IMAGES and
# imported into every node's containerd with `ctr images import`.

FK_OCI_BUILD=$FK_ROOT/hack/images/oci-build
# agnhost version of the v1.36 e2e image manifest (test/utils/image/manifest.go,
# as e2e.test v1.36.2 --list-images prints it); with e2e.test present, its
# list is used instead.
FK_AGNHOST_VERSION=${FK_AGNHOST_VERSION:-2.63.0}

# _fk_fresh ARCHIVE REFS INPUT...: true when ARCHIVE exists, was built for
# exactly REFS (newline list, kept in ARCHIVE.refs) and is newer than INPUTs.
_fk_fresh() {
  local out=$1 refs=$2 f; shift 2
  [[ -s "$out" && -f "$out.refs" && "$(cat "$out.refs")" == "$refs" ]] || return 1
  for f in "$@"; do [[ "$f" -nt "$out" ]] && return 1; done
  return 0
}

# _fk_build ARCHIVE REFS ROOTFS OCI_BUILD_ARGS...: oci-build with one --ref
# per name, then records the names.
_fk_build() {
  local out=$1 refs=$2 rootfs=$3 ref; shift 3
  local args=()
  while read -r ref; do [[ -n "$ref" ]] && args+=(--ref "$ref"); done <<<"$refs"
  "$FK_OCI_BUILD" "${args[@]}" --rootfs "$rootfs" --out "$out" "$@" >&2
  echo "$refs" >"$out.refs"
}

# _fk_rootfs_base DIR: /etc basics every image gets.
_fk_rootfs_base() {
  local r=$1
  mkdir -p "$r"/{etc,tmp,root,proc,sys,dev,var/run}
  chmod 1777 "$r/tmp"
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$r/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$r/etc/group"
  printf 'hosts: files dns\n' >"$r/etc/nsswitch.conf"
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

# _fk_copy_with_libs DIR BINARY: BINARY at the same path plus its shared
# libraries (and the dynamic loader) as ldd resolves them on this host.
_fk_copy_with_libs() {
  local r=$1 bin=$2 lib
  mkdir -p "$r$(dirname "$bin")"
  cp -L "$bin" "$r$bin"
  for lib in $(ldd "$bin" 2>/dev/null | grep -o '/[^ ]*'); do
    mkdir -p "$r$(dirname "$lib")"
    cp -L "$lib" "$r$lib"
  done
}

# fk_image_pause REFS: the project's pause (hack/images/pause/pause.c).
fk_image_pause() {
  local refs=$1 out=$FK_IMAGES/pause.tar src=$FK_ROOT/hack/images/pause/pause.c r
  _fk_fresh "$out" "$refs" "$src" "$FK_OCI_BUILD" && { echo "$out"; return; }
  r=$(mktemp -d)
  gcc -static -Os -Wall -o "$r/pause" "$src" || fk_die "compiling $src failed (gcc and static libc needed)"
  strip "$r/pause"
  _fk_build "$out" "$refs" "$r" --entrypoint '["/pause"]' --user 65535:65535
  rm -rf "$r"
  echo "$out"
}

# fk_image_busybox REFS: Debian's static busybox, one archive for all names.
fk_image_busybox() {
  local refs=$1 out=$FK_IMAGES/busybox.tar r
  _fk_fresh "$out" "$refs" /bin/busybox "$FK_OCI_BUILD" && { echo "$out"; return; }
  r=$(mktemp -d)
  _fk_rootfs_base "$r"
  _fk_busybox_into "$r"
  _fk_build "$out" "$refs" "$r" --cmd '["sh"]'
  rm -rf "$r"
  echo "$out"
}

# fk_image_agnhost REFS AGNHOST_BINARY: like the e2e agnhost image: /agnhost,
# /localhost.{crt,key}, bash as /bin/sh and /bin/bash (conformance uses env
# names such as data-1 that only bash accepts), curl, dig, busybox for the rest.
fk_image_agnhost() {
  local refs=$1 agnhost=$2 out=$FK_IMAGES/agnhost.tar r b
  _fk_fresh "$out" "$refs" "$agnhost" /bin/busybox "$FK_OCI_BUILD" && { echo "$out"; return; }
  for b in /bin/bash /usr/bin/curl /usr/bin/dig; do
    [[ -x "$b" ]] || fk_die "$b is missing on the host; install it (apt-get install bash curl bind9-dnsutils)"
  done
  r=$(mktemp -d)
  _fk_rootfs_base "$r"
  # Debian's bash/curl/dig live in /usr/bin; /bin stays busybox + bash.
  _fk_busybox_into "$r" sh bash
  for b in /bin/bash /usr/bin/curl /usr/bin/dig; do _fk_copy_with_libs "$r" "$b"; done
  ln -sf bash "$r/bin/sh"
  cp -L "$agnhost" "$r/agnhost"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
    -keyout "$r/localhost.key" -out "$r/localhost.crt" 2>/dev/null
  _fk_build "$out" "$refs" "$r" --entrypoint '["/agnhost"]' --cmd '["pause"]'
  rm -rf "$r"
  echo "$out"
}

# fk_image_single_binary NAME REF BINARY PATH_IN_IMAGE: e.g. coredns at /coredns.
fk_image_single_binary() {
  local name=$1 ref=$2 bin=$3 path=$4 out r
  out=$FK_IMAGES/$name.tar
  _fk_fresh "$out" "$ref" "$bin" "$FK_OCI_BUILD" && { echo "$out"; return; }
  r=$(mktemp -d)
  _fk_rootfs_base "$r"
  cp -L "$bin" "$r$path"
  _fk_build "$out" "$ref" "$r" --entrypoint "[\"$path\"]"
  rm -rf "$r"
  echo "$out"
}

# fk_e2e_image_refs BINDIR KIND: the KIND (agnhost|busybox|pause) names the
# e2e suite uses. Private/invalid registries are left out on purpose: tests
# expect pulling those to fail.
fk_e2e_image_refs() {
  local bindir=$1 kind=$2
  if [[ -x "$bindir/e2e.test" ]]; then
    "$bindir/e2e.test" --list-images 2>/dev/null | grep -E "/$kind:" |
      grep -vE '^(gcr\.io/k8s-authenticated-test|invalid\.)' | sort -u || true
  elif [[ $kind == agnhost ]]; then
    echo "registry.k8s.io/e2e-test-images/agnhost:$FK_AGNHOST_VERSION"
  fi
}

# fk_images_build BINDIR: builds everything available; prints archive paths.
fk_images_build() {
  local bindir=$1 refs
  mkdir -p "$FK_IMAGES"
  fk_image_pause "$({ echo "$FK_PAUSE_IMAGE"; fk_e2e_image_refs "$bindir" pause; } | sort -u)"
  fk_image_busybox "$({ echo "$FK_BUSYBOX_IMAGE"; fk_e2e_image_refs "$bindir" busybox; } | sort -u)"
  if [[ -x "$bindir/agnhost" ]]; then
    fk_image_agnhost "$(fk_e2e_image_refs "$bindir" agnhost)" "$bindir/agnhost"
  else
    fk_notice "no agnhost in $bindir: e2e test images not built (the smoke test falls back to busybox httpd)"
  fi
  if [[ -x "$bindir/coredns" ]]; then
    fk_image_single_binary coredns "$FK_COREDNS_IMAGE" "$bindir/coredns" /coredns
  elif [[ -x "$bindir/kube-dns" ]]; then
    fk_image_single_binary kube-dns "$FK_KUBEDNS_IMAGE" "$bindir/kube-dns" /kube-dns
  fi
  return 0
}
