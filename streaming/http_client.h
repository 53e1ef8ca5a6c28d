// Client side of the streaming server's upgrades, for vmlet's own clients
// (vmletctl, tests): dial an http:// or https:// URL and upgrade the
// connection to SPDY/3.1 (as kubectl's SPDY round tripper does) or to a
// WebSocket (as client-go's WebSocket executor does).
#ifndef VMLET_STREAMING_HTTP_CLIENT_H_
#define VMLET_STREAMING_HTTP_CLIENT_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "streaming/stream.h"
#include "streaming/transport.h"
#include "streaming/websocket.h"

namespace vmlet::streaming {

// The most a dialer reads of a response head, and of the body of a refused
// upgrade.
inline constexpr size_t kMaxResponseHeadBytes = 64 << 10;
inline constexpr size_t kMaxResponseBodyBytes = 64 << 10;

struct DialOptions {
  // https: accept any server certificate (no verification at all).
  bool insecure_skip_verify = false;
  // https: trust the PEM certificates in this file instead of the system's.
  std::string ca_file;
  // For connecting, the TLS handshake and the upgrade's answer together.
  absl::Duration timeout = absl::Seconds(30);
  // Sent with the upgrade request (names as they should be sent).
  Headers headers;
};

struct SpdyDialResult {
  std::unique_ptr<Transport> transport;
  // The server's X-Stream-Protocol-Version ("" when it sent none).
  std::string protocol;
};

// Sends "POST <path> HTTP/1.1" with "Connection: Upgrade",
// "Upgrade: SPDY/3.1" and one "X-Stream-Protocol-Version" header per
// protocol, and expects 101 Switching Protocols; any other answer is an
// error with its status and body ("404 Not Found: ..."). The transport's
// bytes follow the 101 (with https, through a TLS pump thread that the
// transport owns). Any thread.
absl::StatusOr<SpdyDialResult> DialSpdy(std::string_view url,
                                        const std::vector<std::string>& protocols,
                                        const DialOptions& options = {});

// A WebSocket handshake offering `subprotocols` (Sec-WebSocket-Protocol);
// a refused upgrade is an error with its status and body. Any thread.
absl::StatusOr<std::unique_ptr<WebSocket>> DialWebSocket(
    std::string_view url, const std::vector<std::string>& subprotocols,
    const DialOptions& options = {});

}  // namespace vmlet::streaming

#endif  // VMLET_STREAMING_HTTP_CLIENT_H_
