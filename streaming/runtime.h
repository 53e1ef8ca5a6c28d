// What the streaming server asks of the runtime behind it: run a command,
// attach to a console, connect to a port. cri/ implements it on top of the
// VM driver; tests use fakes.
#ifndef VMLET_STREAMING_RUNTIME_H_
#define VMLET_STREAMING_RUNTIME_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "streaming/request_cache.h"
#include "streaming/stream.h"

namespace vmlet::streaming {

// The standard streams of one exec or attach session. With a TTY there is
// no stderr (it goes to stdout, as with a terminal). Terminal size changes
// are read by the server and not passed on: a VM's serial console and the
// guest agent have no terminal size. Any thread.
class CommandStreams {
 public:
  virtual ~CommandStreams() = default;

  virtual bool has_stdin() const = 0;
  // The next bytes of stdin; "" at end of input, once the client has gone,
  // after CancelStdin, or when there is no stdin. Blocks.
  virtual std::string ReadStdin() = 0;
  // Makes a blocked ReadStdin (and every later one) return "".
  virtual void CancelStdin() = 0;

  // Null when not requested. Written by the runtime; the server closes them.
  virtual Stream* stdout_stream() = 0;
  virtual Stream* stderr_stream() = 0;
  virtual bool tty() const = 0;

  // Waits at most `timeout` for the client's connection to end; true when
  // it has.
  virtual bool WaitForClientGone(absl::Duration timeout) = 0;
};

// Each method runs on the thread of the client's connection, for as long as
// the session lasts; several sessions run at once.
class Runtime {
 public:
  virtual ~Runtime() = default;

  // Runs the command and returns its exit code once it has ended and its
  // output is written. An error means it did not run (or was cut off); the
  // client gets the message.
  virtual absl::StatusOr<int> Exec(const ExecRequest& request, CommandStreams& streams) = 0;

  // Connects the streams to the container's console until the client ends
  // the session (stdin or the connection closes) or the container stops.
  virtual absl::Status Attach(const AttachRequest& request, CommandStreams& streams) = 0;

  // Connects to `port` of the sandbox and copies bytes both ways between
  // the connection and `data` until both directions have ended.
  virtual absl::Status PortForward(const std::string& sandbox_id, int32_t port, Stream& data) = 0;
};

}  // namespace vmlet::streaming

#endif  // VMLET_STREAMING_RUNTIME_H_
