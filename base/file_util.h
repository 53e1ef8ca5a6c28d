// File helpers. Persisted state is always written with WriteFileAtomically
// so that a crash leaves either the old or the new contents, never a mix.
#ifndef VMLET_BASE_FILE_UTIL_H_
#define VMLET_BASE_FILE_UTIL_H_

#include <sys/types.h>

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace vmlet {

// Writes `contents` to a temporary file beside `path`, fsyncs it, renames it
// over `path` and fsyncs the directory. The file gets exactly `mode`, whatever
// the umask.
absl::Status WriteFileAtomically(const std::string& path, std::string_view contents,
                                 mode_t mode = 0600);

absl::StatusOr<std::string> ReadFile(const std::string& path);

// Creates `path` and its missing parents with `mode` (like mkdir -p).
absl::Status MakeDirs(const std::string& path, mode_t mode = 0755);

// Removes a file; a file that does not exist is not an error.
absl::Status RemoveFileIfExists(const std::string& path);

// Removes a directory tree; a missing tree is not an error.
absl::Status RemoveTree(const std::string& path);

// Names of the entries of a directory (no "." or ".."), sorted.
absl::StatusOr<std::vector<std::string>> ListDirectory(const std::string& path);

}  // namespace vmlet

#endif  // VMLET_BASE_FILE_UTIL_H_
