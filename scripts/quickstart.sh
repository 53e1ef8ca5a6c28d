#!/bin/sh
# From a fresh Debian 12 machine to a VM pod: installs the packages, builds,
# starts libvirtd, a local OCI registry holding a demo VM image built on the
# spot from Debian packages, and vmletd, then pulls the image and boots a
# demo VM pod. Run as root from the repository.
#
#   scripts/quickstart.sh          set up and boot the demo pod (idempotent)
#   scripts/quickstart.sh --down   remove the pod, its image, vmletd, the
#                                  registry and every file the demo made
#
# VMLET_ACCELERATOR=tcg selects software emulation (default: auto, which
# uses KVM when /dev/kvm is usable).
#
# Everything the demo keeps is under /var/lib/vmlet-demo (vmletd's state_dir,
# the registry, the image build, the CNI configuration); vmletd serves the
# default sockets in /run/vmlet, so vmletctl and crictl need no options.
set -eu
cd "$(dirname "$0")/.."
RUN_DIR=/run/vmlet
DEMO_DIR=/var/lib/vmlet-demo
CONFIG=$DEMO_DIR/vmlet.yaml
PID_FILE=$DEMO_DIR/vmletd.pid
LOG=$DEMO_DIR/vmletd.log
CTL=build/cmd/vmletctl
REGISTRY=tests/image/registry.sh
# The CNI network of contrib/cni/10-vmlet.conflist: its bridge and the
# host-local plugin's address records.
BRIDGE=vmlet0
IPAM_DIR=/var/lib/cni/networks/vmlet

say() { echo "== $*"; }

vmletd_answers() { [ -x "$CTL" ] && "$CTL" --timeout 2 cri version >/dev/null 2>&1; }

our_vmletd() {  # prints the pid of the demo's vmletd, if it runs
  [ -f "$PID_FILE" ] || return 1
  pid=$(cat "$PID_FILE")
  [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q vmletd &&
    echo "$pid"
}

stop_vmletd() {
  if pid=$(our_vmletd); then
    kill "$pid"
    while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
  fi
  rm -f "$PID_FILE"
}

# Removes the demo pod and the demo's image through the demo's vmletd, if
# it runs (never through another vmletd, such as one under systemd).
remove_pod_and_images() {
  our_vmletd >/dev/null && vmletd_answers || return 0
  "$CTL" rm demo --timeout 30 >/dev/null 2>&1 || true
  if [ -f "$DEMO_DIR/image-ref" ]; then
    "$CTL" image rm "$(cat "$DEMO_DIR/image-ref")" >/dev/null 2>&1 || true
  fi
}

down() {
  remove_pod_and_images
  stop_vmletd
  "$REGISTRY" stop "$DEMO_DIR/registry"
  rm -rf "$DEMO_DIR"
  # vmletd's runtime directories, when nothing else is in them (a vmletd
  # under systemd keeps its pods' namespaces there).
  for dir in "$RUN_DIR/netns" "$RUN_DIR/consoles" "$RUN_DIR"; do
    rmdir "$dir" 2>/dev/null || true
  done
  if ip link show "$BRIDGE" >/dev/null 2>&1; then ip link del "$BRIDGE"; fi
  rm -rf "$IPAM_DIR"
}

if [ "${1:-}" = "--down" ]; then
  down
  say "quickstart: the demo is gone (libvirtd keeps running)"
  exit 0
elif [ -n "${1:-}" ]; then
  echo "usage: scripts/quickstart.sh [--down]" >&2
  exit 2
fi

scripts/install-deps.sh
scripts/build.sh
scripts/start-services.sh

if vmletd_answers && ! our_vmletd >/dev/null; then
  echo "quickstart: another vmletd serves $RUN_DIR/cri.sock (systemctl stop vmletd first)" >&2
  exit 1
fi
# Idempotent: a second run replaces the demo's pod, vmletd and registry.
remove_pod_and_images
stop_vmletd
mkdir -p "$DEMO_DIR" "$RUN_DIR"

say "starting a local OCI registry (docker-registry, 127.0.0.1, plain HTTP)"
"$REGISTRY" stop "$DEMO_DIR/registry"
"$REGISTRY" start "$DEMO_DIR/registry"
address=$(cat "$DEMO_DIR/registry/address")
ref=$address/vmlet/demo:1

say "building the demo VM image from Debian's cloud kernel and busybox, pushing it as $ref"
# The test suite's images (tests/image/build-test-images.sh): kernel:1 is
# boot/vmlinuz, boot/initrd and boot/cmdline, a direct-kernel-boot VM image.
tests/image/build-test-images.sh "$DEMO_DIR/build" >/dev/null
skopeo --insecure-policy copy --quiet --dest-tls-verify=false \
  "oci:$DEMO_DIR/build/oci:kernel:1" "docker://$ref"
echo "$ref" >"$DEMO_DIR/image-ref"

# The pod network: the example configuration (a bridge vmlet0 on
# 10.88.0.0/16 with Debian's plugins), in a directory of the demo's own so
# that a node's real /etc/cni/net.d is left alone.
mkdir -p "$DEMO_DIR/net.d"
cp contrib/cni/10-vmlet.conflist "$DEMO_DIR/net.d/"
cat >"$CONFIG" <<YAML
accelerator: ${VMLET_ACCELERATOR:-auto}
state_dir: $DEMO_DIR/state
cni:
  conf_dir: $DEMO_DIR/net.d
registries:
  "$address":
    insecure: true
YAML

nohup build/cmd/vmletd --config "$CONFIG" </dev/null >"$LOG" 2>&1 &
echo $! >"$PID_FILE"
for _ in $(seq 100); do
  vmletd_answers && break
  kill -0 "$(cat "$PID_FILE")" 2>/dev/null || break
  sleep 0.2
done
if ! vmletd_answers; then
  echo "quickstart: vmletd did not come up; its log ($LOG):" >&2
  tail -n 20 "$LOG" >&2
  exit 1
fi
say "vmletd is running (pid $(cat "$PID_FILE"), config $CONFIG, log $LOG)"
"$CTL" cri version

say "pulling $ref"
"$CTL" image pull "$ref"
say "booting the demo VM pod"
"$CTL" run demo --image "$ref" --memory-mib 256
booted=
for _ in $(seq 300); do
  if "$CTL" logs demo 2>/dev/null | grep -q "VMLET-GUEST-NET-READY"; then
    booted=yes
    break
  fi
  sleep 0.2
done
"$CTL" ls
say "its serial console, as the kubelet reads it:"
"$CTL" logs demo | tail -n 8
if [ -z "$booted" ]; then
  echo "quickstart: the demo VM did not finish booting within 60 s (on a machine whose KVM" \
    "cannot boot guests, run VMLET_ACCELERATOR=tcg scripts/quickstart.sh)" >&2
  exit 1
fi
ip=$("$CTL" logs demo | sed -n 's/.*VMLET-GUEST-DHCP ip=\([0-9.]*\).*/\1/p' | tail -n 1)
say "the VM took the pod IP $ip by DHCP and serves HTTP on it:"
python3 -c 'import sys, urllib.request
print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode(), end="")' "http://$ip/"
say "a command in the guest, through the QEMU guest agent ($CTL exec demo -- ...):"
ran=
for _ in $(seq 50); do
  # The agent answers a moment after the guest started it.
  if "$CTL" exec demo -- cat /proc/version 2>/dev/null; then
    ran=yes
    break
  fi
  sleep 0.2
done
if [ -z "$ran" ]; then
  "$CTL" exec demo -- cat /proc/version || exit 1
fi
say "its port 80 forwarded to the host ($CTL port-forward demo 0:80 picks a free port):"
"$CTL" port-forward demo 0:80 >"$DEMO_DIR/port-forward.log" 2>&1 &
forward_pid=$!
local_port=
for _ in $(seq 50); do
  local_port=$(sed -n 's/^Forwarding from 127.0.0.1:\([0-9]*\) -> 80$/\1/p' "$DEMO_DIR/port-forward.log")
  [ -n "$local_port" ] && break
  sleep 0.1
done
fetched=$(python3 -c 'import sys, urllib.request
print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode(), end="")' \
  "http://127.0.0.1:${local_port:-1}/" 2>&1) || fetched="FAILED: $fetched"
kill "$forward_pid" 2>/dev/null || true
wait "$forward_pid" 2>/dev/null || true
rm -f "$DEMO_DIR/port-forward.log"
echo "http://127.0.0.1:$local_port/ -> $fetched"
case "$fetched" in FAILED*) exit 1 ;; esac
say "follow its console with: $CTL logs demo -f; type into it: $CTL console demo (^] leaves)"
say "attach as kubectl does: $CTL attach demo; a shell: $CTL exec demo -i -- sh"
say "or with crictl: crictl --runtime-endpoint unix://$RUN_DIR/cri.sock pods"
say "remove everything with: scripts/quickstart.sh --down"
