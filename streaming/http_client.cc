#include "streaming/http_client.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <utility>

#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include "base/scope_guard.h"
#include "base/status.h"
#include "base/str_util.h"
#include "streaming/http_server.h"

namespace vmlet::streaming {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;

struct Url {
  bool tls = false;
  std::string host;       // Without brackets: "127.0.0.1", "::1", "node.example".
  std::string authority;  // For the Host header, as written: "[::1]:10250".
  int port = 0;
  std::string target;  // Path and query: "/exec/abc?command=ls".
};

absl::StatusOr<Url> ParseUrl(std::string_view text) {
  Url url;
  std::string_view rest = text;
  auto starts_with = [&](std::string_view prefix) {
    if (rest.size() < prefix.size()) return false;
    for (size_t i = 0; i < prefix.size(); ++i) {
      if (std::tolower(static_cast<unsigned char>(rest[i])) != prefix[i]) return false;
    }
    return true;
  };
  if (starts_with("https://")) {
    url.tls = true;
    rest.remove_prefix(8);
  } else if (starts_with("http://")) {
    rest.remove_prefix(7);
  } else {
    return absl::InvalidArgumentError(
        StrCat("URL \"", text, "\" must start with http:// or https://"));
  }
  size_t end = rest.find_first_of("/?#");
  url.authority = std::string(rest.substr(0, end));
  url.target = end == std::string_view::npos ? "/" : std::string(rest.substr(end));
  if (size_t hash = url.target.find('#'); hash != std::string::npos) url.target.resize(hash);
  if (url.target.empty() || url.target.front() != '/') url.target.insert(0, "/");
  std::string_view authority = url.authority;
  if (authority.find('@') != std::string_view::npos) {
    return absl::InvalidArgumentError(
        StrCat("URL \"", text, "\": user information is not supported"));
  }
  std::string_view port;
  if (!authority.empty() && authority.front() == '[') {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) {
      return absl::InvalidArgumentError(StrCat("URL \"", text, "\": unterminated IPv6 address"));
    }
    url.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') {
        return absl::InvalidArgumentError(
            StrCat("URL \"", text, "\": junk after the IPv6 address"));
      }
      port = after.substr(1);
    }
  } else {
    size_t colon = authority.find(':');
    url.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port = authority.substr(colon + 1);
  }
  if (url.host.empty())
    return absl::InvalidArgumentError(StrCat("URL \"", text, "\" names no host"));
  url.port = url.tls ? 443 : 80;
  if (!port.empty()) {
    int value = 0;
    for (char c : port) {
      if (c < '0' || c > '9' || value > 65535) {
        value = -1;
        break;
      }
      value = value * 10 + (c - '0');
    }
    if (value < 1 || value > 65535) {
      return absl::InvalidArgumentError(
          StrCat("URL \"", text, "\": port \"", port, "\" is not a number from 1 to 65535"));
    }
    url.port = value;
  }
  return url;
}

// A connected TCP socket (blocking), or an error at `deadline`.
absl::StatusOr<int> Connect(const Url& url, absl::Time deadline) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* addresses = nullptr;
  std::string port = StrCat(url.port);
  if (int error = ::getaddrinfo(url.host.c_str(), port.c_str(), &hints, &addresses); error != 0) {
    return absl::UnavailableError(StrCat("resolving \"", url.host, "\": ", ::gai_strerror(error)));
  }
  ScopeGuard free_addresses([&] { ::freeaddrinfo(addresses); });
  absl::Status last = absl::UnavailableError(StrCat("\"", url.host, "\" has no address"));
  for (addrinfo* address = addresses; address != nullptr; address = address->ai_next) {
    int fd = ::socket(address->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
      last = ErrnoToStatus(errno, "creating a socket");
      continue;
    }
    ScopeGuard close_fd([fd] { ::close(fd); });
    if (::connect(fd, address->ai_addr, address->ai_addrlen) != 0) {
      if (errno != EINPROGRESS) {
        last = ErrnoToStatus(errno, StrCat("connecting to ", url.authority));
        continue;
      }
      if (absl::Status ready = internal::WaitFd(fd, POLLOUT, deadline); !ready.ok()) {
        last = Annotate(ready, StrCat("connecting to ", url.authority));
        continue;
      }
      int error = 0;
      socklen_t length = sizeof(error);
      ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length);
      if (error != 0) {
        last = ErrnoToStatus(error, StrCat("connecting to ", url.authority));
        continue;
      }
    }
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    close_fd.Dismiss();
    return fd;
  }
  return last;
}

bool IsIpLiteral(const std::string& host) {
  unsigned char address[sizeof(in6_addr)];
  return ::inet_pton(AF_INET, host.c_str(), address) == 1 ||
         ::inet_pton(AF_INET6, host.c_str(), address) == 1;
}

struct TlsConnection {
  std::unique_ptr<internal::TlsPump> pump;
  int plain_fd = -1;
};

// The TLS handshake on `fd` (taken over), then a pump: returns the plain end.
absl::StatusOr<TlsConnection> StartTls(int fd, const Url& url, const DialOptions& options,
                                       absl::Time deadline) {
  ScopeGuard close_fd([fd] { ::close(fd); });
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == nullptr) {
    return absl::InternalError(StrCat("creating a TLS context: ", internal::OpenSslErrors()));
  }
  ScopeGuard free_ctx([ctx] { SSL_CTX_free(ctx); });  // The SSL object keeps its own reference.
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
  if (!options.insecure_skip_verify) {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    int loaded = options.ca_file.empty()
                     ? SSL_CTX_set_default_verify_paths(ctx)
                     : SSL_CTX_load_verify_locations(ctx, options.ca_file.c_str(), nullptr);
    if (loaded != 1) {
      return absl::InvalidArgumentError(StrCat("loading the CA certificates \"", options.ca_file,
                                               "\": ", internal::OpenSslErrors()));
    }
  }
  SSL* ssl = SSL_new(ctx);
  if (ssl == nullptr || SSL_set_fd(ssl, fd) != 1) {
    if (ssl != nullptr) SSL_free(ssl);
    return absl::InternalError(StrCat("creating a TLS connection: ", internal::OpenSslErrors()));
  }
  ScopeGuard free_ssl([ssl] { SSL_free(ssl); });
  // HTTP/1.1 only: the upgrades do not exist in HTTP/2.
  static const unsigned char kAlpn[] = "\x08http/1.1";
  SSL_set_alpn_protos(ssl, kAlpn, sizeof(kAlpn) - 1);
  if (IsIpLiteral(url.host)) {
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), url.host.c_str());
  } else {
    SSL_set_tlsext_host_name(ssl, url.host.c_str());
    SSL_set1_host(ssl, url.host.c_str());
  }
  VMLET_RETURN_IF_ERROR(
      Annotate(internal::TlsHandshake(ssl, fd, /*accept=*/false, deadline), url.authority));
  free_ssl.Dismiss();
  close_fd.Dismiss();
  VMLET_ASSIGN_OR_RETURN(auto pump, internal::TlsPump::Start(ssl, fd));
  return TlsConnection{std::move(pump.first), pump.second};
}

// The connection's plain bytes: the socket itself, or a TLS pump's end.
struct Dialed {
  Url url;
  int fd = -1;
  std::unique_ptr<internal::TlsPump> pump;
};

absl::StatusOr<Dialed> Dial(std::string_view text, const DialOptions& options,
                            absl::Time deadline) {
  Dialed dialed;
  VMLET_ASSIGN_OR_RETURN(dialed.url, ParseUrl(text));
  VMLET_ASSIGN_OR_RETURN(int fd, Connect(dialed.url, deadline));
  if (!dialed.url.tls) {
    dialed.fd = fd;
    return dialed;
  }
  VMLET_ASSIGN_OR_RETURN(TlsConnection tls, StartTls(fd, dialed.url, options, deadline));
  dialed.fd = tls.plain_fd;
  dialed.pump = std::move(tls.pump);
  return dialed;
}

// A transport over a TLS pump's plain end; the pump ends after the
// descriptor is closed.
class PumpedTransport final : public Transport {
 public:
  PumpedTransport(std::unique_ptr<internal::TlsPump> pump, int fd, std::string prefix)
      : pump_(std::move(pump)), transport_(fd, std::move(prefix)) {}

  absl::StatusOr<size_t> Read(char* buffer, size_t size) override {
    return transport_.Read(buffer, size);
  }
  absl::Status Write(std::string_view data) override { return transport_.Write(data); }
  void Shutdown() override { transport_.Shutdown(); }

 private:
  std::unique_ptr<internal::TlsPump> pump_;  // Destroyed (joined) after transport_.
  FdTransport transport_;
};

struct Response {
  int status = 0;
  std::string reason;
  Headers headers;
  std::string body;
  std::string leftover;  // Bytes behind a 101's head.
};

absl::StatusCode CodeForHttpStatus(int status) {
  switch (status) {
    case 400:
      return absl::StatusCode::kInvalidArgument;
    case 401:
      return absl::StatusCode::kUnauthenticated;
    case 403:
      return absl::StatusCode::kPermissionDenied;
    case 404:
      return absl::StatusCode::kNotFound;
    case 429:
    case 503:
      return absl::StatusCode::kUnavailable;
    default:
      return absl::StatusCode::kFailedPrecondition;
  }
}

// Reads a response: the head only for 101, head and body otherwise.
absl::StatusOr<Response> ReadResponse(int fd, absl::Time deadline) {
  http::response_parser<http::string_body> parser;
  parser.header_limit(static_cast<std::uint32_t>(kMaxResponseHeadBytes));
  parser.body_limit(kMaxResponseBodyBytes);
  beast::error_code ec;
  std::string pending;
  char buffer[8192];
  bool eof = false;
  auto finished = [&] {
    return parser.is_done() || (parser.is_header_done() && parser.get().result_int() == 101);
  };
  while (!finished()) {
    while (!pending.empty() && !finished()) {
      size_t used = parser.put(boost::asio::buffer(pending.data(), pending.size()), ec);
      pending.erase(0, used);
      if (ec == http::error::need_more) {
        ec = {};
        break;
      }
      if (ec == http::error::body_limit) break;
      if (ec) return absl::UnavailableError(StrCat("malformed HTTP response: ", ec.message()));
      if (parser.is_header_done() && parser.get().result_int() != 101) parser.eager(true);
      if (used == 0) break;
    }
    if (ec == http::error::body_limit || finished()) break;
    if (eof) {
      parser.put_eof(ec);
      if (ec || !parser.is_done()) {
        return absl::UnavailableError("the server closed the connection within its response");
      }
      break;
    }
    VMLET_RETURN_IF_ERROR(Annotate(internal::WaitFd(fd, POLLIN, deadline), "reading the response"));
    ssize_t n = ::recv(fd, buffer, sizeof(buffer), MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return ErrnoToStatus(errno, "reading the response");
    }
    if (n == 0) eof = true;
    pending.append(buffer, static_cast<size_t>(n));
  }
  const http::response<http::string_body>& message = parser.get();
  Response response;
  response.status = static_cast<int>(message.result_int());
  beast::string_view reason = message.reason();
  response.reason.assign(reason.data(), reason.size());
  for (const auto& field : message) {
    beast::string_view name = field.name_string();
    beast::string_view value = field.value();
    std::string lower(name.data(), name.size());
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    response.headers.emplace_back(std::move(lower), std::string(value.data(), value.size()));
  }
  response.body = message.body();
  response.leftover = std::move(pending);
  return response;
}

bool HeaderContains(const Headers& headers, std::string_view name, std::string_view token) {
  for (const auto& [key, value] : headers) {
    if (key != name) continue;
    std::string lower = value;
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (lower.find(token) != std::string::npos) return true;
  }
  return false;
}

}  // namespace

absl::StatusOr<SpdyDialResult> DialSpdy(std::string_view url,
                                        const std::vector<std::string>& protocols,
                                        const DialOptions& options) {
  const absl::Time deadline = absl::Now() + options.timeout;
  VMLET_ASSIGN_OR_RETURN(Dialed dialed, Dial(url, options, deadline));
  ScopeGuard close_fd([&] { ::close(dialed.fd); });
  std::string request =
      StrCat("POST ", dialed.url.target, " HTTP/1.1\r\nHost: ", dialed.url.authority,
             "\r\nUser-Agent: vmlet\r\nContent-Length: 0\r\n"
             "Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\n");
  for (const std::string& protocol : protocols) {
    StrAppend(&request, "X-Stream-Protocol-Version: ", protocol, "\r\n");
  }
  for (const auto& [name, value] : options.headers) StrAppend(&request, name, ": ", value, "\r\n");
  request.append("\r\n");
  VMLET_RETURN_IF_ERROR(
      Annotate(internal::SendAll(dialed.fd, request, deadline), "sending the upgrade request"));
  VMLET_ASSIGN_OR_RETURN(Response response, ReadResponse(dialed.fd, deadline));
  if (response.status != 101) {
    return absl::Status(CodeForHttpStatus(response.status),
                        StrCat(response.status, " ", response.reason, ": ", response.body));
  }
  if (!HeaderContains(response.headers, "connection", "upgrade") ||
      !HeaderContains(response.headers, "upgrade", "spdy/3.1")) {
    return absl::UnavailableError(
        "unable to upgrade: the 101 response lacks \"Connection: Upgrade\" and \"Upgrade: "
        "SPDY/3.1\"");
  }
  SpdyDialResult result;
  result.protocol = HeaderValue(response.headers, "x-stream-protocol-version");
  close_fd.Dismiss();
  if (dialed.pump != nullptr) {
    result.transport = std::make_unique<PumpedTransport>(std::move(dialed.pump), dialed.fd,
                                                         std::move(response.leftover));
  } else {
    result.transport = std::make_unique<FdTransport>(dialed.fd, std::move(response.leftover));
  }
  return result;
}

absl::StatusOr<std::unique_ptr<WebSocket>> DialWebSocket(
    std::string_view url, const std::vector<std::string>& subprotocols,
    const DialOptions& options) {
  const absl::Time deadline = absl::Now() + options.timeout;
  VMLET_ASSIGN_OR_RETURN(Dialed dialed, Dial(url, options, deadline));
  std::shared_ptr<void> keep_alive = std::shared_ptr<internal::TlsPump>(std::move(dialed.pump));
  return WebSocket::Connect(dialed.fd, dialed.url.authority, dialed.url.target, subprotocols,
                            options.headers, std::max(deadline - absl::Now(), absl::Seconds(1)),
                            std::move(keep_alive));
}

}  // namespace vmlet::streaming
