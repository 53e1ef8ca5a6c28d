// What a CNI plugin reports: the result of ADD (SPEC.md "Success"), in any
// of the result formats the spec has had, and the CNI versions vmlet speaks.
// Included by network/cni.h; see there for running plugins.
#ifndef VMLET_NETWORK_CNI_RESULT_H_
#define VMLET_NETWORK_CNI_RESULT_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace vmlet::network {

// True for the CNI versions vmlet speaks: 0.1.0, 0.2.0, 0.3.0, 0.3.1, 0.4.0,
// 1.0.0 and 1.1.0.
bool IsSupportedCniVersion(std::string_view version);

// Orders two supported versions: negative when a < b, 0 when equal, positive
// when a > b. An unsupported version sorts before every supported one.
int CompareCniVersions(std::string_view a, std::string_view b);

struct CniDns {
  std::vector<std::string> servers, searches, options;
};

struct CniInterface {
  std::string name, mac, sandbox;  // `sandbox` is empty for host-side interfaces.
};

struct CniIp {
  std::string address;  // Without the prefix length.
  int prefix_length = 0;
  std::string gateway;
  int interface = -1;  // Index into CniResult::interfaces, or -1.
  bool ipv6 = false;
};

struct CniRoute {
  std::string destination;  // CIDR.
  std::string gateway;      // Empty: the interface's default.
};

struct CniResult {
  std::string cni_version;
  std::vector<CniInterface> interfaces;
  std::vector<CniIp> ips;
  std::vector<CniRoute> routes;
  CniDns dns;        // nameservers -> servers, domain is prepended to searches if not there.
  std::string json;  // The result as the last plugin printed it (prevResult for DEL/CHECK).
};

// Accepts 1.x, 0.4.0, 0.3.x (ips with "version") and 0.1.0/0.2.0 (ip4/ip6
// objects). INVALID_ARGUMENT on malformed results, naming the field.
// Thread-safe.
absl::StatusOr<CniResult> ParseCniResult(std::string_view json);

}  // namespace vmlet::network

#endif  // VMLET_NETWORK_CNI_RESULT_H_
