// The names and small formats that Kubernetes clients and vmlet agree on:
// sub-protocol versions, stream types and headers, and the status object
// that ends an exec (k8s.io/apimachinery's metav1.Status, as JSON).
//
// remotecommand (exec, attach) over SPDY, negotiated with the header
// X-Stream-Protocol-Version:
//   v4.channel.k8s.io  error stream carries a JSON status with the exit code
//   v3.channel.k8s.io  adds the resize stream
//   v2.channel.k8s.io  the error stream carries a plain message
//   channel.k8s.io     v1; also what a client that names none gets
// The same over WebSocket (Sec-WebSocket-Protocol), one byte of channel
// number before each message: 0 stdin, 1 stdout, 2 stderr, 3 error,
// 4 resize; v5.channel.k8s.io adds channel 255 to close one side.
// port-forward: portforward.k8s.io over SPDY (a data and an error stream
// per connection, paired by the requestid header); over WebSocket,
// v4.channel.k8s.io or portforward.k8s.io with channels 2i (data) and
// 2i+1 (error) for the i-th port of the "port" query parameters.
#ifndef VMLET_STREAMING_PROTOCOLS_H_
#define VMLET_STREAMING_PROTOCOLS_H_

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "streaming/stream.h"

namespace vmlet::streaming {

inline constexpr char kProtocolV1[] = "channel.k8s.io";
inline constexpr char kProtocolV2[] = "v2.channel.k8s.io";
inline constexpr char kProtocolV3[] = "v3.channel.k8s.io";
inline constexpr char kProtocolV4[] = "v4.channel.k8s.io";
inline constexpr char kProtocolV5[] = "v5.channel.k8s.io";
inline constexpr char kProtocolPortForward[] = "portforward.k8s.io";

inline constexpr char kHeaderStreamType[] = "streamtype";
inline constexpr char kHeaderPort[] = "port";
inline constexpr char kHeaderRequestId[] = "requestid";
inline constexpr char kHeaderProtocolVersion[] = "x-stream-protocol-version";
inline constexpr char kHeaderWebSocketProtocol[] = "sec-websocket-protocol";

inline constexpr char kStreamTypeStdin[] = "stdin";
inline constexpr char kStreamTypeStdout[] = "stdout";
inline constexpr char kStreamTypeStderr[] = "stderr";
inline constexpr char kStreamTypeError[] = "error";
inline constexpr char kStreamTypeResize[] = "resize";
inline constexpr char kStreamTypeData[] = "data";

// WebSocket channel numbers of exec and attach.
inline constexpr int kChannelStdin = 0;
inline constexpr int kChannelStdout = 1;
inline constexpr int kChannelStderr = 2;
inline constexpr int kChannelError = 3;
inline constexpr int kChannelResize = 4;

// Every value of header `name`, split at commas and trimmed, in order.
std::vector<std::string> HeaderValues(const Headers& headers, std::string_view name);

// The first of the client's protocols (its order of preference) that the
// server supports; "" when the client named none. An error naming both
// lists when none matches.
absl::StatusOr<std::string> NegotiateProtocol(const std::vector<std::string>& client,
                                              const std::vector<std::string>& server);

// The JSON status that ends an exec under v4 and later: Success for exit
// code 0, NonZeroExitCode with the code otherwise.
std::string ExitStatusJson(int exit_code);

// The JSON status for a session that failed with `error`.
std::string ErrorStatusJson(const absl::Status& error);

// What a client makes of the error stream's content under `protocol`: the
// exit code (0 for an empty stream or Success), or the error it reports.
absl::StatusOr<int> ParseErrorStream(std::string_view protocol, std::string_view content);

// The value of query parameter `name` in `query` ("a=1&b=2", no "?"),
// percent-decoded; every value when it repeats.
std::vector<std::string> QueryValues(std::string_view query, std::string_view name);

}  // namespace vmlet::streaming

#endif  // VMLET_STREAMING_PROTOCOLS_H_
