// Image layouts and operator-provided local images.
#include <unistd.h>

#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "base/file_util.h"
#include "image/image_layout.h"
#include "image/local_images.h"
#include "tests/cri/cri_test_util.h"

namespace vmlet::image {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

class ImageLayoutTest : public ::testing::Test {
 protected:
  void Write(const std::string& relative, const std::string& contents) {
    std::string path = dir_.path() + "/" + relative;
    ASSERT_TRUE(MakeDirs(path.substr(0, path.rfind('/'))).ok());
    ASSERT_TRUE(WriteFileAtomically(path, contents, 0644).ok());
  }
  vmlet::testing::TempDir dir_;
};

TEST_F(ImageLayoutTest, AKernelLayoutBootsTheKernelWithInitrdAndCmdline) {
  Write("boot/vmlinuz", "kernel");
  Write("boot/initrd", "initrd");
  Write("boot/cmdline", "console=ttyS0 quiet\n");
  absl::StatusOr<vmdriver::BootSource> boot = ReadImageLayout(dir_.path());
  ASSERT_TRUE(boot.ok()) << boot.status();
  EXPECT_TRUE(boot->IsKernelBoot());
  EXPECT_EQ(boot->kernel_path, dir_.path() + "/boot/vmlinuz");
  EXPECT_EQ(boot->initrd_path, dir_.path() + "/boot/initrd");
  EXPECT_EQ(boot->cmdline, "console=ttyS0 quiet");  // Trailing newline dropped.
}

TEST_F(ImageLayoutTest, AKernelAloneIsEnough) {
  Write("boot/vmlinuz", "kernel");
  absl::StatusOr<vmdriver::BootSource> boot = ReadImageLayout(dir_.path());
  ASSERT_TRUE(boot.ok());
  EXPECT_EQ(boot->initrd_path, "");
  EXPECT_EQ(boot->cmdline, "");
}

TEST_F(ImageLayoutTest, ADiskLayoutDetectsQcow2AndRaw) {
  Write("disk/root.qcow2", std::string("QFI\xfb", 4) + std::string(100, '\0'));
  absl::StatusOr<vmdriver::BootSource> boot = ReadImageLayout(dir_.path());
  ASSERT_TRUE(boot.ok()) << boot.status();
  EXPECT_FALSE(boot->IsKernelBoot());
  EXPECT_EQ(boot->disk_path, dir_.path() + "/disk/root.qcow2");
  EXPECT_EQ(boot->disk_format, "qcow2");

  Write("disk/root.qcow2", std::string(512, '\0'));
  boot = ReadImageLayout(dir_.path());
  ASSERT_TRUE(boot.ok());
  EXPECT_EQ(boot->disk_format, "raw");
}

TEST_F(ImageLayoutTest, TwoDisksAreInvalid) {
  Write("disk/a.raw", "a");
  Write("disk/b.raw", "b");
  absl::StatusOr<vmdriver::BootSource> boot = ReadImageLayout(dir_.path());
  EXPECT_EQ(boot.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(boot.status().message()), HasSubstr("exactly one disk image"));
}

TEST_F(ImageLayoutTest, AContainerImageLayoutIsFailedPreconditionNamingTheLayouts) {
  Write("etc/os-release", "ID=debian");
  absl::StatusOr<vmdriver::BootSource> boot = ReadImageLayout(dir_.path());
  EXPECT_EQ(boot.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(boot.status().message()), HasSubstr("disk/<file>"));
  EXPECT_THAT(std::string(boot.status().message()), HasSubstr("boot/vmlinuz"));
}

TEST_F(ImageLayoutTest, AnOverlongCmdlineIsInvalid) {
  Write("boot/vmlinuz", "kernel");
  Write("boot/cmdline", std::string(5000, 'x'));
  EXPECT_EQ(ReadImageLayout(dir_.path()).status().code(), absl::StatusCode::kInvalidArgument);
}

// A symlink would point QEMU at whatever it names, a host file even.
TEST_F(ImageLayoutTest, ASymlinkInALayoutIsRefusedNamingIt) {
  struct Case {
    const char* link;    // Relative to the layout.
    const char* target;  // Absolute, or relative to the link.
    bool with_kernel;    // A regular boot/vmlinuz beside it.
  };
  for (const Case& c :
       {Case{"boot/vmlinuz", "/etc/shadow", false}, Case{"boot/initrd", "vmlinuz", true},
        Case{"boot/cmdline", "/etc/hostname", true}, Case{"disk/root.img", "/dev/sda", false},
        Case{"boot", "/boot", false}, Case{"disk", "/var/lib", true}}) {
    SCOPED_TRACE(c.link);
    ASSERT_TRUE(RemoveTree(dir_.path()).ok());
    const std::string link = dir_.path() + "/" + c.link;
    ASSERT_TRUE(MakeDirs(link.substr(0, link.rfind('/'))).ok());
    if (c.with_kernel) Write("boot/vmlinuz", "kernel");
    ASSERT_EQ(::symlink(c.target, link.c_str()), 0);
    absl::StatusOr<vmdriver::BootSource> boot = ReadImageLayout(dir_.path());
    EXPECT_EQ(boot.status().code(), absl::StatusCode::kFailedPrecondition) << boot.status();
    EXPECT_THAT(std::string(boot.status().message()),
                HasSubstr(std::string(c.link) + " is a symlink"));
  }
}

TEST_F(ImageLayoutTest, ADirectoryAsTheDiskImageIsRefused) {
  ASSERT_TRUE(MakeDirs(dir_.path() + "/disk/root.img").ok());
  EXPECT_EQ(ReadImageLayout(dir_.path()).status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(ImageLayoutTest, LocalImagesAreFoundByNameIdAndImplicitLatestTag) {
  Write("boot/vmlinuz", "kernel");
  absl::StatusOr<LocalImages> images =
      LocalImages::Load({{"vmlet.local/demo:latest", dir_.path()}});
  ASSERT_TRUE(images.ok()) << images.status();
  ASSERT_EQ(images->images().size(), 1u);
  const LocalImage& image = images->images()[0];
  EXPECT_THAT(image.id, StartsWith("sha256:"));
  EXPECT_EQ(image.id.size(), 7u + 64u);
  EXPECT_EQ(image.size, 6u);
  EXPECT_EQ(images->Find("vmlet.local/demo:latest"), &image);
  EXPECT_EQ(images->Find("vmlet.local/demo"), &image);
  EXPECT_EQ(images->Find(image.id), &image);
  EXPECT_EQ(images->Find(image.id.substr(7)), &image);
  EXPECT_EQ(images->Find("vmlet.local/other:1"), nullptr);
}

TEST_F(ImageLayoutTest, ALocalImageIdChangesWhenAFileChanges) {
  Write("boot/vmlinuz", "kernel");
  absl::StatusOr<LocalImages> before = LocalImages::Load({{"demo:1", dir_.path()}});
  Write("boot/vmlinuz", "a newer kernel");
  absl::StatusOr<LocalImages> after = LocalImages::Load({{"demo:1", dir_.path()}});
  ASSERT_TRUE(before.ok() && after.ok());
  EXPECT_NE(before->images()[0].id, after->images()[0].id);
}

TEST_F(ImageLayoutTest, ABrokenLocalImageNamesTheImage) {
  absl::StatusOr<LocalImages> images = LocalImages::Load({{"demo:1", dir_.path() + "/none"}});
  EXPECT_FALSE(images.ok());
  EXPECT_THAT(std::string(images.status().message()), HasSubstr("local image \"demo:1\""));
}

}  // namespace
}  // namespace vmlet::image
