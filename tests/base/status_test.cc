// Tests of the small helpers in base/: status.h, id.h, logging.h's level
// parsing and str_util.h.
#include "base/status.h"

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/cord.h"
#include "absl/strings/string_view.h"
#include "base/id.h"
#include "base/logging.h"
#include "base/str_util.h"

namespace vmlet {
namespace {

using ::testing::HasSubstr;

std::string Message(const absl::Status& status) { return std::string(status.message()); }

TEST(AnnotateTest, KeepsTheCodeAndPrefixesTheContext) {
  const std::vector<absl::Status> cases = {
      absl::NotFoundError("no such VM"),
      absl::InternalError("libvirt: domain is already running"),
      absl::UnavailableError(""),
      absl::ResourceExhaustedError("disk full"),
  };
  for (const absl::Status& original : cases) {
    SCOPED_TRACE(original.ToString());
    absl::Status annotated = Annotate(original, "starting VM \"3f2a\"");
    EXPECT_EQ(annotated.code(), original.code());
    EXPECT_EQ(Message(annotated), "starting VM \"3f2a\": " + Message(original));
  }
}

TEST(AnnotateTest, ContextAddedAtEachLayerReadsOutermostFirst) {
  absl::Status status = Annotate(Annotate(absl::NotFoundError("gone"), "inner"), "outer");
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Message(status), "outer: inner: gone");
}

TEST(AnnotateTest, KeepsPayloads) {
  absl::Status original = absl::AbortedError("conflict");
  original.SetPayload("type.example/retry", absl::Cord("yes"));
  absl::Status annotated = Annotate(original, "context");
  auto payload = annotated.GetPayload("type.example/retry");
  ASSERT_TRUE(payload.has_value());
  EXPECT_EQ(std::string(*payload), "yes");
}

TEST(AnnotateTest, LeavesOkUnchanged) {
  absl::Status annotated = Annotate(absl::OkStatus(), "context");
  EXPECT_TRUE(annotated.ok());
  EXPECT_EQ(Message(annotated), "");
}

TEST(ErrnoToStatusTest, MapsErrnoValuesToCodes) {
  struct Case {
    int errno_value;
    absl::StatusCode code;
  };
  const std::vector<Case> cases = {
      {ENOSPC, absl::StatusCode::kResourceExhausted},
      {EDQUOT, absl::StatusCode::kResourceExhausted},
      {ENOENT, absl::StatusCode::kNotFound},
      {EACCES, absl::StatusCode::kPermissionDenied},
      {EPERM, absl::StatusCode::kPermissionDenied},
      {EEXIST, absl::StatusCode::kAlreadyExists},
      {EIO, absl::StatusCode::kInternal},
      {EINVAL, absl::StatusCode::kInternal},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(std::strerror(c.errno_value));
    absl::Status status = ErrnoToStatus(c.errno_value, "writing \"/x\"");
    EXPECT_EQ(status.code(), c.code);
    EXPECT_EQ(Message(status), std::string("writing \"/x\": ") + std::strerror(c.errno_value));
  }
}

// Helpers for the macro tests: `steps` records how far a function got.
absl::Status Succeed() { return absl::OkStatus(); }
absl::Status Fail() { return absl::InternalError("failed"); }
absl::StatusOr<int> Number(bool ok) {
  if (!ok) return absl::NotFoundError("no number");
  return 42;
}
absl::StatusOr<std::unique_ptr<std::string>> Owned(bool ok) {
  if (!ok) return absl::NotFoundError("nothing owned");
  return std::make_unique<std::string>("owned");
}

absl::Status ReturnIfError(bool first_ok, int& steps) {
  VMLET_RETURN_IF_ERROR(first_ok ? Succeed() : Fail());
  ++steps;
  VMLET_RETURN_IF_ERROR(Succeed());
  ++steps;
  return absl::OkStatus();
}

TEST(StatusMacrosTest, ReturnIfErrorContinuesOnOk) {
  int steps = 0;
  EXPECT_TRUE(ReturnIfError(true, steps).ok());
  EXPECT_EQ(steps, 2);
}

TEST(StatusMacrosTest, ReturnIfErrorReturnsTheErrorAtOnce) {
  int steps = 0;
  absl::Status status = ReturnIfError(false, steps);
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  EXPECT_EQ(Message(status), "failed");
  EXPECT_EQ(steps, 0);
}

absl::StatusOr<int> AssignOrReturn(bool first_ok, bool second_ok, int& steps) {
  VMLET_ASSIGN_OR_RETURN(int declared, Number(first_ok));
  ++steps;
  int assigned = 0;
  VMLET_ASSIGN_OR_RETURN(assigned, Number(second_ok));
  ++steps;
  VMLET_ASSIGN_OR_RETURN(std::unique_ptr<std::string> owned, Owned(true));
  ++steps;
  return declared + assigned + static_cast<int>(owned->size());
}

TEST(StatusMacrosTest, AssignOrReturnDeclaresOrAssignsTheValue) {
  int steps = 0;
  absl::StatusOr<int> result = AssignOrReturn(true, true, steps);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(*result, 42 + 42 + 5);
  EXPECT_EQ(steps, 3);
}

TEST(StatusMacrosTest, AssignOrReturnReturnsTheErrorAtOnce) {
  struct Case {
    bool first_ok;
    bool second_ok;
    int steps;
  };
  for (const Case& c : std::vector<Case>{{false, true, 0}, {true, false, 1}}) {
    SCOPED_TRACE(c.steps);
    int steps = 0;
    absl::StatusOr<int> result = AssignOrReturn(c.first_ok, c.second_ok, steps);
    EXPECT_EQ(result.status().code(), absl::StatusCode::kNotFound);
    EXPECT_EQ(Message(result.status()), "no number");
    EXPECT_EQ(steps, c.steps);
  }
}

TEST(GenerateIdTest, Returns64LowercaseHexCharacters) {
  std::string id = GenerateId();
  EXPECT_EQ(id.size(), 64u);
  EXPECT_TRUE(IsHexId(id)) << id;
}

TEST(GenerateIdTest, ReturnsDistinctIds) {
  std::set<std::string> ids;
  for (int i = 0; i < 1000; ++i) ids.insert(GenerateId());
  EXPECT_EQ(ids.size(), 1000u);
}

TEST(IsHexIdTest, AcceptsOnlyNonEmptyLowercaseHex) {
  struct Case {
    std::string text;
    bool expected;
  };
  const std::vector<Case> cases = {
      {"0", true},
      {"0123456789abcdef", true},
      {std::string(64, 'f'), true},
      {"", false},
      {"ABCDEF", false},
      {"abcdeF", false},
      {"g", false},
      {"12 34", false},
      {"-1", false},
      {"0x1f", false},
      {"abc.json", false},
      {"abc.tmp-123", false},
      {std::string("ab\0cd", 5), false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE("\"" + c.text + "\"");
    EXPECT_EQ(IsHexId(c.text), c.expected);
  }
}

TEST(NowNanosTest, ReturnsNanosecondsSinceTheEpoch) {
  constexpr int64_t kYear2020 = int64_t{1'577'836'800} * 1'000'000'000;
  int64_t first = NowNanos();
  int64_t second = NowNanos();
  EXPECT_GT(first, kYear2020);
  EXPECT_GE(second, first);
}

TEST(ParseLogLevelTest, ParsesEveryLevelIgnoringCase) {
  struct Case {
    std::string text;
    LogLevel level;
  };
  const std::vector<Case> cases = {
      {"debug", LogLevel::kDebug},  {"info", LogLevel::kInfo},    {"warning", LogLevel::kWarning},
      {"warn", LogLevel::kWarning}, {"error", LogLevel::kError},  {"DEBUG", LogLevel::kDebug},
      {"Info", LogLevel::kInfo},    {"WARN", LogLevel::kWarning},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.text);
    absl::StatusOr<LogLevel> level = ParseLogLevel(c.text);
    ASSERT_TRUE(level.ok()) << level.status();
    EXPECT_EQ(*level, c.level);
  }
}

TEST(ParseLogLevelTest, RefusesAnUnknownLevelNamingIt) {
  for (const std::string text : {"verbose", "", " info", "info ", "trace", "3"}) {
    SCOPED_TRACE("\"" + text + "\"");
    absl::StatusOr<LogLevel> level = ParseLogLevel(text);
    EXPECT_EQ(level.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(Message(level.status()), HasSubstr("\"" + text + "\""));
  }
}

TEST(ParseLogLevelTest, ParsesTheNameOfEveryLevel) {
  for (LogLevel level : {LogLevel::kDebug, LogLevel::kInfo, LogLevel::kWarning, LogLevel::kError}) {
    SCOPED_TRACE(LogLevelName(level));
    absl::StatusOr<LogLevel> parsed = ParseLogLevel(LogLevelName(level));
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(*parsed, level);
  }
}

TEST(StrCatTest, ConcatenatesStringsOfEveryKind) {
  std::string_view std_view = "std";
  absl::string_view absl_view = "absl";
  std::string string = "string";
  const char* c_string = "chars";
  EXPECT_EQ(StrCat(std_view, "-", absl_view, "-", string, "-", c_string), "std-absl-string-chars");
}

TEST(StrCatTest, KeepsEmbeddedNulsOfViews) {
  std::string_view std_view("a\0b", 3);
  absl::string_view absl_view("c\0d", 3);
  EXPECT_EQ(StrCat(std_view, absl_view), std::string("a\0bc\0d", 6));
}

TEST(StrCatTest, FormatsIntegersAndAppendsChars) {
  EXPECT_EQ(StrCat("vcpus=", 4, ' ', 'x', '\n'), "vcpus=4 x\n");
  EXPECT_EQ(StrCat(-1, ",", 0, ",", uint32_t{4'000'000'000u}), "-1,0,4000000000");
  EXPECT_EQ(StrCat(std::numeric_limits<int64_t>::min(), " ", std::numeric_limits<uint64_t>::max()),
            "-9223372036854775808 18446744073709551615");
  EXPECT_EQ(StrCat(size_t{64}, int16_t{-7}), "64-7");
}

TEST(StrCatTest, OfNothingIsEmpty) {
  EXPECT_EQ(StrCat(), "");
  EXPECT_EQ(StrCat("", std::string_view(), absl::string_view()), "");
}

TEST(StrAppendTest, AppendsToTheString) {
  std::string out = "a";
  StrAppend(&out, std::string_view("b"), absl::string_view("c"), 1, '!');
  EXPECT_EQ(out, "abc1!");
}

TEST(ToStdTest, ViewsTheSameCharacters) {
  absl::string_view view("status message");
  std::string_view converted = ToStd(view);
  EXPECT_EQ(converted.data(), view.data());
  EXPECT_EQ(converted.size(), view.size());
}

}  // namespace
}  // namespace vmlet
