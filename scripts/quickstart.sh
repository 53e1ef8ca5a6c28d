#!/bin/sh
# From a fresh Debian 12 machine to a running vmletd: installs the packages,
# builds, starts vmletd in the background on the default sockets and shows
# what it answers. Run as root from the repository.
set -eu
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh

RUN_DIR=/run/vmlet
mkdir -p "$RUN_DIR"
if [ -f "$RUN_DIR/vmletd.pid" ] && kill -0 "$(cat "$RUN_DIR/vmletd.pid")" 2>/dev/null; then
  echo "quickstart: stopping the vmletd started earlier"
  kill "$(cat "$RUN_DIR/vmletd.pid")"
  while kill -0 "$(cat "$RUN_DIR/vmletd.pid")" 2>/dev/null; do sleep 0.2; done
fi
CONFIG=/etc/vmlet/vmlet.yaml
[ -f "$CONFIG" ] || CONFIG=contrib/vmlet.yaml
nohup build/cmd/vmletd --config "$CONFIG" >"$RUN_DIR/vmletd.log" 2>&1 &
echo $! >"$RUN_DIR/vmletd.pid"
for _ in $(seq 50); do
  build/cmd/vmletctl --timeout 1 cri version >/dev/null 2>&1 && break
  sleep 0.2
done
echo "vmletd is running (pid $(cat "$RUN_DIR/vmletd.pid"), log $RUN_DIR/vmletd.log):"
build/cmd/vmletctl cri version
build/cmd/vmletctl cri status
