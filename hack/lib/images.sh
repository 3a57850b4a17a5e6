# shellcheck shell=bash
# Local OCI image archives (no registry, no docker), cached in $FK_IMAGES and
# imported into every node's containerd with `ctr images import`.

FK_OCI_BUILD=$FK_ROOT/hack/images/oci-build
# agnhost version of the v1.36 e2e image manifest (test/utils/image/manifest.go);
# e2e.test --list-images overrides it when e2e.test is available.
FK_AGNHOST_VERSION=${FK_AGNHOST_VERSION:-2.59}

# _fk_fresh ARCHIVE INPUT...: true when ARCHIVE exists and is newer than all inputs.
_fk_fresh() {
  local out=$1 f; shift
  [[ -s "$out" ]] || return 1
  for f in "$@"; do [[ "$f" -nt "$out" ]] && return 1; done
  return 0
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

fk_image_pause() {
  local out=$FK_IMAGES/pause.tar src=$FK_ROOT/hack/images/pause/pause.c r
  _fk_fresh "$out" "$src" "$FK_OCI_BUILD" && { echo "$out"; return; }
  r=$(mktemp -d)
  gcc -static -Os -Wall -o "$r/pause" "$src" || fk_die "compiling $src failed (gcc and static libc needed)"
  strip "$r/pause"
  "$FK_OCI_BUILD" --ref "$FK_PAUSE_IMAGE" --rootfs "$r" --out "$out" \
    --entrypoint '["/pause"]' --user 65535:65535 >&2
  rm -rf "$r"
  echo "$out"
}

# fk_image_busybox [REF...]: Debian's static busybox under one or more names.
fk_image_busybox() {
  local ref=${1:-$FK_BUSYBOX_IMAGE} name out r
  name=$(echo "$ref" | tr '/:' '__')
  out=$FK_IMAGES/$name.tar
  _fk_fresh "$out" /bin/busybox "$FK_OCI_BUILD" && { echo "$out"; return; }
  r=$(mktemp -d)
  _fk_rootfs_base "$r"
  _fk_busybox_into "$r"
  "$FK_OCI_BUILD" --ref "$ref" --rootfs "$r" --out "$out" --cmd '["sh"]' >&2
  rm -rf "$r"
  echo "$out"
}

# fk_image_agnhost REF AGNHOST_BINARY: like the e2e agnhost image: /agnhost,
# /localhost.{crt,key}, bash as /bin/sh and /bin/bash (conformance uses env
# names such as data-1 that only bash accepts), curl, dig, busybox for the rest.
fk_image_agnhost() {
  local ref=$1 agnhost=$2 name out r b
  name=$(echo "$ref" | tr '/:' '__')
  out=$FK_IMAGES/$name.tar
  _fk_fresh "$out" "$agnhost" /bin/busybox "$FK_OCI_BUILD" && { echo "$out"; return; }
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
  "$FK_OCI_BUILD" --ref "$ref" --rootfs "$r" --out "$out" \
    --entrypoint '["/agnhost"]' --cmd '["pause"]' >&2
  rm -rf "$r"
  echo "$out"
}

# fk_image_single_binary REF BINARY PATH_IN_IMAGE: e.g. coredns at /coredns.
fk_image_single_binary() {
  local ref=$1 bin=$2 path=$3 name out r
  name=$(echo "$ref" | tr '/:' '__')
  out=$FK_IMAGES/$name.tar
  _fk_fresh "$out" "$bin" "$FK_OCI_BUILD" && { echo "$out"; return; }
  r=$(mktemp -d)
  _fk_rootfs_base "$r"
  cp -L "$bin" "$r$path"
  "$FK_OCI_BUILD" --ref "$ref" --rootfs "$r" --out "$out" --entrypoint "[\"$path\"]" >&2
  rm -rf "$r"
  echo "$out"
}

# fk_e2e_image_refs BINDIR: the agnhost and busybox names the e2e suite uses.
fk_e2e_image_refs() {
  local bindir=$1
  if [[ -x "$bindir/e2e.test" ]]; then
    "$bindir/e2e.test" --list-images 2>/dev/null | grep -E '/(agnhost|busybox):' || true
  else
    echo "registry.k8s.io/e2e-test-images/agnhost:$FK_AGNHOST_VERSION"
  fi
}

# fk_images_build BINDIR: builds everything available; prints archive paths.
fk_images_build() {
  local bindir=$1 ref
  mkdir -p "$FK_IMAGES"
  fk_image_pause
  fk_image_busybox "$FK_BUSYBOX_IMAGE"
  if [[ -x "$bindir/agnhost" ]]; then
    for ref in $(fk_e2e_image_refs "$bindir"); do
      case "$ref" in
        */agnhost:*) fk_image_agnhost "$ref" "$bindir/agnhost" ;;
        */busybox:*) fk_image_busybox "$ref" ;;
      esac
    done
  else
    fk_notice "no agnhost in $bindir: e2e test images not built (the smoke test falls back to busybox httpd)"
  fi
  if [[ -x "$bindir/coredns" ]]; then
    fk_image_single_binary "$FK_COREDNS_IMAGE" "$bindir/coredns" /coredns
  elif [[ -x "$bindir/kube-dns" ]]; then
    fk_image_single_binary "$FK_KUBEDNS_IMAGE" "$bindir/kube-dns" /kube-dns
  fi
}
