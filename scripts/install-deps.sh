#!/bin/sh
# Installs every Debian 12 package vmlet needs to build, test and run:
# the toolchain and libraries, libvirt with QEMU, UEFI firmware (OVMF) and
# the software TPM (swtpm) for VM specs that ask for them, what the test guest is
# made of (the cloud kernel, busybox-static, cpio, qemu-guest-agent), and
# the tools the image tests use (a local registry, skopeo, umoci, syslinux
# for a bootable disk), the pod network: the CNI plugins, iproute2 (ip, tc),
# iptables, nsenter, and systemd (systemd-analyze and systemd-socket-activate
# for the unit tests); curl and python3-prometheus-client (its parser checks
# vmletd's metrics text).
# Runs as root (or through sudo); safe to run again.
set -eu

PACKAGES="
  build-essential pkg-config meson ninja-build python3
  protobuf-compiler protobuf-compiler-grpc libprotobuf-dev libgrpc++-dev
  libabsl-dev libyaml-cpp-dev libfmt-dev libsystemd-dev libvirt-dev libxml2-dev libssl-dev
  libcurl4-openssl-dev libarchive-dev nlohmann-json3-dev libboost-dev zlib1g-dev
  libgtest-dev libgmock-dev
  libvirt-daemon-system libvirt-clients qemu-system-x86 qemu-utils ovmf swtpm swtpm-tools
  linux-image-cloud-amd64 busybox-static cpio qemu-guest-agent
  docker-registry skopeo umoci syslinux syslinux-common dosfstools mtools
  containernetworking-plugins iproute2 iptables util-linux kmod
  systemd curl python3-prometheus-client
"

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: run as root (e.g. sudo $0)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# shellcheck disable=SC2086  # the list is meant to split into words
apt-get install -y -q --no-install-recommends $PACKAGES
