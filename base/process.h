// Running helper programs (qemu-img, ...) and collecting their output.
#ifndef VMLET_BASE_PROCESS_H_
#define VMLET_BASE_PROCESS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace vmlet {

struct ProcessResult {
  int exit_code = 0;   // The exit status, or 128 + signal number.
  std::string output;  // stdout and stderr, interleaved, at most 1 MiB.
};

// Runs argv[0] (looked up in PATH) with the given arguments, no stdin, and
// waits for it. DEADLINE_EXCEEDED (after killing it) when it runs longer
// than `timeout`. A non-zero exit is not an error here: see the result.
// Thread-safe.
absl::StatusOr<ProcessResult> RunProcess(const std::vector<std::string>& argv,
                                         absl::Duration timeout = absl::Minutes(1));

// Runs the command and turns a non-zero exit into an INTERNAL status whose
// message holds the command's name and its output.
absl::Status RunProcessOk(const std::vector<std::string>& argv,
                          absl::Duration timeout = absl::Minutes(1));

}  // namespace vmlet

#endif  // VMLET_BASE_PROCESS_H_
