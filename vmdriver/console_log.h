// A VM's serial console as the container's log. QEMU listens on a unix
// socket for the console (one client at a time); ConsoleLog connects to it as
// that client, drains everything the guest prints and appends it to the log
// file the kubelet named, in the CRI log format that `kubectl logs` reads:
//
//   2026-11-22T15:35:18.984123456Z stdout F a whole line
//   2026-11-22T15:35:18.984123456Z stdout P the first 16 KiB of a longer line
//
// CriLogFormatter is the pure half (bytes in, CRI lines out); ConsoleLog owns
// the socket, the file and the thread between them.
#ifndef VMLET_VMDRIVER_CONSOLE_LOG_H_
#define VMLET_VMDRIVER_CONSOLE_LOG_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace vmlet::vmdriver {

// The CRI log timestamp: RFC 3339 in UTC with exactly 9 fractional digits,
// e.g. "2026-11-22T15:35:18.984123456Z" (containerd's format).
std::string FormatCriTimestamp(absl::Time time);

// Turns a raw byte stream into complete CRI log lines. A line ends at '\n',
// which is not part of the content; every other byte ('\r', escape sequences,
// invalid UTF-8) is kept as the guest sent it. A line that grows past
// kMaxLineBytes is cut: its first kMaxLineBytes go out tagged P and the rest
// continues as a new line. Not thread-safe; no I/O.
class CriLogFormatter {
 public:
  static constexpr size_t kMaxLineBytes = 16 * 1024;

  // Appends to `out` one CRI line, stamped `now`, for each line that `bytes`
  // completes or pushes past kMaxLineBytes. The rest is kept for later.
  void Append(std::string_view bytes, absl::Time now, std::string* out);

  // Appends the pending unfinished line, if any, as an F line (at EOF).
  void Flush(absl::Time now, std::string* out);

  // Bytes of the unfinished line held back so far.
  size_t pending_size() const { return pending_.size(); }

 private:
  void Emit(char tag, absl::Time now, std::string* out);

  std::string pending_;  // Never longer than kMaxLineBytes.
};

// Copies the console at `socket_path` into the log at `log_path` on a thread
// of its own, for as long as the object lives:
//
//   connect (retry 50 ms .. 1 s) --> read, format, append --> EOF: flush the
//      ^                                                         partial line
//      +---------------------------------------------------------+
//
// QEMU accepts one client and goes back to listening when it leaves, and
// removes the socket when it exits, so every EOF leads back to connecting.
// With an empty `log_path` the console is still drained (a guest must never
// stall on a full console buffer) but nothing is written. Errors writing the
// log are logged (category "console") and never stop the draining.
//
// Besides the log, any number of readers see the raw bytes (the attach and
// console features build on them), and Write types into the console over
// the same connection: QEMU has one client, so ConsoleLog multiplexes it.
//
// Threads: Start, Reopen, SetTap, AddReader, RemoveReader, Write, bytes_read
// and Stop may be called from any thread except the console thread itself
// (that is, not from inside a tap or reader).
class ConsoleLog {
 public:
  // Receives every chunk read from the console, in order, before it is logged.
  using Tap = std::function<void(std::string_view bytes)>;

  static constexpr absl::Duration kMinBackoff = absl::Milliseconds(50);
  static constexpr absl::Duration kMaxBackoff = absl::Seconds(1);
  static constexpr absl::Duration kWriteTimeout = absl::Seconds(5);

  // Opens (creates, with its parent directory) the log file and starts the
  // console thread, which connects in the background: the socket need not
  // exist yet. Fails if the log file cannot be opened.
  static absl::StatusOr<std::unique_ptr<ConsoleLog>> Start(std::string socket_path,
                                                           std::string log_path);

  ConsoleLog(const ConsoleLog&) = delete;
  ConsoleLog& operator=(const ConsoleLog&) = delete;
  // Stops the thread (see Stop) and closes the log.
  ~ConsoleLog();

  // Closes the log file and opens `log_path` afresh, for the kubelet's log
  // rotation (ReopenContainerLog). On error the old file stays in use, so
  // that nothing is lost if the kubelet rolls the rotation back. A no-op for
  // an empty log path.
  absl::Status Reopen();

  // Installs `tap` (or removes it, when empty) to see the raw console bytes;
  // the attach feature builds on it. The tap runs on the console thread and
  // must return quickly. Once SetTap returns, the previous tap is not running
  // and will not be called again.
  void SetTap(Tap tap);

  // Adds a reader that sees every chunk read from the console from now on,
  // like a tap, and returns its handle. Readers run on the console thread,
  // one after the other, and must return quickly (buffer, never block).
  int AddReader(Tap reader);

  // Removes a reader; once this returns it is not running and will not be
  // called again. An unknown handle is ignored.
  void RemoveReader(int handle);

  // Writes `bytes` to the console (the guest reads them as typed input).
  // FAILED_PRECONDITION when the console is not connected at the moment
  // (QEMU not yet listening, between reconnects, after Stop); UNAVAILABLE
  // when the guest does not take the bytes within kWriteTimeout.
  absl::Status Write(std::string_view bytes);

  // Whether the console thread holds a connection right now.
  bool connected();

  // Wakes the console thread wherever it waits, lets it log what is already
  // readable and the unfinished line, and joins it. Idempotent.
  void Stop();

  // Bytes read from the console so far, over all connections.
  uint64_t bytes_read() const { return bytes_read_.load(); }

  const std::string& socket_path() const { return socket_path_; }
  const std::string& log_path() const { return log_path_; }

 private:
  ConsoleLog(std::string socket_path, std::string log_path, int wake_fd, int log_fd);

  // All below run on the console thread.
  void Run();
  int Connect();      // A connected socket, or -1.
  bool Pump(int fd);  // Reads until EOF (false) or until stopped (true).
  void DrainAvailable(int fd);
  bool WaitForStop(absl::Duration timeout);  // True once Stop was called.
  void Consume(std::string_view bytes);
  void FlushPartialLine();
  void WriteLog(std::string_view lines);

  const std::string socket_path_;
  const std::string log_path_;
  const int wake_fd_;  // eventfd, readable once Stop was called.

  CriLogFormatter formatter_;  // Console thread only.
  std::atomic<uint64_t> bytes_read_{0};

  std::mutex log_mu_;
  int log_fd_;                  // Guarded by log_mu_; -1 without a log path.
  bool write_failing_ = false;  // Guarded by log_mu_; to log a failure once.

  void SetConnection(int fd);  // -1 when disconnected.

  std::mutex tap_mu_;
  // Guarded by tap_mu_, which is held while they run. Handle 0 is SetTap's.
  std::map<int, Tap> readers_;
  int next_reader_ = 1;  // Guarded by tap_mu_.

  std::mutex write_mu_;  // Held by Write throughout; taken before conn_mu_.
  std::mutex conn_mu_;   // Held only briefly.
  int conn_fd_ = -1;     // Guarded by conn_mu_; owned by the console thread.

  std::mutex stop_mu_;
  std::thread thread_;  // Guarded by stop_mu_ after Start.
};

}  // namespace vmlet::vmdriver

#endif  // VMLET_VMDRIVER_CONSOLE_LOG_H_
