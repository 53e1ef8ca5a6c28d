#include "tests/image/test_http_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>

#include "base/process.h"
#include "base/status.h"
#include "base/str_util.h"

namespace vmlet::testing {
namespace {

constexpr size_t kMaxHeaderBytes = 64 << 10;

std::string Lowercase(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view Trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t' || text.back() == '\r')) {
    text.remove_suffix(1);
  }
  return text;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string PercentDecode(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '+') {
      out.push_back(' ');
    } else if (text[i] == '%' && i + 2 < text.size() && HexValue(text[i + 1]) >= 0 &&
               HexValue(text[i + 2]) >= 0) {
      out.push_back(static_cast<char>(HexValue(text[i + 1]) * 16 + HexValue(text[i + 2])));
      i += 2;
    } else {
      out.push_back(text[i]);
    }
  }
  return out;
}

// Reads what is there, up to `size` bytes: > 0 bytes read, <= 0 closed or
// failed.
ssize_t Receive(int fd, SSL* ssl, char* buffer, size_t size) {
  if (ssl != nullptr) return SSL_read(ssl, buffer, static_cast<int>(size));
  for (;;) {
    ssize_t n = ::recv(fd, buffer, size, 0);
    if (n < 0 && errno == EINTR) continue;
    return n;
  }
}

std::string OpenSslErrors() {
  std::string out;
  while (unsigned long error = ERR_get_error()) {
    char text[256];
    ERR_error_string_n(error, text, sizeof(text));
    StrAppend(&out, out.empty() ? "" : "; ", text);
  }
  return out.empty() ? "unknown OpenSSL error" : out;
}

std::string_view Reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 206:
      return "Partial Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 307:
      return "Temporary Redirect";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 416:
      return "Range Not Satisfiable";
    case 429:
      return "Too Many Requests";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 503:
      return "Service Unavailable";
    default:
      return "Status";
  }
}

}  // namespace

std::string TestHttpServer::Request::Header(std::string_view name) const {
  auto it = headers.find(Lowercase(name));
  return it == headers.end() ? "" : it->second;
}

bool TestHttpServer::Request::HasHeader(std::string_view name) const {
  return headers.contains(Lowercase(name));
}

std::string TestHttpServer::Request::Param(std::string_view name) const {
  std::string_view rest = query;
  while (!rest.empty()) {
    size_t amp = rest.find('&');
    std::string_view pair = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? "" : rest.substr(amp + 1);
    size_t eq = pair.find('=');
    if (PercentDecode(pair.substr(0, eq)) == name) {
      return eq == std::string_view::npos ? "" : PercentDecode(pair.substr(eq + 1));
    }
  }
  return "";
}

absl::Status MakeSelfSignedCertificate(const std::string& cert_file, const std::string& key_file) {
  absl::StatusOr<ProcessResult> result = RunProcess(
      {"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
       "-nodes", "-keyout", key_file, "-out", cert_file, "-subj", "/CN=127.0.0.1", "-addext",
       "subjectAltName=IP:127.0.0.1", "-days", "2"});
  if (!result.ok()) {
    return absl::FailedPreconditionError(
        StrCat("running openssl req: ", ToStd(result.status().message())));
  }
  if (result->exit_code != 0) {
    return absl::FailedPreconditionError(
        StrCat("openssl req exited with ", result->exit_code, ": ", result->output));
  }
  return absl::OkStatus();
}

bool TestHttpServer::Responder::WriteRaw(std::string_view data) {
  while (!failed_ && !data.empty()) {
    if (ssl_ != nullptr) {
      int n =
          SSL_write(ssl_, data.data(), static_cast<int>(std::min<size_t>(data.size(), 1 << 20)));
      if (n <= 0) {
        failed_ = true;
        break;
      }
      data.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      failed_ = true;
      break;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return !failed_;
}

void TestHttpServer::Responder::Start(int status, int64_t content_length, const Headers& headers) {
  if (started_) return;
  started_ = true;
  content_length_ = content_length;
  std::string head = StrCat("HTTP/1.1 ", status, " ", Reason(status), "\r\n");
  for (const auto& [name, value] : headers) StrAppend(&head, name, ": ", value, "\r\n");
  if (content_length >= 0) {
    StrAppend(&head, "Content-Length: ", content_length, "\r\n");
  } else {
    head.append("Connection: close\r\n");
  }
  head.append("\r\n");
  WriteRaw(head);
}

bool TestHttpServer::Responder::Write(std::string_view data) {
  if (!started_ || head_) return !failed_;
  body_written_ += static_cast<int64_t>(data.size());
  return WriteRaw(data);
}

void TestHttpServer::Responder::Send(int status, std::string_view body, const Headers& headers) {
  Start(status, static_cast<int64_t>(body.size()), headers);
  if (head_) {
    body_written_ = content_length_;  // Complete: HEAD has no body.
    return;
  }
  Write(body);
}

void TestHttpServer::Responder::Drop() {
  failed_ = true;
  ::shutdown(fd_, SHUT_RDWR);
}

absl::StatusOr<std::unique_ptr<TestHttpServer>> TestHttpServer::Start(Handler handler,
                                                                      TestTlsOptions tls) {
  std::unique_ptr<TestHttpServer> server(new TestHttpServer(std::move(handler)));
  if (!tls.cert_file.empty()) {
    // SSL_write writes to the socket without MSG_NOSIGNAL: a client that
    // went away must not kill the test with SIGPIPE.
    ::signal(SIGPIPE, SIG_IGN);
    server->tls_ = SSL_CTX_new(TLS_server_method());
    if (server->tls_ == nullptr ||
        SSL_CTX_use_certificate_chain_file(server->tls_, tls.cert_file.c_str()) != 1 ||
        SSL_CTX_use_PrivateKey_file(server->tls_, tls.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
      return absl::FailedPreconditionError(StrCat("setting up TLS with cert_file \"", tls.cert_file,
                                                  "\" and key_file \"", tls.key_file,
                                                  "\": ", OpenSslErrors()));
    }
    if (!tls.client_ca_file.empty()) {
      if (SSL_CTX_load_verify_locations(server->tls_, tls.client_ca_file.c_str(), nullptr) != 1) {
        return absl::FailedPreconditionError(
            StrCat("loading client_ca_file \"", tls.client_ca_file, "\": ", OpenSslErrors()));
      }
      SSL_CTX_set_verify(server->tls_, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
    }
  }
  server->listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (server->listen_fd_ < 0) return ErrnoToStatus(errno, "creating the test server's socket");
  int one = 1;
  ::setsockopt(server->listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  if (::bind(server->listen_fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    return ErrnoToStatus(errno, "binding the test server to 127.0.0.1:0");
  }
  if (::listen(server->listen_fd_, 64) != 0) {
    return ErrnoToStatus(errno, "listening on the test server's socket");
  }
  socklen_t length = sizeof(address);
  if (::getsockname(server->listen_fd_, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    return ErrnoToStatus(errno, "reading the test server's port");
  }
  server->port_ = ntohs(address.sin_port);
  if (::pipe2(server->wake_pipe_, O_CLOEXEC | O_NONBLOCK) != 0) {
    return ErrnoToStatus(errno, "creating the test server's wake pipe");
  }
  server->accept_thread_ = std::thread([s = server.get()] { s->AcceptLoop(); });
  return server;
}

TestHttpServer::~TestHttpServer() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  if (wake_pipe_[1] >= 0) {
    char byte = 0;
    (void)::write(wake_pipe_[1], &byte, 1);
  }
  if (accept_thread_.joinable()) accept_thread_.join();
  {
    // Unblocks connection threads waiting in recv/send.
    std::lock_guard lock(mu_);
    for (int fd : open_fds_) ::shutdown(fd, SHUT_RDWR);
  }
  for (auto& connection : connections_) connection->thread.join();
  if (listen_fd_ >= 0) ::close(listen_fd_);
  for (int fd : wake_pipe_) {
    if (fd >= 0) ::close(fd);
  }
  if (tls_ != nullptr) SSL_CTX_free(tls_);
}

std::string TestHttpServer::host_port() const { return StrCat("127.0.0.1:", port_); }
std::string TestHttpServer::url() const {
  return StrCat(tls_ != nullptr ? "https" : "http", "://127.0.0.1:", port_);
}

std::vector<TestHttpServer::Request> TestHttpServer::requests() const {
  std::lock_guard lock(mu_);
  return requests_;
}

int TestHttpServer::CountRequests(std::string_view path) const {
  std::lock_guard lock(mu_);
  int count = 0;
  for (const Request& request : requests_) count += request.path == path ? 1 : 0;
  return count;
}

void TestHttpServer::ClearRequests() {
  std::lock_guard lock(mu_);
  requests_.clear();
}

void TestHttpServer::AcceptLoop() {
  for (;;) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_pipe_[0], POLLIN, 0}};
    int ready = ::poll(fds, 2, -1);
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0 || (fds[1].revents & POLLIN) != 0) return;
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    std::lock_guard lock(mu_);
    if (stopping_) {
      ::close(fd);
      return;
    }
    // Reap the threads of finished connections.
    for (auto it = connections_.begin(); it != connections_.end();) {
      if ((*it)->done) {
        (*it)->thread.join();
        it = connections_.erase(it);
      } else {
        ++it;
      }
    }
    auto connection = std::make_unique<Connection>();
    connection->fd = fd;
    open_fds_.insert(fd);
    Connection* raw = connection.get();
    connections_.push_back(std::move(connection));
    raw->thread = std::thread([this, raw] { Serve(raw); });
  }
}

bool TestHttpServer::ReadRequest(int fd, SSL* ssl, std::string& buffer, Request& request) {
  size_t end;
  while ((end = buffer.find("\r\n\r\n")) == std::string::npos) {
    if (buffer.size() > kMaxHeaderBytes) return false;
    char chunk[4096];
    ssize_t n = Receive(fd, ssl, chunk, sizeof(chunk));
    if (n <= 0) return false;
    buffer.append(chunk, static_cast<size_t>(n));
  }
  std::string_view head(buffer.data(), end);
  size_t line_end = head.find("\r\n");
  std::string_view request_line = head.substr(0, line_end);
  size_t first_space = request_line.find(' ');
  size_t last_space = request_line.rfind(' ');
  if (first_space == std::string_view::npos || last_space == first_space) return false;
  request.method = std::string(request_line.substr(0, first_space));
  request.target = std::string(request_line.substr(first_space + 1, last_space - first_space - 1));
  size_t question = request.target.find('?');
  request.path = request.target.substr(0, question);
  request.query = question == std::string::npos ? "" : request.target.substr(question + 1);
  std::string_view rest = line_end == std::string_view::npos ? "" : head.substr(line_end + 2);
  while (!rest.empty()) {
    size_t next = rest.find("\r\n");
    std::string_view line = rest.substr(0, next);
    rest = next == std::string_view::npos ? "" : rest.substr(next + 2);
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string name = Lowercase(Trim(line.substr(0, colon)));
    std::string value(Trim(line.substr(colon + 1)));
    auto [it, inserted] = request.headers.emplace(name, value);
    if (!inserted) StrAppend(&it->second, ", ", value);
  }
  buffer.erase(0, end + 4);
  size_t length = 0;
  if (auto it = request.headers.find("content-length"); it != request.headers.end()) {
    length = static_cast<size_t>(std::strtoull(it->second.c_str(), nullptr, 10));
  }
  while (buffer.size() < length) {
    char chunk[4096];
    ssize_t n = Receive(fd, ssl, chunk, sizeof(chunk));
    if (n <= 0) return false;
    buffer.append(chunk, static_cast<size_t>(n));
  }
  request.body = buffer.substr(0, length);
  buffer.erase(0, length);
  return true;
}

void TestHttpServer::Serve(Connection* connection) {
  const int fd = connection->fd;
  SSL* ssl = nullptr;
  bool serve = true;
  if (tls_ != nullptr) {
    ssl = SSL_new(tls_);
    serve = ssl != nullptr && SSL_set_fd(ssl, fd) == 1 && SSL_accept(ssl) == 1;
  }
  bool graceful = true;  // False after a dropped or failed response.
  std::string buffer;
  while (serve) {
    Request request;
    if (!ReadRequest(fd, ssl, buffer, request)) break;
    {
      std::lock_guard lock(mu_);
      if (stopping_) break;
      requests_.push_back(request);
    }
    Responder responder(fd, ssl, request.method == "HEAD");
    if (request.Header("transfer-encoding").empty()) {
      handler_(request, responder);
    } else {
      responder.Send(501, "chunked request bodies are not supported by the test server");
    }
    if (!responder.started_ && !responder.failed_) {
      responder.Send(500, "the test handler sent no response");
    }
    graceful = !responder.failed_;
    const bool complete = !responder.failed_ && responder.content_length_ >= 0 &&
                          responder.body_written_ == responder.content_length_;
    if (!complete || Lowercase(request.Header("connection")) == "close") break;
  }
  if (ssl != nullptr) {
    if (serve && graceful) SSL_shutdown(ssl);  // close_notify: the body ends here.
    ERR_clear_error();
    SSL_free(ssl);
  }
  {
    std::lock_guard lock(mu_);
    open_fds_.erase(fd);
  }
  ::close(fd);
  connection->done = true;
}

}  // namespace vmlet::testing
