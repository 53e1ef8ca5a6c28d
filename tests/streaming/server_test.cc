// The streaming server with a fake runtime, through the project's own
// SPDY and WebSocket clients: exec, attach and port-forward on every
// protocol version, tokens, and connections that misbehave.
#include "streaming/server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "base/status.h"
#include "base/str_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "streaming/client.h"
#include "streaming/protocols.h"
#include "streaming/request_cache.h"
#include "tests/streaming/test_sockets.h"

namespace vmlet::streaming {
namespace {

using ::testing::HasSubstr;

// Commands: echo ARGS (stdout), fail (stderr "oops", exit 3), cat (stdin to
// stdout), step (writes "1\n", waits for the test, writes "2\n"), broken
// (an error instead of an exit code).
class FakeRuntime : public Runtime {
 public:
  absl::StatusOr<int> Exec(const ExecRequest& request, CommandStreams& streams) override {
    const std::string& program = request.cmd[0];
    Stream* out = streams.stdout_stream();
    Stream* err = streams.tty() ? out : streams.stderr_stream();
    if (program == "echo") {
      std::string line;
      for (size_t i = 1; i < request.cmd.size(); ++i) {
        StrAppend(&line, i > 1 ? " " : "", request.cmd[i]);
      }
      VMLET_RETURN_IF_ERROR(out->Write(line + "\n"));
      return 0;
    }
    if (program == "fail") {
      VMLET_RETURN_IF_ERROR(err->Write("oops"));
      return 3;
    }
    if (program == "cat") {
      while (true) {
        std::string data = streams.ReadStdin();
        if (data.empty()) return 0;
        VMLET_RETURN_IF_ERROR(out->Write(data));
      }
    }
    if (program == "step") {
      VMLET_RETURN_IF_ERROR(out->Write("1\n"));
      Step()->WaitForNotification();
      VMLET_RETURN_IF_ERROR(out->Write("2\n"));
      return 0;
    }
    return absl::FailedPreconditionError("guest agent not connected in VM \"fake\"");
  }

  absl::Status Attach(const AttachRequest&, CommandStreams& streams) override {
    VMLET_RETURN_IF_ERROR(streams.stdout_stream()->Write("console ready\n"));
    while (true) {
      std::string data = streams.ReadStdin();
      if (data.empty()) return absl::OkStatus();
      VMLET_RETURN_IF_ERROR(streams.stdout_stream()->Write("ECHO " + data));
    }
  }

  // Port 7 echoes in upper case; any other port is refused.
  absl::Status PortForward(const std::string&, int32_t port, Stream& data) override {
    if (port != 7) return absl::UnavailableError(StrCat("connection refused on port ", port));
    while (true) {
      VMLET_ASSIGN_OR_RETURN(std::string chunk, data.Read());
      if (chunk.empty()) return absl::OkStatus();
      for (char& c : chunk) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      VMLET_RETURN_IF_ERROR(data.Write(chunk));
    }
  }

  // What "step" waits for; a new one for each use.
  std::shared_ptr<absl::Notification> Step() {
    std::lock_guard lock(mu_);
    return step_;
  }
  std::shared_ptr<absl::Notification> NewStep() {
    std::lock_guard lock(mu_);
    step_ = std::make_shared<absl::Notification>();
    return step_;
  }

 private:
  std::mutex mu_;
  std::shared_ptr<absl::Notification> step_ = std::make_shared<absl::Notification>();
};

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<Server>> server = Server::Start({}, &runtime_);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }

  std::string ExecUrl(std::vector<std::string> cmd, bool in = false, bool tty = false) {
    absl::StatusOr<std::string> url = server_->GetExecUrl({.container_id = "c1",
                                                           .cmd = cmd,
                                                           .tty = tty,
                                                           .stdin = in,
                                                           .stdout = true,
                                                           .stderr = !tty});
    EXPECT_TRUE(url.ok()) << url.status();
    return url.value_or("");
  }

  absl::StatusOr<CommandOutput> Run(const std::string& url, CommandOptions options,
                                    std::string_view input = "") {
    VMLET_ASSIGN_OR_RETURN(std::unique_ptr<CommandSession> session, ConnectCommand(url, options));
    return RunCommand(*session, input);
  }

  FakeRuntime runtime_;
  std::unique_ptr<Server> server_;
};

TEST_F(ServerTest, ExecOverEverySpdyVersion) {
  for (const char* protocol : {kProtocolV4, kProtocolV3, kProtocolV2, kProtocolV1}) {
    SCOPED_TRACE(protocol);
    absl::StatusOr<CommandOutput> out =
        Run(ExecUrl({"echo", "hello", "vm"}), {.protocols = {protocol}});
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_EQ(out->stdout_data, "hello vm\n");
    EXPECT_EQ(out->exit_code, 0);
  }
}

TEST_F(ServerTest, ExitCodeAndStderrOverSpdyV4) {
  absl::StatusOr<CommandOutput> out = Run(ExecUrl({"fail"}), {});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->stderr_data, "oops");
  EXPECT_EQ(out->exit_code, 3);
}

TEST_F(ServerTest, ExitCodeBeforeV4IsAnErrorMessage) {
  absl::StatusOr<std::unique_ptr<CommandSession>> session =
      ConnectCommand(ExecUrl({"fail"}), {.protocols = {kProtocolV2}});
  ASSERT_TRUE(session.ok()) << session.status();
  absl::StatusOr<CommandOutput> out = RunCommand(**session);
  EXPECT_THAT(out.status().message(), HasSubstr("non-zero exit code: exit status 3"));
}

TEST_F(ServerTest, StdinReachesTheCommandOverSpdy) {
  std::string input(1 << 20, 'x');
  for (size_t i = 0; i < input.size(); i += 997) input[i] = static_cast<char>('a' + i % 26);
  absl::StatusOr<CommandOutput> out = Run(ExecUrl({"cat"}, /*in=*/true), {.stdin = true}, input);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->stdout_data, input);
  EXPECT_EQ(out->exit_code, 0);
}

TEST_F(ServerTest, OutputArrivesBeforeTheCommandEnds) {
  for (WireProtocol wire : {WireProtocol::kSpdy, WireProtocol::kWebSocket}) {
    std::shared_ptr<absl::Notification> step = runtime_.NewStep();
    absl::StatusOr<std::unique_ptr<CommandSession>> session =
        ConnectCommand(ExecUrl({"step"}), {.wire = wire});
    ASSERT_TRUE(session.ok()) << session.status();
    absl::StatusOr<std::string> first = (*session)->stdout->Read();
    ASSERT_TRUE(first.ok()) << first.status();
    EXPECT_EQ(*first, "1\n");  // The command is still waiting for the test here.
    step->Notify();
    absl::StatusOr<CommandOutput> rest = RunCommand(**session);
    ASSERT_TRUE(rest.ok()) << rest.status();
    EXPECT_EQ(rest->stdout_data, "2\n");
    EXPECT_EQ(rest->exit_code, 0);
  }
}

TEST_F(ServerTest, ExecOverWebSocketVersions) {
  for (const char* protocol : {kProtocolV5, kProtocolV4, kProtocolV1}) {
    SCOPED_TRACE(protocol);
    absl::StatusOr<CommandOutput> out =
        Run(ExecUrl({"echo", "over", "ws"}),
            {.wire = WireProtocol::kWebSocket, .protocols = {protocol}});
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_EQ(out->stdout_data, "over ws\n");
    EXPECT_EQ(out->exit_code, 0);
  }
  absl::StatusOr<CommandOutput> failed =
      Run(ExecUrl({"fail"}), {.wire = WireProtocol::kWebSocket, .protocols = {kProtocolV4}});
  ASSERT_TRUE(failed.ok()) << failed.status();
  EXPECT_EQ(failed->stderr_data, "oops");
  EXPECT_EQ(failed->exit_code, 3);
}

TEST_F(ServerTest, StdinEndsOverWebSocketV5) {
  absl::StatusOr<CommandOutput> out =
      Run(ExecUrl({"cat"}, /*in=*/true),
          {.wire = WireProtocol::kWebSocket, .protocols = {kProtocolV5}, .stdin = true},
          "typed over v5\n");
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->stdout_data, "typed over v5\n");
}

TEST_F(ServerTest, TtyMergesStderrIntoStdout) {
  absl::StatusOr<CommandOutput> out =
      Run(ExecUrl({"fail"}, false, /*tty=*/true), {.stderr = false, .tty = true});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->stdout_data, "oops");
  EXPECT_EQ(out->exit_code, 3);
}

TEST_F(ServerTest, RuntimeErrorReachesTheClient) {
  for (WireProtocol wire : {WireProtocol::kSpdy, WireProtocol::kWebSocket}) {
    absl::StatusOr<CommandOutput> out = Run(ExecUrl({"broken"}), {.wire = wire});
    EXPECT_THAT(out.status().message(), HasSubstr("guest agent not connected"));
  }
}

TEST_F(ServerTest, ATokenIsGoodForOneConnection) {
  std::string url = ExecUrl({"echo", "once"});
  ASSERT_TRUE(Run(url, {}).ok());
  absl::StatusOr<CommandOutput> again = Run(url, {});
  EXPECT_FALSE(again.ok());
  EXPECT_THAT(again.status().message(), HasSubstr("404"));
  absl::StatusOr<CommandOutput> made_up =
      Run(StrCat(server_->base_url(), "/exec/0123456789abcdef0123456789abcdef"),
          {.wire = WireProtocol::kWebSocket});
  EXPECT_FALSE(made_up.ok());
}

TEST_F(ServerTest, ATokenIsForItsOwnEndpoint) {
  std::string url = ExecUrl({"echo", "x"});
  std::string attach = url;
  attach.replace(attach.find("/exec/"), 6, "/attach/");
  EXPECT_FALSE(Run(attach, {}).ok());
  EXPECT_FALSE(Run(url, {}).ok());  // Consumed by the wrong try.
}

TEST_F(ServerTest, UnknownProtocolIsRefused) {
  absl::StatusOr<CommandOutput> out = Run(ExecUrl({"echo"}), {.protocols = {"v9.channel.k8s.io"}});
  EXPECT_FALSE(out.ok());
  EXPECT_THAT(out.status().message(), HasSubstr("403"));
}

TEST_F(ServerTest, AttachBothWays) {
  for (WireProtocol wire : {WireProtocol::kSpdy, WireProtocol::kWebSocket}) {
    absl::StatusOr<std::string> url =
        server_->GetAttachUrl({.container_id = "c1", .tty = true, .stdin = true, .stdout = true});
    ASSERT_TRUE(url.ok());
    absl::StatusOr<std::unique_ptr<CommandSession>> session = ConnectCommand(
        *url, {.wire = wire, .stdin = true, .stdout = true, .stderr = false, .tty = true});
    ASSERT_TRUE(session.ok()) << session.status();
    std::string seen;
    while (seen.find("console ready\n") == std::string::npos) {
      absl::StatusOr<std::string> chunk = (*session)->stdout->Read();
      ASSERT_TRUE(chunk.ok() && !chunk->empty());
      seen += *chunk;
    }
    ASSERT_TRUE((*session)->stdin->Write("ls\n").ok());
    while (seen.find("ECHO ls\n") == std::string::npos) {
      absl::StatusOr<std::string> chunk = (*session)->stdout->Read();
      ASSERT_TRUE(chunk.ok() && !chunk->empty()) << seen;
      seen += *chunk;
    }
    (*session)->Close();
  }
}

TEST_F(ServerTest, PortForwardTwoConcurrentConnectionsOverSpdy) {
  absl::StatusOr<std::string> url = server_->GetPortForwardUrl({.sandbox_id = "s1"});
  ASSERT_TRUE(url.ok());
  absl::StatusOr<std::unique_ptr<PortForwardSession>> session = ConnectPortForward(*url, {});
  ASSERT_TRUE(session.ok()) << session.status();
  absl::StatusOr<PortForwardSession::Connection> a = (*session)->Open(7);
  absl::StatusOr<PortForwardSession::Connection> b = (*session)->Open(7);
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_TRUE(a->data->Write("first").ok());
  ASSERT_TRUE(b->data->Write("second").ok());
  ASSERT_TRUE(b->data->CloseWrite().ok());
  ASSERT_TRUE(a->data->CloseWrite().ok());
  EXPECT_EQ(ReadAll(*b->data).value_or("?"), "SECOND");
  EXPECT_EQ(ReadAll(*a->data).value_or("?"), "FIRST");
  EXPECT_EQ(ReadAll(*a->error).value_or("?"), "");

  absl::StatusOr<PortForwardSession::Connection> refused = (*session)->Open(8);
  ASSERT_TRUE(refused.ok());
  EXPECT_THAT(ReadAll(*refused->error).value_or(""), HasSubstr("connection refused on port 8"));
}

TEST_F(ServerTest, PortForwardOverWebSocket) {
  absl::StatusOr<std::string> url = server_->GetPortForwardUrl({.sandbox_id = "s1"});
  ASSERT_TRUE(url.ok());
  absl::StatusOr<std::unique_ptr<PortForwardSession>> session =
      ConnectPortForward(*url, {.wire = WireProtocol::kWebSocket, .ports = {7}});
  ASSERT_TRUE(session.ok()) << session.status();
  absl::StatusOr<PortForwardSession::Connection> a = (*session)->Open(7);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(a->data->Write("hello").ok());
  std::string seen;
  while (seen.size() < 5) {
    absl::StatusOr<std::string> chunk = a->data->Read();
    ASSERT_TRUE(chunk.ok() && !chunk->empty());
    seen += *chunk;
  }
  EXPECT_EQ(seen, "HELLO");
}

// Raw bytes to the server: an upgrade, then garbage.
int RawConnect(const std::string& base_url) {
  return testing::ConnectTo(std::stoi(base_url.substr(base_url.rfind(':') + 1)));
}

// Reads until the server closes; false if it did not within the test's time.
bool ReadsToClose(int fd) {
  timeval timeout{.tv_sec = 20};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  char buffer[4096];
  while (true) {
    ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n == 0) return true;
    if (n < 0) return errno == ECONNRESET;
  }
}

TEST_F(ServerTest, GarbageAfterTheSpdyUpgradeEndsOnlyThatConnection) {
  std::string url = ExecUrl({"echo", "x"});
  std::string path = url.substr(url.find("/exec/"));
  int fd = RawConnect(server_->base_url());
  std::string request = StrCat("POST ", path,
                               " HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: "
                               "SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n");
  ASSERT_EQ(::write(fd, request.data(), request.size()), static_cast<ssize_t>(request.size()));
  std::string garbage(4096, '\xff');
  (void)::write(fd, garbage.data(), garbage.size());
  EXPECT_TRUE(ReadsToClose(fd));
  ::close(fd);
  absl::StatusOr<CommandOutput> out = Run(ExecUrl({"echo", "still", "fine"}), {});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->stdout_data, "still fine\n");
}

TEST_F(ServerTest, BadWebSocketFramesEndOnlyThatConnection) {
  std::string url = ExecUrl({"echo", "x"});
  std::string path = url.substr(url.find("/exec/"));
  int fd = RawConnect(server_->base_url());
  std::string request =
      StrCat("GET ", path,
             " HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
             "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
             "Sec-WebSocket-Protocol: v4.channel.k8s.io\r\n\r\n");
  ASSERT_EQ(::write(fd, request.data(), request.size()), static_cast<ssize_t>(request.size()));
  // An unmasked frame with a reserved opcode and an absurd length.
  const char frame[] = "\x83\x7f\xff\xff\xff\xff\xff\xff\xff\xff";
  (void)::write(fd, frame, sizeof(frame) - 1);
  EXPECT_TRUE(ReadsToClose(fd));
  ::close(fd);
  absl::StatusOr<CommandOutput> out =
      Run(ExecUrl({"echo", "still", "fine"}), {.wire = WireProtocol::kWebSocket});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->stdout_data, "still fine\n");
}

TEST_F(ServerTest, JunkHttpGetsA400) {
  int fd = RawConnect(server_->base_url());
  std::string junk = "NOT HTTP AT ALL\r\n\r\n";
  ASSERT_EQ(::write(fd, junk.data(), junk.size()), static_cast<ssize_t>(junk.size()));
  char buffer[64] = {};
  ASSERT_GT(::read(fd, buffer, sizeof(buffer) - 1), 0);
  EXPECT_THAT(std::string(buffer), HasSubstr("400"));
  ::close(fd);
}

TEST(RequestCacheTest, TokensExpireAfterAMinute) {
  absl::Time now = absl::FromUnixSeconds(1000);
  RequestCache cache([&now] { return now; });
  absl::StatusOr<std::string> token = cache.Insert(ExecRequest{.container_id = "c"});
  ASSERT_TRUE(token.ok());
  EXPECT_EQ(token->size(), 32u);
  now += kTokenLifetime;
  EXPECT_TRUE(absl::IsNotFound(cache.Consume(*token).status()));
}

TEST(RequestCacheTest, ATokenIsConsumedOnceAndTheCacheIsBounded) {
  RequestCache cache;
  absl::StatusOr<std::string> token = cache.Insert(AttachRequest{.container_id = "c"});
  ASSERT_TRUE(token.ok());
  EXPECT_TRUE(cache.Consume(*token).ok());
  EXPECT_TRUE(absl::IsNotFound(cache.Consume(*token).status()));
  for (size_t i = 0; i < kMaxPendingRequests; ++i) {
    ASSERT_TRUE(cache.Insert(PortForwardRequest{}).ok());
  }
  EXPECT_TRUE(absl::IsResourceExhausted(cache.Insert(PortForwardRequest{}).status()));
}

TEST(ProtocolsTest, NegotiationFollowsTheClientsOrder) {
  EXPECT_EQ(
      NegotiateProtocol({"v9", kProtocolV3, kProtocolV4}, {kProtocolV4, kProtocolV3}).value_or("?"),
      kProtocolV3);
  EXPECT_EQ(NegotiateProtocol({}, {kProtocolV4}).value_or("?"), "");
  EXPECT_FALSE(NegotiateProtocol({"v9"}, {kProtocolV4}).ok());
  EXPECT_EQ(HeaderValues({{"x", "a, b"}, {"y", "c"}, {"x", "d"}}, "x"),
            (std::vector<std::string>{"a", "b", "d"}));
  EXPECT_EQ(QueryValues("port=80&x=1&port=8%30", "port"), (std::vector<std::string>{"80", "80"}));
}

TEST(ProtocolsTest, ExitStatusRoundTrips) {
  EXPECT_EQ(ParseErrorStream(kProtocolV4, ExitStatusJson(0)).value_or(-1), 0);
  EXPECT_EQ(ParseErrorStream(kProtocolV4, ExitStatusJson(42)).value_or(-1), 42);
  EXPECT_EQ(ParseErrorStream(kProtocolV4, "").value_or(-1), 0);
  absl::StatusOr<int> error =
      ParseErrorStream(kProtocolV4, ErrorStatusJson(absl::InternalError("boom")));
  EXPECT_THAT(error.status().message(), HasSubstr("boom"));
  EXPECT_FALSE(ParseErrorStream(kProtocolV4, "{not json").ok());
}

}  // namespace
}  // namespace vmlet::streaming
