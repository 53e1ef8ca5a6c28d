#!/bin/sh
# Builds the tiny test guest from Debian packages: the kernel of
# linux-image-cloud-amd64 and an initramfs around busybox-static whose init
# prints a marker and then, by the kernel command line:
#   (default)                 waits for the ACPI power button, then powers off
#   vmlet_test=ignore-acpi    ignores the power button (must be destroyed)
#   vmlet_test=poweroff:N     powers off by itself after N seconds
#   vmlet_test=ticker         prints "tick N" every 0.2 s, for log tests
# In every mode, in the background, the QEMU guest agent (qemu-ga) serves the
# virtio port org.qemu.guest_agent.0 and the guest prints
# VMLET-GUEST-AGENT-READY; with the word vmlet_noagent on the command line
# it prints VMLET-GUEST-AGENT-OFF instead and leaves the port closed (for
# tests of a guest without an agent).
# In every mode, in the background: when a virtio NIC shows up, the guest
# prints the hostname of a cloud-init seed (an iso9660 disk labelled cidata)
# if there is one, asks for an address by DHCP (busybox udhcpc), prints
# what it got and its /etc/resolv.conf, serves /www over HTTP on port 80
# (busybox httpd) and echoes what it receives on TCP port 7 (busybox
# nc -ll -e cat: one cat per connection, several connections at once);
# lines start with VMLET-GUEST-. Every line typed into the serial console is
# printed back as "VMLET-GUEST-ECHO <line>".
#
# usage: build-guest.sh OUTDIR    -> OUTDIR/vmlinuz OUTDIR/initrd.gz
# Exits 77 (skip) when the packages are missing (the kernel, busybox-static,
# qemu-guest-agent).
set -eu
out=${1:?usage: build-guest.sh OUTDIR}
kernel=$(ls /boot/vmlinuz-*-cloud-amd64 2>/dev/null | sort -V | tail -1 || true)
qemu_ga=/usr/sbin/qemu-ga
if [ -z "$kernel" ] || [ ! -x /bin/busybox ] || [ ! -x "$qemu_ga" ]; then
  echo "build-guest: needs linux-image-cloud-amd64, busybox-static and qemu-guest-agent" >&2
  exit 77
fi
release=${kernel#/boot/vmlinuz-}
modules=/lib/modules/$release/kernel
mkdir -p "$out"
if [ -f "$out/initrd.gz" ] && [ -f "$out/vmlinuz" ] && [ "$out/initrd.gz" -nt "$0" ]; then
  exit 0  # Already built from this script.
fi
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/bin" "$root/proc" "$root/sys" "$root/dev" "$root/run" "$root/tmp" \
  "$root/lib/modules"
cp /bin/busybox "$root/bin/"
# mkdir, mkfifo, kill and rm serve the streaming exec (guest_exec_stream.h).
for applet in sh mount echo cat sleep poweroff insmod dd grep basename seq ls ip udhcpc httpd \
    hostname mkdir printf sed sysctl mknod true false mkfifo kill rm nc wc; do
  ln -s busybox "$root/bin/$applet"
done
# The guest agent, with every library it loads and the dynamic loader, each
# at the path ldd names (the loader searches /lib/x86_64-linux-gnu itself).
cp "$qemu_ga" "$root/bin/"
for lib in $(ldd "$qemu_ga" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'); do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done
cp "$modules/drivers/input/evdev.ko" "$modules/drivers/acpi/button.ko" "$root/lib/modules/"
# virtio NIC, disks and serial ports (the agent's), the memory balloon (so
# that the host sees the guest's memory figures and can resize it), and
# iso9660 for the seed, with what they depend on, in the order modprobe
# would load them; the init insmods them in this order.
: >"$root/lib/modules/virtio.list"
for module in virtio_pci virtio_net virtio_blk virtio_console virtio_balloon isofs; do
  modprobe -S "$release" --show-depends "$module" 2>/dev/null | awk '$1 == "insmod" { print $2 }'
done | awk '!seen[$0]++' | while read -r path; do
  cp "$path" "$root/lib/modules/"
  basename "$path" >>"$root/lib/modules/virtio.list"
done
mkdir -p "$root/etc" "$root/www" "$root/seed"
cat >"$root/etc/udhcpc.script" <<'DHCP'
#!/bin/sh
# busybox udhcpc calls this with the lease in the environment.
exec >/dev/console 2>&1
case "$1" in
  deconfig) ip addr flush dev "$interface"; ip link set "$interface" up ;;
  bound|renew)
    ip addr add "$ip/$mask" dev "$interface"
    [ -n "$mtu" ] && ip link set "$interface" mtu "$mtu"
    for r in $router; do ip route add default via "$r" dev "$interface"; done
    [ -n "$hostname" ] && hostname "$hostname"
    {
      [ -n "$search" ] && echo "search $search"
      for d in $dns; do echo "nameserver $d"; done
      # vmlet's option 224: resolver options, as hex from udhcpc.
      [ -n "$opt224" ] && echo "options $(printf "$(echo "$opt224" | sed 's/../\\x&/g')")"
    } >/etc/resolv.conf
    echo "VMLET-GUEST-DHCP ip=$ip mask=$mask router=$router hostname=$hostname mtu=$mtu"
    sed 's/^/VMLET-GUEST-RESOLV: /' /etc/resolv.conf
    ;;
esac
DHCP
chmod +x "$root/etc/udhcpc.script"
cat >"$root/init" <<'INIT'
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
# The kernel passes init no PATH; commands run through the agent inherit it.
export PATH=/bin
insmod /lib/modules/evdev.ko
insmod /lib/modules/button.ko
mode=
with_agent=yes
for word in $(cat /proc/cmdline); do
  case "$word" in
    vmlet_test=*) mode=${word#vmlet_test=} ;;
    vmlet_noagent) with_agent=no ;;
  esac
done
# Starts qemu-ga on the virtio port named org.qemu.guest_agent.0 and prints
# READY once qemu-ga holds the port open (libvirt connects when it does).
agent() {
  for i in $(seq 100); do
    for port in /sys/class/virtio-ports/*; do
      if [ "$(cat "$port/name" 2>/dev/null)" = org.qemu.guest_agent.0 ]; then
        dev=/dev/$(basename "$port")
        [ -e "$dev" ] || mknod "$dev" c $(sed 's/:/ /' "$port/dev")
        qemu-ga -m virtio-serial -p "$dev" -t /run -l /run/qemu-ga.log &
        pid=$!
        until ls -l "/proc/$pid/fd" 2>/dev/null | grep -q "$dev"; do
          [ -d "/proc/$pid" ] || { echo "VMLET-GUEST-AGENT-FAILED"; cat /run/qemu-ga.log; return; }
          sleep 0.05
        done
        echo "VMLET-GUEST-AGENT-READY"
        return
      fi
    done
    sleep 0.1
  done
  echo "VMLET-GUEST-AGENT-FAILED: no virtio port org.qemu.guest_agent.0"
}
network() {
  sleep 0.5
  for disk in /dev/vd?; do
    if mount -t iso9660 -o ro "$disk" /seed 2>/dev/null; then
      echo "VMLET-GUEST-SEED $(grep local-hostname /seed/meta-data)"
      break
    fi
  done
  [ -e /sys/class/net/eth0 ] || return 0
  ip link set lo up
  if udhcpc -i eth0 -s /etc/udhcpc.script -q -n -t 10 -T 1 -O search -O mtu -O 224 \
      -O staticroutes >/dev/null 2>&1; then
    echo "vmlet guest $(hostname)" >/www/index.html
    httpd -p 80 -h /www
    # TCP echo on port 7, for port-forward tests; NET-READY once it listens
    # (a listening socket on port 7 in /proc/net/tcp or tcp6), or after 5 s.
    nc -ll -p 7 -e cat &
    for i in $(seq 100); do
      grep -qs ':0007 0*:0000 0A' /proc/net/tcp /proc/net/tcp6 && break
      sleep 0.05
    done
    echo "VMLET-GUEST-NET-READY"
  else
    echo "VMLET-GUEST-DHCP-FAILED"
  fi
}
# What the guest was given, for tests of VM shapes: vCPUs, memory and the
# block devices as name:sectors:serial.
inventory() {
  blocks=
  for b in /sys/block/*; do
    name=$(basename "$b")
    case "$name" in loop* | ram*) continue ;; esac
    blocks="$blocks $name:$(cat "$b/size"):$(cat "$b/serial" 2>/dev/null)"
  done
  echo "VMLET-GUEST-INVENTORY cpus=$(grep -c ^processor /proc/cpuinfo)" \
    "mem_kb=$(sed -n 's/^MemTotal: *\([0-9]*\) kB/\1/p' /proc/meminfo) blocks=$blocks"
  # The NICs as name:receive-queues.
  nics=
  for n in /sys/class/net/*; do
    name=$(basename "$n")
    [ "$name" = lo ] && continue
    nics="$nics $name:$(ls -d "$n"/queues/rx-* 2>/dev/null | wc -l)"
  done
  echo "VMLET-GUEST-NICS$nics"
}
devices() {
  for module in $(cat /lib/modules/virtio.list); do insmod "/lib/modules/$module" 2>/dev/null; done
  inventory
  if [ "$with_agent" = yes ]; then agent & else echo "VMLET-GUEST-AGENT-OFF"; fi
  network
}
# Every line typed into the serial console comes back as VMLET-GUEST-ECHO,
# for tests of interactive consoles.
console_echo() {
  while IFS= read -r line; do echo "VMLET-GUEST-ECHO $line"; done </dev/console
}
devices &
console_echo &
case "$mode" in
  ignore-acpi) echo "VMLET-GUEST-READY mode=$mode"; while true; do sleep 3600; done ;;
  poweroff:*)
    echo "VMLET-GUEST-READY mode=$mode"
    sleep "${mode#poweroff:}"; echo "VMLET-GUEST-POWERING-OFF"; poweroff -f ;;
  ticker)
    echo "VMLET-GUEST-READY mode=$mode"
    n=0; while true; do n=$((n + 1)); echo "tick $n"; sleep 0.2; done ;;
esac
# Wait for the ACPI power button: a reader of its input device. READY is
# printed only once the reader holds the device open, so a button press
# right after READY is never missed.
for dev in /sys/class/input/event*; do
  if grep -q "Power Button" "$dev/device/name" 2>/dev/null; then
    dd if="/dev/input/$(basename "$dev")" bs=24 count=1 of=/dev/null 2>/dev/null &
    reader=$!
    until ls -l "/proc/$reader/fd" 2>/dev/null | grep -q "/dev/input/"; do sleep 0.05; done
    echo "VMLET-GUEST-READY mode=acpi"
    wait "$reader"
    echo "VMLET-GUEST-POWERING-OFF"
    poweroff -f
  fi
done
echo "VMLET-GUEST: no power button"; while true; do sleep 3600; done
INIT
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc 2>/dev/null | gzip -1) >"$out/initrd.gz.tmp"
cp "$kernel" "$out/vmlinuz.tmp"
mv "$out/vmlinuz.tmp" "$out/vmlinuz"
mv "$out/initrd.gz.tmp" "$out/initrd.gz"
