// The "kvm-boot" check of `vmletctl doctor`: whether the accelerator vmletd
// would use can actually boot a guest. /dev/kvm may open and answer ioctls
// on a machine whose nested virtualisation hangs every guest, so this runs
// QEMU directly with the node's kernel and no initrd, and waits for the
// kernel to panic for want of a root file system: a guest that got that far
// ran its kernel.
//
// Threading: single-threaded, as the whole CLI is. RunBootTest forks.
#ifndef VMLET_CMD_VMLETCTL_DOCTOR_BOOT_H_
#define VMLET_CMD_VMLETCTL_DOCTOR_BOOT_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "cmd/vmletctl/doctor_checks.h"
#include "cmd/vmletd/config.h"

namespace vmlet::ctl::doctor {

// The kernel to boot: `named` when not empty (which must be a readable
// file); else <boot_dir>/vmlinuz-<release> (`release` empty: uname -r);
// else the newest <boot_dir>/vmlinuz-* by version. NOT_FOUND naming what was
// looked for when there is none.
absl::StatusOr<std::string> FindKernel(const std::string& named,
                                       const std::string& boot_dir = "/boot",
                                       std::string release = "");

// One boot of `kernel` under QEMU.
struct BootTest {
  std::string qemu;  // The path of qemu-system-x86_64 (or a stand-in).
  std::string kernel;
  bool kvm = false;  // -accel kvm, else -accel tcg.
  absl::Duration timeout = absl::Seconds(60);
};

// The QEMU command line of `test`.
std::vector<std::string> BootCommand(const BootTest& test);

struct BootOutcome {
  bool panicked = false;   // The console showed "Kernel panic" in time.
  bool timed_out = false;  // Neither a panic nor an exit within the timeout.
  // QEMU's exit code when it exited before any panic (128 + signal number
  // when a signal ended it); -1 otherwise.
  int exit_code = -1;
  std::string last_line;  // The console's last non-empty line, printable.
  absl::Duration elapsed;
};

// Runs BootCommand(test) in a process group of its own, with its stdout and
// stderr read here and its stdin /dev/null, until the console shows a panic,
// QEMU exits or the timeout passes; then kills the whole group and reaps
// QEMU, so nothing is left behind (QEMU also dies with this process).
// An error only when QEMU cannot be started at all.
absl::StatusOr<BootOutcome> RunBootTest(const BootTest& test);

struct BootCheck {
  bool skip = false;   // --no-boot-test.
  std::string qemu;    // Empty: QEMU is missing (the "qemu" check says so).
  std::string kernel;  // --kernel, or empty to find one in boot_dir.
  std::string boot_dir = "/boot";
  Accelerator accelerator = Accelerator::kAuto;
  std::string kvm_device = "/dev/kvm";
  absl::Duration timeout = absl::Seconds(60);
  std::string config_path;  // Named in fixes.
};

// "kvm-boot": boots the kernel under the accelerator vmletd would use (KVM
// for accelerator kvm, and for auto when the device is usable; TCG
// otherwise). Either failing is FAIL.
Finding CheckKvmBoot(const BootCheck& check);

}  // namespace vmlet::ctl::doctor

#endif  // VMLET_CMD_VMLETCTL_DOCTOR_BOOT_H_
