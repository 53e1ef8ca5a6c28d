// The typed description of one VM: everything vmdriver/ needs to define it.
// Built by cri/ from the container config (later also from annotations and
// VM specs); vmdriver/ never sees CRI messages.
#ifndef VMLET_VMDRIVER_VM_CONFIG_H_
#define VMLET_VMDRIVER_VM_CONFIG_H_

#include <cstdint>
#include <string>

namespace vmlet::vmdriver {

inline constexpr int64_t kMiB = int64_t{1} << 20;

struct VmConfig {
  std::string id;          // The container id; the VM is known by it.
  std::string sandbox_id;  // The pod sandbox the VM belongs to.
  std::string name;        // Human-readable: "<namespace>_<pod>_<container>".
  int vcpus = 1;
  int64_t memory_bytes = 512 * kMiB;
  std::string image;     // The image reference the VM boots from.
  std::string log_path;  // Where the serial console is written; may be empty.
};

}  // namespace vmlet::vmdriver

#endif  // VMLET_VMDRIVER_VM_CONFIG_H_
