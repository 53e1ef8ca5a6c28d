#include "annotations/annotations.h"

#include <yaml-cpp/yaml.h>

#include <array>
#include <cmath>
#include <cstdlib>
#include <exception>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "base/status.h"
#include "base/str_util.h"

namespace vmlet::annotations {
namespace {

namespace vmspec = ::vmlet::vmspec::v1;

constexpr std::pair<std::string_view, double> kSuffixes[] = {
    {"Ki", 1024.0}, {"Mi", 1048576.0}, {"Gi", 1073741824.0}, {"Ti", 1099511627776.0},
    {"k", 1e3},     {"M", 1e6},        {"G", 1e9},           {"T", 1e12},
};

constexpr size_t kMaxQuoted = 64;
// Flow collections ("[[[...") nested deeper than this are refused before
// the YAML parser sees them (it recurses per level).
constexpr int kMaxYamlNesting = 64;

constexpr std::string_view kKnownKeys =
    "vmlet.io/vcpus, vmlet.io/memory, vmlet.io/cpu-model, vmlet.io/machine, vmlet.io/firmware, "
    "vmlet.io/disk-bus, vmlet.io/nic-model, vmlet.io/root-disk-size, "
    "vmlet.io/cloud-init-user-data, vmlet.io/cloud-init-network-config, vmlet.io/ssh-keys and "
    "vmlet.io/vmspec";

// `value` for a message: cut to 64 characters, non-printable bytes escaped.
std::string Quote(std::string_view value) {
  if (value.size() > kMaxQuoted) {
    return StrCat("\"", absl::CHexEscape(std::string(value.substr(0, kMaxQuoted))), "...\"");
  }
  return StrCat("\"", absl::CHexEscape(std::string(value)), "\"");
}

std::string FieldOf(std::string_view field, std::string_view key) {
  return StrCat(field, "[", Quote(key), "]");
}

absl::Status BadValue(std::string_view field, std::string_view key, std::string_view value,
                      std::string_view expected) {
  return absl::InvalidArgumentError(
      StrCat(FieldOf(field, key), " ", Quote(value), " is invalid: expected ", expected));
}

constexpr std::string_view kKeys[] = {
    kVcpus,   kMemory,   kCpuModel,     kMachine,           kFirmware,
    kDiskBus, kNicModel, kRootDiskSize, kCloudInitUserData, kCloudInitNetworkConfig,
    kSshKeys, kVmSpec};

bool IsKnownKey(std::string_view key) {
  for (std::string_view known : kKeys) {
    if (key == known) return true;
  }
  return false;
}

bool IsPodKey(std::string_view key) {
  return key == kCloudInitUserData || key == kCloudInitNetworkConfig || key == kSshKeys ||
         key == kVmSpec;
}

size_t MaxBytesOf(std::string_view key) {
  if (key == kCloudInitUserData || key == kCloudInitNetworkConfig) return kMaxCloudInitBytes;
  if (key == kSshKeys) return kMaxSshKeys * (kMaxSshKeyBytes + 1);
  return kMaxValueBytes;
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsLowerAlnum(char c) { return IsDigit(c) || (c >= 'a' && c <= 'z'); }
bool IsAlnum(char c) { return IsLowerAlnum(c) || (c >= 'A' && c <= 'Z'); }

// The offset of the first byte that is not valid UTF-8 or is a control
// character other than tab, CR and LF; npos when there is none.
size_t FindBadText(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      if (c == 0x7f || (c < 0x20 && c != '\t' && c != '\n' && c != '\r')) return i;
      ++i;
      continue;
    }
    size_t length = (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
    if (length == 0 || text.size() - i < length) return i;
    uint32_t code_point = c & (0x7f >> length);
    for (size_t k = 1; k < length; ++k) {
      const unsigned char next = static_cast<unsigned char>(text[i + k]);
      if ((next & 0xc0) != 0x80) return i;
      code_point = (code_point << 6) | (next & 0x3f);
    }
    constexpr std::array<uint32_t, 5> kSmallest = {0, 0, 0x80, 0x800, 0x10000};
    if (code_point < kSmallest[length] || code_point > 0x10ffff ||
        (code_point >= 0xd800 && code_point <= 0xdfff) || code_point <= 0x9f) {
      return i;
    }
    i += length;
  }
  return std::string_view::npos;
}

absl::Status CheckText(std::string_view field, std::string_view key, std::string_view value) {
  size_t bad = FindBadText(value);
  if (bad == std::string_view::npos) return absl::OkStatus();
  return absl::InvalidArgumentError(
      StrCat(FieldOf(field, key), " has a control character or invalid UTF-8 at byte ", bad,
             ": expected UTF-8 text (tabs and line breaks are allowed)"));
}

absl::StatusOr<int> ParseVcpus(std::string_view value) {
  if (value.empty() || value.size() > 3 || value.front() == '0')
    return absl::InvalidArgumentError("");
  int count = 0;
  for (char c : value) {
    if (!IsDigit(c)) return absl::InvalidArgumentError("");
    count = count * 10 + (c - '0');
  }
  if (count < 1 || count > kMaxVcpus) return absl::InvalidArgumentError("");
  return count;
}

// A QEMU CPU model name: "Skylake-Server-v4", "qemu64", "EPYC-Rome".
bool IsCpuModelName(std::string_view name) {
  if (name.empty() || name.size() > 64 || !IsAlnum(name.front())) return false;
  for (char c : name) {
    if (!IsAlnum(c) && c != '-' && c != '_' && c != '.') return false;
  }
  return true;
}

// "7.2", "8.0", "2.12.1".
bool IsMachineVersion(std::string_view version) {
  if (version.empty() || !IsDigit(version.front()) || !IsDigit(version.back())) return false;
  bool dot = false;
  for (size_t i = 0; i < version.size(); ++i) {
    if (version[i] == '.') {
      if (version[i - 1] == '.') return false;
      dot = true;
    } else if (!IsDigit(version[i])) {
      return false;
    }
  }
  return dot;
}

bool IsMachineType(std::string_view type) {
  if (type == "pc" || type == "q35") return true;
  for (std::string_view family : {"pc-q35-", "pc-i440fx-"}) {
    if (type.starts_with(family)) return IsMachineVersion(type.substr(family.size()));
  }
  return false;
}

bool IsUserDataHeader(std::string_view text) {
  for (std::string_view header :
       {"#cloud-config", "#!", "#include", "#cloud-boothook", "#part-handler", "#upstart-job",
        "## template: jinja", "Content-Type: multipart/"}) {
    if (text.starts_with(header)) return true;
  }
  return false;
}

// Deepest nesting of flow collections, ignoring quoting (an overestimate).
int FlowNesting(std::string_view text) {
  int depth = 0, deepest = 0;
  for (char c : text) {
    if (c == '[' || c == '{') deepest = std::max(deepest, ++depth);
    if ((c == ']' || c == '}') && depth > 0) --depth;
  }
  return deepest;
}

// cloud-init network config: a YAML map with `version: 1` or `2`, at the top
// or under `network:`.
absl::Status CheckNetworkConfig(std::string_view field, std::string_view key,
                                std::string_view value) {
  constexpr std::string_view kExpected =
      "a YAML map with \"version: 1\" or \"version: 2\" (cloud-init network config), at the top "
      "or under \"network:\"";
  if (FlowNesting(value) > kMaxYamlNesting) {
    return BadValue(
        field, key, value,
        StrCat(kExpected, ", with flow collections nested at most ", kMaxYamlNesting, " deep"));
  }
  YAML::Node doc;
  try {
    doc = YAML::Load(std::string(value));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(
        StrCat(FieldOf(field, key), " is not YAML (", e.what(), "): expected ", kExpected));
  }
  try {
    if (doc.IsMap() && doc["network"] && doc["network"].IsMap()) doc = doc["network"];
    if (doc.IsMap() && doc["version"] && doc["version"].IsScalar()) {
      const std::string version = doc["version"].Scalar();
      if (version == "1" || version == "2") return absl::OkStatus();
    }
  } catch (const std::exception& e) {
    // Falls through to the error below.
  }
  return BadValue(field, key, value, kExpected);
}

bool IsSshKeyType(std::string_view type) {
  for (std::string_view known :
       {"ssh-ed25519", "ssh-rsa", "ssh-dss", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521", "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com"}) {
    if (type == known) return true;
  }
  return false;
}

bool IsBase64(std::string_view text) {
  if (text.empty()) return false;
  for (char c : text) {
    if (!IsAlnum(c) && c != '+' && c != '/' && c != '=') return false;
  }
  return true;
}

// One key per line; blank lines and "#" comments are skipped.
absl::StatusOr<std::vector<std::string>> ParseSshKeys(std::string_view field, std::string_view key,
                                                      std::string_view value) {
  std::vector<std::string> keys;
  size_t start = 0;
  int line_number = 0;
  while (start < value.size()) {
    size_t end = value.find('\n', start);
    if (end == std::string_view::npos) end = value.size();
    std::string_view line = value.substr(start, end - start);
    start = end + 1;
    ++line_number;
    if (line.ends_with('\r')) line.remove_suffix(1);
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
    while (!line.empty() && (line.back() == ' ' || line.back() == '\t')) line.remove_suffix(1);
    if (line.empty() || line.front() == '#') continue;
    if (line.size() > kMaxSshKeyBytes) {
      return absl::InvalidArgumentError(StrCat(FieldOf(field, key), " line ", line_number, " is ",
                                               line.size(), " bytes: expected at most ",
                                               kMaxSshKeyBytes, " bytes per key"));
    }
    size_t space = line.find(' ');
    std::string_view type = line.substr(0, space);
    std::string_view rest = space == std::string_view::npos ? "" : line.substr(space + 1);
    std::string_view blob = rest.substr(0, rest.find(' '));
    if (!IsSshKeyType(type) || !IsBase64(blob) || FindBadText(line) != std::string_view::npos ||
        line.find('\t') != std::string_view::npos) {
      return absl::InvalidArgumentError(
          StrCat(FieldOf(field, key), " line ", line_number, " ", Quote(line),
                 " is invalid: expected an authorized key \"<type> <base64> [comment]\" with type "
                 "ssh-ed25519, ssh-rsa, ecdsa-sha2-nistp256/384/521 or an sk- type"));
    }
    if (keys.size() == kMaxSshKeys) {
      return absl::InvalidArgumentError(StrCat(FieldOf(field, key), " has more than ", kMaxSshKeys,
                                               " keys: expected at most ", kMaxSshKeys));
    }
    keys.emplace_back(line);
  }
  if (keys.empty()) {
    return absl::InvalidArgumentError(
        StrCat(FieldOf(field, key), " holds no key: expected authorized SSH keys, one per line"));
  }
  return keys;
}

// One key's value into `tunables`.
absl::Status ParseKey(std::string_view field, std::string_view key, std::string_view value,
                      VmTunables* tunables) {
  vmspec::Machine& machine = tunables->machine;
  if (key == kVcpus) {
    absl::StatusOr<int> vcpus = ParseVcpus(value);
    if (!vcpus.ok()) return BadValue(field, key, value, "an integer from 1 to 512");
    tunables->vcpus = *vcpus;
  } else if (key == kMemory) {
    absl::StatusOr<uint64_t> bytes = ParseByteQuantity(value);
    if (!bytes.ok() || *bytes < kMinMemoryBytes) {
      return BadValue(field, key, value, "a quantity of bytes of at least 16Mi, such as 4Gi");
    }
    tunables->memory_bytes = *bytes;
  } else if (key == kRootDiskSize) {
    absl::StatusOr<uint64_t> bytes = ParseByteQuantity(value);
    if (!bytes.ok()) return BadValue(field, key, value, "a quantity of bytes such as 20Gi");
    tunables->root_disk_bytes = *bytes;
  } else if (key == kCpuModel) {
    if (value == "host-passthrough" || value == "host-model") {
      machine.mutable_cpu()->set_mode(std::string(value));
    } else if (IsCpuModelName(value)) {
      machine.mutable_cpu()->set_mode("custom");
      machine.mutable_cpu()->set_model(std::string(value));
    } else {
      return BadValue(field, key, value,
                      "\"host-passthrough\", \"host-model\" or a QEMU CPU model name such as "
                      "\"Skylake-Server\" (letters, digits, '-', '_', '.')");
    }
  } else if (key == kMachine) {
    if (!IsMachineType(value)) {
      return BadValue(field, key, value,
                      "a QEMU machine type: \"pc\", \"q35\" or a versioned one such as "
                      "\"pc-q35-7.2\" or \"pc-i440fx-7.2\"");
    }
    machine.set_machine_type(std::string(value));
  } else if (key == kFirmware) {
    if (value == "bios" || value == "uefi") {
      machine.mutable_firmware()->set_type(std::string(value));
    } else if (value == "uefi-secure") {
      machine.mutable_firmware()->set_type("uefi");
      machine.mutable_firmware()->set_secure_boot(true);
    } else {
      return BadValue(field, key, value, "\"bios\", \"uefi\" or \"uefi-secure\"");
    }
  } else if (key == kDiskBus) {
    if (value != "virtio" && value != "scsi" && value != "sata") {
      return BadValue(field, key, value, "\"virtio\", \"scsi\" or \"sata\"");
    }
    vmspec::Disk* root = machine.add_disks();
    root->set_name("root");
    root->mutable_root();
    root->set_bus(std::string(value));
  } else if (key == kNicModel) {
    if (value != "virtio" && value != "e1000" && value != "e1000e" && value != "rtl8139") {
      return BadValue(field, key, value, "\"virtio\", \"e1000\", \"e1000e\" or \"rtl8139\"");
    }
    machine.add_nics()->set_model(std::string(value));
  } else if (key == kCloudInitUserData) {
    VMLET_RETURN_IF_ERROR(CheckText(field, key, value));
    if (!IsUserDataHeader(value)) {
      return BadValue(field, key, value,
                      "cloud-init user-data starting with a format header: \"#cloud-config\", "
                      "\"#!\", \"#include\", \"#cloud-boothook\", \"## template: jinja\" or "
                      "\"Content-Type: multipart/\"");
    }
    machine.mutable_cloud_init()->set_user_data(std::string(value));
  } else if (key == kCloudInitNetworkConfig) {
    VMLET_RETURN_IF_ERROR(CheckText(field, key, value));
    VMLET_RETURN_IF_ERROR(CheckNetworkConfig(field, key, value));
    machine.mutable_cloud_init()->set_network_config(std::string(value));
  } else if (key == kSshKeys) {
    VMLET_ASSIGN_OR_RETURN(std::vector<std::string> keys, ParseSshKeys(field, key, value));
    for (std::string& ssh_key : keys) {
      machine.mutable_cloud_init()->add_ssh_authorized_keys(std::move(ssh_key));
    }
  } else if (key == kVmSpec) {
    if (!IsDns1123Subdomain(value)) {
      return BadValue(field, key, value,
                      "the name of a VM spec of the pod's namespace (a DNS-1123 subdomain: at most "
                      "253 characters of a-z, 0-9, '-' and '.', starting and ending alphanumeric)");
    }
    tunables->vmspec = std::string(value);
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<uint64_t> ParseByteQuantity(std::string_view value) {
  double multiplier = 1;
  std::string_view number = value;
  for (const auto& [suffix, factor] : kSuffixes) {
    if (number.ends_with(suffix)) {
      number.remove_suffix(suffix.size());
      multiplier = factor;
      break;
    }
  }
  if (number.empty() || number.size() > 32 ||
      number.find_first_not_of("0123456789.") != std::string_view::npos || number.front() == '.' ||
      number.find('.') != number.rfind('.')) {
    return absl::InvalidArgumentError(
        StrCat("\"", value, "\" is not a quantity of bytes such as 20Gi, 512Mi or 1073741824"));
  }
  std::string digits(number);
  double bytes = std::strtod(digits.c_str(), nullptr) * multiplier;
  if (!std::isfinite(bytes) || bytes < 1 || bytes > 9.0e18) {
    return absl::InvalidArgumentError(
        StrCat("\"", value, "\" is out of range: expected 1 byte to 8 EiB"));
  }
  return static_cast<uint64_t>(std::ceil(bytes));
}

bool IsDns1123Subdomain(std::string_view name) {
  if (name.empty() || name.size() > 253) return false;
  size_t start = 0;
  while (start <= name.size()) {
    size_t end = name.find('.', start);
    if (end == std::string_view::npos) end = name.size();
    std::string_view part = name.substr(start, end - start);
    if (part.empty() || !IsLowerAlnum(part.front()) || !IsLowerAlnum(part.back())) return false;
    for (char c : part) {
      if (!IsLowerAlnum(c) && c != '-') return false;
    }
    start = end + 1;
  }
  return true;
}

absl::StatusOr<VmTunables> ParseVmTunables(const std::map<std::string, std::string>& annotations,
                                           std::string_view field, Scope scope) {
  VmTunables tunables;
  size_t total = 0;
  for (const auto& [key, value] : annotations) {
    if (!key.starts_with(kPrefix)) continue;
    total += key.size() + value.size();
    if (total > kMaxTotalBytes) {
      return absl::InvalidArgumentError(
          StrCat(field, " has more than ", kMaxTotalBytes, " bytes under \"", kPrefix, "\" (at ",
                 FieldOf(field, key), "): expected at most 256 KiB in all"));
    }
  }
  for (const auto& [key, value] : annotations) {
    if (!key.starts_with(kPrefix)) continue;
    if (!IsKnownKey(key)) {
      return absl::InvalidArgumentError(StrCat(FieldOf(field, key),
                                               " is not a vmlet annotation: known keys under \"",
                                               kPrefix, "\" are ", kKnownKeys));
    }
    if (scope == Scope::kContainer && IsPodKey(key)) {
      return absl::InvalidArgumentError(
          StrCat(FieldOf(field, key),
                 " is a pod annotation: expected it on the pod (PodSandboxConfig.annotations), "
                 "not on a container"));
    }
    const size_t max_bytes = MaxBytesOf(key);
    if (value.size() > max_bytes) {
      return absl::InvalidArgumentError(StrCat(FieldOf(field, key), " ", Quote(value), " is ",
                                               value.size(), " bytes: expected at most ", max_bytes,
                                               " bytes"));
    }
    VMLET_RETURN_IF_ERROR(ParseKey(field, key, value, &tunables));
  }
  return tunables;
}

}  // namespace vmlet::annotations
