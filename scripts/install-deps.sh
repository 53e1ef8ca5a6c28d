#!/bin/sh
# Installs every Debian 12 package vmlet needs to build, test and run.
# Runs as root (or through sudo); safe to run again.
set -eu

PACKAGES="
  build-essential pkg-config meson ninja-build python3
  protobuf-compiler protobuf-compiler-grpc libprotobuf-dev libgrpc++-dev
  libabsl-dev libyaml-cpp-dev libfmt-dev libsystemd-dev
  libgtest-dev libgmock-dev
"

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: run as root (e.g. sudo $0)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# shellcheck disable=SC2086  # the list is meant to split into words
apt-get install -y -q --no-install-recommends $PACKAGES
