// WebSocket connections (server side through HttpServer, client side
// through DialWebSocket), malformed frame streams, TLS, and channel.k8s.io
// (v4 and v5) over them. Traffic stays on 127.0.0.1.
#include "streaming/websocket.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/file_util.h"
#include "base/process.h"
#include "base/str_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "streaming/http_client.h"
#include "streaming/http_server.h"
#include "tests/streaming/test_sockets.h"

namespace vmlet::streaming {
namespace {

using testing::ConnectTo;
using testing::CountThreads;

using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr char kV4[] = "v4.channel.k8s.io";
constexpr char kV5[] = "v5.channel.k8s.io";

// A one-shot event (std primitives, which ThreadSanitizer understands).
class Notification {
 public:
  void Notify() {
    std::lock_guard lock(mu_);
    notified_ = true;
    cv_.notify_all();
  }
  void WaitForNotification() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return notified_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool notified_ = false;
};

// Everything until EOF, or what came within `timeout`; `closed` tells which.
std::string ReadUntilClosed(int fd, bool* closed, absl::Duration timeout = absl::Seconds(10)) {
  std::string out;
  *closed = false;
  absl::Time deadline = absl::Now() + timeout;
  char buffer[4096];
  while (absl::Now() < deadline) {
    pollfd pfd = {fd, POLLIN, 0};
    if (::poll(&pfd, 1, 50) <= 0) continue;
    ssize_t n = ::recv(fd, buffer, sizeof(buffer), 0);
    if (n <= 0) {
      *closed = true;
      break;
    }
    out.append(buffer, static_cast<size_t>(n));
  }
  return out;
}

std::string Pattern(size_t size, int seed) {
  std::string out(size, '\0');
  for (size_t i = 0; i < size; ++i) out[i] = static_cast<char>((i * 31 + seed) ^ (i >> 11));
  return out;
}

// Reads a channel until `size` bytes or its end.
std::string ReadChannel(Stream& stream, size_t size) {
  std::string out;
  while (out.size() < size) {
    absl::StatusOr<std::string> chunk = stream.Read();
    if (!chunk.ok() || chunk->empty()) break;
    out += *chunk;
  }
  return out;
}

class TestCertificate {
 public:
  TestCertificate() {
    char pattern[] = "/tmp/vmlet-websocket-test-XXXXXX";
    dir_ = ::mkdtemp(pattern);
    cert_ = dir_ + "/cert.pem";
    key_ = dir_ + "/key.pem";
    absl::StatusOr<ProcessResult> result = RunProcess(
        {"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", key_, "-out", cert_, "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"});
    ok_ = result.ok() && result->exit_code == 0;
  }
  ~TestCertificate() { (void)RemoveTree(dir_); }
  bool ok() const { return ok_; }
  const std::string& cert() const { return cert_; }
  const std::string& key() const { return key_; }

 private:
  std::string dir_, cert_, key_;
  bool ok_ = false;
};

// A server that echoes WebSocket messages on /echo (recording how each
// session ended), refuses /refuse, and runs `session` on a server-side
// ChannelConnection on /channels.
class WebSocketTest : public ::testing::Test {
 protected:
  void StartServer(HttpServerOptions options = {}) {
    absl::StatusOr<std::unique_ptr<HttpServer>> server =
        HttpServer::Start(options, [this](HttpExchange& exchange) { Handle(exchange); });
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }

  void Handle(HttpExchange& exchange) {
    const HttpRequest& request = exchange.request();
    std::string offered = HeaderValue(request.headers, "sec-websocket-protocol");
    if (request.path == "/refuse") {
      exchange.Respond(403, "go away");
      return;
    }
    std::string chosen;
    for (const char* candidate : {kV5, kV4, "echo.test"}) {
      if (offered.find(candidate) != std::string::npos) {
        chosen = candidate;
        break;
      }
    }
    absl::StatusOr<std::unique_ptr<WebSocket>> socket = exchange.UpgradeToWebSocket(chosen);
    if (!socket.ok()) {
      Record(socket.status());
      return;
    }
    if (request.path == "/channels") {
      ChannelConnection connection(*std::move(socket), chosen);
      session_(connection);
      return;
    }
    if (request.path == "/close-at-once") {
      absl::Time start = absl::Now();
      (*socket)->Close();
      close_took_ = absl::Now() - start;
      Record(absl::OkStatus());
      return;
    }
    while (true) {
      absl::StatusOr<std::optional<std::string>> message = (*socket)->ReadMessage();
      if (!message.ok()) return Record(message.status());
      if (!message->has_value()) return Record(absl::OkStatus());
      if (!(*socket)->WriteMessage(**message).ok()) return Record(absl::InternalError("write"));
    }
  }

  void Record(absl::Status status) {
    std::lock_guard lock(mu_);
    ended_.push_back(std::move(status));
  }

  // How the echo sessions ended, once `count` have.
  std::vector<absl::Status> Ended(size_t count) {
    absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (absl::Now() < deadline) {
      {
        std::lock_guard lock(mu_);
        if (ended_.size() >= count) return ended_;
      }
      absl::SleepFor(absl::Milliseconds(10));
    }
    std::lock_guard lock(mu_);
    return ended_;
  }

  std::string Url(std::string_view path) const { return StrCat(server_->base_url(), path); }

  // A client ChannelConnection to /channels offering `protocol`.
  std::unique_ptr<ChannelConnection> DialChannels(const std::string& protocol) {
    absl::StatusOr<std::unique_ptr<WebSocket>> socket = DialWebSocket(Url("/channels"), {protocol});
    EXPECT_TRUE(socket.ok()) << socket.status();
    if (!socket.ok()) return nullptr;
    EXPECT_EQ((*socket)->subprotocol(), protocol);
    return std::make_unique<ChannelConnection>(*std::move(socket), protocol);
  }

  std::mutex mu_;
  std::vector<absl::Status> ended_;
  absl::Duration close_took_;
  std::function<void(ChannelConnection&)> session_;
  std::unique_ptr<HttpServer> server_;
};

TEST_F(WebSocketTest, EchoesMessagesThroughTheDialer) {
  const int threads_before = CountThreads();
  StartServer();
  {
    absl::StatusOr<std::unique_ptr<WebSocket>> socket =
        DialWebSocket(Url("/echo?x=1"), {"other.test", "echo.test"});
    ASSERT_TRUE(socket.ok()) << socket.status();
    WebSocket& ws = **socket;
    EXPECT_EQ(ws.subprotocol(), "echo.test");
    for (size_t size :
         {size_t{0}, size_t{1}, size_t{125}, size_t{126}, size_t{65536}, size_t{3} << 20}) {
      std::string message = Pattern(size, static_cast<int>(size));
      ASSERT_TRUE(ws.WriteMessage(message).ok());
      absl::StatusOr<std::optional<std::string>> echoed = ws.ReadMessage();
      ASSERT_TRUE(echoed.ok()) << echoed.status();
      ASSERT_TRUE(echoed->has_value());
      EXPECT_TRUE(**echoed == message) << size;
    }
    ASSERT_TRUE(ws.WriteMessage("text is delivered too", /*binary=*/false).ok());
    EXPECT_EQ(ws.ReadMessage().value(), "text is delivered too");
    // Many writers at once: every message arrives whole.
    std::vector<std::thread> writers;
    for (int i = 0; i < 8; ++i) {
      writers.emplace_back([&ws, i] {
        for (int j = 0; j < 20; ++j) ASSERT_TRUE(ws.WriteMessage(Pattern(1000, i)).ok());
      });
    }
    for (int k = 0; k < 160; ++k) {
      absl::StatusOr<std::optional<std::string>> echoed = ws.ReadMessage();
      ASSERT_TRUE(echoed.ok() && echoed->has_value());
      bool known = false;
      for (int i = 0; i < 8; ++i) known |= **echoed == Pattern(1000, i);
      EXPECT_TRUE(known);
    }
    for (auto& writer : writers) writer.join();
    EXPECT_TRUE(ws.WriteMessage(std::string(kMaxWebSocketMessageBytes + 1, 'x')).code() ==
                absl::StatusCode::kInvalidArgument);
    ws.Close();
    EXPECT_EQ(ws.ReadMessage().value(), std::nullopt);
    EXPECT_FALSE(ws.WriteMessage("after close").ok());
  }
  std::vector<absl::Status> ended = Ended(1);
  ASSERT_EQ(ended.size(), 1u);
  EXPECT_TRUE(ended[0].ok()) << ended[0];
  server_.reset();
  EXPECT_EQ(CountThreads(), threads_before);
}

TEST_F(WebSocketTest, TheServerClosingEndsTheClientsReadsCleanly) {
  StartServer();
  absl::StatusOr<std::unique_ptr<WebSocket>> socket = DialWebSocket(Url("/close-at-once"), {});
  ASSERT_TRUE(socket.ok()) << socket.status();
  EXPECT_EQ((*socket)->subprotocol(), "");
  absl::StatusOr<std::optional<std::string>> message = (*socket)->ReadMessage();
  ASSERT_TRUE(message.ok()) << message.status();
  EXPECT_EQ(*message, std::nullopt);
  EXPECT_FALSE((*socket)->WriteMessage("late").ok());
}

TEST_F(WebSocketTest, CloseGivesUpOnAPeerThatNeverAnswers) {
  StartServer();
  int fd = ConnectTo(server_->port());
  std::string request =
      "GET /close-at-once HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
      "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
  ASSERT_EQ(::send(fd, request.data(), request.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(request.size()));
  // The client reads (the 101 and the close frame) but never answers.
  bool closed = false;
  std::string got = ReadUntilClosed(fd, &closed, kWebSocketCloseTimeout + absl::Seconds(5));
  EXPECT_THAT(got, StartsWith("HTTP/1.1 101 Switching Protocols\r\n"));
  EXPECT_THAT(got, HasSubstr("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
  EXPECT_TRUE(closed);
  ::close(fd);
  ASSERT_EQ(Ended(1).size(), 1u);
  EXPECT_LT(close_took_, kWebSocketCloseTimeout + absl::Seconds(2));
}

TEST_F(WebSocketTest, RefusedUpgradesCarryTheirStatusAndBody) {
  StartServer();
  absl::StatusOr<std::unique_ptr<WebSocket>> socket = DialWebSocket(Url("/refuse"), {kV5});
  ASSERT_FALSE(socket.ok());
  EXPECT_EQ(socket.status().message(), "403 Forbidden: go away");

  // A request that is no WebSocket handshake gets 400 from the server.
  int fd = ConnectTo(server_->port());
  std::string request =
      "GET /echo HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
  ASSERT_EQ(::send(fd, request.data(), request.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(request.size()));
  bool closed = false;
  EXPECT_THAT(ReadUntilClosed(fd, &closed), StartsWith("HTTP/1.1 400 Bad Request\r\n"));
  ::close(fd);
}

// Raw frames after a valid handshake: each bad stream ends its own
// connection with an error, and the server keeps serving.
TEST_F(WebSocketTest, MalformedFramesEndOnlyTheirConnection) {
  StartServer();
  const std::string mask = "\x01\x02\x03\x04";
  auto masked = [&](std::string payload) {
    for (size_t i = 0; i < payload.size(); ++i) payload[i] ^= mask[i % 4];
    return payload;
  };
  struct Case {
    std::string name, frames;
  };
  const Case cases[] = {
      {"a reserved opcode", "\x83\x85" + mask + masked("hello")},
      {"an unmasked client frame", std::string("\x82\x05hello", 7)},
      {"an oversized length",
       std::string("\x82\xff\x00\x00\x01\x00\x00\x00\x00\x00", 10) + mask + "partial"},
      {"a message over the limit in pieces",
       std::string("\x02\xfe\xff\xff", 4) + mask + masked(std::string(0xffff, 'a')) +
           [&] {
             std::string more;
             for (int i = 0; i < 300; ++i) {
               more += std::string("\x00\xfe\xff\xff", 4) + mask + masked(std::string(0xffff, 'b'));
             }
             return more;
           }()},
      {"reserved bits", "\xc2\x85" + mask + masked("hello")},
      {"a fragmented ping", "\x09\x85" + mask + masked("hello")},
      {"invalid UTF-8 in text", "\x81\x82" + mask + masked("\xff\xfe")},
  };
  size_t count = 0;
  for (const Case& test : cases) {
    SCOPED_TRACE(test.name);
    int fd = ConnectTo(server_->port());
    std::string request =
        "GET /echo HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Protocol: echo.test\r\n\r\n";
    ASSERT_EQ(::send(fd, request.data(), request.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(request.size()));
    std::string head;
    char byte;
    while (head.find("\r\n\r\n") == std::string::npos && ::recv(fd, &byte, 1, 0) == 1) {
      head += byte;
    }
    EXPECT_THAT(head, StartsWith("HTTP/1.1 101 "));
    EXPECT_THAT(head, HasSubstr("Sec-WebSocket-Protocol: echo.test\r\n"));
    (void)::send(fd, test.frames.data(), test.frames.size(), MSG_NOSIGNAL);
    bool closed = false;
    ReadUntilClosed(fd, &closed);
    EXPECT_TRUE(closed);
    ::close(fd);
    std::vector<absl::Status> ended = Ended(++count);
    ASSERT_EQ(ended.size(), count);
    EXPECT_FALSE(ended.back().ok());
  }
  // A well-behaved client is still served.
  absl::StatusOr<std::unique_ptr<WebSocket>> socket = DialWebSocket(Url("/echo"), {"echo.test"});
  ASSERT_TRUE(socket.ok()) << socket.status();
  ASSERT_TRUE((*socket)->WriteMessage("still here").ok());
  EXPECT_EQ((*socket)->ReadMessage().value(), "still here");
}

TEST_F(WebSocketTest, EchoesOverTls) {
  TestCertificate certificate;
  ASSERT_TRUE(certificate.ok());
  HttpServerOptions options;
  options.tls_cert_file = certificate.cert();
  options.tls_key_file = certificate.key();
  StartServer(options);
  DialOptions dial;
  dial.ca_file = certificate.cert();
  absl::StatusOr<std::unique_ptr<WebSocket>> socket =
      DialWebSocket(Url("/echo"), {"echo.test"}, dial);
  ASSERT_TRUE(socket.ok()) << socket.status();
  EXPECT_EQ((*socket)->subprotocol(), "echo.test");
  for (size_t size : {size_t{5}, size_t{1} << 20}) {
    std::string message = Pattern(size, 3);
    ASSERT_TRUE((*socket)->WriteMessage(message).ok());
    absl::StatusOr<std::optional<std::string>> echoed = (*socket)->ReadMessage();
    ASSERT_TRUE(echoed.ok() && echoed->has_value()) << echoed.status();
    EXPECT_TRUE(**echoed == message);
  }
  (*socket)->Close();
  socket->reset();
  ASSERT_EQ(Ended(1).size(), 1u);
  EXPECT_TRUE(Ended(1)[0].ok()) << Ended(1)[0];

  // Unverified certificates are refused.
  EXPECT_FALSE(DialWebSocket(Url("/echo"), {"echo.test"}).ok());
}

TEST_F(WebSocketTest, ChannelsV4) {
  Notification server_done;
  session_ = [&](ChannelConnection& connection) {
    EXPECT_EQ(connection.protocol(), kV4);
    std::shared_ptr<Stream> in = connection.Channel(0);
    std::shared_ptr<Stream> out = connection.Channel(1);
    std::shared_ptr<Stream> err = connection.Channel(2);
    EXPECT_TRUE(out->Write("").ok());  // An announcement: never read as data.
    absl::StatusOr<std::string> got = in->Read();
    EXPECT_TRUE(got.ok()) << got.status();
    EXPECT_TRUE(out->Write(StrCat("out:", got.value_or(""))).ok());
    EXPECT_TRUE(err->Write("err").ok());
    // In v4, 255 is an ordinary channel and CloseWrite sends nothing.
    EXPECT_EQ(connection.Channel(255)->Read().value_or("?"), "on 255");
    EXPECT_TRUE(out->CloseWrite().ok());
    EXPECT_EQ(out->Write("x").code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_TRUE(err->Write("after").ok());
    connection.Wait();
    EXPECT_EQ(in->Read().value_or("?"), "");  // A clean end.
    server_done.Notify();
  };
  StartServer();
  std::unique_ptr<ChannelConnection> client = DialChannels(kV4);
  ASSERT_NE(client, nullptr);
  std::shared_ptr<Stream> in = client->Channel(0);
  std::shared_ptr<Stream> out = client->Channel(1);
  std::shared_ptr<Stream> err = client->Channel(2);
  ASSERT_TRUE(in->Write("stdin data").ok());
  EXPECT_EQ(out->Read().value_or("?"), "out:stdin data");
  EXPECT_EQ(err->Read().value_or("?"), "err");
  ASSERT_TRUE(client->Channel(255)->Write("on 255").ok());
  EXPECT_EQ(err->Read().value_or("?"), "after");
  client->Close();
  client->Wait();
  EXPECT_EQ(out->Read().value_or("?"), "");
  EXPECT_FALSE(in->Write("late").ok());
  server_done.WaitForNotification();
}

TEST_F(WebSocketTest, ChannelsV5CloseSignal) {
  Notification server_done;
  session_ = [&](ChannelConnection& connection) {
    std::shared_ptr<Stream> in = connection.Channel(0);
    std::shared_ptr<Stream> out = connection.Channel(1);
    EXPECT_EQ(ReadChannel(*in, 1 << 20), "all of stdin");
    // The client's close signal ended stdin; the connection lives on.
    EXPECT_EQ(in->Read().value_or("?"), "");
    EXPECT_TRUE(out->Write("answer").ok());
    EXPECT_TRUE(out->CloseWrite().ok());
    connection.Wait();
    server_done.Notify();
  };
  StartServer();
  std::unique_ptr<ChannelConnection> client = DialChannels(kV5);
  ASSERT_NE(client, nullptr);
  std::shared_ptr<Stream> in = client->Channel(0);
  std::shared_ptr<Stream> out = client->Channel(1);
  ASSERT_TRUE(in->Write("all of ").ok());
  ASSERT_TRUE(in->Write("stdin").ok());
  ASSERT_TRUE(in->CloseWrite().ok());
  EXPECT_TRUE(in->CloseWrite().ok());  // Idempotent.
  EXPECT_EQ(in->Write("more").code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(out->Read().value_or("?"), "answer");
  EXPECT_EQ(out->Read().value_or("?"), "");  // The server's close signal.
  client.reset();                            // Closes.
  server_done.WaitForNotification();
}

TEST_F(WebSocketTest, ChannelsV5MalformedCloseSignalEndsTheConnection) {
  Notification server_done;
  session_ = [&](ChannelConnection& connection) {
    connection.Wait();
    absl::StatusOr<std::string> read = connection.Channel(0)->Read();
    EXPECT_FALSE(read.ok());
    server_done.Notify();
  };
  StartServer();
  absl::StatusOr<std::unique_ptr<WebSocket>> socket = DialWebSocket(Url("/channels"), {kV5});
  ASSERT_TRUE(socket.ok()) << socket.status();
  ASSERT_TRUE((*socket)->WriteMessage(std::string("\xff\x00\x01", 3)).ok());
  server_done.WaitForNotification();
}

TEST_F(WebSocketTest, ManyChannels) {
  constexpr int kChannels = 100;
  Notification server_done;
  session_ = [&](ChannelConnection& connection) {
    for (int n = 0; n < kChannels; ++n) {
      std::shared_ptr<Stream> stream = connection.Channel(static_cast<uint8_t>(n));
      EXPECT_EQ(ReadChannel(*stream, 2 * 4), StrCat("c", 100 + n, "c", 100 + n)) << n;
      EXPECT_TRUE(stream->Write(StrCat("s", n)).ok());
    }
    connection.Wait();
    server_done.Notify();
  };
  StartServer();
  std::unique_ptr<ChannelConnection> client = DialChannels(kV5);
  ASSERT_NE(client, nullptr);
  // Written in reverse: the server reads them in order, from its buffers.
  for (int n = kChannels - 1; n >= 0; --n) {
    std::shared_ptr<Stream> stream = client->Channel(static_cast<uint8_t>(n));
    ASSERT_TRUE(stream->Write("").ok());
    ASSERT_TRUE(stream->Write(StrCat("c", 100 + n)).ok());
    ASSERT_TRUE(stream->Write(StrCat("c", 100 + n)).ok());
  }
  for (int n = 0; n < kChannels; ++n) {
    EXPECT_EQ(client->Channel(static_cast<uint8_t>(n))->Read().value_or("?"), StrCat("s", n));
  }
  client->Close();
  server_done.WaitForNotification();
}

TEST_F(WebSocketTest, EightMebibytesThroughOneChannelBothWays) {
  constexpr size_t kSize = 8 << 20;
  session_ = [&](ChannelConnection& connection) {
    // Echo channel 1 until the client's close signal, then close it too.
    std::shared_ptr<Stream> stream = connection.Channel(1);
    while (true) {
      absl::StatusOr<std::string> chunk = stream->Read();
      if (!chunk.ok() || chunk->empty()) break;
      if (!stream->Write(*chunk).ok()) break;
    }
    EXPECT_TRUE(stream->CloseWrite().ok());
    connection.Wait();
  };
  StartServer();
  std::unique_ptr<ChannelConnection> client = DialChannels(kV5);
  ASSERT_NE(client, nullptr);
  std::shared_ptr<Stream> stream = client->Channel(1);
  const std::string data = Pattern(kSize, 7);
  std::thread writer([&] {
    ASSERT_TRUE(stream->Write(data).ok());
    ASSERT_TRUE(stream->CloseWrite().ok());
  });
  std::string echoed = ReadChannel(*stream, kSize + 1);
  writer.join();
  EXPECT_EQ(echoed.size(), kSize);
  EXPECT_TRUE(echoed == data);
}

TEST_F(WebSocketTest, AChannelNobodyReadsHoldsBackTheSender) {
  constexpr size_t kSize = 48 << 20;
  Notification start_reading;
  std::atomic<size_t> received{0};
  session_ = [&](ChannelConnection& connection) {
    start_reading.WaitForNotification();
    std::shared_ptr<Stream> stream = connection.Channel(3);
    while (received < kSize) {
      absl::StatusOr<std::string> chunk = stream->Read();
      if (!chunk.ok() || chunk->empty()) break;
      received += chunk->size();
    }
    connection.Wait();
  };
  StartServer();
  std::unique_ptr<ChannelConnection> client = DialChannels(kV4);
  ASSERT_NE(client, nullptr);
  std::atomic<bool> written{false};
  std::thread writer([&] {
    EXPECT_TRUE(client->Channel(3)->Write(std::string(kSize, 'z')).ok());
    written = true;
  });
  absl::SleepFor(absl::Seconds(1));
  EXPECT_FALSE(written) << "the server took 48 MiB that nobody read";
  start_reading.Notify();
  writer.join();
  absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (received < kSize && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(10));
  EXPECT_EQ(received, kSize);
  client->Close();
}

}  // namespace
}  // namespace vmlet::streaming
