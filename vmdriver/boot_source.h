// What a VM boots, as read from an image (image/ fills it in without
// depending on the rest of the VM's description).
#ifndef VMLET_VMDRIVER_BOOT_SOURCE_H_
#define VMLET_VMDRIVER_BOOT_SOURCE_H_

#include <string>

namespace vmlet::vmdriver {

// What the VM boots: a disk image, used through a per-VM qcow2 overlay so
// that the image itself is never written, or a kernel (+ initrd + command
// line) for direct kernel boot. Paths are files of the image store.
struct BootSource {
  std::string disk_path;
  std::string disk_format;  // "qcow2" or "raw".
  std::string kernel_path;
  std::string initrd_path;  // Optional, with a kernel.
  std::string cmdline;      // Optional, with a kernel.

  bool IsKernelBoot() const { return !kernel_path.empty(); }
};

}  // namespace vmlet::vmdriver

#endif  // VMLET_VMDRIVER_BOOT_SOURCE_H_
