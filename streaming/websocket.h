// WebSocket (RFC 6455) connections, server side (HttpExchange) and client
// side (DialWebSocket), and channel.k8s.io over them: the framing that
// kubectl, the API server and crictl use for exec, attach and port-forward.
#ifndef VMLET_STREAMING_WEBSOCKET_H_
#define VMLET_STREAMING_WEBSOCKET_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "streaming/stream.h"

namespace vmlet::streaming {

// The largest message either side may send; a bigger one ends the
// connection (close code 1009).
inline constexpr size_t kMaxWebSocketMessageBytes = 16 << 20;
// How far the connection reads ahead of ReadMessage before it stops reading
// the socket (the peer's writes then block: backpressure).
inline constexpr size_t kWebSocketReadAheadBytes = 1 << 20;
// How long Close (and the destructor) waits for the peer's close frame.
inline constexpr absl::Duration kWebSocketCloseTimeout = absl::Seconds(5);

// One WebSocket connection. Each runs its own I/O thread; the methods below
// hand work to it and wait. Any thread may call any method: Writes from
// several threads are sent one after the other, whole; ReadMessage may be
// called by one thread while others write.
class WebSocket {
 public:
  // The destructor closes like Close() when that has not happened yet.
  ~WebSocket();
  WebSocket(const WebSocket&) = delete;
  WebSocket& operator=(const WebSocket&) = delete;

  // The next message, binary or text; nullopt once the peer has closed the
  // connection cleanly (close code 1000, or none) or Close was called. An
  // error when the connection failed or the peer closed it with another
  // code. Blocks.
  absl::StatusOr<std::optional<std::string>> ReadMessage();

  // Sends one message; blocks until it is written to the socket. An error
  // after the connection ended or Close, or when `data` exceeds
  // kMaxWebSocketMessageBytes.
  absl::Status WriteMessage(std::string_view data, bool binary = true);

  // The close handshake (code 1000) once the writes already waiting are
  // sent; waits up to kWebSocketCloseTimeout for the peer's close frame,
  // then drops the connection. Afterwards writes fail and ReadMessage
  // returns nullopt (messages not read yet are dropped). Idempotent;
  // concurrent callers wait for the first.
  void Close();

  // Drops the connection at once, without a close frame: blocked reads and
  // writes return errors.
  void Shutdown();

  // The negotiated subprotocol ("" for none).
  const std::string& subprotocol() const { return subprotocol_; }

  // For HttpExchange: the server side of the handshake for a request
  // already read from the connected socket `fd` (taken over, closed by the
  // WebSocket) with nothing behind it consumed. `version` is 11 for
  // HTTP/1.1; header names in `headers` in any case.
  static absl::StatusOr<std::unique_ptr<WebSocket>> Accept(int fd, std::string_view method,
                                                           std::string_view target, int version,
                                                           const Headers& headers,
                                                           std::string_view subprotocol,
                                                           absl::Duration timeout);

  // For DialWebSocket: the client side of the handshake on the connected
  // socket `fd` (taken over). `host` is the Host header, `target` the path
  // and query. Offers `subprotocols` (the server's choice must be one of
  // them). `keep_alive` is released after the socket is closed (a TLS
  // pump). A refused upgrade is an error with the status and body,
  // e.g. "404 Not Found: no such session".
  static absl::StatusOr<std::unique_ptr<WebSocket>> Connect(
      int fd, std::string_view host, std::string_view target,
      const std::vector<std::string>& subprotocols, const Headers& extra_headers,
      absl::Duration timeout, std::shared_ptr<void> keep_alive);

 private:
  struct Impl;
  explicit WebSocket(std::unique_ptr<Impl> impl);

  std::unique_ptr<Impl> impl_;
  std::string subprotocol_;
};

// The largest payload of one channel message ChannelConnection sends; a
// larger Write is split.
inline constexpr size_t kMaxChannelPayloadBytes = 256 << 10;
// How many received bytes ChannelConnection holds for channels that have
// not read them yet before it stops reading the WebSocket (backpressure).
inline constexpr size_t kMaxChannelBufferedBytes = 4 << 20;
// The channel byte of v5.channel.k8s.io's close signal: [255, n] closes the
// sender's side of channel n.
inline constexpr uint8_t kChannelCloseSignal = 255;

// channel.k8s.io over a WebSocket: every message is [channel byte][payload].
// Channel(n) is the Stream of channel n. A reader thread sorts incoming
// messages into per-channel queues.
//
// Versions: with `protocol` "v5.channel.k8s.io", CloseWrite sends the close
// signal (a channel 255 message whose payload is the channel number) and the
// peer's close signal for channel n ends reads on n ("", end of stream). In
// older versions ("channel.k8s.io", "v4.channel.k8s.io", ...) CloseWrite
// only stops further writes and channel 255 is an ordinary channel.
//
// The connection's end: after a clean close (by either side) every
// channel's Read returns what is queued, then "" (end of stream); after a
// failure, what is queued, then the error. Writes fail after the end.
// Empty messages ([n] alone: clients use them to announce a channel) are
// never returned by Read (it would read as end of stream).
//
// Thread safety: as Stream says, per channel; Channel, Wait and Close from
// any thread.
class ChannelConnection {
 public:
  // Takes `socket`; `protocol` decides the version (see above).
  ChannelConnection(std::unique_ptr<WebSocket> socket, std::string_view protocol);
  // Close(), then waits for the reader thread.
  ~ChannelConnection();
  ChannelConnection(const ChannelConnection&) = delete;
  ChannelConnection& operator=(const ChannelConnection&) = delete;

  // A handle on channel `n` (every handle on n shares its state). Data that
  // arrived for n before this call is kept for it (within the limit above).
  // Handles stay valid after the connection is gone (reads return the end,
  // writes fail).
  std::shared_ptr<Stream> Channel(uint8_t n);

  // Blocks until the connection has ended (the peer closed it, it failed,
  // or Close).
  void Wait();

  // Closes the WebSocket (close handshake, bounded by
  // kWebSocketCloseTimeout). Idempotent.
  void Close();

  const std::string& protocol() const;

 private:
  class ChannelStream;
  struct Core;

  std::shared_ptr<Core> core_;
  std::thread reader_;
};

}  // namespace vmlet::streaming

#endif  // VMLET_STREAMING_WEBSOCKET_H_
