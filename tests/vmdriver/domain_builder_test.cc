// Unit tests of BuildDomain, DomainName and DomainUuid. The XML they lead
// to is covered by the golden files of domain_xml_test.cc.
#include "vmdriver/libvirt/domain_builder.h"

#include <functional>
#include <ostream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/status/status.h"

namespace vmlet::vmdriver::libvirt {
namespace {

using ::testing::AllOf;
using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::SizeIs;
using ::testing::StartsWith;

constexpr char kId[] = "3f2a9c1d5e6b7a8f90a1b2c3d4e5f60718293a4b5c6d7e8f9012345678abcdef";
constexpr char kOtherId[] = "77aa9c1d5e6b7a8f90a1b2c3d4e5f60718293a4b5c6d7e8f9012345678abcdef";

VmConfig KernelConfig() {
  VmConfig vm;
  vm.id = kId;
  vm.sandbox_id = "5a4d000000000000000000000000000000000000000000000000000000000001";
  vm.pod_namespace = "default";
  vm.pod_name = "web";
  vm.pod_uid = "8c0e1c2a-4b7e-4d55-9a53-0f4d7b3e2a11";
  vm.container_name = "vm";
  vm.image = "registry.example:5000/vms/alpine:3.19";
  vm.boot.kernel_path = "/var/lib/vmlet/images/vmlinuz";
  return vm;
}

VmConfig DiskConfig() {
  VmConfig vm = KernelConfig();
  vm.boot = BootSource{.disk_path = "/var/lib/vmlet/images/disk.qcow2", .disk_format = "qcow2"};
  return vm;
}

DomainOptions DiskOptions() {
  DomainOptions options;
  options.overlay_path = "/var/lib/vmlet/disks/overlay.qcow2";
  return options;
}

std::string Message(const absl::Status& status) { return std::string(status.message()); }

TEST(DomainNameTest, JoinsNamespacePodAndShortId) {
  EXPECT_EQ(DomainName(KernelConfig()), "vmlet-default-web-3f2a9c1d");
}

TEST(DomainNameTest, ReplacesCharactersOutsideTheNameAlphabet) {
  VmConfig vm = KernelConfig();
  vm.pod_namespace = "Team_A.1";
  vm.pod_name = "web app/<x>&\"'\xc3\xbc";
  EXPECT_EQ(DomainName(vm), "vmlet-Team_A.1-web-app--x-------3f2a9c1d");
}

TEST(DomainNameTest, TruncatesLongNamesAndKeepsTheShortId) {
  VmConfig vm = KernelConfig();
  vm.pod_namespace = std::string(63, 'n');
  vm.pod_name = std::string(253, 'p');
  const std::string name = DomainName(vm);
  EXPECT_THAT(name, AllOf(SizeIs(100), StartsWith("vmlet-nnnn"), EndsWith("ppp-3f2a9c1d")));
}

TEST(DomainNameTest, KeepsANameOfExactly100Characters) {
  VmConfig vm = KernelConfig();
  vm.pod_namespace = std::string(40, 'n');
  vm.pod_name = std::string(44, 'p');  // 6 + 40 + 1 + 44 + 1 + 8 = 100.
  EXPECT_EQ(DomainName(vm),
            "vmlet-" + std::string(40, 'n') + "-" + std::string(44, 'p') + "-3f2a9c1d");
}

TEST(DomainNameTest, DiffersForTwoContainersOfOnePod) {
  VmConfig other = KernelConfig();
  other.id = kOtherId;
  EXPECT_NE(DomainName(KernelConfig()), DomainName(other));
}

TEST(DomainUuidTest, FormatsTheFirst32HexCharacters) {
  EXPECT_EQ(DomainUuid(kId), "3f2a9c1d-5e6b-7a8f-90a1-b2c3d4e5f607");
}

TEST(DomainUuidTest, IsEmptyForAnIdThatIsNotHex) {
  EXPECT_EQ(DomainUuid("3f2a9c1d"), "");
  EXPECT_EQ(DomainUuid(std::string(32, 'x')), "");
  EXPECT_EQ(DomainUuid(std::string(32, 'A')), "");
}

TEST(BuildDomainTest, FillsIdentityAndMetadata) {
  VmConfig vm = KernelConfig();
  vm.log_path = "/var/log/pods/default_web_8c0e/vm/0.log";
  absl::StatusOr<Domain> domain = BuildDomain(vm, DomainOptions{});
  ASSERT_TRUE(domain.ok()) << domain.status();
  EXPECT_EQ(domain->name, "vmlet-default-web-3f2a9c1d");
  EXPECT_EQ(domain->uuid, "3f2a9c1d-5e6b-7a8f-90a1-b2c3d4e5f607");
  EXPECT_EQ(domain->title, "pod default/web container vm");
  EXPECT_EQ(domain->metadata.container_id, kId);
  EXPECT_EQ(domain->metadata.sandbox_id, vm.sandbox_id);
  EXPECT_EQ(domain->metadata.pod_uid, vm.pod_uid);
  EXPECT_EQ(domain->metadata.image, vm.image);
  EXPECT_EQ(domain->metadata.log_path, vm.log_path);
}

TEST(BuildDomainTest, GivesEveryVmTheGuestAgentChannel) {
  absl::StatusOr<Domain> domain = BuildDomain(KernelConfig(), DomainOptions{});
  ASSERT_TRUE(domain.ok()) << domain.status();
  EXPECT_EQ(domain->guest_agent_channel, "org.qemu.guest_agent.0");
}

TEST(BuildDomainTest, RoundsMemoryUpToWholeKiB) {
  VmConfig vm = KernelConfig();
  vm.memory_bytes = 16 * kMiB + 1;
  absl::StatusOr<Domain> domain = BuildDomain(vm, DomainOptions{});
  ASSERT_TRUE(domain.ok()) << domain.status();
  EXPECT_EQ(domain->memory_kib, 16 * 1024 + 1);
}

TEST(BuildDomainTest, AcceptsTheLimits) {
  VmConfig vm = KernelConfig();
  vm.vcpus = 512;
  vm.memory_bytes = 16 * kMiB;
  absl::StatusOr<Domain> domain = BuildDomain(vm, DomainOptions{});
  ASSERT_TRUE(domain.ok()) << domain.status();
  EXPECT_EQ(domain->vcpus, 512);
  EXPECT_EQ(domain->memory_kib, 16 * 1024);
}

TEST(BuildDomainTest, LeavesNoRoomToGrowWithoutMaxima) {
  VmConfig vm = KernelConfig();
  vm.vcpus = 2;
  vm.memory_bytes = 256 * kMiB;
  absl::StatusOr<Domain> domain = BuildDomain(vm, DomainOptions{});
  ASSERT_TRUE(domain.ok()) << domain.status();
  EXPECT_EQ(domain->vcpus, 2);
  EXPECT_EQ(domain->max_vcpus, 2);
  EXPECT_EQ(domain->memory_kib, 256 * 1024);
  EXPECT_EQ(domain->current_memory_kib, 256 * 1024);
  EXPECT_EQ(domain->cpuset, "");
}

TEST(BuildDomainTest, BootsWithTheMaximaAsRoomAndTheStartValuesCurrent) {
  VmConfig vm = KernelConfig();
  vm.vcpus = 1;
  vm.max_vcpus = 4;
  vm.memory_bytes = 128 * kMiB;
  vm.max_memory_bytes = 192 * kMiB + 1;  // Rounded up to whole KiB.
  absl::StatusOr<Domain> domain = BuildDomain(vm, DomainOptions{});
  ASSERT_TRUE(domain.ok()) << domain.status();
  EXPECT_EQ(domain->vcpus, 1);
  EXPECT_EQ(domain->max_vcpus, 4);
  EXPECT_EQ(domain->current_memory_kib, 128 * 1024);
  EXPECT_EQ(domain->memory_kib, 192 * 1024 + 1);
}

TEST(BuildDomainTest, GivesEveryVmAReportingBalloon) {
  absl::StatusOr<Domain> domain = BuildDomain(KernelConfig(), DomainOptions{});
  ASSERT_TRUE(domain.ok()) << domain.status();
  EXPECT_TRUE(domain->memory_balloon);
  EXPECT_EQ(domain->balloon_stats_period_s, 5);
}

TEST(BuildDomainTest, WritesTheCpusetAsSortedRanges) {
  VmConfig vm = KernelConfig();
  vm.cpuset = {7, 0, 3, 1, 2, 9, 1023};
  absl::StatusOr<Domain> domain = BuildDomain(vm, DomainOptions{});
  ASSERT_TRUE(domain.ok()) << domain.status();
  EXPECT_EQ(domain->cpuset, "0-3,7,9,1023");
}

TEST(CpusetStringTest, FormatsRunsAndSingles) {
  EXPECT_EQ(CpusetString({}), "");
  EXPECT_EQ(CpusetString({5}), "5");
  EXPECT_EQ(CpusetString({0, 1}), "0-1");
  EXPECT_EQ(CpusetString({3, 0, 1}), "0-1,3");
  EXPECT_EQ(CpusetString({4, 4, 5, 6, 8, 10, 11}), "4-6,8,10-11");
}

TEST(BuildDomainTest, PassesTheHostCpuOnlyUnderKvm) {
  DomainOptions options;
  options.type = "kvm";
  EXPECT_EQ(BuildDomain(KernelConfig(), options)->cpu_mode, "host-passthrough");
  options.type = "qemu";
  EXPECT_EQ(BuildDomain(KernelConfig(), options)->cpu_mode, "");
}

TEST(BuildDomainTest, BootsADiskImageThroughItsQcow2Overlay) {
  VmConfig vm = DiskConfig();
  vm.boot.disk_format = "raw";
  absl::StatusOr<Domain> domain = BuildDomain(vm, DiskOptions());
  ASSERT_TRUE(domain.ok()) << domain.status();
  EXPECT_EQ(domain->kernel, "");
  ASSERT_THAT(domain->disks, SizeIs(1));
  const Disk& disk = domain->disks[0];
  EXPECT_EQ(disk.source_file, "/var/lib/vmlet/disks/overlay.qcow2");
  EXPECT_EQ(disk.format, "qcow2");
  EXPECT_EQ(disk.target_dev, "vda");
  EXPECT_EQ(disk.bus, "virtio");
  EXPECT_FALSE(disk.read_only);
}

struct InvalidCase {
  std::string name;
  std::function<void(VmConfig&, DomainOptions&)> mutate;
  std::string expected;  // A part of the message: the field, and the value.
};

// Names the case in gtest's messages instead of dumping its bytes.
void PrintTo(const InvalidCase& c, std::ostream* os) { *os << c.name; }

class BuildDomainInvalidTest : public ::testing::TestWithParam<InvalidCase> {};

TEST_P(BuildDomainInvalidTest, ReturnsInvalidArgumentNamingTheField) {
  VmConfig vm = KernelConfig();
  DomainOptions options;
  GetParam().mutate(vm, options);
  absl::StatusOr<Domain> domain = BuildDomain(vm, options);
  ASSERT_FALSE(domain.ok());
  EXPECT_EQ(domain.status().code(), absl::StatusCode::kInvalidArgument) << domain.status();
  EXPECT_THAT(Message(domain.status()),
              AllOf(HasSubstr(GetParam().expected), HasSubstr("expected")));
}

void UseDisk(VmConfig& vm, DomainOptions& options) {
  vm.boot = DiskConfig().boot;
  options = DiskOptions();
}

INSTANTIATE_TEST_SUITE_P(Cases, BuildDomainInvalidTest,
                         ::testing::Values(
                             InvalidCase{"EmptyId",
                                         [](VmConfig& vm, DomainOptions&) { vm.id = ""; },
                                         "id: \"\""},
                             InvalidCase{"ShortId",
                                         [](VmConfig& vm, DomainOptions&) { vm.id = "3f2a9c1d"; },
                                         "id: \"3f2a9c1d\""},
                             InvalidCase{
                                 "UppercaseId",
                                 [](VmConfig& vm, DomainOptions&) { vm.id = std::string(64, 'A'); },
                                 "id: \"AAA"},
                             InvalidCase{
                                 "NonHexId",
                                 [](VmConfig& vm, DomainOptions&) { vm.id = std::string(64, 'g'); },
                                 "id: \"ggg"},
                             InvalidCase{"ZeroVcpus",
                                         [](VmConfig& vm, DomainOptions&) { vm.vcpus = 0; },
                                         "vcpus: 0"},
                             InvalidCase{"NegativeVcpus",
                                         [](VmConfig& vm, DomainOptions&) { vm.vcpus = -2; },
                                         "vcpus: -2"},
                             InvalidCase{"TooManyVcpus",
                                         [](VmConfig& vm, DomainOptions&) { vm.vcpus = 513; },
                                         "vcpus: 513"},
                             InvalidCase{"MaxVcpusBelowVcpus",
                                         [](VmConfig& vm, DomainOptions&) {
                                           vm.vcpus = 4;
                                           vm.max_vcpus = 2;
                                         },
                                         "max_vcpus: 2"},
                             InvalidCase{"TooManyMaxVcpus",
                                         [](VmConfig& vm, DomainOptions&) { vm.max_vcpus = 513; },
                                         "max_vcpus: 513"},
                             InvalidCase{"NegativeMaxVcpus",
                                         [](VmConfig& vm, DomainOptions&) { vm.max_vcpus = -1; },
                                         "max_vcpus: -1"},
                             InvalidCase{"MaxMemoryBelowMemory",
                                         [](VmConfig& vm, DomainOptions&) {
                                           vm.memory_bytes = 256 * kMiB;
                                           vm.max_memory_bytes = 128 * kMiB;
                                         },
                                         "max_memory_bytes: 134217728"},
                             InvalidCase{
                                 "NegativeMaxMemory",
                                 [](VmConfig& vm, DomainOptions&) { vm.max_memory_bytes = -1; },
                                 "max_memory_bytes: -1"},
                             InvalidCase{"CpusetCpuTooHigh",
                                         [](VmConfig& vm, DomainOptions&) {
                                           vm.cpuset = {0, 1024};
                                         },
                                         "cpuset: CPU 1024"},
                             InvalidCase{"CpusetNegativeCpu",
                                         [](VmConfig& vm, DomainOptions&) { vm.cpuset = {-1}; },
                                         "cpuset: CPU -1"},
                             InvalidCase{"CpusetDuplicate",
                                         [](VmConfig& vm, DomainOptions&) {
                                           vm.cpuset = {2, 0, 2};
                                         },
                                         "cpuset: CPU 2 is listed twice"},
                             InvalidCase{"TooLittleMemory",
                                         [](VmConfig& vm, DomainOptions&) {
                                           vm.memory_bytes = 16 * kMiB - 1;
                                         },
                                         "memory_bytes: 16777215"},
                             InvalidCase{"ZeroMemory",
                                         [](VmConfig& vm, DomainOptions&) { vm.memory_bytes = 0; },
                                         "memory_bytes: 0"},
                             InvalidCase{"UnknownType",
                                         [](VmConfig&, DomainOptions& o) { o.type = "xen"; },
                                         "type: \"xen\""},
                             InvalidCase{"EmptyType",
                                         [](VmConfig&, DomainOptions& o) { o.type = ""; },
                                         "type: \"\""},
                             InvalidCase{
                                 "NoBootSource",
                                 [](VmConfig& vm, DomainOptions&) { vm.boot = BootSource{}; },
                                 "boot: neither a kernel nor a disk image"},
                             InvalidCase{"KernelAndDisk",
                                         [](VmConfig& vm, DomainOptions&) {
                                           vm.boot.disk_path = "/images/disk.raw";
                                         },
                                         "boot: both a kernel (\"/var/lib/vmlet/images/vmlinuz\") "
                                         "and a disk image "
                                         "(\"/images/disk.raw\")"},
                             InvalidCase{
                                 "DiskFormatWithKernel",
                                 [](VmConfig& vm, DomainOptions&) { vm.boot.disk_format = "raw"; },
                                 "boot.disk_format: \"raw\""},
                             InvalidCase{"UnknownDiskFormat",
                                         [](VmConfig& vm, DomainOptions& o) {
                                           UseDisk(vm, o);
                                           vm.boot.disk_format = "vmdk";
                                         },
                                         "boot.disk_format: \"vmdk\""},
                             InvalidCase{"EmptyDiskFormat",
                                         [](VmConfig& vm, DomainOptions& o) {
                                           UseDisk(vm, o);
                                           vm.boot.disk_format = "";
                                         },
                                         "boot.disk_format: \"\""},
                             InvalidCase{"DiskWithoutOverlay",
                                         [](VmConfig& vm, DomainOptions& o) {
                                           UseDisk(vm, o);
                                           o.overlay_path = "";
                                         },
                                         "overlay_path: empty"},
                             InvalidCase{"InitrdWithoutKernel",
                                         [](VmConfig& vm, DomainOptions& o) {
                                           UseDisk(vm, o);
                                           vm.boot.initrd_path = "/images/initrd";
                                         },
                                         "boot.initrd_path: \"/images/initrd\""},
                             InvalidCase{"CmdlineWithoutKernel",
                                         [](VmConfig& vm, DomainOptions& o) {
                                           UseDisk(vm, o);
                                           vm.boot.cmdline = "console=ttyS0";
                                         },
                                         "boot.cmdline: \"console=ttyS0\""}),
                         [](const ::testing::TestParamInfo<InvalidCase>& info) {
                           return info.param.name;
                         });

}  // namespace
}  // namespace vmlet::vmdriver::libvirt
