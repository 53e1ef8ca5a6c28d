#include "streaming/websocket.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <utility>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/websocket.hpp>

#include "base/logging.h"
#include "base/status.h"
#include "base/str_util.h"

namespace vmlet::streaming {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;

using Socket = net::generic::stream_protocol::socket;
using WsStream = websocket::stream<Socket>;

constexpr Logger kLog("streaming");

// Frames this size are written whole; bigger messages go out as several.
constexpr size_t kWriteBufferBytes = 64 << 10;

constexpr char kV5Protocol[] = "v5.channel.k8s.io";

beast::string_view BeastView(std::string_view text) { return {text.data(), text.size()}; }
std::string_view StdView(beast::string_view text) { return {text.data(), text.size()}; }

std::chrono::steady_clock::duration ToChrono(absl::Duration duration) {
  return absl::ToChronoNanoseconds(duration);
}

}  // namespace

// The WebSocket's state. `ws` is touched only by the I/O thread; what the
// callers' threads share with it is under `mu`.
struct WebSocket::Impl {
  // A message to send, or the close frame; it lives on the waiting caller's
  // stack until `done`.
  struct Write {
    std::string_view data;
    bool binary = true;
    bool close = false;
    bool done = false;  // Under mu.
    absl::Status status;
  };

  explicit Impl(std::shared_ptr<void> keep) : keep_alive(std::move(keep)), ws(Socket(io)) {}

  // Takes `fd` into the socket and starts the I/O thread.
  absl::Status Open(int fd) {
    int domain = 0, protocol = 0;
    socklen_t length = sizeof(domain);
    if (::getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &length) != 0) {
      absl::Status status = ErrnoToStatus(errno, "reading the WebSocket socket's domain");
      ::close(fd);
      return status;
    }
    length = sizeof(protocol);
    if (::getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &protocol, &length) != 0) protocol = 0;
    beast::error_code ec;
    ws.next_layer().assign(net::generic::stream_protocol(domain, protocol), fd, ec);
    if (ec) {
      ::close(fd);
      return absl::InternalError(StrCat("adopting the WebSocket socket: ", ec.message()));
    }
    ws.read_message_max(kMaxWebSocketMessageBytes);
    ws.auto_fragment(false);
    ws.write_buffer_bytes(kWriteBufferBytes);
    thread = std::thread([this] { io.run(); });
    return absl::OkStatus();
  }

  // Runs `start(done)` on the I/O thread, where it starts an operation whose
  // handler calls done(ec); waits for that.
  template <typename Start>
  beast::error_code RunOnIo(Start start) {
    beast::error_code result;
    bool finished = false;
    net::post(io, [&] {
      start([&](beast::error_code ec) {
        std::lock_guard lock(mu);
        result = ec;
        finished = true;
        cv.notify_all();
      });
    });
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return finished; });
    return result;
  }

  // I/O thread: reads the next message unless one is under way, the
  // connection has ended, or enough is read ahead.
  void MaybeRead() {
    {
      std::lock_guard lock(mu);
      if (reading || read_ended) return;
      if (!closing && inbox_bytes >= kWebSocketReadAheadBytes) return;
      reading = true;
    }
    ws.async_read(read_buffer, [this](beast::error_code ec, size_t) { OnRead(ec); });
  }

  void OnRead(beast::error_code ec) {
    std::string message;
    absl::Status end;
    if (ec) {
      end = ReadEndStatus(ec);
    } else {
      message = beast::buffers_to_string(read_buffer.data());
      read_buffer.consume(read_buffer.size());
    }
    {
      std::lock_guard lock(mu);
      reading = false;
      if (ec) {
        read_ended = true;
        read_status = std::move(end);
        cv.notify_all();
        return;
      }
      // After Close nobody reads: messages are dropped.
      if (!closing) {
        inbox_bytes += message.size();
        inbox.push_back(std::move(message));
        cv.notify_all();
      }
    }
    MaybeRead();
  }

  // I/O thread: what a read that failed with `ec` means to ReadMessage; OK
  // is a clean end.
  absl::Status ReadEndStatus(beast::error_code ec) {
    if (ec == websocket::error::closed) {
      const websocket::close_reason& reason = ws.reason();
      if (reason.code == websocket::close_code::normal ||
          reason.code == websocket::close_code::none || reason.code == 1005) {
        return absl::OkStatus();
      }
      return absl::UnavailableError(
          StrCat("the peer closed the WebSocket with code ", static_cast<int>(reason.code), ": ",
                 std::string_view(reason.reason.data(), reason.reason.size())));
    }
    {
      std::lock_guard lock(mu);
      if (closing && ec == net::error::operation_aborted) return absl::OkStatus();
      if (shut_down) return absl::UnavailableError("the WebSocket connection was shut down");
    }
    if (ec == net::error::eof || ec == net::error::connection_reset) {
      return absl::UnavailableError("the WebSocket connection ended without a close frame");
    }
    return absl::UnavailableError(StrCat("reading the WebSocket: ", ec.message()));
  }

  // I/O thread: starts the next queued write unless one is under way.
  void MaybeWrite() {
    while (!writing && !writes.empty()) {
      Write* op = writes.front();
      if (!write_error.ok() || close_sent) {
        writes.pop_front();
        Complete(op, write_error.ok() ? absl::FailedPreconditionError("the WebSocket is closed")
                                      : write_error);
        continue;
      }
      writing = true;
      if (op->close) {
        close_sent = true;
        if (!ws.is_open()) {
          // The peer's close frame came first; it has been answered.
          OnWritten(op, {});
          return;
        }
        ws.set_option(websocket::stream_base::timeout{ToChrono(kWebSocketCloseTimeout),
                                                      websocket::stream_base::none(), false});
        ws.async_close(websocket::close_code::normal,
                       [this, op](beast::error_code ec) { OnWritten(op, ec); });
      } else {
        ws.binary(op->binary);
        ws.async_write(net::buffer(op->data.data(), op->data.size()),
                       [this, op](beast::error_code ec, size_t) { OnWritten(op, ec); });
      }
    }
  }

  void OnWritten(Write* op, beast::error_code ec) {
    writing = false;
    writes.pop_front();
    absl::Status status;
    if (ec && !op->close) {
      write_error = absl::UnavailableError(StrCat("writing to the WebSocket: ", ec.message()));
      status = write_error;
    }
    Complete(op, status);
    MaybeWrite();
  }

  void Complete(Write* op, absl::Status status) {
    std::lock_guard lock(mu);
    op->status = std::move(status);
    op->done = true;
    cv.notify_all();
  }

  // Queues `op` on the I/O thread and waits until it is done or `deadline`;
  // false on the deadline (the op is still queued then).
  bool QueueAndWait(Write& op, absl::Time deadline) {
    net::post(io, [this, &op] {
      writes.push_back(&op);
      MaybeWrite();
      if (op.close) MaybeRead();  // Reading resumes to find the peer's close frame.
    });
    std::unique_lock lock(mu);
    while (!op.done) {
      if (deadline == absl::InfiniteFuture()) {
        cv.wait(lock);
      } else if (cv.wait_for(lock, absl::ToChronoNanoseconds(deadline - absl::Now())) ==
                     std::cv_status::timeout &&
                 absl::Now() >= deadline) {
        return op.done;
      }
    }
    return true;
  }

  // Closes the socket on the I/O thread: every pending operation fails.
  void DropSocket() {
    RunOnIo([this](auto done) {
      beast::error_code ec;
      Socket& socket = ws.next_layer();
      if (socket.is_open()) {
        socket.shutdown(net::socket_base::shutdown_both, ec);
        socket.close(ec);
      }
      done(ec);
    });
  }

  void CloseOnce() {
    {
      std::lock_guard lock(mu);
      closing = true;
      cv.notify_all();
    }
    Write op;
    op.close = true;
    if (!QueueAndWait(op, absl::Now() + kWebSocketCloseTimeout)) {
      kLog.Debug("the WebSocket peer did not answer the close frame in time; dropping it");
      DropSocket();
      QueueAndWait(op, absl::InfiniteFuture());
    }
    DropSocket();
  }

  std::shared_ptr<void> keep_alive;  // Released after the socket (declared first).
  net::io_context io;
  net::executor_work_guard<net::io_context::executor_type> work{io.get_executor()};
  WsStream ws;
  std::thread thread;
  std::once_flag close_once;

  // I/O thread only.
  beast::flat_buffer read_buffer;
  std::deque<Write*> writes;
  bool writing = false;
  bool close_sent = false;
  absl::Status write_error;

  std::mutex mu;  // Guards what follows.
  std::condition_variable cv;
  std::deque<std::string> inbox;
  size_t inbox_bytes = 0;
  bool reading = false;
  bool read_ended = false;
  absl::Status read_status;  // OK: a clean end.
  bool closing = false;      // Close was called.
  bool shut_down = false;    // Shutdown was called.
};

WebSocket::WebSocket(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

WebSocket::~WebSocket() {
  Close();
  // Nothing waits for the I/O thread any more; a timer Beast may still hold
  // (after a failed handshake) must not keep it running.
  impl_->work.reset();
  impl_->io.stop();
  impl_->thread.join();
}

absl::StatusOr<std::optional<std::string>> WebSocket::ReadMessage() {
  Impl& impl = *impl_;
  std::unique_lock lock(impl.mu);
  impl.cv.wait(lock, [&] { return !impl.inbox.empty() || impl.read_ended || impl.closing; });
  if (impl.closing) return std::nullopt;
  if (impl.inbox.empty()) {
    if (impl.read_status.ok()) return std::nullopt;
    return impl.read_status;
  }
  std::string message = std::move(impl.inbox.front());
  impl.inbox.pop_front();
  impl.inbox_bytes -= message.size();
  bool resume = !impl.reading && !impl.read_ended && impl.inbox_bytes < kWebSocketReadAheadBytes;
  lock.unlock();
  if (resume) net::post(impl.io, [&impl] { impl.MaybeRead(); });
  return message;
}

absl::Status WebSocket::WriteMessage(std::string_view data, bool binary) {
  if (data.size() > kMaxWebSocketMessageBytes) {
    return absl::InvalidArgumentError(StrCat("a WebSocket message of ", data.size(),
                                             " bytes exceeds the limit of ",
                                             kMaxWebSocketMessageBytes, " bytes"));
  }
  {
    std::lock_guard lock(impl_->mu);
    if (impl_->closing) return absl::FailedPreconditionError("the WebSocket is closed");
  }
  Impl::Write op;
  op.data = data;
  op.binary = binary;
  impl_->QueueAndWait(op, absl::InfiniteFuture());
  return op.status;
}

void WebSocket::Close() {
  std::call_once(impl_->close_once, [this] { impl_->CloseOnce(); });
}

void WebSocket::Shutdown() {
  {
    std::lock_guard lock(impl_->mu);
    impl_->shut_down = true;
  }
  impl_->DropSocket();
}

absl::StatusOr<std::unique_ptr<WebSocket>> WebSocket::Accept(int fd, std::string_view method,
                                                             std::string_view target, int version,
                                                             const Headers& headers,
                                                             std::string_view subprotocol,
                                                             absl::Duration timeout) {
  auto impl = std::make_unique<Impl>(nullptr);
  VMLET_RETURN_IF_ERROR(impl->Open(fd));
  std::unique_ptr<WebSocket> socket(new WebSocket(std::move(impl)));
  socket->subprotocol_ = std::string(subprotocol);

  http::request<http::empty_body> request;
  request.method_string(BeastView(method));
  request.target(BeastView(target));
  request.version(version);
  for (const auto& [name, value] : headers) request.insert(BeastView(name), BeastView(value));

  Impl& ws = *socket->impl_;
  std::string chosen(subprotocol);
  beast::error_code ec = ws.RunOnIo([&](auto done) {
    ws.ws.set_option(
        websocket::stream_base::timeout{ToChrono(timeout), websocket::stream_base::none(), false});
    ws.ws.set_option(
        websocket::stream_base::decorator([chosen](websocket::response_type& response) {
          response.set(http::field::server, "vmlet");
          if (!chosen.empty()) response.set(http::field::sec_websocket_protocol, chosen);
        }));
    ws.ws.async_accept(request, done);
  });
  if (ec) {
    std::lock_guard lock(ws.mu);
    ws.closing = true;  // Nothing to close: the destructor only drops the socket.
    return absl::InvalidArgumentError(StrCat("WebSocket handshake: ", ec.message()));
  }
  net::post(ws.io, [&ws] { ws.MaybeRead(); });
  return socket;
}

absl::StatusOr<std::unique_ptr<WebSocket>> WebSocket::Connect(
    int fd, std::string_view host, std::string_view target,
    const std::vector<std::string>& subprotocols, const Headers& extra_headers,
    absl::Duration timeout, std::shared_ptr<void> keep_alive) {
  auto impl = std::make_unique<Impl>(std::move(keep_alive));
  VMLET_RETURN_IF_ERROR(impl->Open(fd));
  std::unique_ptr<WebSocket> socket(new WebSocket(std::move(impl)));
  Impl& ws = *socket->impl_;

  std::string offered;
  for (const std::string& protocol : subprotocols) {
    StrAppend(&offered, offered.empty() ? "" : ", ", protocol);
  }
  websocket::response_type response;
  beast::error_code ec = ws.RunOnIo([&](auto done) {
    ws.ws.set_option(
        websocket::stream_base::timeout{ToChrono(timeout), websocket::stream_base::none(), false});
    ws.ws.set_option(websocket::stream_base::decorator(
        [offered, extra_headers](websocket::request_type& request) {
          request.set(http::field::user_agent, "vmlet");
          if (!offered.empty()) request.set(http::field::sec_websocket_protocol, offered);
          for (const auto& [name, value] : extra_headers) {
            request.set(BeastView(name), BeastView(value));
          }
        }));
    ws.ws.async_handshake(response, BeastView(host), BeastView(target), done);
  });
  auto fail = [&](absl::Status status) {
    std::lock_guard lock(ws.mu);
    ws.closing = true;
    return status;
  };
  if (ec == websocket::error::upgrade_declined) {
    return fail(absl::FailedPreconditionError(
        StrCat(response.result_int(), " ", StdView(response.reason()), ": ", response.body())));
  }
  if (ec) return fail(absl::UnavailableError(StrCat("WebSocket handshake: ", ec.message())));
  socket->subprotocol_ = std::string(StdView(response[http::field::sec_websocket_protocol]));
  if (!socket->subprotocol_.empty()) {
    bool offered_it = false;
    for (const std::string& protocol : subprotocols) offered_it |= protocol == socket->subprotocol_;
    if (!offered_it) {
      return fail(absl::FailedPreconditionError(
          StrCat("the server chose the WebSocket subprotocol \"", socket->subprotocol_,
                 "\", which the client did not offer (offered: \"", offered, "\")")));
    }
  }
  net::post(ws.io, [&ws] { ws.MaybeRead(); });
  return socket;
}

// ChannelConnection.

struct ChannelConnection::Core {
  struct ChannelState {
    std::mutex write_mu;  // Keeps one Write's messages together.
    // Under Core::mu:
    std::deque<std::string> queue;  // Payloads, each with its channel byte still in front.
    bool eof = false;               // The peer's v5 close signal.
    bool reset = false;             // Reset here: data is dropped.
    bool write_closed = false;
  };

  ChannelState& State(uint8_t n) { return channels.try_emplace(n).first->second; }

  std::unique_ptr<WebSocket> socket;
  std::string protocol;
  bool v5 = false;

  std::mutex mu;  // Guards what follows.
  std::condition_variable cv;
  std::map<uint8_t, ChannelState> channels;  // Nodes never move: ChannelState& stays valid.
  size_t buffered = 0;
  bool ended = false;
  absl::Status end_status;  // OK: a clean end.
  bool closing = false;
};

class ChannelConnection::ChannelStream final : public Stream {
 public:
  ChannelStream(std::shared_ptr<Core> core, uint8_t n) : core_(std::move(core)), n_(n) {
    std::lock_guard lock(core_->mu);
    state_ = &core_->State(n_);
  }

  absl::StatusOr<std::string> Read() override {
    std::unique_lock lock(core_->mu);
    core_->cv.wait(lock, [&] {
      return !state_->queue.empty() || state_->eof || state_->reset || core_->ended;
    });
    if (state_->reset) return absl::FailedPreconditionError(StrCat("channel ", n_, " was reset"));
    if (!state_->queue.empty()) {
      std::string data = std::move(state_->queue.front());
      state_->queue.pop_front();
      core_->buffered -= data.size();
      core_->cv.notify_all();
      data.erase(0, 1);
      return data;
    }
    if (state_->eof || core_->end_status.ok()) return std::string();
    return core_->end_status;
  }

  absl::Status Write(std::string_view data) override {
    std::lock_guard write_lock(state_->write_mu);
    {
      std::lock_guard lock(core_->mu);
      if (state_->write_closed) {
        return absl::FailedPreconditionError(StrCat("channel ", n_, " is closed for writing"));
      }
    }
    std::string message;
    do {
      size_t size = std::min(data.size(), kMaxChannelPayloadBytes);
      message.assign(1, static_cast<char>(n_));
      message.append(data.substr(0, size));
      data.remove_prefix(size);
      VMLET_RETURN_IF_ERROR(core_->socket->WriteMessage(message));
    } while (!data.empty());
    return absl::OkStatus();
  }

  absl::Status CloseWrite() override {
    std::lock_guard write_lock(state_->write_mu);
    {
      std::lock_guard lock(core_->mu);
      if (state_->write_closed) return absl::OkStatus();
      state_->write_closed = true;
    }
    if (!core_->v5) return absl::OkStatus();
    const char signal[2] = {static_cast<char>(kChannelCloseSignal), static_cast<char>(n_)};
    return core_->socket->WriteMessage(std::string_view(signal, 2));
  }

  void Reset() override {
    (void)CloseWrite();
    std::lock_guard lock(core_->mu);
    state_->reset = true;
    for (const std::string& data : state_->queue) core_->buffered -= data.size();
    state_->queue.clear();
    core_->cv.notify_all();
  }

  const Headers& headers() const override {
    static const Headers* const kNone = new Headers();
    return *kNone;
  }

 private:
  const std::shared_ptr<Core> core_;
  const uint8_t n_;
  Core::ChannelState* state_;  // Owned by core_.
};

ChannelConnection::ChannelConnection(std::unique_ptr<WebSocket> socket, std::string_view protocol)
    : core_(std::make_shared<Core>()) {
  core_->socket = std::move(socket);
  core_->protocol = std::string(protocol);
  core_->v5 = protocol == kV5Protocol;
  reader_ = std::thread([core = core_] {
    auto end = [&](absl::Status status) {
      std::lock_guard lock(core->mu);
      core->ended = true;
      core->end_status = std::move(status);
      core->cv.notify_all();
    };
    while (true) {
      absl::StatusOr<std::optional<std::string>> message = core->socket->ReadMessage();
      if (!message.ok()) return end(message.status());
      if (!message->has_value()) return end(absl::OkStatus());
      std::string& data = **message;
      if (data.empty()) continue;
      const uint8_t n = static_cast<uint8_t>(data[0]);
      std::unique_lock lock(core->mu);
      if (core->v5 && n == kChannelCloseSignal) {
        if (data.size() != 2) {
          lock.unlock();
          core->socket->Shutdown();
          return end(absl::InvalidArgumentError(
              StrCat("a v5.channel.k8s.io close signal carries one channel number, not ",
                     data.size() - 1, " bytes")));
        }
        core->State(static_cast<uint8_t>(data[1])).eof = true;
        core->cv.notify_all();
        continue;
      }
      Core::ChannelState& state = core->State(n);
      // [n] alone announces the channel; after the peer's close signal
      // nothing more is expected.
      if (data.size() == 1 || state.reset || state.eof) continue;
      core->cv.wait(lock, [&] {
        return core->buffered < kMaxChannelBufferedBytes || state.reset || core->closing;
      });
      if (state.reset || core->closing) continue;
      core->buffered += data.size();
      state.queue.push_back(std::move(data));
      core->cv.notify_all();
    }
  });
}

ChannelConnection::~ChannelConnection() {
  Close();
  reader_.join();
}

std::shared_ptr<Stream> ChannelConnection::Channel(uint8_t n) {
  return std::make_shared<ChannelStream>(core_, n);
}

void ChannelConnection::Wait() {
  std::unique_lock lock(core_->mu);
  core_->cv.wait(lock, [&] { return core_->ended; });
}

void ChannelConnection::Close() {
  {
    std::lock_guard lock(core_->mu);
    core_->closing = true;
    core_->cv.notify_all();
  }
  core_->socket->Close();
}

const std::string& ChannelConnection::protocol() const { return core_->protocol; }

}  // namespace vmlet::streaming
