// Status helpers shared by every component. Errors are values: functions
// return absl::Status / absl::StatusOr<T>, and each layer adds its context.
#ifndef VMLET_BASE_STATUS_H_
#define VMLET_BASE_STATUS_H_

#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace vmlet {

// Returns `status` with "context: " prepended to its message; the code and
// payloads are kept. An OK status is returned unchanged.
absl::Status Annotate(const absl::Status& status, std::string_view context);

// Maps an errno value to a status whose message is "context: strerror".
// ENOSPC and EDQUOT become RESOURCE_EXHAUSTED, ENOENT NOT_FOUND,
// EACCES/EPERM PERMISSION_DENIED, EEXIST ALREADY_EXISTS, the rest INTERNAL.
absl::Status ErrnoToStatus(int errno_value, std::string_view context);

}  // namespace vmlet

#define VMLET_STATUS_CONCAT_INNER_(a, b) a##b
#define VMLET_STATUS_CONCAT_(a, b) VMLET_STATUS_CONCAT_INNER_(a, b)

// Returns from the calling function when `expr` yields a non-OK status.
#define VMLET_RETURN_IF_ERROR(expr)                                 \
  do {                                                              \
    if (absl::Status vmlet_status_ = (expr); !vmlet_status_.ok()) { \
      return vmlet_status_;                                         \
    }                                                               \
  } while (0)

// Evaluates a StatusOr expression; on error returns its status, otherwise
// moves the value into `lhs` (which may be a declaration).
#define VMLET_ASSIGN_OR_RETURN(lhs, expr) \
  VMLET_ASSIGN_OR_RETURN_IMPL_(VMLET_STATUS_CONCAT_(vmlet_statusor_, __LINE__), lhs, expr)
#define VMLET_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.ok()) return tmp.status();                \
  lhs = std::move(tmp).value()

#endif  // VMLET_BASE_STATUS_H_
