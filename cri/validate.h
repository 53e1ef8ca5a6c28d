// Checks of request fields shared by several verbs. Each failure is
// INVALID_ARGUMENT naming the field, the value and what is expected.
#ifndef VMLET_CRI_VALIDATE_H_
#define VMLET_CRI_VALIDATE_H_

#include <string_view>

#include "absl/status/status.h"
#include "cri/cri_service.h"

namespace vmlet::cri {

// A required string field: non-empty and at most `max_size` bytes.
absl::Status RequireField(std::string_view field, std::string_view value, std::string_view expected,
                          size_t max_size = 253);

// An id given by the kubelet: a full id or a unique prefix, hex only.
absl::Status ValidateIdField(std::string_view field, std::string_view value);

// The cmd of ExecSync and Exec: not empty, a program first.
absl::Status ValidateCommand(const google::protobuf::RepeatedPtrField<std::string>& cmd);
absl::Status ValidateSandboxConfig(const v1::PodSandboxConfig& config);
absl::Status ValidateContainerConfig(const v1::ContainerConfig& config);

}  // namespace vmlet::cri

#endif  // VMLET_CRI_VALIDATE_H_
