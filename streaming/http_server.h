// The HTTP/1.1 listener of the streaming server: one request per
// connection, answered with a plain response or upgraded to SPDY/3.1 or
// WebSocket. With TLS, the handshake runs on the connection's thread and a
// pump thread then moves bytes between the TLS connection and a socketpair,
// so that the HTTP parsing, SPDY and WebSocket always run on a plain file
// descriptor.
//
// Threads: one accept thread; one thread per connection, which runs the
// handler (and may keep it for the whole stream session); one pump thread
// per TLS connection.
#ifndef VMLET_STREAMING_HTTP_SERVER_H_
#define VMLET_STREAMING_HTTP_SERVER_H_

#include <cstddef>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "streaming/stream.h"
#include "streaming/transport.h"

typedef struct ssl_st SSL;
typedef struct ssl_ctx_st SSL_CTX;

namespace vmlet::streaming {

class WebSocket;

// Limits on what a client may send before its request is answered.
inline constexpr size_t kMaxRequestHeadBytes = 64 << 10;
inline constexpr size_t kMaxRequestBodyBytes = 64 << 10;
// How long a client has for the TLS handshake and its request (head and
// body); an idle connection cannot hold a thread longer.
inline constexpr absl::Duration kRequestTimeout = absl::Seconds(30);

struct HttpServerOptions {
  std::string address = "127.0.0.1";  // An IPv4 or IPv6 literal.
  int port = 0;                       // 0: a free port.
  // Both set: HTTPS with this PEM certificate chain and key.
  std::string tls_cert_file, tls_key_file;
  // Connections beyond this many get "503 Service Unavailable" at once.
  size_t max_connections = 256;
  // For the TLS handshake and the request; then "408 Request Timeout".
  absl::Duration request_timeout = kRequestTimeout;
};

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string target;  // As sent: "/exec/abc?command=ls".
  std::string path;    // The target up to '?': "/exec/abc" (not percent-decoded).
  std::string query;   // After '?', raw: "command=ls"; "" without one.
  Headers headers;     // Names lower case, in the order sent.
  std::string body;    // At most kMaxRequestBodyBytes.
};

// One request, on its connection's thread. The handler may keep that thread
// for the whole stream session (an exec can last hours). Exactly one of
// Respond, UpgradeToSpdy and UpgradeToWebSocket answers it; a handler that
// calls none gets a 500 sent for it. Only the connection's thread may call
// these.
class HttpExchange {
 public:
  HttpExchange(const HttpExchange&) = delete;
  HttpExchange& operator=(const HttpExchange&) = delete;

  const HttpRequest& request() const { return request_; }

  // A complete response (Content-Type text/plain) with `headers` (names as
  // they should be sent) added, then the connection closes.
  void Respond(int status, std::string_view body, const Headers& headers = {});

  // Checks the request's "Connection: Upgrade" and "Upgrade: SPDY/3.1"
  // (400 and an error without them), answers 101 Switching Protocols with
  // those headers and, when `protocol` is not empty,
  // "X-Stream-Protocol-Version: <protocol>", and returns the connection's
  // bytes (with TLS: the plain side of the pump). Bytes that arrived behind
  // the request are read first.
  absl::StatusOr<std::unique_ptr<Transport>> UpgradeToSpdy(std::string_view protocol);

  // The WebSocket handshake (RFC 6455), answering with
  // "Sec-WebSocket-Protocol: <subprotocol>" when it is not empty. A request
  // that is no valid WebSocket upgrade gets 400 (426 for a version other
  // than 13) and an error.
  absl::StatusOr<std::unique_ptr<WebSocket>> UpgradeToWebSocket(std::string_view subprotocol);

  bool answered() const { return answered_; }

 private:
  friend class HttpServer;
  HttpExchange(int fd, HttpRequest request, int version, std::string leftover)
      : fd_(fd), request_(std::move(request)), version_(version), leftover_(std::move(leftover)) {}
  absl::Status Answer();

  const int fd_;  // Not owned: the server closes it after the handler.
  const HttpRequest request_;
  const int version_;     // 11 for HTTP/1.1.
  std::string leftover_;  // Bytes read behind the request.
  bool answered_ = false;
};

using HttpHandler = std::function<void(HttpExchange&)>;

namespace internal {
class TlsPump;
}  // namespace internal

// All methods: any thread, except that Stop must not be called from a
// handler.
class HttpServer {
 public:
  // Listens on options.address:options.port and serves each connection on a
  // thread of its own with `handler`.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(HttpServerOptions options,
                                                           HttpHandler handler);
  ~HttpServer();  // Stop().
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  int port() const { return port_; }
  // "http://127.0.0.1:PORT", "https://..." with TLS, "http://[::1]:PORT".
  std::string base_url() const;

  // Stops accepting, shuts down every connection (blocked reads and writes
  // on upgraded connections fail) and joins every thread: returns once the
  // handlers have returned. Idempotent.
  void Stop();

 private:
  struct Connection;
  HttpServer(HttpServerOptions options, HttpHandler handler);
  void AcceptLoop();
  void Serve(Connection* connection);
  void Reject(int fd);
  void ReapFinished();
  void Wake();

  const HttpServerOptions options_;
  const HttpHandler handler_;
  SSL_CTX* ssl_ctx_ = nullptr;
  int listen_fd_ = -1;
  int wake_fd_ = -1;  // An eventfd: Stop and finished connections wake the accept loop.
  int port_ = 0;
  std::thread accept_thread_;

  std::mutex stop_mu_;  // Serialises Stop.
  std::mutex mu_;       // Guards what follows.
  bool stopping_ = false;
  std::list<std::unique_ptr<Connection>> connections_;
  std::list<Connection*> finished_;
};

namespace internal {

// Moves bytes between a TLS connection and one end of a socketpair, on a
// thread of its own (an SSL object may not be read and written from two
// threads at once). The other end of the pair is plain bytes for the HTTP
// parser, SPDY and WebSocket. The pump ends when the TLS connection fails
// or is closed and its bytes are delivered, or once every descriptor of the
// plain end is closed (and what it wrote is sent); Stop ends it at once.
class TlsPump {
 public:
  // Takes `ssl` (handshake done) and its socket `fd`; returns the pump and
  // the plain end, which the caller owns (a blocking socket).
  static absl::StatusOr<std::pair<std::unique_ptr<TlsPump>, int>> Start(SSL* ssl, int fd);
  ~TlsPump();  // Waits for the thread: Stop() first to end it at once.
  TlsPump(const TlsPump&) = delete;
  TlsPump& operator=(const TlsPump&) = delete;

  // Any thread, any number of times.
  void Stop();
  // Blocks until the pump has ended.
  void Join();

 private:
  TlsPump(SSL* ssl, int fd, int plain_fd, int wake_fd);
  void Run();

  SSL* const ssl_;
  const int fd_;
  const int plain_fd_;  // The pump's end of the pair.
  const int wake_fd_;   // An eventfd written by Stop.
  std::once_flag join_once_;
  std::thread thread_;
};

// Runs the TLS handshake on `fd` (which the call makes non-blocking) as
// server (`accept`) or client, until `deadline`.
absl::Status TlsHandshake(SSL* ssl, int fd, bool accept, absl::Time deadline);

// The OpenSSL error queue as text (emptied).
std::string OpenSslErrors();

// Waits until `fd` is readable (`events` POLLIN) or writable (POLLOUT), or
// `deadline`: DEADLINE_EXCEEDED then.
absl::Status WaitFd(int fd, short events, absl::Time deadline);

// Sends all of `data` on the socket `fd`, or fails at `deadline`.
absl::Status SendAll(int fd, std::string_view data, absl::Time deadline);

}  // namespace internal
}  // namespace vmlet::streaming

#endif  // VMLET_STREAMING_HTTP_SERVER_H_
