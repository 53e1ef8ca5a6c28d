#include "cri/validate.h"

#include <arpa/inet.h>

#include <cctype>

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

namespace {

bool IsIpAddress(const std::string& text) {
  in6_addr buffer{};
  return ::inet_pton(AF_INET, text.c_str(), &buffer) == 1 ||
         ::inet_pton(AF_INET6, text.c_str(), &buffer) == 1;
}

// The pod's hostname becomes the guest's: a DNS name (RFC 1123).
absl::Status ValidateHostname(const std::string& hostname) {
  if (hostname.empty()) return absl::OkStatus();
  bool valid = hostname.size() <= 253 && hostname.front() != '.' && hostname.back() != '.' &&
               hostname.front() != '-';
  size_t label = 0;
  for (char c : hostname) {
    if (c == '.') {
      valid &= label > 0;
      label = 0;
      continue;
    }
    valid &= std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-';
    valid &= ++label <= 63;
  }
  if (!valid) {
    return absl::InvalidArgumentError(
        StrCat("config.hostname ", Quote(hostname),
               " is not a DNS name: expected letters, digits, '-' and '.', labels of at most 63 "
               "characters"));
  }
  return absl::OkStatus();
}

absl::Status ValidatePortMapping(const v1::PortMapping& mapping, int index) {
  const std::string field = StrCat("config.port_mappings[", index, "]");
  if (mapping.container_port() < 1 || mapping.container_port() > 65535) {
    return absl::InvalidArgumentError(StrCat(field, ".container_port ", mapping.container_port(),
                                             " is out of range: expected 1 to 65535"));
  }
  if (mapping.host_port() < 0 || mapping.host_port() > 65535) {
    return absl::InvalidArgumentError(StrCat(field, ".host_port ", mapping.host_port(),
                                             " is out of range: expected 0 (none) to 65535"));
  }
  if (!mapping.host_ip().empty() && !IsIpAddress(mapping.host_ip())) {
    return absl::InvalidArgumentError(StrCat(field, ".host_ip ", Quote(mapping.host_ip()),
                                             " is not an IP address: expected IPv4 or IPv6"));
  }
  if (!v1::Protocol_IsValid(mapping.protocol())) {
    return absl::InvalidArgumentError(StrCat(field, ".protocol ",
                                             static_cast<int>(mapping.protocol()),
                                             " is unknown: expected TCP, UDP or SCTP"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateCommand(const google::protobuf::RepeatedPtrField<std::string>& cmd) {
  if (cmd.empty()) {
    return absl::InvalidArgumentError("cmd: empty: expected the command to run and its arguments");
  }
  if (cmd[0].empty()) {
    return absl::InvalidArgumentError("cmd[0]: empty: expected the program to run");
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
  const v1::NamespaceOption& namespaces = config.linux().security_context().namespace_options();
  if (namespaces.network() == v1::NODE) {
    return absl::InvalidArgumentError(
        "config.linux.security_context.namespace_options.network is NODE (host network): a VM "
        "cannot share the node's network stack; expected POD (run host-network pods with another "
        "runtime, chosen by RuntimeClass)");
  }
  VMLET_RETURN_IF_ERROR(ValidateHostname(config.hostname()));
  for (int i = 0; i < config.port_mappings_size(); ++i) {
    VMLET_RETURN_IF_ERROR(ValidatePortMapping(config.port_mappings(i), i));
  }
  for (int i = 0; i < config.dns_config().servers_size(); ++i) {
    const std::string& server = config.dns_config().servers(i);
    if (!IsIpAddress(server)) {
      return absl::InvalidArgumentError(StrCat("config.dns_config.servers[", i, "] ", Quote(server),
                                               " is not an IP address: expected IPv4 or IPv6"));
    }
  }
  for (int i = 0; i < config.dns_config().searches_size(); ++i) {
    VMLET_RETURN_IF_ERROR(RequireField(StrCat("config.dns_config.searches[", i, "]"),
                                       config.dns_config().searches(i), "a DNS domain"));
  }
  VMLET_RETURN_IF_ERROR(
      annotations::ParseVmTunables({config.annotations().begin(), config.annotations().end()},
                                   "config.annotations", annotations::Scope::kPod)
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
  // Pod keys (cloud-init, vmspec) are refused here: they belong to the pod.
  VMLET_RETURN_IF_ERROR(
      annotations::ParseVmTunables({config.annotations().begin(), config.annotations().end()},
                                   "config.annotations", annotations::Scope::kContainer)
          .status());
  return absl::OkStatus();
}

}  // namespace vmlet::cri
