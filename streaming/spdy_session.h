// A SPDY/3.1 session over one connection, either side, as Kubernetes'
// streaming clients (kubectl, crictl, the kubelet's proxy, all through
// moby/spdystream) expect it: streams opened with SYN_STREAM and accepted
// with SYN_REPLY, data in DATA frames, FIN to half-close, RST_STREAM to
// abandon, PINGs answered, GOAWAY to end.
//
// Threads: Start() runs a reader thread (frames in) and a writer thread
// (control frames out: replies, PING answers, window updates, resets,
// GOAWAY), so that the reader never blocks on a socket write. Stream
// Writes are written by the calling thread under the session's write lock.
//
// Flow control: spdystream neither sends WINDOW_UPDATE nor honours it, so a
// sender that waited for windows would stall after 64 KiB. This session
// counts its send windows from the start but only waits on them once the
// peer has shown that it does flow control (a WINDOW_UPDATE, or SETTINGS
// with an initial window size); stream 0 updates (SPDY/3.1's session
// window) turn on the session window the same way. It sends WINDOW_UPDATEs
// for what its readers consume (spdystream ignores them). Whatever the peer
// does, what is buffered for reading is bounded (kSpdyMaxStreamBufferedBytes
// per stream, kSpdyMaxSessionBufferedBytes per session): past that the
// reader thread stops reading the connection until the application reads.
//
// A malformed frame stream ends the session (GOAWAY PROTOCOL_ERROR when the
// socket allows) and every stream sees an error; nothing else is affected.
#ifndef VMLET_STREAMING_SPDY_SESSION_H_
#define VMLET_STREAMING_SPDY_SESSION_H_

#include <cstddef>
#include <memory>
#include <mutex>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "streaming/stream.h"
#include "streaming/transport.h"

namespace vmlet::streaming {

// Streams open at once (opened by either side and not yet closed both ways
// or reset); a peer that opens more gets RST_STREAM(REFUSED_STREAM).
inline constexpr size_t kSpdyMaxConcurrentStreams = 1000;
// The headers of the open streams, all together (roughly: names, values
// and 64 bytes per header); a SYN_STREAM past it is refused.
inline constexpr size_t kSpdyMaxSessionHeaderBytes = 1 << 20;
// Received bytes buffered for one stream's reader, and for all of a
// session's streams together.
inline constexpr size_t kSpdyMaxStreamBufferedBytes = 1 << 20;
inline constexpr size_t kSpdyMaxSessionBufferedBytes = 16 << 20;
// The payload of each DATA frame that Stream::Write sends.
inline constexpr size_t kSpdyWriteChunkSize = 32 << 10;
// SPDY/3's initial flow-control window, per stream and for the session.
inline constexpr int64_t kSpdyInitialWindowSize = 64 << 10;
// Control frames queued for the writer thread; past this the reader thread
// waits (a peer that floods PINGs without reading the answers).
inline constexpr size_t kSpdyMaxQueuedControlFrames = 1024;
// How long Close() waits, after its GOAWAY, for the peer to close the
// connection (so that nothing unread is left to turn the close into a
// reset that could drop the last bytes sent).
inline constexpr absl::Duration kSpdyCloseLinger = absl::Seconds(1);

namespace spdy_internal {
struct SessionCore;
}  // namespace spdy_internal

// Every method may be called from any thread.
class SpdySession : public std::enable_shared_from_this<SpdySession> {
 public:
  enum class Role { kServer, kClient };  // stream ids: client odd, server even

  // Takes the connection (after the HTTP upgrade) and starts the reader and
  // writer threads.
  static std::shared_ptr<SpdySession> Start(std::unique_ptr<Transport> transport, Role role);

  // Close()s. Must not run on a thread that is blocked in this session's
  // calls (it joins the session's threads).
  ~SpdySession();
  SpdySession(const SpdySession&) = delete;
  SpdySession& operator=(const SpdySession&) = delete;

  // The next stream the peer opened (SYN_STREAM); our SYN_REPLY is queued
  // ahead of anything written on it. Blocks until one arrives, `deadline`,
  // or the session ends: then DEADLINE_EXCEEDED, or UNAVAILABLE
  // "connection closed..." (streams that arrived before the peer ended the
  // session are still returned first).
  absl::StatusOr<std::shared_ptr<Stream>> AcceptStream(absl::Time deadline);

  // Opens a stream with `headers` and waits (until `deadline`) for the
  // peer's SYN_REPLY. DEADLINE_EXCEEDED (the stream is reset), ABORTED when
  // the peer refuses or resets it, RESOURCE_EXHAUSTED past
  // kSpdyMaxConcurrentStreams (or the peer's SETTINGS limit) or the last
  // stream id, UNAVAILABLE when the session has ended.
  absl::StatusOr<std::shared_ptr<Stream>> OpenStream(const Headers& headers, absl::Time deadline);

  // Sends a PING and waits for its answer until `deadline`.
  absl::Status Ping(absl::Time deadline);

  // GOAWAY, then ends the connection (waiting at most kSpdyCloseLinger for
  // the peer to close its side) and joins the session's threads; every
  // stream's Read/Write fails afterwards. Idempotent.
  void Close();

  // Blocks until the connection has ended (peer closed, error, or Close).
  // Returns why: OK for Close(), the peer's end of stream between frames,
  // or a GOAWAY with status OK; otherwise the error.
  absl::Status Wait();

 private:
  explicit SpdySession(std::shared_ptr<spdy_internal::SessionCore> core);

  const std::shared_ptr<spdy_internal::SessionCore> core_;
  std::mutex join_mu_;  // serialises joining the threads
  std::thread reader_;
  std::thread writer_;
};

}  // namespace vmlet::streaming

#endif  // VMLET_STREAMING_SPDY_SESSION_H_
