#include "network/cloud_init.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <exception>
#include <optional>
#include <string_view>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "base/scope_guard.h"
#include "base/status.h"
#include "base/str_util.h"
#include "network/iso_image.h"

namespace vmlet::network {
namespace {

constexpr size_t kMaxSeedBytes = 256 * 1024;
constexpr size_t kMaxDocumentBytes = 64 * 1024;  // user_data, network_config, meta_data
constexpr size_t kMaxSshKeyBytes = 8 * 1024;
// Flow collections ("[[[...") of meta_data nested deeper than this are
// refused before yaml-cpp, which recurses per level, parses it.
constexpr int kMaxYamlNesting = 64;
constexpr size_t kMaxDnsName = 253;
constexpr size_t kMaxDnsLabel = 63;
constexpr size_t kMaxInterfaceName = 15;  // IFNAMSIZ - 1
constexpr int kMinMtu = 68;
constexpr int kMaxMtu = 65535;
constexpr char kEmptyCloudConfig[] = "#cloud-config\n{}\n";

absl::Status Invalid(std::string_view field, std::string_view value, std::string_view expected) {
  return absl::InvalidArgumentError(
      StrCat("invalid cloud-init seed: ", field, " \"", value, "\" is not ", expected));
}

// The offset of the first control character (C0, DEL, C1) or byte of invalid
// UTF-8 in `text`, or npos. Tabs and line breaks pass when `multiline`.
size_t FindBadCharacter(std::string_view text, bool multiline) {
  size_t i = 0;
  while (i < text.size()) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      const bool line_char = c == '\t' || c == '\n' || c == '\r';
      if (c == 0x7f || (c < 0x20 && !(multiline && line_char))) return i;
      ++i;
      continue;
    }
    size_t length;
    uint32_t code_point;
    uint32_t smallest;
    if ((c & 0xe0) == 0xc0) {
      length = 2;
      code_point = c & 0x1f;
      smallest = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
      length = 3;
      code_point = c & 0x0f;
      smallest = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
      length = 4;
      code_point = c & 0x07;
      smallest = 0x10000;
    } else {
      return i;
    }
    if (text.size() - i < length) return i;
    for (size_t k = 1; k < length; ++k) {
      const unsigned char next = static_cast<unsigned char>(text[i + k]);
      if ((next & 0xc0) != 0x80) return i;
      code_point = (code_point << 6) | (next & 0x3f);
    }
    if (code_point < smallest || code_point > 0x10ffff ||
        (code_point >= 0xd800 && code_point <= 0xdfff) || code_point <= 0x9f) {
      return i;
    }
    i += length;
  }
  return std::string_view::npos;
}

absl::Status CheckText(std::string_view field, std::string_view value) {
  size_t bad = FindBadCharacter(value, /*multiline=*/false);
  if (bad == std::string_view::npos) return absl::OkStatus();
  return absl::InvalidArgumentError(
      StrCat("invalid cloud-init seed: ", field, " \"", absl::CHexEscape(std::string(value)),
             "\" has a control character or invalid UTF-8 at byte ", bad));
}

struct IpAddress {
  int family = 0;  // AF_INET or AF_INET6
  std::array<unsigned char, 16> bytes{};
  size_t size() const { return family == AF_INET ? 4 : 16; }
};

std::optional<IpAddress> ParseIp(const std::string& text) {
  IpAddress ip;
  for (int family : {AF_INET, AF_INET6}) {
    if (::inet_pton(family, text.c_str(), ip.bytes.data()) == 1) {
      ip.family = family;
      return ip;
    }
  }
  return std::nullopt;
}

struct Cidr {
  IpAddress ip;
  int prefix = 0;
  // Whether bits of the address beyond the prefix are set ("10.0.0.5/8").
  bool HasHostBits() const {
    for (size_t bit = static_cast<size_t>(prefix); bit < ip.size() * 8; ++bit) {
      if (ip.bytes[bit / 8] & (0x80 >> (bit % 8))) return true;
    }
    return false;
  }
};

std::optional<Cidr> ParseCidr(const std::string& text) {
  size_t slash = text.find('/');
  if (slash == std::string::npos) return std::nullopt;
  std::optional<IpAddress> ip = ParseIp(text.substr(0, slash));
  std::string_view prefix = std::string_view(text).substr(slash + 1);
  if (!ip || prefix.empty() || prefix.size() > 3) return std::nullopt;
  int bits = 0;
  for (char c : prefix) {
    if (c < '0' || c > '9') return std::nullopt;
    bits = bits * 10 + (c - '0');
  }
  if (bits > static_cast<int>(ip->size() * 8)) return std::nullopt;
  return Cidr{*ip, bits};
}

// A DNS name as RFC 1123 has it: dot-separated labels of 1 to 63 letters,
// digits and hyphens, neither starting nor ending with a hyphen, at most 253
// characters. One trailing dot passes when `allow_root_dot`.
bool IsDnsName(std::string_view name, bool allow_root_dot) {
  if (allow_root_dot && name.size() > 1 && name.back() == '.') name.remove_suffix(1);
  if (name.empty() || name.size() > kMaxDnsName) return false;
  size_t start = 0;
  while (start <= name.size()) {
    size_t end = name.find('.', start);
    if (end == std::string_view::npos) end = name.size();
    std::string_view label = name.substr(start, end - start);
    if (label.empty() || label.size() > kMaxDnsLabel || label.front() == '-' ||
        label.back() == '-') {
      return false;
    }
    for (char c : label) {
      bool ok =
          (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
      if (!ok) return false;
    }
    start = end + 1;
  }
  return true;
}

bool IsMac(std::string_view mac) {
  if (mac.size() != 17) return false;
  for (size_t i = 0; i < mac.size(); ++i) {
    char c = mac[i];
    if (i % 3 == 2) {
      if (c != ':') return false;
    } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
      return false;
    }
  }
  return true;
}

// As Linux's dev_valid_name: 1 to 15 bytes, not "." or "..", no '/', ':' or
// white space.
bool IsInterfaceName(std::string_view name) {
  if (name.empty() || name.size() > kMaxInterfaceName || name == "." || name == "..") {
    return false;
  }
  return name.find_first_of("/: \t\n\v\f\r") == std::string_view::npos;
}

std::string Lower(std::string text) {
  for (char& c : text) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return text;
}

// A resolv.conf option: "edns0" (no value) or "ndots:5".
struct DnsOption {
  std::string name;
  std::optional<int> value;
};

std::optional<DnsOption> ParseDnsOption(std::string_view text) {
  size_t colon = text.find(':');
  DnsOption option{std::string(text.substr(0, colon)), std::nullopt};
  if (option.name.empty() || option.name.front() == '-') return std::nullopt;
  for (char c : option.name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_';
    if (!ok) return std::nullopt;
  }
  if (colon == std::string_view::npos) return option;
  std::string_view digits = text.substr(colon + 1);
  if (digits.empty() || digits.size() > 9) return std::nullopt;
  int value = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + (c - '0');
  }
  option.value = value;
  return option;
}

// The options in order of first appearance; a repeated one keeps its last
// value, as the resolver does. Options that do not parse are left out
// (ValidateCloudInitSeed refuses them).
std::vector<DnsOption> DnsOptions(const std::vector<std::string>& texts) {
  std::vector<DnsOption> options;
  for (const std::string& text : texts) {
    std::optional<DnsOption> option = ParseDnsOption(text);
    if (!option) continue;
    bool replaced = false;
    for (DnsOption& existing : options) {
      if (existing.name == option->name) {
        existing.value = option->value;
        replaced = true;
      }
    }
    if (!replaced) options.push_back(std::move(*option));
  }
  return options;
}

// Strings are always double-quoted so that none reads back as another type:
// YAML 1.1 (PyYAML, which cloud-init uses) takes "yes" as a boolean, "123"
// as an integer and "52:54:00:12:34:56" as a base-60 integer.
void EmitString(YAML::Emitter& out, const std::string& value) {
  out << YAML::DoubleQuoted << value;
}

void EmitStrings(YAML::Emitter& out, const char* key, const std::vector<std::string>& values) {
  out << YAML::Key << key << YAML::Value << YAML::BeginSeq;
  for (const std::string& value : values) EmitString(out, value);
  out << YAML::EndSeq;
}

// yaml-cpp leaves out the final line break.
std::string Document(const YAML::Emitter& out) { return StrCat(out.c_str(), "\n"); }

std::string RenderUserData(const CloudInitSeed& seed) {
  return seed.user_data.empty() ? std::string(kEmptyCloudConfig) : seed.user_data;
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

// meta_data as a YAML map; an empty one for "". Errors name meta_data.
absl::StatusOr<YAML::Node> ParseMetaData(const std::string& meta_data) {
  if (meta_data.empty()) return YAML::Node(YAML::NodeType::Map);
  if (FlowNesting(meta_data) > kMaxYamlNesting) {
    return absl::InvalidArgumentError(
        StrCat("invalid cloud-init seed: meta_data nests flow collections deeper than ",
               kMaxYamlNesting, ": expected a plain YAML map"));
  }
  YAML::Node node;
  try {
    node = YAML::Load(meta_data);
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(
        StrCat("invalid cloud-init seed: meta_data is not YAML (", e.what(), "): expected a map"));
  }
  if (node.IsNull()) return YAML::Node(YAML::NodeType::Map);
  if (!node.IsMap()) {
    return absl::InvalidArgumentError(
        "invalid cloud-init seed: meta_data is not a YAML map: expected \"key: value\" lines");
  }
  return node;
}

bool IsVmletMetaDataKey(const std::string& key) {
  return key == "instance-id" || key == "local-hostname" || key == "public-keys";
}

absl::Status ValidateUserDocuments(const CloudInitSeed& seed) {
  const std::pair<const char*, const std::string*> documents[] = {
      {"user_data", &seed.user_data},
      {"network_config", &seed.network_config},
      {"meta_data", &seed.meta_data}};
  for (const auto& [name, text] : documents) {
    if (text->size() > kMaxDocumentBytes) {
      return absl::InvalidArgumentError(StrCat("invalid cloud-init seed: ", name, " is ",
                                               text->size(), " bytes, more than the ",
                                               kMaxDocumentBytes, " allowed"));
    }
    size_t bad = FindBadCharacter(*text, /*multiline=*/true);
    if (bad != std::string_view::npos) {
      return absl::InvalidArgumentError(StrCat("invalid cloud-init seed: ", name,
                                               " has a control character or invalid UTF-8 at byte ",
                                               bad, " (tabs and line breaks are allowed)"));
    }
  }
  for (size_t i = 0; i < seed.ssh_authorized_keys.size(); ++i) {
    const std::string& key = seed.ssh_authorized_keys[i];
    const std::string field = StrCat("ssh_authorized_keys[", i, "]");
    if (key.empty() || key.size() > kMaxSshKeyBytes) {
      return absl::InvalidArgumentError(StrCat("invalid cloud-init seed: ", field, " is ",
                                               key.size(), " bytes: expected 1 to ",
                                               kMaxSshKeyBytes));
    }
    VMLET_RETURN_IF_ERROR(CheckText(field, key));
  }
  return ParseMetaData(seed.meta_data).status();
}

absl::Status ValidateNic(const CloudInitSeed& seed) {
  if (seed.mac.empty()) {
    // A pod without network has no NIC to configure.
    const char* given = !seed.addresses.empty() ? "addresses"
                        : !seed.routes.empty()  ? "routes"
                        : seed.mtu != 0         ? "mtu"
                                                : nullptr;
    if (given != nullptr) {
      return absl::InvalidArgumentError(
          StrCat("invalid cloud-init seed: ", given, " given but mac \"\" names no NIC"));
    }
    return absl::OkStatus();
  }
  if (!IsMac(seed.mac)) return Invalid("mac", seed.mac, "a MAC address like \"52:54:00:12:34:56\"");
  if (!IsInterfaceName(seed.interface_name)) {
    return Invalid("interface_name", seed.interface_name,
                   "a Linux interface name (1 to 15 characters, no '/', ':' or spaces)");
  }
  for (size_t i = 0; i < seed.addresses.size(); ++i) {
    if (!ParseCidr(seed.addresses[i])) {
      return Invalid(StrCat("addresses[", i, "]"), seed.addresses[i],
                     "an IP address with a prefix length like \"10.99.0.5/24\" or \"fd00::5/64\"");
    }
  }
  for (size_t i = 0; i < seed.routes.size(); ++i) {
    const SeedRoute& route = seed.routes[i];
    std::optional<Cidr> destination = ParseCidr(route.destination);
    if (!destination) {
      return Invalid(StrCat("routes[", i, "].destination"), route.destination,
                     "a network like \"10.96.0.0/12\", \"0.0.0.0/0\" or \"::/0\"");
    }
    if (destination->HasHostBits()) {
      return Invalid(StrCat("routes[", i, "].destination"), route.destination,
                     "a network: it has bits set beyond its prefix length");
    }
    std::optional<IpAddress> gateway = ParseIp(route.gateway);
    if (!gateway || gateway->family != destination->ip.family) {
      return Invalid(StrCat("routes[", i, "].gateway"), route.gateway,
                     "an IP address of the same family as the route's destination");
    }
  }
  if (seed.mtu < 0 || (seed.mtu > 0 && (seed.mtu < kMinMtu || seed.mtu > kMaxMtu))) {
    return absl::InvalidArgumentError(StrCat("invalid cloud-init seed: mtu ", seed.mtu,
                                             " is not 0 (unset) or between 68 and 65535"));
  }
  return absl::OkStatus();
}

absl::Status ValidateDns(const CloudInitSeed& seed) {
  for (size_t i = 0; i < seed.dns_servers.size(); ++i) {
    if (!ParseIp(seed.dns_servers[i])) {
      return Invalid(StrCat("dns_servers[", i, "]"), seed.dns_servers[i],
                     "an IPv4 or IPv6 address");
    }
  }
  for (size_t i = 0; i < seed.search_domains.size(); ++i) {
    if (!IsDnsName(seed.search_domains[i], /*allow_root_dot=*/true)) {
      return Invalid(StrCat("search_domains[", i, "]"), seed.search_domains[i],
                     "a DNS name (RFC 1123, at most 253 characters)");
    }
  }
  for (size_t i = 0; i < seed.dns_options.size(); ++i) {
    if (!ParseDnsOption(seed.dns_options[i])) {
      return Invalid(StrCat("dns_options[", i, "]"), seed.dns_options[i],
                     "a resolv.conf option like \"edns0\" or \"ndots:5\"");
    }
  }
  return absl::OkStatus();
}

absl::Status CheckAllText(const CloudInitSeed& seed) {
  VMLET_RETURN_IF_ERROR(CheckText("instance_id", seed.instance_id));
  VMLET_RETURN_IF_ERROR(CheckText("hostname", seed.hostname));
  VMLET_RETURN_IF_ERROR(CheckText("mac", seed.mac));
  VMLET_RETURN_IF_ERROR(CheckText("interface_name", seed.interface_name));
  const std::pair<const char*, const std::vector<std::string>*> lists[] = {
      {"addresses", &seed.addresses},
      {"dns_servers", &seed.dns_servers},
      {"search_domains", &seed.search_domains},
      {"dns_options", &seed.dns_options}};
  for (const auto& [name, values] : lists) {
    for (size_t i = 0; i < values->size(); ++i) {
      VMLET_RETURN_IF_ERROR(CheckText(StrCat(name, "[", i, "]"), (*values)[i]));
    }
  }
  for (size_t i = 0; i < seed.routes.size(); ++i) {
    VMLET_RETURN_IF_ERROR(
        CheckText(StrCat("routes[", i, "].destination"), seed.routes[i].destination));
    VMLET_RETURN_IF_ERROR(CheckText(StrCat("routes[", i, "].gateway"), seed.routes[i].gateway));
  }
  return ValidateUserDocuments(seed);
}

}  // namespace

absl::Status ValidateCloudInitSeed(const CloudInitSeed& seed) {
  if (seed.instance_id.empty()) {
    return absl::InvalidArgumentError("invalid cloud-init seed: instance_id \"\" is empty");
  }
  VMLET_RETURN_IF_ERROR(CheckAllText(seed));
  if (!seed.hostname.empty() && !IsDnsName(seed.hostname, /*allow_root_dot=*/false)) {
    return Invalid("hostname", seed.hostname,
                   "a DNS name (RFC 1123, labels of letters, digits and '-', <= 253 chars)");
  }
  VMLET_RETURN_IF_ERROR(ValidateNic(seed));
  VMLET_RETURN_IF_ERROR(ValidateDns(seed));
  size_t total = RenderMetaData(seed).size() + RenderNetworkConfig(seed).size() +
                 RenderVendorData(seed).size() + RenderUserData(seed).size();
  if (total > kMaxSeedBytes) {
    return absl::InvalidArgumentError(StrCat("invalid cloud-init seed: the seed's files take ",
                                             total, " bytes, more than the ", kMaxSeedBytes,
                                             " allowed (user_data is the usual cause)"));
  }
  return absl::OkStatus();
}

std::string RenderMetaData(const CloudInitSeed& seed) {
  YAML::Emitter out;
  out << YAML::BeginMap << YAML::Key << "instance-id" << YAML::Value;
  EmitString(out, seed.instance_id);
  if (!seed.hostname.empty()) {
    out << YAML::Key << "local-hostname" << YAML::Value;
    EmitString(out, seed.hostname);
  }
  if (!seed.ssh_authorized_keys.empty()) {
    EmitStrings(out, "public-keys", seed.ssh_authorized_keys);
  }
  // A seed that failed validation adds nothing of meta_data.
  absl::StatusOr<YAML::Node> extra = ParseMetaData(seed.meta_data);
  if (extra.ok()) {
    for (const auto& entry : *extra) {
      if (!entry.first.IsScalar() || IsVmletMetaDataKey(entry.first.Scalar())) continue;
      out << YAML::Key << entry.first << YAML::Value << entry.second;
    }
  }
  out << YAML::EndMap;
  return Document(out);
}

std::string RenderNetworkConfig(const CloudInitSeed& seed) {
  if (!seed.network_config.empty()) {
    return seed.network_config.back() == '\n' ? seed.network_config
                                              : StrCat(seed.network_config, "\n");
  }
  YAML::Emitter out;
  out << YAML::BeginMap << YAML::Key << "version" << YAML::Value << 2;
  if (!seed.mac.empty()) {
    out << YAML::Key << "ethernets" << YAML::Value << YAML::BeginMap << YAML::Key;
    EmitString(out, seed.interface_name);
    out << YAML::Value << YAML::BeginMap;
    out << YAML::Key << "match" << YAML::Value << YAML::BeginMap << YAML::Key << "macaddress"
        << YAML::Value;
    EmitString(out, Lower(seed.mac));
    out << YAML::EndMap << YAML::Key << "set-name" << YAML::Value;
    EmitString(out, seed.interface_name);
    if (seed.addresses.empty()) {
      out << YAML::Key << "dhcp4" << YAML::Value << true;
    } else {
      EmitStrings(out, "addresses", seed.addresses);
    }
    if (seed.mtu > 0) out << YAML::Key << "mtu" << YAML::Value << seed.mtu;
    if (!seed.routes.empty()) {
      out << YAML::Key << "routes" << YAML::Value << YAML::BeginSeq;
      for (const SeedRoute& route : seed.routes) {
        out << YAML::BeginMap << YAML::Key << "to" << YAML::Value;
        EmitString(out, route.destination);
        out << YAML::Key << "via" << YAML::Value;
        EmitString(out, route.gateway);
        out << YAML::EndMap;
      }
      out << YAML::EndSeq;
    }
    if (!seed.dns_servers.empty() || !seed.search_domains.empty()) {
      out << YAML::Key << "nameservers" << YAML::Value << YAML::BeginMap;
      if (!seed.dns_servers.empty()) EmitStrings(out, "addresses", seed.dns_servers);
      if (!seed.search_domains.empty()) EmitStrings(out, "search", seed.search_domains);
      out << YAML::EndMap;
    }
    out << YAML::EndMap << YAML::EndMap;
  }
  out << YAML::EndMap;
  return Document(out);
}

std::string RenderVendorData(const CloudInitSeed& seed) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  if (!seed.hostname.empty()) {
    out << YAML::Key << "hostname" << YAML::Value;
    EmitString(out, seed.hostname.substr(0, seed.hostname.find('.')));
    if (seed.hostname.find('.') != std::string::npos) {
      out << YAML::Key << "fqdn" << YAML::Value;
      EmitString(out, seed.hostname);
    }
    out << YAML::Key << "preserve_hostname" << YAML::Value << false;
  }
  if (!seed.dns_servers.empty() || !seed.search_domains.empty() || !seed.dns_options.empty()) {
    out << YAML::Key << "manage_resolv_conf" << YAML::Value << true;
    out << YAML::Key << "resolv_conf" << YAML::Value << YAML::BeginMap;
    if (!seed.dns_servers.empty()) EmitStrings(out, "nameservers", seed.dns_servers);
    if (!seed.search_domains.empty()) EmitStrings(out, "searchdomains", seed.search_domains);
    std::vector<DnsOption> options = DnsOptions(seed.dns_options);
    if (!options.empty()) {
      out << YAML::Key << "options" << YAML::Value << YAML::BeginMap;
      for (const DnsOption& option : options) {
        out << YAML::Key;
        EmitString(out, option.name);
        out << YAML::Value;
        if (option.value) {
          out << *option.value;
        } else {
          out << true;
        }
      }
      out << YAML::EndMap;
    }
    out << YAML::EndMap;
  }
  out << YAML::EndMap;
  return StrCat("#cloud-config\n", Document(out));
}

absl::Status WriteNoCloudSeed(const std::string& path, const CloudInitSeed& seed) {
  VMLET_RETURN_IF_ERROR(ValidateCloudInitSeed(seed));
  return Annotate(WriteIsoImage(path, "cidata",
                                {
                                    {"meta-data", RenderMetaData(seed)},
                                    {"user-data", RenderUserData(seed)},
                                    {"network-config", RenderNetworkConfig(seed)},
                                    {"vendor-data", RenderVendorData(seed)},
                                }),
                  "writing the cloud-init seed");
}

}  // namespace vmlet::network
