#!/bin/sh
# From a fresh Debian 12 machine to a VM pod: installs the packages, builds,
# starts libvirtd and vmletd, and boots a demo VM pod whose console log it
# prints. Run as root from the repository.
#
#   scripts/quickstart.sh          set up and boot the demo pod (idempotent)
#   scripts/quickstart.sh --down   remove the demo pod and stop that vmletd
#
# VMLET_ACCELERATOR=tcg selects software emulation (default: auto, which
# uses KVM when /dev/kvm is usable).
set -eu
cd "$(dirname "$0")/.."
RUN_DIR=/run/vmlet
DEMO_DIR=/var/lib/vmlet/demo
CONFIG=$RUN_DIR/quickstart.yaml
CTL=build/cmd/vmletctl

stop_vmletd() {
  if [ -f "$RUN_DIR/vmletd.pid" ] && kill -0 "$(cat "$RUN_DIR/vmletd.pid")" 2>/dev/null; then
    kill "$(cat "$RUN_DIR/vmletd.pid")"
    while kill -0 "$(cat "$RUN_DIR/vmletd.pid")" 2>/dev/null; do sleep 0.2; done
  fi
  rm -f "$RUN_DIR/vmletd.pid"
}

if [ "${1:-}" = "--down" ]; then
  if [ -x "$CTL" ] && "$CTL" --timeout 2 cri version >/dev/null 2>&1; then
    "$CTL" rm demo --timeout 10 || true
  fi
  stop_vmletd
  echo "quickstart: demo pod removed, vmletd stopped (libvirtd keeps running)"
  exit 0
fi

scripts/install-deps.sh
scripts/build.sh
scripts/start-services.sh

# The demo image: the tiny guest of the test suite, made from Debian's
# kernel and busybox, laid out as a VM image (boot/vmlinuz, initrd, cmdline).
mkdir -p "$DEMO_DIR/image/boot" "$RUN_DIR"
chmod 0755 "$DEMO_DIR" "$DEMO_DIR/image" "$DEMO_DIR/image/boot"
tests/guest/build-guest.sh "$DEMO_DIR/guest"
cp "$DEMO_DIR/guest/vmlinuz" "$DEMO_DIR/image/boot/vmlinuz"
cp "$DEMO_DIR/guest/initrd.gz" "$DEMO_DIR/image/boot/initrd"
echo "console=ttyS0 quiet panic=-1 vmlet_test=ticker" >"$DEMO_DIR/image/boot/cmdline"
# The pod network: the example configuration (a bridge vmlet0 on
# 10.88.0.0/16 with Debian's plugins), in a directory of the demo's own so
# that a node's real /etc/cni/net.d is left alone.
mkdir -p "$DEMO_DIR/net.d"
cp contrib/cni/10-vmlet.conflist "$DEMO_DIR/net.d/"
cat >"$CONFIG" <<YAML
accelerator: ${VMLET_ACCELERATOR:-auto}
cni:
  conf_dir: $DEMO_DIR/net.d
local_images:
  "vmlet.local/demo:1": $DEMO_DIR/image
YAML

stop_vmletd
nohup build/cmd/vmletd --config "$CONFIG" >"$RUN_DIR/vmletd.log" 2>&1 &
echo $! >"$RUN_DIR/vmletd.pid"
for _ in $(seq 50); do
  "$CTL" --timeout 1 cri version >/dev/null 2>&1 && break
  sleep 0.2
done
echo "== vmletd is running (pid $(cat "$RUN_DIR/vmletd.pid"), log $RUN_DIR/vmletd.log)"
"$CTL" cri version
"$CTL" cri status

"$CTL" rm demo --timeout 10 >/dev/null 2>&1 || true
echo "== booting the demo VM pod"
"$CTL" run demo --image vmlet.local/demo:1 --memory-mib 256
for _ in $(seq 150); do
  "$CTL" logs demo 2>/dev/null | grep -q "VMLET-GUEST-NET-READY" && break
  sleep 0.2
done
"$CTL" ls
echo "== its serial console, as the kubelet reads it (vmletctl logs demo -f follows it):"
"$CTL" logs demo | grep -v "^tick" | tail -n 8
ip=$("$CTL" logs demo | sed -n 's/.*VMLET-GUEST-DHCP ip=\([0-9.]*\).*/\1/p' | tail -n 1)
if [ -n "$ip" ]; then
  echo "== the VM has the pod IP $ip and serves HTTP on it:"
  python3 -c 'import sys, urllib.request
print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode(), end="")' "http://$ip/" || true
fi
echo "== remove it with: scripts/quickstart.sh --down"
