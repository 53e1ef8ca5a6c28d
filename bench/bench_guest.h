// The test guest of the e2e tests (tests/guest/build-guest.sh) for the
// benchmarks that boot VMs: checks that this machine can run it, builds it
// and lays it out as a local image.
#ifndef VMLET_BENCH_BENCH_GUEST_H_
#define VMLET_BENCH_BENCH_GUEST_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace vmlet::bench {

// The value of environment variable `name`, or "".
std::string Getenv(const char* name);

struct GuestSetup {
  std::string vmletd;       // $VMLETD
  std::string build_guest;  // $VMLET_BUILD_GUEST: the build script (optional).
  std::string guest_dir;    // $VMLET_GUEST_DIR: where the guest is built.
  std::string qemu = "/usr/bin/qemu-system-x86_64";
};

// 77 (skip) unless QEMU, virsh and libvirtd are there and the guest can be
// built; 1 when building it failed; else 0, with the guest built.
int CheckAndBuildGuest(const GuestSetup& setup);

// Lays the guest out as a local image (boot/vmlinuz, boot/initrd,
// boot/cmdline) in a new directory that QEMU, as libvirt's user, can read;
// the directory is removed at the end of the run (leftovers.h).
absl::StatusOr<std::string> MakeGuestImage(const std::string& guest_dir, std::string_view cmdline);

}  // namespace vmlet::bench

#endif  // VMLET_BENCH_BENCH_GUEST_H_
