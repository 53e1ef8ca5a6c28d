#include "vmdriver/vm_driver.h"

namespace vmlet::vmdriver {

std::string_view VmStateName(VmState state) {
  switch (state) {
    case VmState::kCreated:
      return "created";
    case VmState::kRunning:
      return "running";
    case VmState::kExited:
      return "exited";
  }
  return "unknown";
}

}  // namespace vmlet::vmdriver
