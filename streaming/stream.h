// One byte stream of a streaming connection: a SPDY stream, or one channel
// of a WebSocket that speaks channel.k8s.io. exec/attach use one per
// standard stream (stdin, stdout, stderr, error, resize); port-forward one
// data and one error stream per forwarded connection.
#ifndef VMLET_STREAMING_STREAM_H_
#define VMLET_STREAMING_STREAM_H_

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace vmlet::streaming {

// Header names are lower case (SPDY sends them so; HTTP/1.1 and WebSocket
// names are folded when read).
using Headers = std::vector<std::pair<std::string, std::string>>;

// The value of header `name` (lower case), or "" when absent.
std::string HeaderValue(const Headers& headers, std::string_view name);

// One thread may Read while others Write; Writes from several threads are
// serialised by the stream (each call's bytes stay together).
class Stream {
 public:
  virtual ~Stream() = default;

  // The next bytes the peer sent, in order; "" once the peer has closed its
  // side (end of stream). An error when the stream was reset or its
  // connection ended. Blocks.
  virtual absl::StatusOr<std::string> Read() = 0;

  // Sends `data`; blocks while flow control or the socket holds it back.
  // An error when the stream or its connection has ended.
  virtual absl::Status Write(std::string_view data) = 0;

  // Closes this side: the peer reads end of stream. Further Writes fail.
  virtual absl::Status CloseWrite() = 0;

  // Abandons the stream both ways (SPDY RST_STREAM). Any thread.
  virtual void Reset() = 0;

  // The headers the stream was opened with (SPDY); empty for a WebSocket
  // channel.
  virtual const Headers& headers() const = 0;
};

}  // namespace vmlet::streaming

#endif  // VMLET_STREAMING_STREAM_H_
