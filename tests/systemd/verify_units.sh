#!/bin/sh
# Checks the generated systemd units with `systemd-analyze verify`, their
# ExecStart pointed at the vmletd of this build (verify wants an existing
# executable). Exits 77 (skip) without systemd-analyze.
#
# usage: verify_units.sh VMLETD.SERVICE VMLETD.SOCKET VMLETD_BINARY
set -eu
service=$1 socket=$2 binary=$3
if ! command -v systemd-analyze >/dev/null 2>&1; then
  echo "verify_units: systemd-analyze is not installed; skipping" >&2
  exit 77
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
sed "s|^ExecStart=[^ ]*/vmletd |ExecStart=$binary |" "$service" >"$dir/vmletd.service"
cp "$socket" "$dir/vmletd.socket"
grep -q "^ExecStart=$binary " "$dir/vmletd.service"
# Units it names but this machine may lack (libvirtd, virtqemud, kubelet)
# are fine for Wants=/After=/Before=; anything else verify reports fails.
out=$(systemd-analyze verify --man=no "$dir/vmletd.socket" "$dir/vmletd.service" 2>&1) || {
  echo "$out" >&2
  exit 1
}
filtered=$(echo "$out" | grep -v -e "libvirtd.service" -e "virtqemud.service" \
  -e "kubelet.service" -e "^$" || true)
if [ -n "$filtered" ]; then
  echo "$filtered" >&2
  exit 1
fi
echo "vmletd.service and vmletd.socket verify"
