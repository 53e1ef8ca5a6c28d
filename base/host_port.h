// "HOST:PORT" addresses of the listeners vmletd opens on TCP.
#ifndef VMLET_BASE_HOST_PORT_H_
#define VMLET_BASE_HOST_PORT_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace vmlet {

struct HostPort {
  std::string host;  // An IPv4 or IPv6 literal, without brackets.
  int port = 0;      // 0 to 65535; 0: any free port.
};

// Parses "HOST:PORT": "127.0.0.1:9464", "[::1]:9464", "0.0.0.0:0". HOST is
// an IPv4 literal or a bracketed IPv6 literal (no host names, no empty host);
// PORT is decimal, 0 to 65535. INVALID_ARGUMENT naming the value and the
// expected form otherwise. Thread-safe.
absl::StatusOr<HostPort> ParseHostPort(std::string_view address);

}  // namespace vmlet

#endif  // VMLET_BASE_HOST_PORT_H_
