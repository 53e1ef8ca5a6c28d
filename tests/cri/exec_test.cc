// ExecSync, Exec, Attach and PortForward of CriService over the fake VM
// driver, whose Exec the tests script.
#include <memory>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "streaming/client.h"
#include "streaming/server.h"
#include "tests/cri/cri_test_util.h"

namespace vmlet::cri {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// What the fake driver's Exec was asked.
struct ExecCall {
  std::string id;
  std::vector<std::string> argv;
  absl::Duration timeout;
};

class ExecTest : public vmlet::testing::CriFixture {
 protected:
  // A running container, and a driver that records each Exec and answers
  // `answer_`.
  void SetUp() override {
    sandbox_ = RunSandbox("web");
    id_ = CreateContainer(sandbox_, "vm");
    v1::StartContainerRequest start;
    start.set_container_id(id_);
    v1::StartContainerResponse started;
    ASSERT_TRUE(service_->StartContainer(start, &started).ok());
    driver_->SetExecHandler([this](std::string_view id, const std::vector<std::string>& argv,
                                   absl::Duration timeout) -> absl::StatusOr<vmdriver::ExecResult> {
      calls_.push_back({std::string(id), argv, timeout});
      return answer_;
    });
  }

  absl::Status ExecSync(const std::string& id, const std::vector<std::string>& cmd, int64_t timeout,
                        v1::ExecSyncResponse* response) {
    v1::ExecSyncRequest request;
    request.set_container_id(id);
    for (const std::string& arg : cmd) request.add_cmd(arg);
    request.set_timeout(timeout);
    return service_->ExecSync(request, response);
  }

  std::string sandbox_;
  std::string id_;
  std::vector<ExecCall> calls_;
  absl::StatusOr<vmdriver::ExecResult> answer_ = vmdriver::ExecResult{};
};

TEST_F(ExecTest, ReturnsTheOutputAndExitCodeOfTheCommand) {
  answer_ = vmdriver::ExecResult{.exit_code = 3, .stdout_data = "out\n", .stderr_data = "err\n"};
  v1::ExecSyncResponse response;
  absl::Status status =
      ExecSync(id_, {"sh", "-c", "echo out; echo err >&2; exit 3"}, 10, &response);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(response.stdout(), "out\n");
  EXPECT_EQ(response.stderr(), "err\n");
  EXPECT_EQ(response.exit_code(), 3);
  ASSERT_EQ(calls_.size(), 1u);
  EXPECT_EQ(calls_[0].id, id_);
  EXPECT_THAT(calls_[0].argv, ElementsAre("sh", "-c", "echo out; echo err >&2; exit 3"));
  EXPECT_EQ(calls_[0].timeout, absl::Seconds(10));
}

TEST_F(ExecTest, KeepsBinaryOutputAsIs) {
  const std::string bytes("\0\xff\n\x01", 4);
  answer_ = vmdriver::ExecResult{.stdout_data = bytes, .stderr_data = bytes};
  v1::ExecSyncResponse response;
  ASSERT_TRUE(ExecSync(id_, {"cat", "/bin/busybox"}, 0, &response).ok());
  EXPECT_EQ(response.stdout(), bytes);
  EXPECT_EQ(response.stderr(), bytes);
}

TEST_F(ExecTest, ATimeoutOfZeroMeansNoLimit) {
  v1::ExecSyncResponse response;
  ASSERT_TRUE(ExecSync(id_, {"true"}, 0, &response).ok());
  ASSERT_EQ(calls_.size(), 1u);
  EXPECT_EQ(calls_[0].timeout, absl::ZeroDuration());
}

TEST_F(ExecTest, FindsTheContainerByAUniquePrefix) {
  v1::ExecSyncResponse response;
  ASSERT_TRUE(ExecSync(id_.substr(0, 12), {"true"}, 1, &response).ok());
  ASSERT_EQ(calls_.size(), 1u);
  EXPECT_EQ(calls_[0].id, id_);
}

TEST_F(ExecTest, TruncatedOutputIsStillReturned) {
  answer_ = vmdriver::ExecResult{.stdout_data = "cut", .output_truncated = true};
  v1::ExecSyncResponse response;
  ASSERT_TRUE(ExecSync(id_, {"yes"}, 1, &response).ok());
  EXPECT_EQ(response.stdout(), "cut");
}

struct BadRequestCase {
  std::string name;
  std::vector<std::string> cmd;
  int64_t timeout;
  std::string field;  // Named in the message.
};

class ExecBadRequestTest : public ExecTest, public ::testing::WithParamInterface<BadRequestCase> {};

TEST_P(ExecBadRequestTest, IsInvalidArgumentNamingTheFieldAndReachesNoVm) {
  v1::ExecSyncResponse response;
  absl::Status status = ExecSync(id_, GetParam().cmd, GetParam().timeout, &response);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr(GetParam().field));
  EXPECT_TRUE(calls_.empty());
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ExecBadRequestTest,
    ::testing::Values(BadRequestCase{"EmptyCmd", {}, 1, "cmd:"},
                      BadRequestCase{"EmptyProgram", {"", "x"}, 1, "cmd[0]"},
                      BadRequestCase{"NegativeTimeout", {"true"}, -1, "timeout: -1"}),
    [](const ::testing::TestParamInfo<BadRequestCase>& info) { return info.param.name; });

TEST_F(ExecTest, AnUnknownContainerIsNotFound) {
  v1::ExecSyncResponse response;
  absl::Status status = ExecSync(std::string(64, 'e'), {"true"}, 1, &response);
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound) << status;
}

TEST_F(ExecTest, AContainerThatIsNotRunningIsFailedPreconditionNamingItsState) {
  std::string created = CreateContainer(RunSandbox("other"), "vm");
  v1::ExecSyncResponse response;
  absl::Status status = ExecSync(created, {"true"}, 1, &response);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr("is created"));

  ASSERT_TRUE(driver_->SimulateExit(id_, 0, "Completed").ok());
  status = ExecSync(id_, {"true"}, 1, &response);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr("is exited"));
  EXPECT_TRUE(calls_.empty());
}

TEST_F(ExecTest, DriverErrorsKeepTheirCodeAndNameTheContainer) {
  const absl::Status errors[] = {
      absl::DeadlineExceededError("command \"sleep 30\" did not finish within 2s"),
      absl::FailedPreconditionError("guest agent not connected in VM \"vmlet-x\""),
      absl::UnavailableError("libvirt is not reachable"),
  };
  for (const absl::Status& error : errors) {
    answer_ = error;
    v1::ExecSyncResponse response;
    absl::Status status = ExecSync(id_, {"sleep", "30"}, 2, &response);
    EXPECT_EQ(status.code(), error.code()) << status;
    EXPECT_THAT(std::string(status.message()), HasSubstr(error.message()));
    EXPECT_THAT(std::string(status.message()), HasSubstr(id_));
  }
}

// Exec, Attach and PortForward check the request and return a URL of the
// streaming server; the session then runs through the fake driver.
class StreamingTest : public ExecTest {
 protected:
  void SetUp() override {
    ExecTest::SetUp();
    absl::StatusOr<std::unique_ptr<streaming::Server>> server =
        streaming::Server::Start({}, service_->streaming_runtime());
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    service_->SetStreamingServer(server_.get());
  }
  void TearDown() override { server_->Stop(); }

  v1::ExecRequest ExecRequest(std::vector<std::string> cmd) {
    v1::ExecRequest request;
    request.set_container_id(id_);
    for (const std::string& arg : cmd) request.add_cmd(arg);
    request.set_stdout(true);
    request.set_stderr(true);
    return request;
  }

  std::unique_ptr<streaming::Server> server_;
};

TEST_F(StreamingTest, ExecReturnsAUrlThatRunsTheCommand) {
  v1::ExecRequest request = ExecRequest({"echo", "streamed"});
  request.set_stdin(true);
  v1::ExecResponse response;
  ASSERT_TRUE(service_->Exec(request, &response).ok());
  EXPECT_THAT(response.url(), ::testing::StartsWith(server_->base_url() + "/exec/"));
  absl::StatusOr<std::unique_ptr<streaming::CommandSession>> session =
      streaming::ConnectCommand(response.url(), {.stdin = true});
  ASSERT_TRUE(session.ok()) << session.status();
  // The fake driver echoes its argv, then copies stdin.
  absl::StatusOr<streaming::CommandOutput> out = streaming::RunCommand(**session, "and stdin\n");
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->stdout_data, "echo streamed\nand stdin\n");
  EXPECT_EQ(out->exit_code, 0);
}

TEST_F(StreamingTest, BadExecRequestsNameTheField) {
  struct Case {
    v1::ExecRequest request;
    std::string field;
  } cases[] = {
      {ExecRequest({}), "cmd: empty"},
      {ExecRequest({""}), "cmd[0]: empty"},
      {ExecRequest({"ls"}), "tty and stderr"},
      {ExecRequest({"ls"}), "stdin, stdout, stderr: all false"},
  };
  cases[2].request.set_tty(true);
  cases[3].request.set_stdout(false);
  cases[3].request.set_stderr(false);
  for (const Case& c : cases) {
    v1::ExecResponse response;
    absl::Status status = service_->Exec(c.request, &response);
    EXPECT_TRUE(absl::IsInvalidArgument(status)) << status;
    EXPECT_THAT(std::string(status.message()), HasSubstr(c.field));
  }
}

TEST_F(StreamingTest, AttachAndExecNeedARunningContainer) {
  v1::StopContainerRequest stop;
  stop.set_container_id(id_);
  v1::StopContainerResponse stopped;
  ASSERT_TRUE(service_->StopContainer(stop, &stopped).ok());
  v1::AttachRequest attach;
  attach.set_container_id(id_);
  attach.set_stdout(true);
  v1::AttachResponse attached;
  absl::Status status = service_->Attach(attach, &attached);
  EXPECT_TRUE(absl::IsFailedPrecondition(status)) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr("is exited"));
  v1::ExecResponse response;
  EXPECT_TRUE(absl::IsFailedPrecondition(service_->Exec(ExecRequest({"ls"}), &response)));
}

TEST_F(StreamingTest, PortForwardChecksPorts) {
  v1::PortForwardRequest request;
  request.set_pod_sandbox_id(sandbox_);
  request.add_port(70000);
  v1::PortForwardResponse response;
  absl::Status status = service_->PortForward(request, &response);
  EXPECT_TRUE(absl::IsInvalidArgument(status)) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr("port[0]: 70000"));
  request.set_port(0, 80);
  // (The fake pod network's address is not connected to: no traffic leaves
  // loopback in unit tests.)
  ASSERT_TRUE(service_->PortForward(request, &response).ok());
  EXPECT_THAT(response.url(), ::testing::StartsWith(server_->base_url() + "/portforward/"));
  request.set_pod_sandbox_id("0123456789abcdef");
  EXPECT_TRUE(absl::IsNotFound(service_->PortForward(request, &response)));
}

TEST_F(StreamingTest, WithoutAServerTheCallsAreUnavailable) {
  service_->SetStreamingServer(nullptr);
  v1::ExecResponse response;
  EXPECT_TRUE(absl::IsUnavailable(service_->Exec(ExecRequest({"ls"}), &response)));
}

}  // namespace
}  // namespace vmlet::cri
