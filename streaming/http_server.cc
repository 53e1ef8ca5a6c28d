#include "streaming/http_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <utility>

#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/status.hpp>
#include <boost/beast/http/string_body.hpp>

#include "base/logging.h"
#include "base/scope_guard.h"
#include "base/status.h"
#include "base/str_util.h"
#include "streaming/websocket.h"

namespace vmlet::streaming {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;

constexpr Logger kLog("streaming");

// How long a response may take to leave, and how long the server then reads
// (and drops) what the client still sends, so that closing the socket does
// not reset the connection under the response.
constexpr absl::Duration kResponseTimeout = absl::Seconds(10);
constexpr absl::Duration kLingerTimeout = absl::Seconds(1);
constexpr size_t kMaxLingerBytes = 256 << 10;
// What a TLS pump buffers per direction.
constexpr size_t kPumpBufferBytes = 64 << 10;
// How long a TLS pump whose plain side is gone keeps sending what it still
// holds before it gives up.
constexpr absl::Duration kPumpFlushTimeout = absl::Seconds(5);

std::string Lowercase(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool ContainsToken(const Headers& headers, std::string_view name, std::string_view token) {
  for (const auto& [key, value] : headers) {
    if (key == name && Lowercase(value).find(token) != std::string::npos) return true;
  }
  return false;
}

bool HasLineBreak(std::string_view text) { return text.find_first_of("\r\n") != text.npos; }

int MillisecondsUntil(absl::Time deadline) {
  if (deadline == absl::InfiniteFuture()) return -1;
  absl::Duration left = deadline - absl::Now();
  if (left <= absl::ZeroDuration()) return 0;
  return static_cast<int>(std::min<int64_t>(absl::ToInt64Milliseconds(left) + 1, 1 << 30));
}

std::string ReasonPhrase(int status) {
  beast::string_view reason =
      http::obsolete_reason(http::int_to_status(static_cast<unsigned>(status)));
  return std::string(reason.data(), reason.size());
}

// Writes a complete response and closes the sending side; then reads and
// drops what the client still sends, for a moment.
void WriteResponse(int fd, int status, std::string_view body, const Headers& headers) {
  std::string response =
      StrCat("HTTP/1.1 ", status, " ", ReasonPhrase(status),
             "\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ", body.size(),
             "\r\nConnection: close\r\n");
  for (const auto& [name, value] : headers) {
    if (HasLineBreak(name) || HasLineBreak(value)) continue;
    StrAppend(&response, name, ": ", value, "\r\n");
  }
  StrAppend(&response, "\r\n", body);
  if (absl::Status sent = internal::SendAll(fd, response, absl::Now() + kResponseTimeout);
      !sent.ok()) {
    kLog.Debug("sending a {} response: {}", status, sent.message());
    return;
  }
  ::shutdown(fd, SHUT_WR);
  absl::Time deadline = absl::Now() + kLingerTimeout;
  size_t drained = 0;
  char buffer[4096];
  while (drained < kMaxLingerBytes && internal::WaitFd(fd, POLLIN, deadline).ok()) {
    ssize_t n = ::recv(fd, buffer, sizeof(buffer), MSG_DONTWAIT);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) break;
    drained += static_cast<size_t>(n);
  }
}

// Reads the request head: exactly up to and including its empty line, so
// that whatever follows stays in the socket for whoever takes it over.
// UNAVAILABLE when the client went away, DEADLINE_EXCEEDED,
// RESOURCE_EXHAUSTED for an oversized head, INVALID_ARGUMENT for bytes that
// cannot start an HTTP request.
absl::StatusOr<std::string> ReadHead(int fd, absl::Time deadline) {
  std::string head;
  char buffer[8192];
  while (true) {
    VMLET_RETURN_IF_ERROR(internal::WaitFd(fd, POLLIN, deadline));
    ssize_t n = ::recv(fd, buffer, sizeof(buffer), MSG_PEEK | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return ErrnoToStatus(errno, "reading the request");
    }
    if (n == 0) {
      return absl::UnavailableError(head.empty() ? "the client sent no request"
                                                 : "the client closed the connection within "
                                                   "the request head");
    }
    // The empty line may begin in what was taken already.
    size_t kept = std::min<size_t>(head.size(), 3);
    std::string window = head.substr(head.size() - kept);
    window.append(buffer, static_cast<size_t>(n));
    size_t end = window.find("\r\n\r\n");
    size_t take = end == std::string::npos ? static_cast<size_t>(n) : end + 4 - kept;
    if (head.size() + take > kMaxRequestHeadBytes) {
      return absl::ResourceExhaustedError(
          StrCat("the request head exceeds ", kMaxRequestHeadBytes, " bytes"));
    }
    size_t start = head.size();
    head.resize(start + take);
    for (size_t got = 0; got < take;) {
      ssize_t r = ::recv(fd, head.data() + start + got, take - got, MSG_DONTWAIT);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return ErrnoToStatus(r < 0 ? errno : EPIPE, "reading the request");
      got += static_cast<size_t>(r);
    }
    // The request line is printable ASCII: anything else (a TLS hello
    // sent to a plain port, binary junk) is refused at once.
    std::string_view first_line(head);
    first_line = first_line.substr(0, first_line.find('\n'));
    for (char c : first_line) {
      if ((c < 0x20 || c > 0x7e) && c != '\r') {
        return absl::InvalidArgumentError("the request line holds bytes that are not HTTP");
      }
    }
    if (end != std::string::npos) return head;
  }
}

struct ParsedRequest {
  HttpRequest request;
  int version = 11;
  std::string leftover;  // Read behind the body.
};

absl::StatusOr<ParsedRequest> ReadRequest(int fd, absl::Time deadline) {
  VMLET_ASSIGN_OR_RETURN(std::string head, ReadHead(fd, deadline));
  http::request_parser<http::string_body> parser;
  parser.header_limit(static_cast<std::uint32_t>(kMaxRequestHeadBytes));
  parser.body_limit(kMaxRequestBodyBytes);
  parser.eager(true);
  beast::error_code ec;
  std::string pending = std::move(head);
  std::string more;
  char buffer[8192];
  while (true) {
    while (!pending.empty() && !parser.is_done()) {
      size_t used = parser.put(boost::asio::buffer(pending.data(), pending.size()), ec);
      pending.erase(0, used);
      if (ec == http::error::need_more) {
        ec = {};
        break;
      }
      if (ec == http::error::body_limit) {
        return absl::OutOfRangeError(
            StrCat("the request body exceeds ", kMaxRequestBodyBytes, " bytes"));
      }
      if (ec) return absl::InvalidArgumentError(StrCat("malformed HTTP request: ", ec.message()));
      if (used == 0) break;
    }
    if (parser.is_done()) break;
    VMLET_RETURN_IF_ERROR(internal::WaitFd(fd, POLLIN, deadline));
    ssize_t n = ::recv(fd, buffer, sizeof(buffer), MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return ErrnoToStatus(errno, "reading the request body");
    }
    if (n == 0) {
      parser.put_eof(ec);
      if (ec || !parser.is_done()) {
        return absl::InvalidArgumentError("malformed HTTP request: the body ended early");
      }
      break;
    }
    pending.append(buffer, static_cast<size_t>(n));
  }
  const http::request<http::string_body>& message = parser.get();
  ParsedRequest parsed;
  HttpRequest& request = parsed.request;
  beast::string_view method = message.method_string();
  beast::string_view target = message.target();
  request.method.assign(method.data(), method.size());
  request.target.assign(target.data(), target.size());
  size_t question = request.target.find('?');
  request.path = request.target.substr(0, question);
  if (question != std::string::npos) request.query = request.target.substr(question + 1);
  for (const auto& field : message) {
    beast::string_view name = field.name_string();
    beast::string_view value = field.value();
    request.headers.emplace_back(Lowercase(std::string_view(name.data(), name.size())),
                                 std::string(value.data(), value.size()));
  }
  request.body = message.body();
  parsed.version = static_cast<int>(message.version());
  parsed.leftover = std::move(pending);
  return parsed;
}

}  // namespace

// HttpExchange.

void HttpExchange::Respond(int status, std::string_view body, const Headers& headers) {
  if (answered_) return;
  answered_ = true;
  WriteResponse(fd_, status, body, headers);
}

absl::StatusOr<std::unique_ptr<Transport>> HttpExchange::UpgradeToSpdy(std::string_view protocol) {
  if (answered_) return absl::FailedPreconditionError("the request was already answered");
  if (HasLineBreak(protocol)) {
    return absl::InvalidArgumentError("the stream protocol holds a line break");
  }
  if (!ContainsToken(request_.headers, "connection", "upgrade") ||
      !ContainsToken(request_.headers, "upgrade", "spdy/3.1")) {
    std::string message =
        "unable to upgrade: the request lacks \"Connection: Upgrade\" and \"Upgrade: SPDY/3.1\"";
    Respond(400, message);
    return absl::InvalidArgumentError(message);
  }
  answered_ = true;
  std::string response =
      "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n";
  if (!protocol.empty()) StrAppend(&response, "X-Stream-Protocol-Version: ", protocol, "\r\n");
  response.append("\r\n");
  VMLET_RETURN_IF_ERROR(Annotate(internal::SendAll(fd_, response, absl::Now() + kResponseTimeout),
                                 "sending 101 Switching Protocols"));
  int copy = ::fcntl(fd_, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) return ErrnoToStatus(errno, "duplicating the upgraded connection");
  return std::make_unique<FdTransport>(copy, std::move(leftover_));
}

absl::StatusOr<std::unique_ptr<WebSocket>> HttpExchange::UpgradeToWebSocket(
    std::string_view subprotocol) {
  if (answered_) return absl::FailedPreconditionError("the request was already answered");
  if (HasLineBreak(subprotocol)) {
    return absl::InvalidArgumentError("the WebSocket subprotocol holds a line break");
  }
  if (!leftover_.empty() || !request_.body.empty()) {
    std::string message = "unable to upgrade: a WebSocket upgrade request has no body";
    Respond(400, message);
    return absl::InvalidArgumentError(message);
  }
  answered_ = true;
  int copy = ::fcntl(fd_, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) return ErrnoToStatus(errno, "duplicating the upgraded connection");
  return WebSocket::Accept(copy, request_.method, request_.target, version_, request_.headers,
                           subprotocol, kRequestTimeout);
}

// HttpServer.

struct HttpServer::Connection {
  // Under HttpServer::mu_ (the thread reads them without it: only it
  // writes them).
  int fd = -1;        // The TCP socket; owned by `pump` once there is one.
  int plain_fd = -1;  // With TLS: the server's end of the pump's pair.
  std::unique_ptr<internal::TlsPump> pump;
  std::thread thread;
};

HttpServer::HttpServer(HttpServerOptions options, HttpHandler handler)
    : options_(std::move(options)), handler_(std::move(handler)) {}

HttpServer::~HttpServer() {
  Stop();
  if (wake_fd_ >= 0) ::close(wake_fd_);
  if (ssl_ctx_ != nullptr) SSL_CTX_free(ssl_ctx_);
}

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(HttpServerOptions options,
                                                              HttpHandler handler) {
  std::string address = options.address;
  if (address.size() >= 2 && address.front() == '[' && address.back() == ']') {
    address = address.substr(1, address.size() - 2);
  }
  sockaddr_storage storage{};
  socklen_t length = 0;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&storage);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&storage);
  if (options.port < 0 || options.port > 65535) {
    return absl::InvalidArgumentError(
        StrCat("port ", options.port, " is out of range (expected 0 to 65535)"));
  }
  if (::inet_pton(AF_INET, address.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(options.port));
    length = sizeof(*v4);
  } else if (::inet_pton(AF_INET6, address.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(options.port));
    length = sizeof(*v6);
  } else {
    return absl::InvalidArgumentError(
        StrCat("streaming address \"", options.address, "\" is not an IPv4 or IPv6 address"));
  }
  if (options.tls_cert_file.empty() != options.tls_key_file.empty()) {
    return absl::InvalidArgumentError(
        "TLS for the streaming server needs both a certificate file and a key file");
  }
  if (options.max_connections == 0) {
    return absl::InvalidArgumentError("max_connections of the streaming server must be at least 1");
  }

  std::unique_ptr<HttpServer> server(new HttpServer(options, std::move(handler)));
  if (!options.tls_cert_file.empty()) {
    SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == nullptr) {
      return absl::InternalError(StrCat("creating a TLS context: ", internal::OpenSslErrors()));
    }
    server->ssl_ctx_ = ctx;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (SSL_CTX_use_certificate_chain_file(ctx, options.tls_cert_file.c_str()) != 1) {
      return absl::InvalidArgumentError(StrCat("loading the TLS certificate \"",
                                               options.tls_cert_file,
                                               "\": ", internal::OpenSslErrors()));
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, options.tls_key_file.c_str(), SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
      return absl::InvalidArgumentError(StrCat("loading the TLS key \"", options.tls_key_file,
                                               "\": ", internal::OpenSslErrors()));
    }
  }

  int fd = ::socket(storage.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return ErrnoToStatus(errno, "creating the streaming server's socket");
  server->listen_fd_ = fd;
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(fd, reinterpret_cast<sockaddr*>(&storage), length) != 0) {
    return ErrnoToStatus(
        errno, StrCat("binding the streaming server to ", options.address, ":", options.port));
  }
  if (::listen(fd, SOMAXCONN) != 0) return ErrnoToStatus(errno, "listening");
  length = sizeof(storage);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&storage), &length) != 0) {
    return ErrnoToStatus(errno, "reading the streaming server's port");
  }
  server->port_ = ntohs(storage.ss_family == AF_INET ? v4->sin_port : v6->sin6_port);
  server->wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (server->wake_fd_ < 0) return ErrnoToStatus(errno, "creating an eventfd");
  server->accept_thread_ = std::thread([raw = server.get()] { raw->AcceptLoop(); });
  return server;
}

std::string HttpServer::base_url() const {
  std::string host = options_.address;
  if (host.find(':') != std::string::npos && host.front() != '[') host = StrCat("[", host, "]");
  return StrCat(ssl_ctx_ != nullptr ? "https://" : "http://", host, ":", port_);
}

void HttpServer::Wake() {
  uint64_t one = 1;
  (void)!::write(wake_fd_, &one, sizeof(one));
}

void HttpServer::AcceptLoop() {
  while (true) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      kLog.Error("waiting for streaming connections: {}", ErrnoToStatus(errno, "poll").message());
      return;
    }
    if (fds[1].revents != 0) {
      uint64_t count;
      (void)!::read(wake_fd_, &count, sizeof(count));
    }
    ReapFinished();
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
    }
    if ((fds[0].revents & POLLIN) == 0) continue;
    while (true) {
      int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
          kLog.Warning("accepting a streaming connection: {}",
                       ErrnoToStatus(errno, "accept").message());
          ::poll(nullptr, 0, 100);  // Let connections end before trying again.
        }
        break;
      }
      // Interactive sessions send small writes: no Nagle delay.
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      std::unique_lock lock(mu_);
      if (connections_.size() >= options_.max_connections) {
        lock.unlock();
        Reject(fd);
        continue;
      }
      auto connection = std::make_unique<Connection>();
      Connection* raw = connection.get();
      raw->fd = fd;
      connections_.push_back(std::move(connection));
      raw->thread = std::thread([this, raw] { Serve(raw); });
    }
  }
}

void HttpServer::Reject(int fd) {
  kLog.Warning("refusing a streaming connection: {} connections are open",
               options_.max_connections);
  if (ssl_ctx_ == nullptr) {
    std::string body = StrCat("too many connections (the limit is ", options_.max_connections, ")");
    std::string response = StrCat(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Length: ",
        body.size(), "\r\nConnection: close\r\n\r\n", body);
    (void)!::send(fd, response.data(), response.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    ::shutdown(fd, SHUT_WR);
  }
  ::close(fd);
}

void HttpServer::ReapFinished() {
  std::list<std::unique_ptr<Connection>> done;
  {
    std::lock_guard lock(mu_);
    for (Connection* connection : finished_) {
      for (auto it = connections_.begin(); it != connections_.end(); ++it) {
        if (it->get() == connection) {
          done.splice(done.end(), connections_, it);
          break;
        }
      }
    }
    finished_.clear();
  }
  for (auto& connection : done) connection->thread.join();
}

void HttpServer::Serve(Connection* connection) {
  const absl::Time deadline = absl::Now() + options_.request_timeout;
  int fd = connection->fd;
  ScopeGuard finish([&] {
    {
      std::lock_guard lock(mu_);
      if (connection->plain_fd >= 0) ::close(connection->plain_fd);
      connection->plain_fd = -1;
      if (connection->pump == nullptr && connection->fd >= 0) ::close(connection->fd);
      connection->fd = -1;
    }
    // The pump ends once every copy of the plain end is closed (an upgraded
    // connection's owner may still hold one) or on Stop.
    if (connection->pump != nullptr) connection->pump->Join();
    std::lock_guard lock(mu_);
    connection->pump.reset();
    finished_.push_back(connection);
    Wake();
  });

  if (ssl_ctx_ != nullptr) {
    SSL* ssl = SSL_new(ssl_ctx_);
    if (ssl == nullptr || SSL_set_fd(ssl, fd) != 1) {
      kLog.Warning("setting up TLS for a streaming connection: {}", internal::OpenSslErrors());
      if (ssl != nullptr) SSL_free(ssl);
      return;
    }
    if (absl::Status status = internal::TlsHandshake(ssl, fd, /*accept=*/true, deadline);
        !status.ok()) {
      kLog.Debug("TLS handshake with a streaming client failed: {}", status.message());
      SSL_free(ssl);
      return;
    }
    std::unique_lock lock(mu_);
    // The pump owns the socket from here on, even when it fails to start.
    connection->fd = -1;
    lock.unlock();
    absl::StatusOr<std::pair<std::unique_ptr<internal::TlsPump>, int>> pump =
        internal::TlsPump::Start(ssl, fd);
    if (!pump.ok()) {
      kLog.Warning("starting the TLS pump of a streaming connection: {}", pump.status().message());
      return;
    }
    lock.lock();
    connection->pump = std::move(pump->first);
    connection->plain_fd = pump->second;
    fd = pump->second;
    if (stopping_) {
      connection->pump->Stop();
      return;
    }
  }

  absl::StatusOr<ParsedRequest> parsed = ReadRequest(fd, deadline);
  if (!parsed.ok()) {
    const absl::Status& status = parsed.status();
    kLog.Debug("bad streaming request: {}", status.message());
    switch (status.code()) {
      case absl::StatusCode::kInvalidArgument:
        WriteResponse(fd, 400, ToStd(status.message()), {});
        break;
      case absl::StatusCode::kDeadlineExceeded:
        WriteResponse(
            fd, 408,
            StrCat("no complete request within ", absl::FormatDuration(options_.request_timeout)),
            {});
        break;
      case absl::StatusCode::kResourceExhausted:
        WriteResponse(fd, 431, ToStd(status.message()), {});
        break;
      case absl::StatusCode::kOutOfRange:
        WriteResponse(fd, 413, ToStd(status.message()), {});
        break;
      default:
        break;  // The client is gone.
    }
    return;
  }
  HttpExchange exchange(fd, std::move(parsed->request), parsed->version,
                        std::move(parsed->leftover));
  handler_(exchange);
  if (!exchange.answered())
    exchange.Respond(500, "the streaming server did not answer the request");
}

void HttpServer::Stop() {
  std::lock_guard stop_lock(stop_mu_);
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  if (accept_thread_.joinable()) {
    Wake();
    accept_thread_.join();
  }
  if (listen_fd_ >= 0) {
    ::close(listen_fd_);
    listen_fd_ = -1;
  }
  {
    std::lock_guard lock(mu_);
    for (const auto& connection : connections_) {
      if (connection->fd >= 0) ::shutdown(connection->fd, SHUT_RDWR);
      if (connection->plain_fd >= 0) ::shutdown(connection->plain_fd, SHUT_RDWR);
      if (connection->pump != nullptr) connection->pump->Stop();
    }
  }
  // No thread adds connections any more; finished ones only queue themselves.
  for (const auto& connection : connections_) connection->thread.join();
  std::lock_guard lock(mu_);
  connections_.clear();
  finished_.clear();
}

// TLS.

namespace internal {

std::string OpenSslErrors() {
  std::string out;
  while (unsigned long error = ERR_get_error()) {
    char text[256];
    ERR_error_string_n(error, text, sizeof(text));
    StrAppend(&out, out.empty() ? "" : "; ", text);
  }
  return out.empty() ? "unknown OpenSSL error" : out;
}

absl::Status WaitFd(int fd, short events, absl::Time deadline) {
  while (true) {
    pollfd pfd = {fd, events, 0};
    int n = ::poll(&pfd, 1, MillisecondsUntil(deadline));
    if (n > 0) return absl::OkStatus();
    if (n == 0) return absl::DeadlineExceededError("timed out waiting for the peer");
    if (errno != EINTR) return ErrnoToStatus(errno, "waiting for the peer");
  }
}

absl::Status SendAll(int fd, std::string_view data, absl::Time deadline) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n > 0) {
      data.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      VMLET_RETURN_IF_ERROR(WaitFd(fd, POLLOUT, deadline));
      continue;
    }
    return ErrnoToStatus(n < 0 ? errno : EPIPE, "sending");
  }
  return absl::OkStatus();
}

absl::Status TlsHandshake(SSL* ssl, int fd, bool accept, absl::Time deadline) {
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) {
    return ErrnoToStatus(errno, "making the TLS socket non-blocking");
  }
  while (true) {
    ERR_clear_error();
    int result = accept ? SSL_accept(ssl) : SSL_connect(ssl);
    if (result == 1) return absl::OkStatus();
    switch (SSL_get_error(ssl, result)) {
      case SSL_ERROR_WANT_READ:
        VMLET_RETURN_IF_ERROR(Annotate(WaitFd(fd, POLLIN, deadline), "TLS handshake"));
        break;
      case SSL_ERROR_WANT_WRITE:
        VMLET_RETURN_IF_ERROR(Annotate(WaitFd(fd, POLLOUT, deadline), "TLS handshake"));
        break;
      case SSL_ERROR_SYSCALL:
        if (ERR_peek_error() == 0) {
          return absl::UnavailableError("TLS handshake: the peer closed the connection");
        }
        [[fallthrough]];
      default: {
        std::string errors = OpenSslErrors();
        long verify = SSL_get_verify_result(ssl);
        if (!accept && verify != X509_V_OK) {
          StrAppend(&errors, " (", X509_verify_cert_error_string(verify), ")");
        }
        return absl::UnavailableError(StrCat("TLS handshake: ", errors));
      }
    }
  }
}

TlsPump::TlsPump(SSL* ssl, int fd, int plain_fd, int wake_fd)
    : ssl_(ssl), fd_(fd), plain_fd_(plain_fd), wake_fd_(wake_fd) {}

TlsPump::~TlsPump() {
  Join();
  SSL_free(ssl_);
  ::close(fd_);
  ::close(plain_fd_);
  ::close(wake_fd_);
}

absl::StatusOr<std::pair<std::unique_ptr<TlsPump>, int>> TlsPump::Start(SSL* ssl, int fd) {
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) {
    absl::Status status = ErrnoToStatus(errno, "creating the TLS pump's socketpair");
    SSL_free(ssl);
    ::close(fd);
    return status;
  }
  int wake = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake < 0) {
    absl::Status status = ErrnoToStatus(errno, "creating the TLS pump's eventfd");
    SSL_free(ssl);
    ::close(fd);
    ::close(pair[0]);
    ::close(pair[1]);
    return status;
  }
  ::fcntl(pair[0], F_SETFL, ::fcntl(pair[0], F_GETFL) | O_NONBLOCK);
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  std::unique_ptr<TlsPump> pump(new TlsPump(ssl, fd, pair[0], wake));
  pump->thread_ = std::thread([raw = pump.get()] { raw->Run(); });
  return std::make_pair(std::move(pump), pair[1]);
}

void TlsPump::Stop() {
  uint64_t one = 1;
  (void)!::write(wake_fd_, &one, sizeof(one));
}

void TlsPump::Join() {
  std::call_once(join_once_, [this] {
    if (thread_.joinable()) thread_.join();
  });
}

void TlsPump::Run() {
  std::string to_plain, to_tls;
  bool tls_eof = false;      // The peer's close_notify (or its EOF) came.
  bool tls_failed = false;   // The TLS connection is unusable.
  bool plain_eof = false;    // The plain side will write no more.
  bool plain_hup = false;    // Every descriptor of the plain side is closed...
  bool plain_gone = false;   // ...and its last bytes are read: nobody reads either.
  bool plain_shut = false;   // Its reading side got end of stream.
  bool notify_sent = false;  // Our close_notify went out.
  absl::Time flush_deadline = absl::InfiniteFuture();
  char buffer[16 << 10];
  while (true) {
    bool progress = false;
    bool want_read = false, want_write = false;
    // TLS to plain.
    while (!tls_eof && !tls_failed && to_plain.size() < kPumpBufferBytes) {
      ERR_clear_error();
      int n =
          SSL_read(ssl_, buffer,
                   static_cast<int>(std::min(sizeof(buffer), kPumpBufferBytes - to_plain.size())));
      if (n > 0) {
        to_plain.append(buffer, static_cast<size_t>(n));
        progress = true;
        continue;
      }
      switch (SSL_get_error(ssl_, n)) {
        case SSL_ERROR_WANT_READ:
          want_read = true;
          break;
        case SSL_ERROR_WANT_WRITE:
          want_write = true;
          break;
        case SSL_ERROR_ZERO_RETURN:
          tls_eof = true;
          progress = true;
          break;
        default:
          tls_failed = true;
          ERR_clear_error();
          break;
      }
      break;
    }
    if (plain_gone) to_plain.clear();
    if (!to_plain.empty()) {
      ssize_t n = ::send(plain_fd_, to_plain.data(), to_plain.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n > 0) {
        to_plain.erase(0, static_cast<size_t>(n));
        progress = true;
      } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        to_plain.clear();  // The plain side no longer reads.
        plain_shut = true;
      }
    }
    if ((tls_eof || tls_failed) && to_plain.empty() && !plain_shut) {
      ::shutdown(plain_fd_, SHUT_WR);
      plain_shut = true;
    }
    // Plain to TLS.
    if (!plain_eof && to_tls.size() < kPumpBufferBytes) {
      ssize_t n = ::recv(plain_fd_, buffer,
                         std::min(sizeof(buffer), kPumpBufferBytes - to_tls.size()), MSG_DONTWAIT);
      if (n > 0) {
        to_tls.append(buffer, static_cast<size_t>(n));
        progress = true;
      } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        plain_eof = true;
        progress = true;
      }
    }
    if (plain_hup && plain_eof && !plain_gone) {
      plain_gone = true;
      flush_deadline = absl::Now() + kPumpFlushTimeout;
    }
    if (!to_tls.empty() && !tls_failed) {
      ERR_clear_error();
      int n = SSL_write(ssl_, to_tls.data(), static_cast<int>(to_tls.size()));
      if (n > 0) {
        to_tls.erase(0, static_cast<size_t>(n));
        progress = true;
      } else {
        switch (SSL_get_error(ssl_, n)) {
          case SSL_ERROR_WANT_READ:
            want_read = true;
            break;
          case SSL_ERROR_WANT_WRITE:
            want_write = true;
            break;
          default:
            tls_failed = true;
            ERR_clear_error();
            break;
        }
      }
    }
    if (tls_failed) to_tls.clear();
    if (plain_eof && to_tls.empty() && !tls_failed && !notify_sent) {
      ERR_clear_error();
      int result = SSL_shutdown(ssl_);
      if (result < 0 && SSL_get_error(ssl_, result) == SSL_ERROR_WANT_WRITE) {
        want_write = true;
      } else {
        ERR_clear_error();
        notify_sent = true;
        ::shutdown(fd_, SHUT_WR);
        progress = true;
      }
    }

    if (tls_failed) break;
    const bool tls_done = tls_eof && to_plain.empty();
    const bool plain_done = plain_eof && to_tls.empty() && notify_sent;
    if ((tls_done || plain_gone) && plain_done) break;
    if (plain_gone && absl::Now() >= flush_deadline) break;
    if (progress) continue;

    // Wait for something to do.
    short tls_events = static_cast<short>((want_read ? POLLIN : 0) | (want_write ? POLLOUT : 0));
    short plain_events =
        static_cast<short>((!plain_eof && to_tls.size() < kPumpBufferBytes ? POLLIN : 0) |
                           (!to_plain.empty() ? POLLOUT : 0));
    pollfd fds[3] = {
        {tls_events != 0 ? fd_ : -1, tls_events, 0},
        // Polled without events until it hangs up, to learn of that.
        {plain_gone || (plain_hup && plain_events == 0) ? -1 : plain_fd_, plain_events, 0},
        {wake_fd_, POLLIN, 0},
    };
    int n = ::poll(fds, 3, plain_gone ? MillisecondsUntil(flush_deadline) : -1);
    if (n < 0 && errno != EINTR) break;
    if (fds[2].revents != 0) break;  // Stop.
    if ((fds[1].revents & POLLHUP) != 0) plain_hup = true;
    if ((fds[1].revents & POLLERR) != 0) {
      plain_hup = true;
      plain_eof = true;
    }
  }
  // Whoever still reads or writes the plain side learns of the end.
  ::shutdown(plain_fd_, SHUT_RDWR);
  ::shutdown(fd_, SHUT_RDWR);
}

}  // namespace internal
}  // namespace vmlet::streaming
