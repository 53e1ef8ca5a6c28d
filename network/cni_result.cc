#include "network/cni_result.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <optional>

#include <nlohmann/json.hpp>

#include "base/status.h"
#include "base/str_util.h"

namespace vmlet::network {
namespace {

using Json = nlohmann::json;

constexpr std::array<std::string_view, 7> kCniVersions = {"0.1.0", "0.2.0", "0.3.0", "0.3.1",
                                                          "0.4.0", "1.0.0", "1.1.0"};

int VersionIndex(std::string_view version) {
  auto it = std::find(kCniVersions.begin(), kCniVersions.end(), version);
  return it == kCniVersions.end() ? -1 : static_cast<int>(it - kCniVersions.begin());
}

// A JSON value as shown in an error message, shortened.
std::string Shown(const Json& value) {
  std::string text = value.dump(-1, ' ', false, Json::error_handler_t::replace);
  if (text.size() > 80) text = StrCat(text.substr(0, 77), "...");
  return text;
}

// `value` is nullptr when the field is missing.
absl::Status Expected(std::string_view field, std::string_view what, const Json* value) {
  if (value == nullptr) {
    return absl::InvalidArgumentError(
        StrCat("CNI result: \"", field, "\" must be ", what, ", but it is missing"));
  }
  return absl::InvalidArgumentError(
      StrCat("CNI result: \"", field, "\" must be ", what, ", not ", Shown(*value)));
}

// The member `key` of `object`; nullptr when it is missing or null.
const Json* Member(const Json& object, const std::string& key) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return nullptr;
  return &*it;
}

absl::StatusOr<std::string> GetString(const Json& object, const std::string& key,
                                      std::string_view field, bool required) {
  const Json* value = Member(object, key);
  if (value == nullptr && !required) return std::string();
  if (value == nullptr || !value->is_string()) return Expected(field, "a string", value);
  return value->get<std::string>();
}

absl::StatusOr<std::vector<std::string>> GetStrings(const Json& object, const std::string& key,
                                                    std::string_view field) {
  std::vector<std::string> strings;
  const Json* value = Member(object, key);
  if (value == nullptr) return strings;
  if (!value->is_array()) return Expected(field, "an array of strings", value);
  for (const Json& element : *value) {
    if (!element.is_string()) return Expected(field, "an array of strings", value);
    strings.push_back(element.get<std::string>());
  }
  return strings;
}

// The array `key` of `object` (empty when missing).
absl::StatusOr<std::vector<const Json*>> GetObjects(const Json& object, const std::string& key) {
  std::vector<const Json*> objects;
  const Json* value = Member(object, key);
  if (value == nullptr) return objects;
  if (!value->is_array()) return Expected(key, "an array of objects", value);
  for (const Json& element : *value) {
    if (!element.is_object()) return Expected(key, "an array of objects", value);
    objects.push_back(&element);
  }
  return objects;
}

// 0 when `text` is not an IP address, else 4 or 6.
int IpFamily(const std::string& text) {
  in6_addr buffer;
  if (::inet_pton(AF_INET, text.c_str(), &buffer) == 1) return 4;
  if (::inet_pton(AF_INET6, text.c_str(), &buffer) == 1) return 6;
  return 0;
}

struct Cidr {
  std::string address;
  int prefix_length = 0;
  bool ipv6 = false;
};

std::optional<Cidr> ParseCidr(std::string_view text) {
  size_t slash = text.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  Cidr cidr;
  cidr.address = std::string(text.substr(0, slash));
  std::string_view prefix = text.substr(slash + 1);
  auto [end, error] =
      std::from_chars(prefix.data(), prefix.data() + prefix.size(), cidr.prefix_length);
  int family = IpFamily(cidr.address);
  if (prefix.empty() || error != std::errc() || end != prefix.data() + prefix.size() ||
      family == 0 || cidr.prefix_length < 0 || cidr.prefix_length > (family == 6 ? 128 : 32)) {
    return std::nullopt;
  }
  cidr.ipv6 = family == 6;
  return cidr;
}

absl::StatusOr<Cidr> GetCidr(const Json& object, const std::string& key, std::string_view field) {
  const Json* value = Member(object, key);
  std::optional<Cidr> cidr;
  if (value != nullptr && value->is_string()) cidr = ParseCidr(value->get<std::string>());
  if (!cidr) return Expected(field, "an address with a prefix length like \"10.1.0.5/16\"", value);
  return *cidr;
}

// An optional IP address of the family `family` (4 or 6).
absl::StatusOr<std::string> GetIp(const Json& object, const std::string& key,
                                  std::string_view field, int family) {
  const Json* value = Member(object, key);
  if (value == nullptr) return std::string();
  if (!value->is_string() || IpFamily(value->get<std::string>()) != family) {
    return Expected(field, family == 4 ? "an IPv4 address" : "an IPv6 address", value);
  }
  return value->get<std::string>();
}

absl::StatusOr<CniRoute> ParseRoute(const Json& object, std::string_view field) {
  CniRoute route;
  VMLET_ASSIGN_OR_RETURN(Cidr destination, GetCidr(object, "dst", StrCat(field, ".dst")));
  route.destination = object["dst"].get<std::string>();
  VMLET_ASSIGN_OR_RETURN(route.gateway,
                         GetIp(object, "gw", StrCat(field, ".gw"), destination.ipv6 ? 6 : 4));
  return route;
}

absl::Status ParseRoutes(const Json& object, std::string_view field, CniResult* result) {
  const Json* routes = Member(object, "routes");
  if (routes == nullptr) return absl::OkStatus();
  if (!routes->is_array()) return Expected(field, "an array of objects", routes);
  for (size_t i = 0; i < routes->size(); ++i) {
    std::string route_field = StrCat(field, "[", i, "]");
    if (!(*routes)[i].is_object()) return Expected(route_field, "an object", &(*routes)[i]);
    VMLET_ASSIGN_OR_RETURN(CniRoute route, ParseRoute((*routes)[i], route_field));
    result->routes.push_back(std::move(route));
  }
  return absl::OkStatus();
}

// 0.1.0 and 0.2.0: {"ip4": {"ip", "gateway", "routes"}, "ip6": {...}}.
absl::Status ParseLegacyIps(const Json& doc, CniResult* result) {
  for (const char* key : {"ip4", "ip6"}) {
    const Json* config = Member(doc, key);
    if (config == nullptr) continue;
    if (!config->is_object()) return Expected(key, "an object", config);
    const int family = key[2] == '4' ? 4 : 6;
    const std::string field = StrCat(key, ".ip");
    VMLET_ASSIGN_OR_RETURN(Cidr cidr, GetCidr(*config, "ip", field));
    if ((family == 6) != cidr.ipv6) {
      return Expected(field, family == 4 ? "an IPv4 address" : "an IPv6 address", &(*config)["ip"]);
    }
    CniIp ip{.address = cidr.address, .prefix_length = cidr.prefix_length, .ipv6 = cidr.ipv6};
    VMLET_ASSIGN_OR_RETURN(ip.gateway, GetIp(*config, "gateway", StrCat(key, ".gateway"), family));
    result->ips.push_back(std::move(ip));
    VMLET_RETURN_IF_ERROR(ParseRoutes(*config, StrCat(key, ".routes"), result));
  }
  return absl::OkStatus();
}

// 0.3.0 and later: "interfaces", "ips" (with "version" before 1.0.0), "routes".
absl::Status ParseIps(const Json& doc, CniResult* result) {
  VMLET_ASSIGN_OR_RETURN(std::vector<const Json*> interfaces, GetObjects(doc, "interfaces"));
  for (size_t i = 0; i < interfaces.size(); ++i) {
    std::string field = StrCat("interfaces[", i, "]");
    CniInterface iface;
    VMLET_ASSIGN_OR_RETURN(iface.name, GetString(*interfaces[i], "name", StrCat(field, ".name"),
                                                 /*required=*/true));
    VMLET_ASSIGN_OR_RETURN(iface.mac, GetString(*interfaces[i], "mac", StrCat(field, ".mac"),
                                                /*required=*/false));
    VMLET_ASSIGN_OR_RETURN(iface.sandbox, GetString(*interfaces[i], "sandbox",
                                                    StrCat(field, ".sandbox"), /*required=*/false));
    result->interfaces.push_back(std::move(iface));
  }
  VMLET_ASSIGN_OR_RETURN(std::vector<const Json*> ips, GetObjects(doc, "ips"));
  for (size_t i = 0; i < ips.size(); ++i) {
    const Json& object = *ips[i];
    std::string field = StrCat("ips[", i, "]");
    VMLET_ASSIGN_OR_RETURN(Cidr cidr, GetCidr(object, "address", StrCat(field, ".address")));
    CniIp ip{.address = cidr.address, .prefix_length = cidr.prefix_length, .ipv6 = cidr.ipv6};
    const int family = cidr.ipv6 ? 6 : 4;
    VMLET_ASSIGN_OR_RETURN(ip.gateway, GetIp(object, "gateway", StrCat(field, ".gateway"), family));
    if (const Json* version = Member(object, "version"); version != nullptr) {
      if (*version != (cidr.ipv6 ? "6" : "4")) {
        return Expected(StrCat(field, ".version"),
                        cidr.ipv6 ? "\"6\" for an IPv6 address" : "\"4\" for an IPv4 address",
                        version);
      }
    }
    if (const Json* index = Member(object, "interface"); index != nullptr) {
      if (!index->is_number_integer() || index->get<int64_t>() < 0 ||
          index->get<int64_t>() >= static_cast<int64_t>(result->interfaces.size())) {
        return Expected(StrCat(field, ".interface"),
                        StrCat("an index into \"interfaces\" (which has ",
                               result->interfaces.size(), " entries)"),
                        index);
      }
      ip.interface = static_cast<int>(index->get<int64_t>());
    }
    result->ips.push_back(std::move(ip));
  }
  return ParseRoutes(doc, "routes", result);
}

absl::Status ParseDns(const Json& doc, CniDns* dns) {
  const Json* object = Member(doc, "dns");
  if (object == nullptr) return absl::OkStatus();
  if (!object->is_object()) return Expected("dns", "an object", object);
  VMLET_ASSIGN_OR_RETURN(dns->servers, GetStrings(*object, "nameservers", "dns.nameservers"));
  VMLET_ASSIGN_OR_RETURN(dns->searches, GetStrings(*object, "search", "dns.search"));
  VMLET_ASSIGN_OR_RETURN(dns->options, GetStrings(*object, "options", "dns.options"));
  VMLET_ASSIGN_OR_RETURN(std::string domain,
                         GetString(*object, "domain", "dns.domain", /*required=*/false));
  if (!domain.empty() &&
      std::find(dns->searches.begin(), dns->searches.end(), domain) == dns->searches.end()) {
    dns->searches.insert(dns->searches.begin(), domain);
  }
  return absl::OkStatus();
}

std::string_view Trim(std::string_view text) {
  size_t begin = text.find_first_not_of(" \t\r\n");
  if (begin == std::string_view::npos) return {};
  return text.substr(begin, text.find_last_not_of(" \t\r\n") - begin + 1);
}

}  // namespace

bool IsSupportedCniVersion(std::string_view version) { return VersionIndex(version) >= 0; }

int CompareCniVersions(std::string_view a, std::string_view b) {
  return VersionIndex(a) - VersionIndex(b);
}

absl::StatusOr<CniResult> ParseCniResult(std::string_view json) {
  Json doc = Json::parse(json.begin(), json.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    std::string shown(Trim(json).substr(0, 80));
    return absl::InvalidArgumentError(
        StrCat("CNI result: expected a JSON object, got \"", shown, "\""));
  }
  CniResult result;
  const Json* version = Member(doc, "cniVersion");
  if (version == nullptr || !version->is_string() ||
      !IsSupportedCniVersion(version->get<std::string>())) {
    return Expected("cniVersion", "one of 0.1.0, 0.2.0, 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0",
                    version);
  }
  result.cni_version = version->get<std::string>();
  if (CompareCniVersions(result.cni_version, "0.3.0") < 0) {
    VMLET_RETURN_IF_ERROR(ParseLegacyIps(doc, &result));
  } else {
    VMLET_RETURN_IF_ERROR(ParseIps(doc, &result));
  }
  VMLET_RETURN_IF_ERROR(ParseDns(doc, &result.dns));
  result.json = std::string(Trim(json));
  return result;
}

}  // namespace vmlet::network
