// qcow2 overlays written natively, checked with QEMU's own tools: qemu-img
// check and info, and qemu-io writing and reading through the overlay. The
// whole executable is skipped (exit 77) without qemu-img and qemu-io.
#include "image/qcow2_overlay.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "base/file_util.h"
#include "base/process.h"
#include "base/str_util.h"
#include "tests/cri/cri_test_util.h"

namespace vmlet::image {
namespace {

using ::testing::HasSubstr;

constexpr uint64_t kMiB = uint64_t{1} << 20;
constexpr uint64_t kGiB = uint64_t{1} << 30;
constexpr uint64_t kTiB = uint64_t{1} << 40;

std::string Message(const absl::Status& status) { return std::string(status.message()); }

// Runs a command; the test fails (and the result says so) when it cannot.
ProcessResult RunTool(const std::vector<std::string>& argv) {
  absl::StatusOr<ProcessResult> result = RunProcess(argv);
  EXPECT_TRUE(result.ok()) << result.status();
  return result.ok() ? *result : ProcessResult{.exit_code = -1, .output = ""};
}

class Qcow2OverlayTest : public ::testing::Test {
 protected:
  std::string Path(const std::string& name) { return dir_.path() + "/" + name; }

  // A sparse raw file of `size` bytes.
  std::string RawBase(uint64_t size, const std::string& name = "base.raw") {
    std::string path = Path(name);
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    EXPECT_GE(fd, 0);
    EXPECT_EQ(::ftruncate(fd, static_cast<off_t>(size)), 0);
    ::close(fd);
    return path;
  }

  std::string Qcow2Base(uint64_t size, const std::string& name = "base.qcow2") {
    std::string path = Path(name);
    ProcessResult made = RunTool({"qemu-img", "create", "-q", "-f", "qcow2", path, StrCat(size)});
    EXPECT_EQ(made.exit_code, 0) << made.output;
    return path;
  }

  nlohmann::json Info(const std::string& path) {
    ProcessResult info = RunTool({"qemu-img", "info", "--output=json", path});
    EXPECT_EQ(info.exit_code, 0) << info.output;
    return nlohmann::json::parse(info.output, nullptr, /*allow_exceptions=*/false);
  }

  void ExpectClean(const std::string& path) {
    ProcessResult check = RunTool({"qemu-img", "check", path});
    EXPECT_EQ(check.exit_code, 0) << check.output;
    EXPECT_THAT(check.output, HasSubstr("No errors were found"));
  }

  vmlet::testing::TempDir dir_;
};

struct SizeCase {
  const char* name;
  uint64_t size;
  const char* format;
};

class Qcow2OverlaySizeTest : public Qcow2OverlayTest,
                             public ::testing::WithParamInterface<SizeCase> {};

TEST_P(Qcow2OverlaySizeTest, AnOverlayOfTheBaseSizeIsCleanAndNamesItsBacking) {
  const SizeCase& param = GetParam();
  const std::string base =
      std::string(param.format) == "raw" ? RawBase(param.size) : Qcow2Base(param.size);
  const std::string overlay = Path("overlay.qcow2");
  absl::Status created = CreateQcow2Overlay(overlay, base, param.format);
  ASSERT_TRUE(created.ok()) << created;

  ExpectClean(overlay);
  nlohmann::json info = Info(overlay);
  EXPECT_EQ(info.value("format", ""), "qcow2");
  EXPECT_EQ(info.value("virtual-size", uint64_t{0}), param.size);
  EXPECT_EQ(info.value("backing-filename", ""), base);
  EXPECT_EQ(info.value("backing-filename-format", ""), param.format);

  struct stat st;
  ASSERT_EQ(::stat(overlay.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_LE(st.st_size, 1 * static_cast<off_t>(kMiB)) << "the overlay grows with the base";
  EXPECT_FALSE(ListDirectory(dir_.path())->size() > 2) << "a temporary file is left";
}

INSTANTIATE_TEST_SUITE_P(
    Bases, Qcow2OverlaySizeTest,
    ::testing::Values(SizeCase{"Raw64MiB", 64 * kMiB, "raw"}, SizeCase{"Raw1GiB", kGiB, "raw"},
                      SizeCase{"Raw10GiB", 10 * kGiB, "raw"}, SizeCase{"Raw1TiB", kTiB, "raw"},
                      SizeCase{"Qcow2_64MiB", 64 * kMiB, "qcow2"},
                      SizeCase{"Qcow2_1GiB", kGiB, "qcow2"},
                      SizeCase{"Qcow2_10GiB", 10 * kGiB, "qcow2"},
                      SizeCase{"Qcow2_1TiB", kTiB, "qcow2"}),
    [](const ::testing::TestParamInfo<SizeCase>& info) { return std::string(info.param.name); });

TEST_F(Qcow2OverlayTest, AnOverlayGrowsTheDiskBeyondTheBase) {
  const std::string base = Qcow2Base(64 * kMiB);
  const std::string overlay = Path("overlay.qcow2");
  ASSERT_TRUE(CreateQcow2Overlay(overlay, base, "qcow2", 10 * kGiB).ok());
  ExpectClean(overlay);
  EXPECT_EQ(Info(overlay).value("virtual-size", uint64_t{0}), 10 * kGiB);
  // Beyond the base's end the disk reads as zeros and takes writes.
  ProcessResult io = RunTool({"qemu-io", "-c", "write -P 0x5a 9G 1M", "-c", "read -P 0x5a 9G 1M",
                              "-c", "read -P 0 8G 1M", overlay});
  EXPECT_EQ(io.exit_code, 0) << io.output;
  EXPECT_THAT(io.output, ::testing::Not(HasSubstr("failed")));
  ExpectClean(overlay);
}

TEST_F(Qcow2OverlayTest, ASizeIsRoundedUpToWholeSectors) {
  const std::string base = RawBase(1000);
  EXPECT_EQ(*DiskVirtualSize(base, "raw"), 1024u);
  const std::string overlay = Path("overlay.qcow2");
  ASSERT_TRUE(CreateQcow2Overlay(overlay, base, "raw", 1500).ok());
  EXPECT_EQ(Info(overlay).value("virtual-size", uint64_t{0}), 1536u);
  ExpectClean(overlay);
}

TEST_F(Qcow2OverlayTest, ASizeSmallerThanTheBaseIsInvalidAndNamesBothSizes) {
  const std::string base = RawBase(kGiB);
  const std::string overlay = Path("overlay.qcow2");
  absl::Status created = CreateQcow2Overlay(overlay, base, "raw", 512 * kMiB);
  EXPECT_EQ(created.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(created), HasSubstr(StrCat(512 * kMiB)));
  EXPECT_THAT(Message(created), HasSubstr(StrCat(kGiB)));
  EXPECT_EQ(::access(overlay.c_str(), F_OK), -1);
}

TEST_F(Qcow2OverlayTest, WritesGoToTheOverlayAndTheBaseIsNeverWritten) {
  const std::string base = RawBase(64 * kMiB);
  ProcessResult filled = RunTool({"qemu-io", "-f", "raw", "-c", "write -P 0xcd 0 4M", base});
  ASSERT_EQ(filled.exit_code, 0) << filled.output;
  const std::string before = *ReadFile(base);

  const std::string overlay = Path("overlay.qcow2");
  ASSERT_TRUE(CreateQcow2Overlay(overlay, base, "raw").ok());
  ProcessResult written = RunTool({"qemu-io", "-c", "write -P 0xab 0 1M", overlay});
  ASSERT_EQ(written.exit_code, 0) << written.output;
  ProcessResult read = RunTool({"qemu-io", "-c", "read -P 0xab 0 1M", "-c", "read -P 0xcd 1M 3M",
                                "-c", "read -P 0 4M 1M", overlay});
  EXPECT_EQ(read.exit_code, 0) << read.output;
  EXPECT_THAT(read.output, ::testing::Not(HasSubstr("failed")));
  ExpectClean(overlay);
  EXPECT_TRUE(*ReadFile(base) == before) << "the base was written";
}

TEST_F(Qcow2OverlayTest, AnExistingFileIsNeverReplaced) {
  const std::string base = RawBase(64 * kMiB);
  const std::string overlay = Path("overlay.qcow2");
  ASSERT_TRUE(WriteFileAtomically(overlay, "keep me").ok());
  absl::Status created = CreateQcow2Overlay(overlay, base, "raw");
  EXPECT_EQ(created.code(), absl::StatusCode::kAlreadyExists) << created;
  EXPECT_EQ(*ReadFile(overlay), "keep me");
  EXPECT_EQ(ListDirectory(dir_.path())->size(), 2u) << "a temporary file is left";
}

TEST_F(Qcow2OverlayTest, BadBackingFilesAreRefused) {
  const std::string overlay = Path("overlay.qcow2");
  EXPECT_EQ(CreateQcow2Overlay(overlay, Path("missing.raw"), "raw").code(),
            absl::StatusCode::kNotFound);
  const std::string raw = RawBase(64 * kMiB);
  EXPECT_EQ(CreateQcow2Overlay(overlay, "base.raw", "raw").code(),
            absl::StatusCode::kInvalidArgument);
  absl::Status not_qcow2 = CreateQcow2Overlay(overlay, raw, "qcow2");
  EXPECT_EQ(not_qcow2.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(not_qcow2), HasSubstr("is not a qcow2 image"));
  EXPECT_EQ(CreateQcow2Overlay(overlay, raw, "vmdk").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CreateQcow2Overlay(overlay, raw, "raw", uint64_t{4} << 50).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(::access(overlay.c_str(), F_OK), -1);
}

TEST_F(Qcow2OverlayTest, AnOverlayCanBackAnotherOverlay) {
  const std::string base = RawBase(64 * kMiB);
  const std::string middle = Path("middle.qcow2");
  const std::string top = Path("top.qcow2");
  ASSERT_TRUE(CreateQcow2Overlay(middle, base, "raw").ok());
  ASSERT_TRUE(CreateQcow2Overlay(top, middle, "qcow2", kGiB).ok());
  EXPECT_EQ(*DiskVirtualSize(middle, "qcow2"), 64 * kMiB);
  ExpectClean(top);
  ProcessResult io =
      RunTool({"qemu-io", "-c", "write -P 0x11 0 64k", "-c", "read -P 0x11 0 64k", top});
  EXPECT_EQ(io.exit_code, 0) << io.output;
}

}  // namespace
}  // namespace vmlet::image

int main(int argc, char** argv) {
  if (::access("/usr/bin/qemu-img", X_OK) != 0 || ::access("/usr/bin/qemu-io", X_OK) != 0) {
    std::fprintf(stderr, "qemu-img or qemu-io is missing (package qemu-utils): skipping\n");
    return 77;
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
