// ExecSync through the guest agent, against a scripted agent: the commands
// sent, the decoding of guest-exec-status, polling, timeouts and errors.
// The real agent is tested end to end (tests/e2e/exec_test.cc).
#include "vmdriver/libvirt/guest_exec.h"

#include <deque>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "absl/strings/escaping.h"
#include "absl/time/clock.h"

namespace vmlet::vmdriver::libvirt {
namespace {

using ::testing::HasSubstr;
using Json = nlohmann::json;

std::string B64(const std::string& text) { return absl::Base64Escape(text); }

// Answers each command with the next scripted reply (the last one again
// when the script runs out) and records what it was sent.
class ScriptedAgent {
 public:
  explicit ScriptedAgent(std::vector<absl::StatusOr<std::string>> replies)
      : replies_(replies.begin(), replies.end()) {}

  AgentCommand Command() {
    return
        [this](const std::string& command, absl::Duration timeout) -> absl::StatusOr<std::string> {
          commands_.push_back(Json::parse(command));
          timeouts_.push_back(timeout);
          absl::StatusOr<std::string> reply = replies_.front();
          if (replies_.size() > 1) replies_.pop_front();
          return reply;
        };
  }

  const std::vector<Json>& commands() const { return commands_; }
  const std::vector<absl::Duration>& timeouts() const { return timeouts_; }

 private:
  std::deque<absl::StatusOr<std::string>> replies_;
  std::vector<Json> commands_;
  std::vector<absl::Duration> timeouts_;
};

constexpr char kStarted[] = R"({"return": {"pid": 42}})";
constexpr char kRunning[] = R"({"return": {"exited": false}})";

TEST(GuestExecCommandTest, PassesPathArgumentsAndAsksForTheOutput) {
  Json command = Json::parse(GuestExecCommand({"/bin/sh", "-c", "echo \"hi\" 'x'"}));
  EXPECT_EQ(command["execute"], "guest-exec");
  EXPECT_EQ(command["arguments"]["path"], "/bin/sh");
  EXPECT_EQ(command["arguments"]["arg"], Json({"-c", "echo \"hi\" 'x'"}));
  EXPECT_EQ(command["arguments"]["capture-output"], true);
  // No arguments: no "arg" at all.
  EXPECT_FALSE(Json::parse(GuestExecCommand({"true"}))["arguments"].contains("arg"));
}

TEST(ParseGuestExecStatusTest, IsEmptyWhileTheProcessRuns) {
  absl::StatusOr<std::optional<ExecResult>> status = ParseGuestExecStatus(kRunning);
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_FALSE(status->has_value());
}

TEST(ParseGuestExecStatusTest, DecodesTheOutputAndTheExitCode) {
  const std::string binary("\0\xff\n", 3);
  Json reply = {{"return",
                 {{"exited", true},
                  {"exitcode", 3},
                  {"out-data", B64("hello\n")},
                  {"err-data", B64(binary)},
                  {"out-truncated", false},
                  {"err-truncated", false}}}};
  absl::StatusOr<std::optional<ExecResult>> status = ParseGuestExecStatus(reply.dump());
  ASSERT_TRUE(status.ok()) << status.status();
  ASSERT_TRUE(status->has_value());
  const ExecResult& result = **status;
  EXPECT_EQ(result.exit_code, 3);
  EXPECT_EQ(result.stdout_data, "hello\n");
  EXPECT_EQ(result.stderr_data, binary);
  EXPECT_FALSE(result.output_truncated);
}

TEST(ParseGuestExecStatusTest, ASignalIs128PlusItsNumberAndNoOutputIsEmpty) {
  absl::StatusOr<std::optional<ExecResult>> status =
      ParseGuestExecStatus(R"({"return": {"exited": true, "signal": 9}})");
  ASSERT_TRUE(status.ok()) << status.status();
  ASSERT_TRUE(status->has_value());
  EXPECT_EQ((*status)->exit_code, 137);
  EXPECT_EQ((*status)->stdout_data, "");
  EXPECT_EQ((*status)->stderr_data, "");
}

TEST(ParseGuestExecStatusTest, ReportsTruncationByTheAgent) {
  absl::StatusOr<std::optional<ExecResult>> status = ParseGuestExecStatus(
      R"({"return": {"exited": true, "exitcode": 0, "out-data": "eA==", "out-truncated": true}})");
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_TRUE((*status)->output_truncated);
  EXPECT_EQ((*status)->stdout_data, "x");
}

TEST(ParseGuestExecStatusTest, CutsOutputLongerThanTheCap) {
  Json reply = {{"return",
                 {{"exited", true},
                  {"exitcode", 0},
                  {"out-data", B64(std::string(kMaxExecOutputBytes + 10, 'a'))}}}};
  absl::StatusOr<std::optional<ExecResult>> status = ParseGuestExecStatus(reply.dump());
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ((*status)->stdout_data.size(), kMaxExecOutputBytes);
  EXPECT_TRUE((*status)->output_truncated);
}

TEST(ParseGuestExecStatusTest, RejectsMalformedReplies) {
  for (const char* reply : {
           "not json",
           R"({"error": {"desc": "Invalid parameter 'pid'"}})",
           R"({"return": {"exited": true}})",
           R"({"return": {"exited": true, "exitcode": 0, "out-data": "!!not base64!!"}})",
           R"({"return": {"exited": true, "exitcode": 0, "err-data": 5}})",
       }) {
    absl::StatusOr<std::optional<ExecResult>> status = ParseGuestExecStatus(reply);
    EXPECT_EQ(status.status().code(), absl::StatusCode::kInternal) << reply;
  }
}

TEST(RunInGuestTest, StartsTheCommandAndPollsItsPidUntilItExits) {
  Json done = {{"return", {{"exited", true}, {"exitcode", 0}, {"out-data", B64("hello\n")}}}};
  ScriptedAgent agent({kStarted, kRunning, kRunning, done.dump()});
  absl::StatusOr<ExecResult> result =
      RunInGuest(agent.Command(), "vmlet-web", {"echo", "hello"}, absl::Seconds(10));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->stdout_data, "hello\n");
  EXPECT_EQ(result->exit_code, 0);
  ASSERT_EQ(agent.commands().size(), 4u);
  EXPECT_EQ(agent.commands()[0]["execute"], "guest-exec");
  for (size_t i = 1; i < 4; ++i) {
    EXPECT_EQ(agent.commands()[i]["execute"], "guest-exec-status");
    EXPECT_EQ(agent.commands()[i]["arguments"]["pid"], 42);
  }
  // Each agent command may take a few seconds, never more than the exec.
  for (absl::Duration timeout : agent.timeouts()) {
    EXPECT_GT(timeout, absl::Seconds(1));
    EXPECT_LE(timeout, absl::Seconds(5));
  }
}

TEST(RunInGuestTest, WithoutATimeoutAgentCommandsStillHaveOne) {
  ScriptedAgent agent({kStarted, R"({"return": {"exited": true, "exitcode": 1}})"});
  absl::StatusOr<ExecResult> result =
      RunInGuest(agent.Command(), "vmlet-web", {"false"}, absl::ZeroDuration());
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->exit_code, 1);
  for (absl::Duration timeout : agent.timeouts()) EXPECT_EQ(timeout, absl::Seconds(5));
}

TEST(RunInGuestTest, ACommandThatOutlivesItsTimeoutIsDeadlineExceeded) {
  ScriptedAgent agent({kStarted, kRunning});
  const absl::Time start = absl::Now();
  absl::StatusOr<ExecResult> result =
      RunInGuest(agent.Command(), "vmlet-web", {"sleep", "30"}, absl::Milliseconds(300));
  const absl::Duration took = absl::Now() - start;
  EXPECT_EQ(result.status().code(), absl::StatusCode::kDeadlineExceeded) << result.status();
  EXPECT_THAT(std::string(result.status().message()), HasSubstr("\"sleep 30\""));
  EXPECT_THAT(std::string(result.status().message()), HasSubstr("300ms"));
  EXPECT_THAT(std::string(result.status().message()), HasSubstr("vmlet-web"));
  EXPECT_GE(took, absl::Milliseconds(300));
  EXPECT_LT(took, absl::Seconds(2));
  // Polled with back-off: far fewer than one command per 10 ms.
  EXPECT_LT(agent.commands().size(), 15u);
}

TEST(RunInGuestTest, ACommandTheAgentCannotStartIsFailedPrecondition) {
  ScriptedAgent agent({absl::InternalError(
      "libvirt: internal error: unable to execute QEMU agent command 'guest-exec': Failed to "
      "execute child process \"/nope\" (No such file or directory)")});
  absl::StatusOr<ExecResult> result =
      RunInGuest(agent.Command(), "vmlet-web", {"/nope"}, absl::Seconds(5));
  EXPECT_EQ(result.status().code(), absl::StatusCode::kFailedPrecondition) << result.status();
  EXPECT_THAT(std::string(result.status().message()),
              HasSubstr("running \"/nope\" in VM \"vmlet-web\": the guest agent could not start"));
  EXPECT_THAT(std::string(result.status().message()), HasSubstr("No such file or directory"));
}

TEST(RunInGuestTest, AnAgentThatIsNotConnectedIsReportedAsIs) {
  const absl::Status not_connected = absl::FailedPreconditionError(
      "guest agent not connected in VM \"vmlet-web\": the guest must run qemu-guest-agent");
  ScriptedAgent agent({not_connected});
  absl::StatusOr<ExecResult> result =
      RunInGuest(agent.Command(), "vmlet-web", {"true"}, absl::Seconds(5));
  EXPECT_EQ(result.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(result.status().message(), not_connected.message());
  EXPECT_EQ(agent.commands().size(), 1u);
}

TEST(RunInGuestTest, AnAgentThatGoesAwayWhilePollingEndsTheExec) {
  ScriptedAgent agent({kStarted, kRunning, absl::FailedPreconditionError("agent gone")});
  absl::StatusOr<ExecResult> result =
      RunInGuest(agent.Command(), "vmlet-web", {"sleep", "1"}, absl::ZeroDuration());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(result.status().message()), HasSubstr("agent gone"));
}

TEST(RunInGuestTest, AReplyWithoutAPidIsInternal) {
  ScriptedAgent agent({R"({"return": {}})"});
  absl::StatusOr<ExecResult> result =
      RunInGuest(agent.Command(), "vmlet-web", {"true"}, absl::Seconds(5));
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInternal);
}

TEST(RunInGuestTest, AnEmptyCommandIsInvalidArgument) {
  ScriptedAgent agent({kStarted});
  absl::StatusOr<ExecResult> result =
      RunInGuest(agent.Command(), "vmlet-web", {}, absl::Seconds(5));
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(agent.commands().empty());
}

}  // namespace
}  // namespace vmlet::vmdriver::libvirt
