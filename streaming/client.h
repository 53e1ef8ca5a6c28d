// The client side of the streaming protocols, as kubectl and crictl speak
// them: for vmletctl and the tests. A CommandSession is one exec or attach;
// a PortForwardSession carries any number of forwarded connections.
#ifndef VMLET_STREAMING_CLIENT_H_
#define VMLET_STREAMING_CLIENT_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "streaming/http_client.h"
#include "streaming/stream.h"

namespace vmlet::streaming {

enum class WireProtocol { kSpdy, kWebSocket };

struct CommandOptions {
  WireProtocol wire = WireProtocol::kSpdy;
  // Offered in this order; empty: v4 down to v1 (SPDY), v5, v4 and v1
  // (WebSocket).
  std::vector<std::string> protocols;
  bool stdin = false, stdout = true, stderr = true, tty = false;
  DialOptions dial;
  absl::Duration timeout = absl::Seconds(30);  // For connecting and opening streams.
};

// Any thread; one reader per stream.
class CommandSession {
 public:
  virtual ~CommandSession() = default;
  // Null for a stream that was not asked for.
  std::shared_ptr<Stream> stdin, stdout, stderr;
  // The negotiated protocol.
  std::string protocol;

  // Reads the error stream to its end and returns the exit code it carries
  // (0 when it is empty), or the error it reports. Call after stdout and
  // stderr have ended.
  virtual absl::StatusOr<int> Wait() = 0;
  virtual void Close() = 0;

 protected:
  CommandSession() = default;
};

absl::StatusOr<std::unique_ptr<CommandSession>> ConnectCommand(const std::string& url,
                                                               const CommandOptions& options);

// What an exec with all of stdin given at once produced.
struct CommandOutput {
  std::string stdout_data, stderr_data;
  int exit_code = 0;
};

// Sends `input` (and closes stdin, when asked for), reads stdout and stderr
// to their ends and waits for the exit code.
absl::StatusOr<CommandOutput> RunCommand(CommandSession& session, std::string_view input = "");

struct PortForwardOptions {
  WireProtocol wire = WireProtocol::kSpdy;
  // WebSocket only: the ports of the session, fixed when it is opened
  // (channel 2i and 2i+1 for ports[i]).
  std::vector<int32_t> ports;
  DialOptions dial;
  absl::Duration timeout = absl::Seconds(30);
};

class PortForwardSession {
 public:
  virtual ~PortForwardSession() = default;

  // A new connection to `port` (SPDY: any port, any number of times;
  // WebSocket: the index-th port of the options, once). `data` carries the
  // bytes; `error` the server's message if the connection failed.
  struct Connection {
    std::shared_ptr<Stream> data, error;
  };
  virtual absl::StatusOr<Connection> Open(int32_t port) = 0;
  virtual void Close() = 0;

 protected:
  PortForwardSession() = default;
};

absl::StatusOr<std::unique_ptr<PortForwardSession>> ConnectPortForward(
    const std::string& url, const PortForwardOptions& options);

// Reads `stream` to its end.
absl::StatusOr<std::string> ReadAll(Stream& stream);

}  // namespace vmlet::streaming

#endif  // VMLET_STREAMING_CLIENT_H_
