// What the end-to-end tests that boot real VMs share: finding libvirtd and
// QEMU, building the test guest (tests/guest/build-guest.sh), laying out VM
// images of it, and small helpers for waiting and reading logs.
#ifndef VMLET_TESTS_E2E_TEST_GUEST_H_
#define VMLET_TESTS_E2E_TEST_GUEST_H_

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "cri/v1/api.grpc.pb.h"

namespace vmlet::e2e {

inline constexpr char kVirsh[] = "/usr/bin/virsh";
inline constexpr char kLibvirtUri[] = "qemu:///system";

// Checks that the test can run here and builds the guest into
// $VMLET_GUEST_DIR: 0 when it can, 77 (skip) when something it needs is
// missing (each named on stderr, as are `tools`, absolute paths that must be
// executable), 1 when building the guest failed.
int PrepareTestGuest(const std::vector<std::string>& tools = {});

// The directory holding the guest's vmlinuz and initrd.gz (after
// PrepareTestGuest).
const std::string& GuestDir();

// Lays out a VM image of the guest in `dir` (emptied first): the kernel and
// initrd linked, and `cmdline` as its boot/cmdline.
absl::Status MakeGuestLayout(const std::string& dir, const std::string& cmdline);

// CreateContainer of the pod's VM (container "vm", log path "vm/0.log",
// 256 MiB) from `image`, then StartContainer; the container id, with a
// gtest failure for a call that failed.
std::string CreateAndStartVm(runtime::v1::RuntimeService::Stub& runtime,
                             const std::string& sandbox_id, const std::string& image);

// As above, with the container's resources (CPU and memory limits, ...)
// as given instead of the 256 MiB limit.
std::string CreateAndStartVm(runtime::v1::RuntimeService::Stub& runtime,
                             const std::string& sandbox_id, const std::string& image,
                             const runtime::v1::LinuxContainerResources& resources);

// The file's contents, or "" when it cannot be read.
std::string ReadAll(const std::string& path);

// virsh -c qemu:///system ARGS: its output, or "" when it failed.
std::string Virsh(const std::vector<std::string>& args);

// Polls `done` every 200 ms until it holds or `timeout` passes (the
// default is generous: the guest boots in seconds under TCG, but CI is busy).
template <typename F>
bool WaitFor(F done, absl::Duration timeout = absl::Seconds(180)) {
  absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return done();
}

}  // namespace vmlet::e2e

#endif  // VMLET_TESTS_E2E_TEST_GUEST_H_
