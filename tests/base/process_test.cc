// Running helper programs.
#include <signal.h>
#include <stdlib.h>

#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "base/process.h"

namespace vmlet {
namespace {

using ::testing::HasSubstr;

TEST(ProcessTest, CollectsStdoutAndStderrAndTheExitCode) {
  absl::StatusOr<ProcessResult> result = RunProcess({"sh", "-c", "echo out; echo err >&2; exit 3"});
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->exit_code, 3);
  EXPECT_THAT(result->output, HasSubstr("out"));
  EXPECT_THAT(result->output, HasSubstr("err"));
}

TEST(ProcessTest, ASignalledProcessReports128PlusTheSignal) {
  absl::StatusOr<ProcessResult> result = RunProcess({"sh", "-c", "kill -9 $$"});
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result->exit_code, 128 + 9);
}

TEST(ProcessTest, AMissingProgramIsAnError) {
  EXPECT_FALSE(RunProcess({"/nonexistent/program"}).ok());
}

TEST(ProcessTest, AProcessPastItsTimeoutIsKilled) {
  absl::StatusOr<ProcessResult> result = RunProcess({"sleep", "30"}, absl::Milliseconds(200));
  EXPECT_EQ(result.status().code(), absl::StatusCode::kDeadlineExceeded);
}

TEST(ProcessTest, RunProcessOkTurnsAFailureIntoAStatusWithTheOutput) {
  absl::Status status = RunProcessOk({"sh", "-c", "echo 'no such image' >&2; exit 1"});
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(std::string(status.message()), HasSubstr("sh exited with code 1: no such image"));
  EXPECT_TRUE(RunProcessOk({"true"}).ok());
}

TEST(ProcessTest, FeedsStdinWhileDrainingALargeOutput) {
  // 4 MiB through cat: far more than a pipe holds in either direction.
  ProcessOptions options;
  options.stdin_data = std::string(4 << 20, 'x');
  absl::StatusOr<ProcessResult> result = RunProcess({"cat"}, options);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->exit_code, 0);
  EXPECT_EQ(result->output, std::string(1 << 20, 'x'));  // Capped at 1 MiB.

  absl::StatusOr<ProcessResult> counted = RunProcess({"wc", "-c"}, options);
  ASSERT_TRUE(counted.ok()) << counted.status();
  EXPECT_EQ(counted->output, "4194304\n");
}

TEST(ProcessTest, AChildThatIgnoresItsStdinIsNotAnError) {
  // The test binary does not ignore SIGPIPE: a stray one would kill it.
  ProcessOptions options;
  options.stdin_data = std::string(4 << 20, 'x');
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<ProcessResult> result = RunProcess({"sh", "-c", "exec <&-; echo done"}, options);
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(result->exit_code, 0);
    EXPECT_EQ(result->output, "done\n");
  }
  sigset_t pending;
  sigemptyset(&pending);
  ASSERT_EQ(sigpending(&pending), 0);
  EXPECT_EQ(sigismember(&pending, SIGPIPE), 0);
}

TEST(ProcessTest, SeparatesStderrWhenAsked) {
  ProcessOptions options;
  options.separate_stderr = true;
  absl::StatusOr<ProcessResult> result =
      RunProcess({"sh", "-c", "echo out; echo err >&2; exit 4"}, options);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->exit_code, 4);
  EXPECT_EQ(result->output, "out\n");
  EXPECT_EQ(result->error_output, "err\n");
}

TEST(ProcessTest, AGivenEnvironmentReplacesOurs) {
  ASSERT_EQ(setenv("VMLET_PROCESS_TEST_OURS", "1", 1), 0);
  ProcessOptions options;
  options.env = {"VMLET_A=alpha", "VMLET_B=beta gamma"};
  absl::StatusOr<ProcessResult> result = RunProcess(
      {"sh", "-c", "echo \"$VMLET_A|$VMLET_B|${VMLET_PROCESS_TEST_OURS-unset}\""}, options);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->output, "alpha|beta gamma|unset\n");

  absl::StatusOr<ProcessResult> inherited =
      RunProcess({"sh", "-c", "echo ${VMLET_PROCESS_TEST_OURS-unset}"});
  ASSERT_TRUE(inherited.ok()) << inherited.status();
  EXPECT_EQ(inherited->output, "1\n");
  unsetenv("VMLET_PROCESS_TEST_OURS");
}

TEST(ProcessTest, TheTimeoutOptionKillsAProcessThatClosedItsOutput) {
  ProcessOptions options;
  options.timeout = absl::Milliseconds(300);
  options.stdin_data = "ignored";
  absl::StatusOr<ProcessResult> result =
      RunProcess({"sh", "-c", "exec >&- 2>&- <&-; sleep 30"}, options);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kDeadlineExceeded);
}

TEST(ProcessTest, WithoutStdinDataTheChildReadsEndOfFile) {
  absl::StatusOr<ProcessResult> result = RunProcess({"wc", "-c"}, ProcessOptions());
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->output, "0\n");
}

TEST(ProcessTest, AnEmptyCommandIsInvalid) {
  EXPECT_EQ(RunProcess({}).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace vmlet
