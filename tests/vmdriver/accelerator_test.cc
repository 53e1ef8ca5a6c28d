// Choosing KVM or TCG.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "vmdriver/accelerator.h"

namespace vmlet::vmdriver {
namespace {

using ::testing::HasSubstr;

constexpr char kNoDevice[] = "/nonexistent/kvm";

TEST(AcceleratorTest, TcgIsSoftwareEmulation) {
  absl::StatusOr<AcceleratorChoice> choice = ChooseAccelerator("tcg", kNoDevice);
  ASSERT_TRUE(choice.ok());
  EXPECT_EQ(choice->domain_type, "qemu");
}

TEST(AcceleratorTest, AutoFallsBackToTcgWithTheReasonWhenKvmIsUnusable) {
  absl::StatusOr<AcceleratorChoice> choice = ChooseAccelerator("auto", kNoDevice);
  ASSERT_TRUE(choice.ok());
  EXPECT_EQ(choice->domain_type, "qemu");
  EXPECT_THAT(choice->reason, HasSubstr(kNoDevice));
}

TEST(AcceleratorTest, AutoFallsBackToTcgWhenTheDeviceIsNotKvm) {
  absl::StatusOr<AcceleratorChoice> choice = ChooseAccelerator("auto", "/dev/null");
  ASSERT_TRUE(choice.ok());
  EXPECT_EQ(choice->domain_type, "qemu");
}

TEST(AcceleratorTest, KvmWithoutUsableKvmIsFailedPrecondition) {
  absl::StatusOr<AcceleratorChoice> choice = ChooseAccelerator("kvm", kNoDevice);
  EXPECT_EQ(choice.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(choice.status().message()), HasSubstr("accelerator: kvm"));
}

TEST(AcceleratorTest, AnUnknownSettingIsInvalid) {
  EXPECT_EQ(ChooseAccelerator("warp", kNoDevice).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(AcceleratorTest, AutoPicksKvmWhenTheDeviceAnswers) {
  if (!CheckKvm().ok()) GTEST_SKIP() << "no usable /dev/kvm here";
  absl::StatusOr<AcceleratorChoice> choice = ChooseAccelerator("auto");
  ASSERT_TRUE(choice.ok());
  EXPECT_EQ(choice->domain_type, "kvm");
}

}  // namespace
}  // namespace vmlet::vmdriver
