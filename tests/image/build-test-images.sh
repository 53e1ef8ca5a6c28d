#!/bin/sh
# Builds the OCI images that the image tests pull from a local registry
# (tests/image/registry.sh), from Debian packages only, and pushes them.
#
# usage:
#   build-test-images.sh OUTDIR
#       Builds OUTDIR/oci, one OCI image layout holding every test image
#       under its ref name (annotation org.opencontainers.image.ref.name),
#       and OUTDIR/guest (tests/guest/build-guest.sh). Skipped when
#       OUTDIR/oci is newer than this script and the guest. About 2 s.
#   build-test-images.sh OUTDIR --big SIZE_MIB
#       Builds OUTDIR/big, a layout holding only big:1 (see below). Skipped
#       when it already holds SIZE_MIB.
#   build-test-images.sh OUTDIR push ADDR [REF...]
#       Copies the REFs (default: every ref of OUTDIR/oci; big:1 comes from
#       OUTDIR/big) to docker://ADDR/vmlet-test/REF with skopeo, over plain
#       HTTP, digests preserved (the registry holds the very manifests and
#       blobs of the layout). $REGISTRY_CREDS (USER:PASSWORD, e.g. the
#       credentials file of `registry.sh start DIR --htpasswd`) logs in.
#   build-test-images.sh OUTDIR check-disk
#       Boots disk:1's disk under QEMU (TCG, SeaBIOS, virtio disk as libvirt
#       attaches it, no kernel given) and waits for the guest's marker.
#
# The images (ref names; pushed as vmlet-test/NAME:TAG):
#   kernel:1             boot/vmlinuz (the cloud kernel), boot/initrd (the
#                        test guest's initramfs), boot/cmdline; two layers
#   disk:1               disk/root.qcow2: a FAT file system with SYSLINUX
#                        in its boot sector ("superfloppy", no partition
#                        table) holding the same kernel and initramfs
#   container:1          an ordinary busybox container image, neither VM
#                        layout; config User "1000", Entrypoint, Cmd, Env,
#                        WorkingDir, Labels set
#   container:named-user the same with User "daemon"
#   escape:1             boot/vmlinuz (a placeholder) and "../escaped"
#   escape:2             disk/root.qcow2, a symlink to /etc/shadow
#   big:1 (--big only)   disk/root.raw, SIZE_MIB of random bytes, in an
#                        uncompressed tar layer (media type ...tar): a pull
#                        measures transfer and extraction, not gzip
# Layouts are written by hand (add_image below), not with umoci, which
# refuses layers like those of escape:N.
#
# Exits 77 (skip) when a tool it needs is missing.
# shellcheck shell=dash  # local and -nt: /bin/sh is dash on Debian
set -eu

script=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
build_guest=$(dirname "$script")/../guest/build-guest.sh
cmdline="console=ttyS0 quiet panic=-1"
marker=VMLET-GUEST-READY
# Fixed timestamps, owners and order make the layers reproducible.
tar_flags="--format=gnu --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0"

usage() {
  echo "usage: build-test-images.sh OUTDIR [--big SIZE_MIB | push ADDR [REF...] | check-disk]" >&2
  exit 2
}

need() {  # tool package
  if ! command -v "$1" >/dev/null 2>&1; then
    echo "build-test-images: needs $1 (apt-get install $2)" >&2
    exit 77
  fi
}

sha256() { sha256sum "$1" | cut -d' ' -f1; }
size() { stat -c %s "$1"; }

# Starts an empty OCI image layout in directory $1.
new_layout() {
  rm -rf "$1"
  mkdir -p "$1/blobs/sha256"
  printf '{"imageLayoutVersion":"1.0.0"}\n' >"$1/oci-layout"
  : >"$1/index.entries"
}

# Moves file $2 into layout $1 as a blob; prints its digest's hex.
add_blob() {
  local hex
  hex=$(sha256 "$2")
  mv "$2" "$1/blobs/sha256/$hex"
  echo "$hex"
}

# add_image LAYOUT REF CONFIG LAYER...
#   Adds an image to LAYOUT under ref name REF: its layers are the files
#   LAYER... (*.tar.gz gzip'd, *.tar plain; moved into the layout), and
#   CONFIG is the JSON object of the image config's "config" field (User,
#   Cmd, ...). Writes the config and the manifest; finish_layout writes
#   index.json.
add_image() {
  local layout="$1" ref="$2" container_config="$3"
  shift 3
  local layers_json='' diff_ids='' layer media diff_id layer_size hex tmp config_size config_hex
  local manifest_size manifest_hex
  for layer in "$@"; do
    case "$layer" in
      *.tar.gz) media=application/vnd.oci.image.layer.v1.tar+gzip
        diff_id=$(gzip -dc "$layer" | sha256sum | cut -d' ' -f1) ;;
      *.tar) media=application/vnd.oci.image.layer.v1.tar
        diff_id=$(sha256 "$layer") ;;
      *) echo "add_image: \"$layer\" is neither .tar nor .tar.gz" >&2; exit 1 ;;
    esac
    layer_size=$(size "$layer")
    hex=$(add_blob "$layout" "$layer")
    [ -z "$diff_ids" ] || { diff_ids="$diff_ids,"; layers_json="$layers_json,"; }
    diff_ids="$diff_ids\"sha256:$diff_id\""
    layers_json="$layers_json{\"mediaType\":\"$media\",\"digest\":\"sha256:$hex\",\"size\":$layer_size}"
  done
  tmp=$layout/tmp.json
  printf '{"created":"1970-01-01T00:00:00Z","architecture":"amd64","os":"linux","config":%s,"rootfs":{"type":"layers","diff_ids":[%s]}}' \
    "$container_config" "$diff_ids" >"$tmp"
  config_size=$(size "$tmp")
  config_hex=$(add_blob "$layout" "$tmp")
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[%s]}' \
    "$config_hex" "$config_size" "$layers_json" >"$tmp"
  manifest_size=$(size "$tmp")
  manifest_hex=$(add_blob "$layout" "$tmp")
  printf '{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"%s"}}\n' \
    "$manifest_hex" "$manifest_size" "$ref" >>"$layout/index.entries"
}

finish_layout() {
  {
    printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":['
    paste -sd, "$1/index.entries"
    printf ']}\n'
  } >"$1/index.json"
  rm "$1/index.entries"
}

# make_tar OUT DIR ENTRY... : a reproducible tar of DIR's ENTRYs (gzip'd
# when OUT ends in .gz).
make_tar() {
  local out="$1" dir="$2"
  shift 2
  # shellcheck disable=SC2086  # tar_flags are meant to split
  case "$out" in
    *.gz) (cd "$dir" && tar $tar_flags -P -cf - "$@") | gzip -n -1 >"$out" ;;
    *) (cd "$dir" && tar $tar_flags -P -cf - "$@") >"$out" ;;
  esac
}

# A FAT file system (no partition table) that SYSLINUX boots into the test
# guest; written as qcow2 to $2, from the guest in $1.
make_boot_disk() {
  local guest="$1" out="$2" work
  work=$(dirname "$2")/fat
  mkdir -p "$work"
  local kib
  kib=$((($(size "$guest/vmlinuz") + $(size "$guest/initrd.gz")) / 1024 + 4096))
  mkfs.vfat --invariant -i 564d4c54 -n VMLET -C "$work/fat.img" "$kib" >/dev/null
  printf 'DEFAULT linux\nPROMPT 0\nTIMEOUT 0\nLABEL linux\n  KERNEL vmlinuz\n  APPEND initrd=initrd.gz %s\n' \
    "$cmdline" >"$work/syslinux.cfg"
  mcopy -i "$work/fat.img" "$guest/vmlinuz" "$guest/initrd.gz" "$work/syslinux.cfg" ::/
  syslinux --install "$work/fat.img"
  qemu-img convert -f raw -O qcow2 "$work/fat.img" "$out"
  rm -rf "$work"
}

build() {
  out=$1
  for tool in tar:tar gzip:gzip sha256sum:coreutils paste:coreutils busybox:busybox-static \
    cpio:cpio mkfs.vfat:dosfstools mcopy:mtools syslinux:syslinux qemu-img:qemu-utils; do
    need "${tool%%:*}" "${tool#*:}"
  done
  mkdir -p "$out"
  sh "$build_guest" "$out/guest"  # Exits 77 itself without its packages.
  if [ -f "$out/oci/index.json" ] && [ "$out/oci/index.json" -nt "$script" ] &&
    [ "$out/oci/index.json" -nt "$out/guest/initrd.gz" ]; then
    return 0  # Already built by this script from this guest.
  fi
  layout=$out/oci.tmp
  work=$out/work.tmp
  rm -rf "$work"
  new_layout "$layout"
  trap 'rm -rf "$work" "$layout"' EXIT
  mkdir -p "$work"

  # kernel:1: the kernel in one layer, initrd and cmdline in another.
  mkdir -p "$work/kernel/boot"
  cp "$out/guest/vmlinuz" "$work/kernel/boot/vmlinuz"
  cp "$out/guest/initrd.gz" "$work/kernel/boot/initrd"
  printf '%s\n' "$cmdline" >"$work/kernel/boot/cmdline"
  make_tar "$work/kernel-1.tar.gz" "$work/kernel" boot/vmlinuz
  make_tar "$work/kernel-2.tar.gz" "$work/kernel" boot/initrd boot/cmdline
  add_image "$layout" kernel:1 '{"Labels":{"io.vmlet.test":"kernel"}}' \
    "$work/kernel-1.tar.gz" "$work/kernel-2.tar.gz"

  # disk:1
  mkdir -p "$work/disk/disk"
  make_boot_disk "$out/guest" "$work/disk/disk/root.qcow2"
  make_tar "$work/disk.tar.gz" "$work/disk" disk
  add_image "$layout" disk:1 '{"Labels":{"io.vmlet.test":"disk"}}' "$work/disk.tar.gz"

  # container:1 and container:named-user: busybox, a passwd, a home.
  rootfs=$work/container
  mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/home/app"
  cp "$(command -v busybox)" "$rootfs/bin/busybox"
  for applet in sh echo cat ls id sleep; do ln -s busybox "$rootfs/bin/$applet"; done
  printf 'root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n' \
    >"$rootfs/etc/passwd"
  printf 'root:x:0:\ndaemon:x:1:\napp:x:1000:\n' >"$rootfs/etc/group"
  make_tar "$work/container.tar.gz" "$rootfs" bin etc home
  cp "$work/container.tar.gz" "$work/container-named.tar.gz"
  container_config='"Entrypoint":["/bin/sh","-c"],"Cmd":["echo hello from vmlet-test"],"Env":["PATH=/bin","VMLET_TEST=1"],"WorkingDir":"/home/app","Labels":{"io.vmlet.test":"container"}'
  add_image "$layout" container:1 "{\"User\":\"1000\",$container_config}" "$work/container.tar.gz"
  add_image "$layout" container:named-user "{\"User\":\"daemon\",$container_config}" \
    "$work/container-named.tar.gz"

  # escape:1: "../escaped" after a kernel layout that is otherwise valid.
  mkdir -p "$work/escape/inside/boot"
  printf 'not a kernel\n' >"$work/escape/inside/boot/vmlinuz"
  printf 'written outside the image\n' >"$work/escape/escaped"
  # shellcheck disable=SC2086  # tar_flags are meant to split
  (cd "$work/escape/inside" && tar $tar_flags -P -cf - boot ../escaped) | gzip -n -1 \
    >"$work/escape-1.tar.gz"
  if ! gzip -dc "$work/escape-1.tar.gz" | tar -tPf - | grep -qx '\.\./escaped'; then
    echo "build-test-images: tar dropped the leading ../ of escape:1's entry" >&2
    exit 1
  fi
  add_image "$layout" escape:1 '{}' "$work/escape-1.tar.gz"

  # escape:2: the disk is a symlink out of the image.
  mkdir -p "$work/escape2/disk"
  ln -s /etc/shadow "$work/escape2/disk/root.qcow2"
  make_tar "$work/escape-2.tar.gz" "$work/escape2" disk
  add_image "$layout" escape:2 '{}' "$work/escape-2.tar.gz"

  finish_layout "$layout"
  rm -rf "$work" "$out/oci"
  mv "$layout" "$out/oci"
  trap - EXIT
}

build_big() {
  out=$1 mib=$2
  case "$mib" in '' | *[!0-9]*) usage ;; esac
  for tool in tar:tar sha256sum:coreutils paste:coreutils openssl:openssl; do
    need "${tool%%:*}" "${tool#*:}"
  done
  if [ -f "$out/big/index.json" ] && [ "$out/big/index.json" -nt "$script" ] &&
    [ "$(cat "$out/big/size_mib" 2>/dev/null)" = "$mib" ]; then
    return 0
  fi
  layout=$out/big.tmp
  work=$out/big-work.tmp
  rm -rf "$work"
  new_layout "$layout"
  trap 'rm -rf "$work" "$layout"' EXIT
  mkdir -p "$work/big/disk"
  # AES-CTR of zeros: incompressible and much faster than /dev/urandom.
  openssl enc -aes-128-ctr -nosalt -pbkdf2 -pass "pass:vmlet-$mib" </dev/zero 2>/dev/null |
    head -c $((mib * 1048576)) >"$work/big/disk/root.raw"
  if [ "$(size "$work/big/disk/root.raw")" -ne $((mib * 1048576)) ]; then
    echo "build-test-images: could not write $mib MiB of random data" >&2
    exit 1
  fi
  make_tar "$work/big.tar" "$work/big" disk
  rm -rf "$work/big"
  add_image "$layout" big:1 '{"Labels":{"io.vmlet.test":"big"}}' "$work/big.tar"
  finish_layout "$layout"
  echo "$mib" >"$layout/size_mib"
  rm -rf "$work" "$out/big"
  mv "$layout" "$out/big"
  trap - EXIT
}

push() {
  out=$1 addr=$2
  shift 2
  need skopeo skopeo
  [ -f "$out/oci/index.json" ] || [ -f "$out/big/index.json" ] || {
    echo "build-test-images: nothing built in \"$out\"; build first" >&2
    exit 1
  }
  if [ $# -eq 0 ]; then
    # shellcheck disable=SC2046  # one ref per word
    set -- $(grep -o '"org.opencontainers.image.ref.name":"[^"]*"' "$out/oci/index.json" |
      cut -d'"' -f4)
  fi
  for ref in "$@"; do
    layout=$out/oci
    [ "$ref" = big:1 ] && layout=$out/big
    # --insecure-policy: no dependency on /etc/containers/policy.json,
    # which a host may lack or make strict. --preserve-digests: skopeo
    # would otherwise gzip big:1's uncompressed layer.
    skopeo --insecure-policy copy --quiet --preserve-digests --dest-tls-verify=false \
      ${REGISTRY_CREDS:+--dest-creds "$REGISTRY_CREDS"} \
      "oci:$layout:$ref" "docker://$addr/vmlet-test/$ref"
  done
}

# Boots disk:1's disk (from the layout) as libvirt would, without a kernel.
check_disk() {
  out=$1
  need qemu-system-x86_64 qemu-system-x86
  index=$out/oci/index.json
  manifest=$(grep -o '"digest":"sha256:[0-9a-f]*","size":[0-9]*,"annotations":{"org.opencontainers.image.ref.name":"disk:1"' \
    "$index" | cut -d'"' -f4 | cut -d: -f2)
  layer=$(grep -o '"layers":\[{[^]]*' "$out/oci/blobs/sha256/$manifest" | grep -o 'sha256:[0-9a-f]*' |
    cut -d: -f2)
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  gzip -dc "$out/oci/blobs/sha256/$layer" | tar -xf - -C "$work"
  start=$(date +%s)
  timeout 180 qemu-system-x86_64 -machine pc,accel=tcg -m 256 -display none -monitor none \
    -serial "file:$work/serial.log" -no-reboot \
    -drive "file=$work/disk/root.qcow2,format=qcow2,if=virtio,snapshot=on" 2>"$work/qemu.err" &
  qemu=$!
  while kill -0 "$qemu" 2>/dev/null; do
    if grep -q "$marker" "$work/serial.log" 2>/dev/null; then
      kill "$qemu"
      wait "$qemu" 2>/dev/null || true
      echo "disk:1 booted to \"$marker\" in $(($(date +%s) - start)) s"
      return 0
    fi
    sleep 0.5
  done
  echo "disk:1 did not boot; its console:" >&2
  cat "$work/serial.log" >&2 || true
  exit 1
}

[ $# -ge 1 ] || usage
outdir=$1
shift
case "${1:-}" in
  "") build "$outdir" ;;
  --big) [ $# -eq 2 ] || usage; build_big "$outdir" "$2" ;;
  push) [ $# -ge 2 ] || usage; shift; push "$outdir" "$@" ;;
  check-disk) [ $# -eq 1 ] || usage; check_disk "$outdir" ;;
  *) usage ;;
esac
