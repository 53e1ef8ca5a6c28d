#include "base/host_port.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include "base/str_util.h"

namespace vmlet {
namespace {

absl::Status BadAddress(std::string_view address) {
  return absl::InvalidArgumentError(
      StrCat("\"", address,
             "\" is invalid (expected HOST:PORT with an IPv4 address or a bracketed IPv6 address "
             "and a port from 0 to 65535, such as \"127.0.0.1:9464\" or \"[::1]:9464\")"));
}

}  // namespace

absl::StatusOr<HostPort> ParseHostPort(std::string_view address) {
  if (address.find('\0') != std::string_view::npos) return BadAddress(address);
  size_t colon = address.rfind(':');
  if (colon == std::string_view::npos) return BadAddress(address);
  std::string_view host = address.substr(0, colon);
  std::string_view port_text = address.substr(colon + 1);

  if (port_text.empty() || port_text.size() > 5) return BadAddress(address);
  int port = 0;
  for (char c : port_text) {
    if (c < '0' || c > '9') return BadAddress(address);
    port = port * 10 + (c - '0');
  }
  if (port > 65535) return BadAddress(address);

  HostPort result{.port = port};
  in_addr v4;
  in6_addr v6;
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    result.host = std::string(host.substr(1, host.size() - 2));
    if (::inet_pton(AF_INET6, result.host.c_str(), &v6) != 1) return BadAddress(address);
  } else {
    result.host = std::string(host);
    if (::inet_pton(AF_INET, result.host.c_str(), &v4) != 1) return BadAddress(address);
  }
  return result;
}

}  // namespace vmlet
