#!/bin/sh
# Runs the README's quick start the way a newcomer does and checks that it
# boots the demo VM pod, that running it again leaves one demo pod, and that
# `scripts/quickstart.sh --down` leaves nothing behind: the node's network
# links, namespaces, mounts, iptables rules, libvirt domains, processes and
# files are as they were before. Run by .ci/run after the test suite, as root.
#
#   tests/demo/check-demo.sh
#
# VMLET_ACCELERATOR defaults to tcg here (CI machines rarely boot KVM guests).
set -eu
cd "$(dirname "$0")/../.."
export VMLET_ACCELERATOR="${VMLET_ACCELERATOR:-tcg}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# What the demo could leave behind, one fact per line.
snapshot() {
  {
    ip -o link show | sed 's/^[0-9]*: //; s/[:@].*//' | sed 's/^/link /'
    ip netns list 2>/dev/null | sed 's/^/netns /'
    grep -E ' (/run/vmlet|/var/lib/vmlet-demo)' /proc/self/mounts | cut -d' ' -f2 | sed 's/^/mount /' || true
    for table in filter nat mangle; do
      iptables -t "$table" -S 2>/dev/null | sed "s/^/iptables $table /"
    done
    virsh -c qemu:///system list --all --name | grep . | sed 's/^/domain /' || true
    # Exited processes not reaped yet (<defunct>) hold nothing.
    pgrep -a -f 'vmletd|docker-registry|qemu-system' | grep -v '<defunct>' |
      sed 's/^[0-9]* /process /' || true
    for path in /var/lib/vmlet-demo /run/vmlet /var/lib/cni/networks/vmlet; do
      [ -e "$path" ] && find "$path" | sed 's/^/file /'
    done
  } | sort
}

snapshot >"$work/before"
echo "== check-demo: scripts/quickstart.sh (accelerator $VMLET_ACCELERATOR)"
scripts/quickstart.sh
echo "== check-demo: scripts/quickstart.sh again (idempotent)"
scripts/quickstart.sh >"$work/second" 2>&1 || { cat "$work/second"; exit 1; }
pods=$(build/cmd/vmletctl cri pods | tail -n +2 | grep -c . || true)
if [ "$pods" -ne 1 ]; then
  echo "check-demo: FAIL: $pods pod sandboxes after the second run, expected 1" >&2
  build/cmd/vmletctl cri pods >&2
  scripts/quickstart.sh --down
  exit 1
fi
echo "== check-demo: scripts/quickstart.sh --down"
scripts/quickstart.sh --down
snapshot >"$work/after"
# What is there now and was not before (what was there before and is gone,
# such as an earlier run's leftovers that --down cleaned, is fine).
comm -13 "$work/before" "$work/after" >"$work/left"
if [ -s "$work/left" ]; then
  echo "check-demo: FAIL: the demo left these behind:" >&2
  cat "$work/left" >&2
  exit 1
fi
echo "check-demo: OK: the demo booted, ran again, and --down left nothing behind"
