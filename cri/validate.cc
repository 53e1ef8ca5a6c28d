#include "cri/validate.h"

#include "annotations/annotations.h"
#include "base/id.h"
#include "base/status.h"
#include "base/str_util.h"

namespace vmlet::cri {
namespace {

// Values are quoted in messages; very long ones are cut so that a message
// stays readable.
std::string Quote(std::string_view value) {
  if (value.size() > 80) return StrCat("\"", value.substr(0, 80), "...\"");
  return StrCat("\"", value, "\"");
}

// The name parts of a sandbox or container end up in reservation names and
// file names; '/' and control characters are refused.
absl::Status RequireName(std::string_view field, std::string_view value,
                         std::string_view expected) {
  VMLET_RETURN_IF_ERROR(RequireField(field, value, expected));
  for (char c : value) {
    if (c == '/' || static_cast<unsigned char>(c) < 0x20) {
      return absl::InvalidArgumentError(StrCat(field, " ", Quote(value), " is invalid: expected ",
                                               expected, " without '/' or control characters"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status RequireField(std::string_view field, std::string_view value, std::string_view expected,
                          size_t max_size) {
  if (value.empty()) {
    return absl::InvalidArgumentError(StrCat(field, " is empty: expected ", expected));
  }
  if (value.size() > max_size) {
    return absl::InvalidArgumentError(StrCat(field, " ", Quote(value), " is ", value.size(),
                                             " bytes long: expected ", expected, " of at most ",
                                             max_size, " bytes"));
  }
  return absl::OkStatus();
}

absl::Status ValidateIdField(std::string_view field, std::string_view value) {
  VMLET_RETURN_IF_ERROR(RequireField(field, value, "an id of up to 64 hex characters", 64));
  if (!IsHexId(value)) {
    return absl::InvalidArgumentError(
        StrCat(field, " ", Quote(value),
               " is invalid: expected an id of up to 64 lowercase hex characters"));
  }
  return absl::OkStatus();
}

absl::Status ValidateSandboxConfig(const v1::PodSandboxConfig& config) {
  if (!config.has_metadata()) {
    return absl::InvalidArgumentError(
        "config.metadata is missing: expected the pod's name, namespace, uid and attempt");
  }
  const v1::PodSandboxMetadata& metadata = config.metadata();
  VMLET_RETURN_IF_ERROR(RequireName("config.metadata.name", metadata.name(), "the pod's name"));
  VMLET_RETURN_IF_ERROR(
      RequireName("config.metadata.namespace", metadata.namespace_(), "the pod's namespace"));
  VMLET_RETURN_IF_ERROR(RequireName("config.metadata.uid", metadata.uid(), "the pod's uid"));
  if (!config.log_directory().empty() && config.log_directory()[0] != '/') {
    return absl::InvalidArgumentError(StrCat("config.log_directory ", Quote(config.log_directory()),
                                             " is invalid: expected an absolute path"));
  }
  VMLET_RETURN_IF_ERROR(
      annotations::ParseVmTunables({config.annotations().begin(), config.annotations().end()},
                                   "config.annotations")
          .status());
  return absl::OkStatus();
}

absl::Status ValidateContainerConfig(const v1::ContainerConfig& config) {
  if (!config.has_metadata()) {
    return absl::InvalidArgumentError(
        "config.metadata is missing: expected the container's name and attempt");
  }
  VMLET_RETURN_IF_ERROR(
      RequireName("config.metadata.name", config.metadata().name(), "the container's name"));
  VMLET_RETURN_IF_ERROR(RequireField("config.image.image", config.image().image(),
                                     "the image to boot (an image id or reference)", 4096));
  const std::string& log_path = config.log_path();
  if (!log_path.empty() && (log_path[0] == '/' || log_path.find("..") != std::string::npos)) {
    return absl::InvalidArgumentError(
        StrCat("config.log_path ", Quote(log_path),
               " is invalid: expected a path relative to the sandbox's log_directory"));
  }
  VMLET_RETURN_IF_ERROR(
      annotations::ParseVmTunables({config.annotations().begin(), config.annotations().end()},
                                   "config.annotations")
          .status());
  return absl::OkStatus();
}

}  // namespace vmlet::cri
