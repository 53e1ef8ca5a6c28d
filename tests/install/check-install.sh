#!/bin/sh
# Installs the build into a temporary DESTDIR with `meson install` and checks
# the file list against what a node operator expects, at this build's
# configured paths, and that the installed units start the installed vmletd
# with the installed configuration.
#
#   check-install.sh BUILD_DIR PREFIX BINDIR SBINDIR SYSCONFDIR UNITDIR DATADIR
#
# Every directory argument is absolute (meson's options joined to the prefix).
set -eu
[ $# -eq 7 ] || { echo "usage: check-install.sh BUILD_DIR PREFIX BINDIR SBINDIR SYSCONFDIR UNITDIR DATADIR" >&2; exit 2; }
build=$1 prefix=$2 bindir=$3 sbindir=$4 sysconfdir=$5 unitdir=$6 datadir=$7
command -v meson >/dev/null 2>&1 || { echo "check-install: meson is missing" >&2; exit 77; }
dest=$(mktemp -d)
trap 'rm -rf "$dest"' EXIT

meson install -C "$build" --no-rebuild --destdir "$dest" --quiet >"$dest.log" 2>&1 || {
  cat "$dest.log" >&2; rm -f "$dest.log"; exit 1; }
rm -f "$dest.log"

cat >"$dest.expected" <<LIST
$bindir/vmletctl
$sbindir/vmletd
$sysconfdir/vmlet/vmlet.yaml
$unitdir/vmletd.service
$unitdir/vmletd.socket
$datadir/vmlet/cni/10-vmlet.conflist
$datadir/doc/vmlet/README.md
$datadir/doc/vmlet/architecture.md
$datadir/doc/vmlet/configuration.md
$datadir/doc/vmlet/troubleshooting.md
$datadir/doc/vmlet/comparison.md
LIST
sort -o "$dest.expected" "$dest.expected"
(cd "$dest" && find . \( -type f -o -type l \) | sed 's|^\.||' | sort) >"$dest.actual"
status=0
if ! diff -u "$dest.expected" "$dest.actual"; then
  echo "check-install: FAIL: the installed files (+) differ from the expected ones (-)" >&2
  status=1
fi
rm -f "$dest.expected" "$dest.actual"
[ $status -eq 0 ] || exit 1

fail() { echo "check-install: FAIL: $*" >&2; exit 1; }
unit=$dest$unitdir/vmletd.service
grep -q "^ExecStart=$sbindir/vmletd --config $sysconfdir/vmlet/vmlet.yaml\$" "$unit" ||
  fail "$unitdir/vmletd.service does not start $sbindir/vmletd --config $sysconfdir/vmlet/vmlet.yaml: $(grep ExecStart "$unit")"
[ -x "$dest$sbindir/vmletd" ] && [ -x "$dest$bindir/vmletctl" ] || fail "the binaries are not executable"
"$dest$sbindir/vmletd" --version | grep -q "^vmletd " || fail "the installed vmletd does not run"
"$dest$bindir/vmletctl" --help | grep -q "^usage: vmletctl" || fail "the installed vmletctl does not run"
echo "check-install: OK: $(find "$dest" -type f | wc -l) files under $prefix"
