// port-forward sessions. Over SPDY the client opens, for every connection
// it forwards, a data and an error stream with the same requestid and
// port headers; the pair becomes one Runtime::PortForward. Over WebSocket
// the ports come from the URL's "port" parameters and each gets channel
// 2i (data) and 2i+1 (error), each starting with the port number (two
// bytes, little endian).
#include <algorithm>
#include <charconv>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

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

// Forwarded connections one session may have open at once.
constexpr size_t kMaxForwardsPerSession = 128;

absl::StatusOr<int32_t> ParsePort(std::string_view text) {
  int32_t port = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), port);
  if (ec != std::errc() || end != text.data() + text.size() || port < 1 || port > 65535) {
    return absl::InvalidArgumentError(
        StrCat("port \"", text, "\" is not a port number (expected 1 to 65535)"));
  }
  return port;
}

// Runs forwards on threads of their own and joins them all at the end.
class Forwards {
 public:
  ~Forwards() { JoinAll(); }

  // Runs the forward of `port` between `data` and the sandbox; its error
  // goes to `error` as text. False (nothing started) at the limit.
  bool Start(Runtime& runtime, const std::string& sandbox_id, int32_t port,
             std::shared_ptr<Stream> data, std::shared_ptr<Stream> error) {
    std::lock_guard lock(mu_);
    if (running_ >= kMaxForwardsPerSession) return false;
    ++running_;
    threads_.emplace_back([this, &runtime, sandbox_id, port, data, error] {
      absl::Status forwarded = runtime.PortForward(sandbox_id, port, *data);
      if (!forwarded.ok()) {
        (void)error->Write(StrCat("error forwarding port ", port, " to pod sandbox ", sandbox_id,
                                  ": ", forwarded.message()));
      }
      (void)data->CloseWrite();
      (void)error->CloseWrite();
      std::lock_guard lock(mu_);
      --running_;
    });
    return true;
  }

  void JoinAll() {
    std::list<std::thread> threads;
    {
      std::lock_guard lock(mu_);
      threads.swap(threads_);
    }
    for (std::thread& thread : threads) thread.join();
  }

 private:
  std::mutex mu_;
  size_t running_ = 0;
  std::list<std::thread> threads_;
};

struct Pair {
  std::shared_ptr<Stream> data, error;
  absl::Time deadline = absl::InfinitePast();
};

void ServeSpdy(HttpExchange& exchange, const PortForwardRequest& request, Runtime& runtime,
               const ServerOptions& options) {
  absl::StatusOr<std::string> protocol = NegotiateProtocol(
      HeaderValues(exchange.request().headers, kHeaderProtocolVersion), {kProtocolPortForward});
  if (!protocol.ok() || protocol->empty()) {
    exchange.Respond(
        403, protocol.ok() ? StrCat("port-forward needs the stream protocol ", kProtocolPortForward)
                           : std::string(protocol.status().message()));
    return;
  }
  absl::StatusOr<std::unique_ptr<Transport>> transport = exchange.UpgradeToSpdy(*protocol);
  if (!transport.ok()) return;
  std::shared_ptr<SpdySession> session =
      SpdySession::Start(*std::move(transport), SpdySession::Role::kServer);
  Forwards forwards;
  std::map<std::string, Pair> pairs;
  while (true) {
    absl::Time deadline = absl::InfiniteFuture();
    for (const auto& [id, pair] : pairs) deadline = std::min(deadline, pair.deadline);
    absl::StatusOr<std::shared_ptr<Stream>> accepted = session->AcceptStream(deadline);
    if (!accepted.ok() && !absl::IsDeadlineExceeded(accepted.status())) break;
    // Pairs that did not complete in time.
    absl::Time now = absl::Now();
    for (auto it = pairs.begin(); it != pairs.end();) {
      if (it->second.deadline > now) {
        ++it;
        continue;
      }
      if (it->second.error != nullptr) {
        (void)it->second.error->Write(
            StrCat("timed out waiting for the data and error streams of request ", it->first));
      }
      for (auto& stream : {it->second.data, it->second.error}) {
        if (stream != nullptr) stream->Reset();
      }
      it = pairs.erase(it);
    }
    if (!accepted.ok()) continue;
    std::shared_ptr<Stream> stream = *std::move(accepted);
    std::string type = HeaderValue(stream->headers(), kHeaderStreamType);
    absl::StatusOr<int32_t> port = ParsePort(HeaderValue(stream->headers(), kHeaderPort));
    std::string id = HeaderValue(stream->headers(), kHeaderRequestId);
    if (!port.ok() || (type != kStreamTypeData && type != kStreamTypeError) || id.empty()) {
      kLog.Warning(
          "port-forward to sandbox {}: refused a stream (streamtype \"{}\", port \"{}\", "
          "requestid \"{}\")",
          request.sandbox_id, type, HeaderValue(stream->headers(), kHeaderPort), id);
      stream->Reset();
      continue;
    }
    Pair& pair = pairs[id];
    if (pair.deadline == absl::InfinitePast()) {
      pair.deadline = absl::Now() + options.stream_creation_timeout;
    }
    std::shared_ptr<Stream>& slot = type == kStreamTypeData ? pair.data : pair.error;
    if (slot != nullptr) {
      stream->Reset();
      continue;
    }
    slot = stream;
    if (pair.data == nullptr || pair.error == nullptr) continue;
    Pair complete = pair;
    pairs.erase(id);
    if (!forwards.Start(runtime, request.sandbox_id, *port, complete.data, complete.error)) {
      (void)complete.error->Write(
          StrCat("too many forwarded connections on one session (", kMaxForwardsPerSession, ")"));
      complete.data->Reset();
      complete.error->Reset();
    }
  }
  session->Close();
  forwards.JoinAll();
}

void ServeWebSocket(HttpExchange& exchange, const PortForwardRequest& request, Runtime& runtime) {
  std::vector<int32_t> ports;
  std::vector<std::string> texts = QueryValues(exchange.request().query, kHeaderPort);
  for (const std::string& text : texts) {
    absl::StatusOr<int32_t> port = ParsePort(text);
    if (!port.ok()) {
      exchange.Respond(400, StrCat("query parameter \"port\": ", port.status().message()));
      return;
    }
    ports.push_back(*port);
  }
  if (texts.empty()) ports = request.ports;
  if (ports.empty() || ports.size() > kMaxForwardsPerSession) {
    exchange.Respond(400, StrCat("query parameter \"port\" must name 1 to ", kMaxForwardsPerSession,
                                 " ports for a WebSocket port-forward"));
    return;
  }
  absl::StatusOr<std::string> protocol =
      NegotiateProtocol(HeaderValues(exchange.request().headers, kHeaderWebSocketProtocol),
                        {kProtocolV4, kProtocolPortForward});
  if (!protocol.ok()) {
    exchange.Respond(403, std::string(protocol.status().message()));
    return;
  }
  absl::StatusOr<std::unique_ptr<WebSocket>> socket = exchange.UpgradeToWebSocket(*protocol);
  if (!socket.ok()) return;
  auto channels = std::make_shared<ChannelConnection>(*std::move(socket), kProtocolV4);
  Forwards forwards;
  for (size_t i = 0; i < ports.size(); ++i) {
    std::shared_ptr<Stream> data = channels->Channel(static_cast<uint8_t>(2 * i));
    std::shared_ptr<Stream> error = channels->Channel(static_cast<uint8_t>(2 * i + 1));
    const char prefix[2] = {static_cast<char>(ports[i] & 0xff),
                            static_cast<char>((ports[i] >> 8) & 0xff)};
    if (!data->Write(std::string_view(prefix, 2)).ok() ||
        !error->Write(std::string_view(prefix, 2)).ok()) {
      break;
    }
    forwards.Start(runtime, request.sandbox_id, ports[i], data, error);
  }
  forwards.JoinAll();
  channels->Close();
}

}  // namespace

void ServePortForward(HttpExchange& exchange, const PortForwardRequest& request, Runtime& runtime,
                      const ServerOptions& options) {
  if (IsWebSocketRequest(exchange.request())) {
    ServeWebSocket(exchange, request, runtime);
  } else {
    ServeSpdy(exchange, request, runtime, options);
  }
}

}  // namespace vmlet::streaming
