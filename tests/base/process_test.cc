// Running helper programs.
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

TEST(ProcessTest, AnEmptyCommandIsInvalid) {
  EXPECT_EQ(RunProcess({}).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace vmlet
