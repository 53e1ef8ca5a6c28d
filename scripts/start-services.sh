#!/bin/sh
# Starts what vmletd and the tests need if it is not running: virtlogd and
# libvirtd. Under systemd it asks systemd; elsewhere (containers, CI) it
# starts the daemons directly. Run as root; safe to run again.
set -eu

if [ -d /run/systemd/system ]; then
  systemctl start virtlogd.socket libvirtd.socket libvirtd.service 2>/dev/null ||
    systemctl start virtlogd libvirtd
else
  pgrep -x virtlogd >/dev/null || virtlogd -d
  pgrep -x libvirtd >/dev/null || libvirtd -d
fi
for _ in $(seq 50); do
  virsh -c qemu:///system version >/dev/null 2>&1 && exit 0
  sleep 0.2
done
echo "start-services: libvirtd does not answer on qemu:///system" >&2
exit 1
