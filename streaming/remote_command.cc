// exec and attach sessions: the client's streams, over SPDY (one SPDY
// stream per standard stream, told apart by their streamtype header) or
// over WebSocket (fixed channels), handed to the runtime as CommandStreams.
#include <cctype>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

#include "absl/synchronization/notification.h"
#include "base/logging.h"
#include "base/status.h"
#include "base/str_util.h"
#include "streaming/protocols.h"
#include "streaming/sessions.h"
#include "streaming/spdy_session.h"
#include "streaming/websocket.h"

namespace vmlet::streaming {
namespace {

constexpr Logger kLog("streaming");

// The most stdin the server reads ahead of the runtime.
constexpr size_t kMaxBufferedStdin = size_t{1} << 20;

const std::vector<std::string>& SpdyProtocols() {
  static const std::vector<std::string> protocols = {kProtocolV4, kProtocolV3, kProtocolV2,
                                                     kProtocolV1};
  return protocols;
}

const std::vector<std::string>& WebSocketProtocols() {
  static const std::vector<std::string> protocols = {kProtocolV5, kProtocolV4, kProtocolV1};
  return protocols;
}

// What the session needs from the connection beneath the streams.
class Connection {
 public:
  virtual ~Connection() = default;
  // Blocks until the connection has ended.
  virtual void Wait() = 0;
  // Ends it (any thread).
  virtual void Close() = 0;
};

class SpdyConnection final : public Connection {
 public:
  explicit SpdyConnection(std::shared_ptr<SpdySession> session) : session_(std::move(session)) {}
  void Wait() override { (void)session_->Wait(); }
  void Close() override { session_->Close(); }

 private:
  std::shared_ptr<SpdySession> session_;
};

class WebSocketConnection final : public Connection {
 public:
  explicit WebSocketConnection(std::shared_ptr<ChannelConnection> channels)
      : channels_(std::move(channels)) {}
  void Wait() override { channels_->Wait(); }
  void Close() override { channels_->Close(); }

 private:
  std::shared_ptr<ChannelConnection> channels_;
};

// The standard streams as the runtime sees them; stdin is read ahead by a
// thread of its own, so that ReadStdin can be cancelled.
class SessionStreams final : public CommandStreams {
 public:
  SessionStreams(std::shared_ptr<Stream> in, std::shared_ptr<Stream> out,
                 std::shared_ptr<Stream> err, bool tty)
      : in_(std::move(in)), out_(std::move(out)), err_(std::move(err)), tty_(tty) {
    if (in_ != nullptr) {
      pump_ = std::thread([this] { Pump(); });
    } else {
      eof_ = true;
    }
  }
  ~SessionStreams() override {
    CancelStdin();
    if (pump_.joinable()) pump_.join();
  }

  bool has_stdin() const override { return in_ != nullptr; }

  std::string ReadStdin() override {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [this] { return !queue_.empty() || eof_ || cancelled_; });
    if (queue_.empty() || cancelled_) return "";
    std::string chunk = std::move(queue_.front());
    queue_.pop_front();
    buffered_ -= chunk.size();
    cv_.notify_all();
    return chunk;
  }

  void CancelStdin() override {
    std::lock_guard lock(mu_);
    cancelled_ = true;
    cv_.notify_all();
  }

  Stream* stdout_stream() override { return out_.get(); }
  Stream* stderr_stream() override { return err_.get(); }
  bool tty() const override { return tty_; }

  bool WaitForClientGone(absl::Duration timeout) override {
    return gone_.WaitForNotificationWithTimeout(timeout);
  }
  void SetClientGone() {
    if (!gone_.HasBeenNotified()) gone_.Notify();
    CancelStdin();
  }

 private:
  // Reads stdin until its end, the connection's end or cancellation; the
  // connection's end (which Close forces) unblocks Read.
  void Pump() {
    while (true) {
      absl::StatusOr<std::string> chunk = in_->Read();
      std::unique_lock lock(mu_);
      if (!chunk.ok() || chunk->empty()) {
        eof_ = true;
        cv_.notify_all();
        return;
      }
      cv_.wait(lock, [this] { return buffered_ < kMaxBufferedStdin || cancelled_; });
      if (cancelled_) return;
      buffered_ += chunk->size();
      queue_.push_back(*std::move(chunk));
      cv_.notify_all();
    }
  }

  const std::shared_ptr<Stream> in_, out_, err_;
  const bool tty_;
  absl::Notification gone_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> queue_;
  size_t buffered_ = 0;
  bool eof_ = false, cancelled_ = false;
  std::thread pump_;
};

// What a session asked for, whichever request it came from.
struct Wanted {
  std::string container_id;
  bool tty, stdin, stdout, stderr;
};

Wanted WantedOf(const Request& request) {
  if (const auto* exec = std::get_if<ExecRequest>(&request)) {
    return {exec->container_id, exec->tty, exec->stdin, exec->stdout, exec->stderr && !exec->tty};
  }
  const auto& attach = std::get<AttachRequest>(request);
  return {attach.container_id, attach.tty, attach.stdin, attach.stdout,
          attach.stderr && !attach.tty};
}

struct OpenSession {
  std::unique_ptr<Connection> connection;
  // The server may close first: a WebSocket's close handshake comes after
  // the data (SPDY's end of connection could overtake it).
  bool close_at_once = false;
  std::string protocol;
  std::shared_ptr<Stream> in, out, err, error, resize;
};

// SPDY: the client opens one stream per standard stream, plus error
// (always) and resize (with a TTY, from v3 on).
absl::StatusOr<OpenSession> OpenSpdy(HttpExchange& exchange, const Wanted& wanted,
                                     const ServerOptions& options) {
  absl::StatusOr<std::string> protocol = NegotiateProtocol(
      HeaderValues(exchange.request().headers, kHeaderProtocolVersion), SpdyProtocols());
  if (!protocol.ok()) {
    exchange.Respond(403, std::string(protocol.status().message()));
    return protocol.status();
  }
  OpenSession open;
  open.protocol = protocol->empty() ? kProtocolV1 : *protocol;
  VMLET_ASSIGN_OR_RETURN(std::unique_ptr<Transport> transport, exchange.UpgradeToSpdy(*protocol));
  std::shared_ptr<SpdySession> session =
      SpdySession::Start(std::move(transport), SpdySession::Role::kServer);
  open.connection = std::make_unique<SpdyConnection>(session);
  bool resizable = open.protocol != kProtocolV1 && open.protocol != kProtocolV2;
  int expected = 1 + wanted.stdin + wanted.stdout + wanted.stderr + (wanted.tty && resizable);
  absl::Time deadline = absl::Now() + options.stream_creation_timeout;
  for (int received = 0; received < expected;) {
    absl::StatusOr<std::shared_ptr<Stream>> stream = session->AcceptStream(deadline);
    if (!stream.ok()) {
      session->Close();
      return Annotate(stream.status(), StrCat("waiting for the client's ", expected, " streams (",
                                              received, " arrived)"));
    }
    std::string type = HeaderValue((*stream)->headers(), kHeaderStreamType);
    std::shared_ptr<Stream>* slot = type == kStreamTypeError    ? &open.error
                                    : type == kStreamTypeStdin  ? &open.in
                                    : type == kStreamTypeStdout ? &open.out
                                    : type == kStreamTypeStderr ? &open.err
                                    : type == kStreamTypeResize ? &open.resize
                                                                : nullptr;
    if (slot == nullptr || *slot != nullptr) {
      kLog.Warning("a client opened an unexpected stream (streamtype \"{}\")", type);
      (*stream)->Reset();
      continue;
    }
    *slot = *std::move(stream);
    ++received;
  }
  if (open.error == nullptr) {
    session->Close();
    return absl::InvalidArgumentError("the client opened no error stream");
  }
  return open;
}

// WebSocket: fixed channels; the first (empty) message on the lowest
// channel the client reads tells it the session is up.
absl::StatusOr<OpenSession> OpenWebSocket(HttpExchange& exchange, const Wanted& wanted) {
  absl::StatusOr<std::string> protocol = NegotiateProtocol(
      HeaderValues(exchange.request().headers, kHeaderWebSocketProtocol), WebSocketProtocols());
  if (!protocol.ok()) {
    exchange.Respond(403, std::string(protocol.status().message()));
    return protocol.status();
  }
  OpenSession open;
  open.protocol = protocol->empty() ? kProtocolV1 : *protocol;
  VMLET_ASSIGN_OR_RETURN(std::unique_ptr<WebSocket> socket, exchange.UpgradeToWebSocket(*protocol));
  auto channels = std::make_shared<ChannelConnection>(std::move(socket), open.protocol);
  open.connection = std::make_unique<WebSocketConnection>(channels);
  open.close_at_once = true;
  if (wanted.stdin) open.in = channels->Channel(kChannelStdin);
  if (wanted.stdout) open.out = channels->Channel(kChannelStdout);
  if (wanted.stderr) open.err = channels->Channel(kChannelStderr);
  open.error = channels->Channel(kChannelError);
  if (wanted.tty) open.resize = channels->Channel(kChannelResize);
  Stream* first = open.out != nullptr   ? open.out.get()
                  : open.err != nullptr ? open.err.get()
                                        : open.error.get();
  VMLET_RETURN_IF_ERROR(first->Write(""));
  return open;
}

}  // namespace

bool IsWebSocketRequest(const HttpRequest& request) {
  for (const std::string& value : HeaderValues(request.headers, "upgrade")) {
    std::string lower = value;
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (lower == "websocket") return true;
  }
  return false;
}

void ServeRemoteCommand(HttpExchange& exchange, const Request& request, Runtime& runtime,
                        const ServerOptions& options) {
  Wanted wanted = WantedOf(request);
  const bool exec = std::holds_alternative<ExecRequest>(request);
  absl::StatusOr<OpenSession> open = IsWebSocketRequest(exchange.request())
                                         ? OpenWebSocket(exchange, wanted)
                                         : OpenSpdy(exchange, wanted, options);
  if (!open.ok()) {
    kLog.Warning("{} session for container {} not started: {}", exec ? "exec" : "attach",
                 wanted.container_id, open.status().ToString());
    return;
  }
  SessionStreams streams(open->in, open->out, open->err, wanted.tty);
  std::thread watcher([&] {
    open->connection->Wait();
    streams.SetClientGone();
  });
  // Terminal sizes are read and dropped: serial consoles have none.
  std::thread resize_drain;
  if (open->resize != nullptr) {
    resize_drain = std::thread([stream = open->resize] {
      while (true) {
        absl::StatusOr<std::string> chunk = stream->Read();
        if (!chunk.ok() || chunk->empty()) return;
      }
    });
  }

  std::string status;
  const bool v4 = open->protocol == kProtocolV4 || open->protocol == kProtocolV5;
  if (exec) {
    absl::StatusOr<int> exit_code = runtime.Exec(std::get<ExecRequest>(request), streams);
    if (exit_code.ok()) {
      status = v4 ? ExitStatusJson(*exit_code)
               : *exit_code == 0
                   ? ""
                   : StrCat("command terminated with non-zero exit code: exit status ", *exit_code);
    } else {
      status = v4 ? ErrorStatusJson(exit_code.status()) : std::string(exit_code.status().message());
    }
  } else {
    absl::Status attached = runtime.Attach(std::get<AttachRequest>(request), streams);
    if (v4) {
      status = attached.ok() ? ExitStatusJson(0) : ErrorStatusJson(attached);
    } else if (!attached.ok()) {
      status = std::string(attached.message());
    }
  }
  streams.CancelStdin();
  if (!status.empty()) (void)open->error->Write(status);
  for (Stream* stream : {open->out.get(), open->err.get(), open->error.get()}) {
    if (stream != nullptr) (void)stream->CloseWrite();
  }
  // The client closes the connection once it has read everything; closing
  // it first could cut off what is still on its way.
  if (!open->close_at_once) streams.WaitForClientGone(options.linger);
  open->connection->Close();
  watcher.join();
  if (resize_drain.joinable()) resize_drain.join();
}

}  // namespace vmlet::streaming
