#include "vmdriver/accelerator.h"

#include <fcntl.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>

#include "base/status.h"
#include "base/str_util.h"

namespace vmlet::vmdriver {

absl::Status CheckKvm(const std::string& device) {
  int fd = ::open(device.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return ErrnoToStatus(errno, StrCat("opening ", device));
  int version = ::ioctl(fd, KVM_GET_API_VERSION, 0);
  int saved_errno = errno;
  ::close(fd);
  if (version < 0) return ErrnoToStatus(saved_errno, StrCat("asking ", device, " for its API"));
  if (version != KVM_API_VERSION) {
    return absl::FailedPreconditionError(
        StrCat(device, " speaks KVM API ", version, ", expected ", KVM_API_VERSION));
  }
  return absl::OkStatus();
}

absl::StatusOr<AcceleratorChoice> ChooseAccelerator(std::string_view setting,
                                                    const std::string& device) {
  if (setting == "tcg") {
    return AcceleratorChoice{"qemu", "accelerator: tcg (software emulation) is configured"};
  }
  absl::Status kvm = CheckKvm(device);
  if (setting == "kvm") {
    if (!kvm.ok()) {
      return absl::FailedPreconditionError(
          StrCat("accelerator: kvm is configured but KVM cannot be used: ", kvm.message()));
    }
    return AcceleratorChoice{"kvm", "accelerator: kvm is configured"};
  }
  if (setting != "auto") {
    return absl::InvalidArgumentError(
        StrCat("accelerator \"", setting, "\" is invalid: expected auto, kvm or tcg"));
  }
  if (kvm.ok())
    return AcceleratorChoice{"kvm", StrCat("accelerator: auto chose kvm (", device, " is usable)")};
  return AcceleratorChoice{
      "qemu", StrCat("accelerator: auto chose tcg, software emulation (", kvm.message(), ")")};
}

}  // namespace vmlet::vmdriver
