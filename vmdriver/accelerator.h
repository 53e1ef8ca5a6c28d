// Choosing between KVM and TCG (QEMU's software emulation).
#ifndef VMLET_VMDRIVER_ACCELERATOR_H_
#define VMLET_VMDRIVER_ACCELERATOR_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace vmlet::vmdriver {

struct AcceleratorChoice {
  std::string domain_type;  // libvirt's domain type: "kvm" or "qemu" (TCG).
  std::string reason;       // Why, for the log and Status.
};

// Whether /dev/kvm (or `device`) can be opened and answers the KVM API
// version ioctl; OK, or the reason it cannot be used.
absl::Status CheckKvm(const std::string& device = "/dev/kvm");

// `setting` is "auto", "kvm" or "tcg". "auto" picks KVM when CheckKvm
// passes and TCG otherwise; "kvm" fails with FAILED_PRECONDITION when KVM
// cannot be used.
absl::StatusOr<AcceleratorChoice> ChooseAccelerator(std::string_view setting,
                                                    const std::string& device = "/dev/kvm");

}  // namespace vmlet::vmdriver

#endif  // VMLET_VMDRIVER_ACCELERATOR_H_
