// Running helper programs (qemu-img, CNI plugins, ...) and collecting their
// output.
#ifndef VMLET_BASE_PROCESS_H_
#define VMLET_BASE_PROCESS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace vmlet {

struct ProcessResult {
  int exit_code = 0;         // The exit status, or 128 + signal number.
  std::string output;        // stdout and stderr, interleaved, at most 1 MiB (stdout
                             // only with ProcessOptions::separate_stderr).
  std::string error_output;  // stderr with separate_stderr, at most 1 MiB.
};

struct ProcessOptions {
  // Written to the child's stdin, which is then closed. Empty: the child's
  // stdin is /dev/null. A child that exits without reading all of it is not
  // an error (the rest is dropped).
  std::string stdin_data;
  // "KEY=VALUE" entries; when non-empty they REPLACE the child's environment
  // (argv[0] is still looked up in vmletd's own PATH).
  std::vector<std::string> env;
  // stderr into ProcessResult::error_output instead of output.
  bool separate_stderr = false;
  absl::Duration timeout = absl::Minutes(1);
};

// Runs argv[0] (looked up in PATH) with the given arguments and waits for it,
// feeding stdin and draining stdout/stderr together (no deadlock whatever
// their sizes). The child starts with default signal dispositions and an
// empty signal mask, in the calling thread's namespaces. DEADLINE_EXCEEDED
// (after killing it) when it runs longer than `options.timeout`. A non-zero
// exit is not an error here: see the result. Thread-safe; SIGPIPE from a
// child that closed its stdin early is consumed in the calling thread, so the
// process's SIGPIPE disposition does not matter.
absl::StatusOr<ProcessResult> RunProcess(const std::vector<std::string>& argv,
                                         const ProcessOptions& options);

// As above, with no stdin, vmletd's environment and stderr interleaved with
// stdout. Thread-safe.
absl::StatusOr<ProcessResult> RunProcess(const std::vector<std::string>& argv,
                                         absl::Duration timeout = absl::Minutes(1));

// Runs the command and turns a non-zero exit into an INTERNAL status whose
// message holds the command's name and its output.
absl::Status RunProcessOk(const std::vector<std::string>& argv,
                          absl::Duration timeout = absl::Minutes(1));

}  // namespace vmlet

#endif  // VMLET_BASE_PROCESS_H_
