#include "base/fault_point.h"

#include <signal.h>
#include <unistd.h>

#include <cstdlib>

#include "base/logging.h"
#include "base/str_util.h"

namespace vmlet {
namespace fault_internal {

int armed = kNotArmed;

int FaultPointNotInTable() { return kNotArmed; }

void Crash(int index) {
  WriteLogLine(LogLevel::kError, "fault",
               StrCat("reached fault point ", kFaultPoints[index],
                      " armed by VMLET_FAULT_KILL_AT: killing vmletd (SIGKILL)"));
  ::kill(::getpid(), SIGKILL);
  ::_exit(137);  // Not reached: SIGKILL cannot be caught.
}

}  // namespace fault_internal

absl::Status ArmFaultPointFromEnv() {
  const char* name = std::getenv("VMLET_FAULT_KILL_AT");
  if (name == nullptr || *name == '\0') return absl::OkStatus();
  if (!VMLET_FAULT_INJECTION) {
    return absl::InvalidArgumentError(
        StrCat("VMLET_FAULT_KILL_AT is \"", name,
               "\", but this vmletd was built without fault points (meson option "
               "fault_injection=false): expected it unset"));
  }
  for (size_t i = 0; i < std::size(kFaultPoints); ++i) {
    if (kFaultPoints[i] == name) {
      fault_internal::armed = static_cast<int>(i);
      WriteLogLine(
          LogLevel::kWarning, "fault",
          StrCat("fault point ", name, " is armed: vmletd kills itself when it gets there"));
      return absl::OkStatus();
    }
  }
  return absl::InvalidArgumentError(StrCat("VMLET_FAULT_KILL_AT \"", name,
                                           "\" is not a fault point: expected one of the names "
                                           "`vmletd --list-fault-points` prints"));
}

std::string FaultPointList() {
  std::string list;
  if (!VMLET_FAULT_INJECTION) return list;
  for (std::string_view name : kFaultPoints) StrAppend(&list, name, "\n");
  return list;
}

}  // namespace vmlet
