// The HTTP listener: routing, refusals of malformed requests, the SPDY
// upgrade from both sides (plain and TLS), connection limits, timeouts and
// Stop with open connections. Traffic stays on 127.0.0.1.
#include "streaming/http_server.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <string>
#include <thread>

#include "base/file_util.h"
#include "base/process.h"
#include "base/str_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "streaming/http_client.h"
#include "tests/streaming/test_sockets.h"

namespace vmlet::streaming {
namespace {

using testing::ConnectTo;
using testing::CountThreads;

using ::testing::HasSubstr;
using ::testing::StartsWith;

void SendRaw(int fd, std::string_view data) {
  ASSERT_EQ(::send(fd, data.data(), data.size(), MSG_NOSIGNAL), static_cast<ssize_t>(data.size()));
}

// Everything until EOF, or what came within `timeout`.
std::string ReadUntilClosed(int fd, absl::Duration timeout = absl::Seconds(10)) {
  std::string out;
  absl::Time deadline = absl::Now() + timeout;
  char buffer[4096];
  while (absl::Now() < deadline) {
    pollfd pfd = {fd, POLLIN, 0};
    if (::poll(&pfd, 1, 50) <= 0) continue;
    ssize_t n = ::recv(fd, buffer, sizeof(buffer), 0);
    if (n <= 0) break;
    out.append(buffer, static_cast<size_t>(n));
  }
  return out;
}

// Reads exactly `size` bytes from a transport.
std::string ReadExactly(Transport& transport, size_t size) {
  std::string out;
  char buffer[65536];
  while (out.size() < size) {
    absl::StatusOr<size_t> n = transport.Read(buffer, std::min(sizeof(buffer), size - out.size()));
    if (!n.ok() || *n == 0) break;
    out.append(buffer, *n);
  }
  return out;
}

// Echoes what it reads until end of stream.
void Echo(Transport& transport) {
  char buffer[65536];
  while (true) {
    absl::StatusOr<size_t> n = transport.Read(buffer, sizeof(buffer));
    if (!n.ok() || *n == 0) return;
    if (!transport.Write(std::string_view(buffer, *n)).ok()) return;
  }
}

// A throwaway self-signed certificate for 127.0.0.1 in a temporary directory
// that the destructor removes.
class TestCertificate {
 public:
  TestCertificate() {
    char pattern[] = "/tmp/vmlet-http-test-XXXXXX";
    dir_ = ::mkdtemp(pattern);
    cert_ = dir_ + "/cert.pem";
    key_ = dir_ + "/key.pem";
    absl::StatusOr<ProcessResult> result = RunProcess(
        {"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", key_, "-out", cert_, "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"});
    ok_ = result.ok() && result->exit_code == 0;
    if (!ok_) output_ = result.ok() ? result->output : std::string(result.status().message());
  }
  ~TestCertificate() { (void)RemoveTree(dir_); }

  bool ok() const { return ok_; }
  const std::string& output() const { return output_; }
  const std::string& cert() const { return cert_; }
  const std::string& key() const { return key_; }

 private:
  std::string dir_, cert_, key_, output_;
  bool ok_ = false;
};

// Answers /hello with what it saw, upgrades /spdy (echoing), leaves
// /silent unanswered, refuses the rest with 404.
void Route(HttpExchange& exchange) {
  const HttpRequest& request = exchange.request();
  if (request.path == "/hello") {
    exchange.Respond(200,
                     StrCat(request.method, " ", request.path, " ", request.query, " ",
                            HeaderValue(request.headers, "x-test"), " ", request.body),
                     {{"X-Answer", "42"}});
  } else if (request.path == "/spdy") {
    absl::StatusOr<std::unique_ptr<Transport>> transport =
        exchange.UpgradeToSpdy(HeaderValue(request.headers, "x-stream-protocol-version"));
    if (transport.ok()) Echo(**transport);
  } else if (request.path == "/silent") {
    // No answer: the server sends 500.
  } else {
    exchange.Respond(404, StrCat("no such thing: ", request.path));
  }
}

TEST(HttpServerTest, RoutesRequestsAndAnswersThem) {
  absl::StatusOr<std::unique_ptr<HttpServer>> server = HttpServer::Start({}, Route);
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_EQ((*server)->base_url(), StrCat("http://127.0.0.1:", (*server)->port()));

  int fd = ConnectTo((*server)->port());
  SendRaw(fd,
          "POST /hello?a=1&b=2 HTTP/1.1\r\nHost: x\r\nX-Test: Value\r\nContent-Length: 4\r\n\r\n"
          "body");
  std::string response = ReadUntilClosed(fd);
  ::close(fd);
  EXPECT_THAT(response, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(response, HasSubstr("X-Answer: 42\r\n"));
  EXPECT_THAT(response, HasSubstr("Content-Type: text/plain"));
  EXPECT_THAT(response, HasSubstr("\r\n\r\nPOST /hello a=1&b=2 Value body"));

  fd = ConnectTo((*server)->port());
  SendRaw(fd, "GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n");
  response = ReadUntilClosed(fd);
  ::close(fd);
  EXPECT_THAT(response, StartsWith("HTTP/1.1 404 Not Found\r\n"));
  EXPECT_THAT(response, HasSubstr("no such thing: /nothing"));

  fd = ConnectTo((*server)->port());
  SendRaw(fd, "GET /silent HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_THAT(ReadUntilClosed(fd), StartsWith("HTTP/1.1 500 Internal Server Error\r\n"));
  ::close(fd);
}

TEST(HttpServerTest, RefusesMalformedRequestsWith4xx) {
  HttpServerOptions options;
  options.request_timeout = absl::Milliseconds(500);
  absl::StatusOr<std::unique_ptr<HttpServer>> server = HttpServer::Start(options, Route);
  ASSERT_TRUE(server.ok()) << server.status();
  struct Case {
    std::string name, request, status;
  };
  const Case cases[] = {
      {"junk", "GARBAGE\r\n\r\n", "HTTP/1.1 400 "},
      {"binary junk (a TLS hello)", std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11),
       "HTTP/1.1 400 "},
      {"a bad header", "GET / HTTP/1.1\r\nNo colon here\r\n\r\n", "HTTP/1.1 400 "},
      {"a bad version", "GET / FOO/1.1\r\n\r\n", "HTTP/1.1 400 "},
      {"an oversized head",
       StrCat("GET / HTTP/1.1\r\nX-Big: ", std::string(kMaxRequestHeadBytes, 'a'), "\r\n\r\n"),
       "HTTP/1.1 431 "},
      {"an oversized body",
       StrCat("POST /hello HTTP/1.1\r\nContent-Length: ", kMaxRequestBodyBytes + 1, "\r\n\r\n",
              std::string(kMaxRequestBodyBytes + 1, 'b')),
       "HTTP/1.1 413 "},
      {"an unfinished head", "GET / HTTP/1.1\r\nHost: x\r\n", "HTTP/1.1 408 "},
      {"a SPDY upgrade without upgrade headers", "POST /spdy HTTP/1.1\r\nHost: x\r\n\r\n",
       "HTTP/1.1 400 "},
  };
  for (const Case& test : cases) {
    SCOPED_TRACE(test.name);
    int fd = ConnectTo((*server)->port());
    // The server may answer (and close) before all of an oversized request
    // is sent: send what it takes.
    (void)::send(fd, test.request.data(), test.request.size(), MSG_NOSIGNAL);
    EXPECT_THAT(ReadUntilClosed(fd, absl::Seconds(5)), StartsWith(test.status));
    ::close(fd);
  }
  // The server still serves.
  int fd = ConnectTo((*server)->port());
  SendRaw(fd, "GET /hello HTTP/1.1\r\n\r\n");
  EXPECT_THAT(ReadUntilClosed(fd), StartsWith("HTTP/1.1 200 OK"));
  ::close(fd);
}

TEST(HttpServerTest, SpdyUpgradeBothSides) {
  absl::StatusOr<std::unique_ptr<HttpServer>> server = HttpServer::Start({}, Route);
  ASSERT_TRUE(server.ok()) << server.status();
  absl::StatusOr<SpdyDialResult> dialed =
      DialSpdy(StrCat((*server)->base_url(), "/spdy"), {"v4.channel.k8s.io", "v3.channel.k8s.io"});
  ASSERT_TRUE(dialed.ok()) << dialed.status();
  // The route echoes the first protocol header back.
  EXPECT_EQ(dialed->protocol, "v4.channel.k8s.io");
  Transport& transport = *dialed->transport;
  ASSERT_TRUE(transport.Write("hello over spdy").ok());
  EXPECT_EQ(ReadExactly(transport, 15), "hello over spdy");
  std::string big(3 << 20, 'x');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7);
  std::thread writer([&] { ASSERT_TRUE(transport.Write(big).ok()); });
  EXPECT_TRUE(ReadExactly(transport, big.size()) == big);
  writer.join();
}

TEST(HttpServerTest, SpdyUpgradeKeepsBytesSentRightBehindTheRequest) {
  absl::StatusOr<std::unique_ptr<HttpServer>> server = HttpServer::Start({}, Route);
  ASSERT_TRUE(server.ok()) << server.status();
  int fd = ConnectTo((*server)->port());
  SendRaw(fd,
          "POST /spdy HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
          "X-Stream-Protocol-Version: portforward.k8s.io\r\n\r\nEARLY BYTES");
  std::string expected =
      "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
      "X-Stream-Protocol-Version: portforward.k8s.io\r\n\r\nEARLY BYTES";
  std::string got;
  char buffer[4096];
  while (got.size() < expected.size()) {
    ssize_t n = ::recv(fd, buffer, sizeof(buffer), 0);
    if (n <= 0) break;
    got.append(buffer, static_cast<size_t>(n));
  }
  EXPECT_EQ(got, expected);
  ::close(fd);
}

TEST(HttpServerTest, SpdyDialerKeepsBytesSentRightBehindThe101) {
  // A server that answers the upgrade and sends bytes in the same write.
  int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  ASSERT_EQ(::listen(listener, 1), 0);
  socklen_t length = sizeof(address);
  ::getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length);
  std::string request;
  std::thread fake([&] {
    int fd = ::accept(listener, nullptr, nullptr);
    char buffer[4096];
    while (request.find("\r\n\r\n") == std::string::npos) {
      ssize_t n = ::recv(fd, buffer, sizeof(buffer), 0);
      if (n <= 0) break;
      request.append(buffer, static_cast<size_t>(n));
    }
    std::string answer =
        "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
        "X-Stream-Protocol-Version: v2.channel.k8s.io\r\n\r\nBEHIND THE 101";
    (void)::send(fd, answer.data(), answer.size(), MSG_NOSIGNAL);
    ::shutdown(fd, SHUT_WR);
    ReadUntilClosed(fd);
    ::close(fd);
  });
  absl::StatusOr<SpdyDialResult> dialed =
      DialSpdy(StrCat("http://127.0.0.1:", ntohs(address.sin_port), "/exec/token?command=ls"),
               {"v4.channel.k8s.io", "v2.channel.k8s.io"});
  ASSERT_TRUE(dialed.ok()) << dialed.status();
  EXPECT_EQ(dialed->protocol, "v2.channel.k8s.io");
  EXPECT_EQ(ReadExactly(*dialed->transport, 14), "BEHIND THE 101");
  dialed->transport.reset();
  fake.join();
  ::close(listener);
  EXPECT_THAT(request, StartsWith("POST /exec/token?command=ls HTTP/1.1\r\n"));
  EXPECT_THAT(request, HasSubstr("\r\nConnection: Upgrade\r\n"));
  EXPECT_THAT(request, HasSubstr("\r\nUpgrade: SPDY/3.1\r\n"));
  EXPECT_THAT(request, HasSubstr("\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n"
                                 "X-Stream-Protocol-Version: v2.channel.k8s.io\r\n"));
}

TEST(HttpServerTest, SpdyDialerReportsARefusalWithItsStatusAndBody) {
  absl::StatusOr<std::unique_ptr<HttpServer>> server = HttpServer::Start({}, Route);
  ASSERT_TRUE(server.ok()) << server.status();
  absl::StatusOr<SpdyDialResult> dialed =
      DialSpdy(StrCat((*server)->base_url(), "/exec/expired"), {"v4.channel.k8s.io"});
  ASSERT_FALSE(dialed.ok());
  EXPECT_EQ(dialed.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(dialed.status().message(), "404 Not Found: no such thing: /exec/expired");

  EXPECT_FALSE(DialSpdy("ftp://127.0.0.1/x", {}).ok());
  EXPECT_FALSE(DialSpdy("http://127.0.0.1:99999/x", {}).ok());
}

TEST(HttpServerTest, RefusesConnectionsBeyondTheLimitWith503) {
  HttpServerOptions options;
  options.max_connections = 1;
  absl::StatusOr<std::unique_ptr<HttpServer>> server = HttpServer::Start(options, Route);
  ASSERT_TRUE(server.ok()) << server.status();
  absl::StatusOr<SpdyDialResult> first =
      DialSpdy(StrCat((*server)->base_url(), "/spdy"), {"v4.channel.k8s.io"});
  ASSERT_TRUE(first.ok()) << first.status();
  int fd = ConnectTo((*server)->port());
  EXPECT_THAT(ReadUntilClosed(fd), StartsWith("HTTP/1.1 503 Service Unavailable\r\n"));
  ::close(fd);
  // Once the first connection ends, a new one is served.
  first->transport.reset();
  absl::Time deadline = absl::Now() + absl::Seconds(10);
  std::string response;
  while (absl::Now() < deadline) {
    fd = ConnectTo((*server)->port());
    SendRaw(fd, "GET /hello HTTP/1.1\r\n\r\n");
    response = ReadUntilClosed(fd);
    ::close(fd);
    if (response.find("200 OK") != std::string::npos) break;
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_THAT(response, StartsWith("HTTP/1.1 200 OK"));
}

TEST(HttpServerTest, StopEndsOpenConnectionsPromptlyAndLeavesNoThreads) {
  const int threads_before = CountThreads();
  TestCertificate certificate;
  ASSERT_TRUE(certificate.ok()) << certificate.output();
  for (bool tls : {false, true}) {
    SCOPED_TRACE(tls ? "https" : "http");
    HttpServerOptions options;
    if (tls) {
      options.tls_cert_file = certificate.cert();
      options.tls_key_file = certificate.key();
    }
    absl::StatusOr<std::unique_ptr<HttpServer>> server = HttpServer::Start(options, Route);
    ASSERT_TRUE(server.ok()) << server.status();
    DialOptions dial;
    dial.insecure_skip_verify = true;
    // Upgraded connections whose handlers block reading, and an idle one.
    std::vector<std::unique_ptr<Transport>> upgraded;
    for (int i = 0; i < 3; ++i) {
      absl::StatusOr<SpdyDialResult> dialed =
          DialSpdy(StrCat((*server)->base_url(), "/spdy"), {"v4.channel.k8s.io"}, dial);
      ASSERT_TRUE(dialed.ok()) << dialed.status();
      upgraded.push_back(std::move(dialed->transport));
    }
    int idle = ConnectTo((*server)->port());
    absl::Time start = absl::Now();
    (*server)->Stop();
    EXPECT_LT(absl::Now() - start, absl::Seconds(3));
    // The clients see the end.
    char byte;
    for (auto& transport : upgraded) {
      absl::StatusOr<size_t> n = transport->Read(&byte, 1);
      EXPECT_TRUE(!n.ok() || *n == 0);
    }
    upgraded.clear();
    ReadUntilClosed(idle);
    ::close(idle);
    server->reset();
  }
  EXPECT_EQ(CountThreads(), threads_before);
}

TEST(HttpServerTest, SpdyOverTls) {
  TestCertificate certificate;
  ASSERT_TRUE(certificate.ok()) << certificate.output();
  HttpServerOptions options;
  options.tls_cert_file = certificate.cert();
  options.tls_key_file = certificate.key();
  absl::StatusOr<std::unique_ptr<HttpServer>> server = HttpServer::Start(options, Route);
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_EQ((*server)->base_url(), StrCat("https://127.0.0.1:", (*server)->port()));
  const std::string url = StrCat((*server)->base_url(), "/spdy");

  DialOptions trusted;
  trusted.ca_file = certificate.cert();
  absl::StatusOr<SpdyDialResult> dialed = DialSpdy(url, {"v4.channel.k8s.io"}, trusted);
  ASSERT_TRUE(dialed.ok()) << dialed.status();
  EXPECT_EQ(dialed->protocol, "v4.channel.k8s.io");
  Transport& transport = *dialed->transport;
  std::string big(2 << 20, 'x');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 13);
  std::thread writer([&] { ASSERT_TRUE(transport.Write(big).ok()); });
  EXPECT_TRUE(ReadExactly(transport, big.size()) == big);
  writer.join();
  dialed->transport.reset();

  DialOptions insecure;
  insecure.insecure_skip_verify = true;
  dialed = DialSpdy(url, {"v4.channel.k8s.io"}, insecure);
  ASSERT_TRUE(dialed.ok()) << dialed.status();
  ASSERT_TRUE(dialed->transport->Write("ping").ok());
  EXPECT_EQ(ReadExactly(*dialed->transport, 4), "ping");
  dialed->transport.reset();

  // Without the CA the certificate is refused; plain HTTP to the TLS port
  // gets no answer.
  dialed = DialSpdy(url, {"v4.channel.k8s.io"});
  ASSERT_FALSE(dialed.ok());
  EXPECT_THAT(dialed.status().message(), HasSubstr("certificate"));
  DialOptions quick;
  quick.timeout = absl::Seconds(2);
  EXPECT_FALSE(DialSpdy(StrCat("http://127.0.0.1:", (*server)->port(), "/spdy"), {}, quick).ok());

  // A refusal over TLS carries its status and body.
  dialed = DialSpdy(StrCat((*server)->base_url(), "/nope"), {}, trusted);
  ASSERT_FALSE(dialed.ok());
  EXPECT_EQ(dialed.status().message(), "404 Not Found: no such thing: /nope");
}

TEST(HttpServerTest, StartRefusesBadOptions) {
  HttpServerOptions options;
  options.address = "localhost";
  EXPECT_EQ(HttpServer::Start(options, Route).status().code(), absl::StatusCode::kInvalidArgument);
  options.address = "127.0.0.1";
  options.tls_cert_file = "/nonexistent/cert.pem";
  EXPECT_EQ(HttpServer::Start(options, Route).status().code(), absl::StatusCode::kInvalidArgument);
  options.tls_key_file = "/nonexistent/key.pem";
  EXPECT_EQ(HttpServer::Start(options, Route).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace vmlet::streaming
