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

// ---- The VM spec (VmConfig::machine) ----

namespace v1 = ::vmlet::vmspec::v1;

constexpr char kVmDir[] = "/var/lib/vmlet/vms/3f2a";

DomainOptions SpecOptions() {
  DomainOptions options = DiskOptions();
  options.type = "qemu";
  options.run_dir = "/run/vmlet/consoles/3f2a9c1d5e6b7a8f";
  options.empty_disk_paths = {{"scratch", std::string(kVmDir) + "/disk-scratch.qcow2"},
                              {"data", std::string(kVmDir) + "/disk-data.qcow2"}};
  return options;
}

VmConfig SpecConfig() {
  VmConfig vm = DiskConfig();
  vm.vcpus = 2;
  vm.memory_bytes = 2048 * kMiB;
  vm.volumes = {{"/dev/xvdf", "/dev/loop7"}, {"/media/image.raw", "/srv/volumes/image.raw"}};
  vm.nics = {
      NetworkInterface{.netns_path = "/run/netns/a", .tap = "t0", .mac = "0a:58:0a:00:00:01"},
      NetworkInterface{.netns_path = "/run/netns/a", .tap = "t1", .mac = "0a:58:0a:00:00:02"}};
  return vm;
}

absl::StatusOr<Domain> BuildSpec(const VmConfig& vm, const DomainOptions& options = SpecOptions()) {
  return BuildDomain(vm, options);
}

TEST(BuildDomainSpecTest, AnEmptyMachineKeepsTodaysDomain) {
  absl::StatusOr<Domain> domain = BuildSpec(SpecConfig());
  ASSERT_TRUE(domain.ok()) << domain.status();
  EXPECT_EQ(domain->machine, "pc");
  EXPECT_EQ(domain->cpu_mode, "");
  EXPECT_TRUE(domain->acpi);
  EXPECT_TRUE(domain->apic);
  EXPECT_FALSE(domain->smm);
  EXPECT_FALSE(domain->uefi);
  EXPECT_TRUE(domain->rng);
  EXPECT_TRUE(domain->memory_balloon);
  EXPECT_EQ(domain->guest_agent_channel, "org.qemu.guest_agent.0");
  EXPECT_EQ(domain->on_reboot, "restart");
  EXPECT_EQ(domain->clock_offset, "utc");
  EXPECT_EQ(domain->uuid, "3f2a9c1d-5e6b-7a8f-90a1-b2c3d4e5f607");
  ASSERT_THAT(domain->disks, SizeIs(1));
  EXPECT_EQ(domain->disks[0].boot_order, 0);
  EXPECT_THAT(domain->controllers, SizeIs(0));  // pc: NICs go into pci.0.
  ASSERT_THAT(domain->nics, SizeIs(2));
  EXPECT_EQ(domain->nics[1].model, "virtio");
  EXPECT_EQ(domain->nics[1].mac, "0a:58:0a:00:00:02");
  EXPECT_EQ(domain->nics[1].queues, 1);
}

TEST(BuildDomainSpecTest, ATopologyIsTheMostVcpus) {
  VmConfig vm = SpecConfig();
  vm.max_vcpus = 64;  // vmletd's default headroom gives way to the topology.
  v1::CpuTopology* topology = vm.machine.mutable_cpu()->mutable_topology();
  topology->set_sockets(2);
  topology->set_cores(2);
  absl::StatusOr<Domain> domain = BuildSpec(vm);
  ASSERT_TRUE(domain.ok()) << domain.status();
  EXPECT_EQ(domain->sockets, 2);
  EXPECT_EQ(domain->cores, 2);
  EXPECT_EQ(domain->threads, 1);  // Unset: 1.
  EXPECT_EQ(domain->vcpus, 2);
  EXPECT_EQ(domain->max_vcpus, 4);
}

TEST(BuildDomainSpecTest, TakesCpuModesModelsAndFeatures) {
  VmConfig vm = SpecConfig();
  vm.machine.mutable_cpu()->set_mode("host-model");
  EXPECT_EQ(BuildSpec(vm)->cpu_mode, "host-model");  // Allowed under TCG.
  DomainOptions kvm = SpecOptions();
  kvm.type = "kvm";
  vm.machine.mutable_cpu()->set_mode("host-passthrough");
  EXPECT_EQ(BuildSpec(vm, kvm)->cpu_mode, "host-passthrough");
  vm.machine.mutable_cpu()->set_mode("custom");
  vm.machine.mutable_cpu()->set_model("Skylake-Server");
  v1::CpuFeature* avx = vm.machine.mutable_cpu()->add_features();
  avx->set_name("avx2");
  v1::CpuFeature* vmx = vm.machine.mutable_cpu()->add_features();
  vmx->set_name("vmx");
  vmx->set_policy("disable");
  absl::StatusOr<Domain> domain = BuildSpec(vm);
  ASSERT_TRUE(domain.ok()) << domain.status();
  EXPECT_EQ(domain->cpu_mode, "custom");
  EXPECT_EQ(domain->cpu_model, "Skylake-Server");
  ASSERT_THAT(domain->cpu_features, SizeIs(2));
  EXPECT_EQ(domain->cpu_features[0].policy, "require");  // The default.
  EXPECT_EQ(domain->cpu_features[1].policy, "disable");
}

TEST(BuildDomainSpecTest, PinsVcpusAndTheEmulator) {
  VmConfig vm = SpecConfig();
  vm.cpuset = {0, 1, 2, 3};
  v1::Cpu* cpu = vm.machine.mutable_cpu();
  v1::VcpuPin* pin = cpu->add_pins();
  pin->set_vcpu(1);
  pin->set_cpuset("3,2");
  cpu->set_emulator_cpuset("0-1");
  absl::StatusOr<Domain> domain = BuildSpec(vm);
  ASSERT_TRUE(domain.ok()) << domain.status();
  ASSERT_THAT(domain->vcpu_pins, SizeIs(1));
  EXPECT_EQ(domain->vcpu_pins[0].vcpu, 1);
  EXPECT_EQ(domain->vcpu_pins[0].cpuset, "2-3");
  EXPECT_EQ(domain->emulator_cpuset, "0-1");
  EXPECT_EQ(domain->cpuset, "0-3");
}

TEST(BuildDomainSpecTest, NumaCellsSetTheMostVcpusAndFoldMemoryHeadroom) {
  VmConfig vm = SpecConfig();
  vm.max_vcpus = 16;
  vm.max_memory_bytes = 8192 * kMiB;
  v1::NumaCell* a = vm.machine.add_numa();
  a->set_cpus("0-1");
  a->set_memory("1536Mi");
  v1::NumaCell* b = vm.machine.add_numa();
  b->set_cpus("2");
  b->set_memory("512Mi");
  absl::StatusOr<Domain> domain = BuildSpec(vm);
  ASSERT_TRUE(domain.ok()) << domain.status();
  ASSERT_THAT(domain->numa, SizeIs(2));
  EXPECT_EQ(domain->numa[0].cpus, "0-1");
  EXPECT_EQ(domain->numa[0].memory_kib, 1536u * 1024);
  EXPECT_EQ(domain->numa[1].id, 1);
  EXPECT_EQ(domain->max_vcpus, 3);
  EXPECT_EQ(domain->memory_kib, 2048u * 1024);
  EXPECT_EQ(domain->current_memory_kib, 2048u * 1024);
}

TEST(BuildDomainSpecTest, HugepagesAndLockedMemory) {
  VmConfig vm = SpecConfig();
  vm.machine.mutable_memory()->set_hugepage_size("2Mi");
  vm.machine.mutable_memory()->set_locked(true);
  absl::StatusOr<Domain> domain = BuildSpec(vm);
  ASSERT_TRUE(domain.ok()) << domain.status();
  EXPECT_EQ(domain->hugepage_kib, 2048u);
  EXPECT_TRUE(domain->memory_locked);
  EXPECT_EQ(domain->hard_limit_kib, 2048u * 1024 + kLockedMemoryOverheadKib);
}

TEST(BuildDomainSpecTest, WithoutBalloonTheMemoryIsFixed) {
  VmConfig vm = SpecConfig();
  vm.max_memory_bytes = 4096 * kMiB;
  vm.machine.mutable_memory()->set_balloon(false);
  absl::StatusOr<Domain> domain = BuildSpec(vm);
  ASSERT_TRUE(domain.ok()) << domain.status();
  EXPECT_FALSE(domain->memory_balloon);
  EXPECT_EQ(domain->memory_kib, 2048u * 1024);
}

TEST(BuildDomainSpecTest, SecureBootPicksQ35AndSmm) {
  VmConfig vm = SpecConfig();
  v1::Firmware* firmware = vm.machine.mutable_firmware();
  firmware->set_type("uefi");
  firmware->set_secure_boot(true);
  firmware->set_uuid("6F1E3A2C-9B7D-4E5F-8A1B-2C3D4E5F6A7B");
  firmware->mutable_smbios()->set_manufacturer("Example Corp");
  firmware->mutable_smbios()->set_serial("SN-1");
  absl::StatusOr<Domain> domain = BuildSpec(vm);
  ASSERT_TRUE(domain.ok()) << domain.status();
  EXPECT_TRUE(domain->uefi);
  EXPECT_TRUE(domain->secure_boot);
  EXPECT_TRUE(domain->smm);
  EXPECT_EQ(domain->machine, "q35");
  EXPECT_EQ(domain->uuid, "6f1e3a2c-9b7d-4e5f-8a1b-2c3d4e5f6a7b");
  using Entry = std::pair<std::string, std::string>;
  EXPECT_THAT(domain->smbios_system, ::testing::ElementsAre(Entry{"manufacturer", "Example Corp"},
                                                            Entry{"serial", "SN-1"}));
  // q35: a PCIe root port for each of the pod's NICs.
  ASSERT_THAT(domain->controllers, SizeIs(2));
  EXPECT_EQ(domain->controllers[1].model, "pcie-root-port");
  EXPECT_EQ(domain->controllers[1].alias, "ua-vmletport1");
}

TEST(BuildDomainSpecTest, TakesMachineTypesFeaturesAndClock) {
  VmConfig vm = SpecConfig();
  vm.machine.set_machine_type("pc-q35-7.2");
  v1::Features* features = vm.machine.mutable_features();
  features->set_acpi(false);
  features->set_smm(true);
  features->mutable_hyperv()->set_relaxed(true);
  features->mutable_hyperv()->set_spinlocks(8191);
  v1::Clock* clock = vm.machine.mutable_clock();
  clock->set_offset("localtime");
  v1::Timer* rtc = clock->add_timers();
  rtc->set_name("rtc");
  rtc->set_tick_policy("catchup");
  v1::Timer* hpet = clock->add_timers();
  hpet->set_name("hpet");
  hpet->set_present(false);
  absl::StatusOr<Domain> domain = BuildSpec(vm);
  ASSERT_TRUE(domain.ok()) << domain.status();
  EXPECT_EQ(domain->machine, "pc-q35-7.2");
  EXPECT_FALSE(domain->acpi);
  EXPECT_TRUE(domain->apic);
  EXPECT_TRUE(domain->smm);
  EXPECT_TRUE(domain->hyperv.relaxed);
  EXPECT_EQ(domain->hyperv.spinlock_retries, 8191);
  EXPECT_EQ(domain->clock_offset, "localtime");
  ASSERT_THAT(domain->timers, SizeIs(2));
  EXPECT_EQ(domain->timers[0].tick_policy, "catchup");
  EXPECT_EQ(domain->timers[0].present, -1);
  EXPECT_EQ(domain->timers[1].present, 0);
}

v1::Disk* AddDiskTo(v1::Machine& machine, const std::string& name, const std::string& bus = "") {
  v1::Disk* disk = machine.add_disks();
  disk->set_name(name);
  disk->set_bus(bus);
  return disk;
}

v1::Disk* AddDisk(VmConfig& vm, const std::string& name, const std::string& bus = "") {
  return AddDiskTo(vm.machine, name, bus);
}

TEST(BuildDomainSpecTest, PlacesDisksWithTargetsPerBusAndTheSeedLast) {
  VmConfig vm = SpecConfig();
  AddDisk(vm, "scratch", "scsi")->mutable_empty()->set_size("10Gi");
  v1::Disk* data = AddDisk(vm, "data-dev", "sata");
  data->mutable_volume()->set_path("/dev/xvdf");
  data->set_serial("D1");
  v1::Disk* image = AddDisk(vm, "image");
  image->mutable_volume()->set_path("/media/image.raw");
  image->set_read_only(true);
  image->set_cache("none");
  image->set_io("native");
  DomainOptions options = SpecOptions();
  options.seed_path = std::string(kVmDir) + "/seed.iso";
  absl::StatusOr<Domain> domain = BuildSpec(vm, options);
  ASSERT_TRUE(domain.ok()) << domain.status();
  ASSERT_THAT(domain->disks, SizeIs(5));
  const std::vector<Disk>& d = domain->disks;
  EXPECT_EQ(d[0].source_file, "/var/lib/vmlet/disks/overlay.qcow2");  // Root first.
  EXPECT_EQ(d[0].target_dev, "vda");
  EXPECT_EQ(d[1].source_file, std::string(kVmDir) + "/disk-scratch.qcow2");
  EXPECT_EQ(d[1].format, "qcow2");
  EXPECT_EQ(d[1].target_dev, "sda");
  EXPECT_EQ(d[2].type, "block");
  EXPECT_EQ(d[2].source_file, "/dev/loop7");
  EXPECT_EQ(d[2].target_dev, "sdb");  // sd counts SCSI and SATA together.
  EXPECT_EQ(d[2].serial, "D1");
  EXPECT_EQ(d[3].type, "file");
  EXPECT_EQ(d[3].format, "raw");
  EXPECT_EQ(d[3].target_dev, "vdb");
  EXPECT_TRUE(d[3].read_only);
  EXPECT_EQ(d[3].cache, "none");
  EXPECT_EQ(d[3].io, "native");
  EXPECT_EQ(d[4].source_file, std::string(kVmDir) + "/seed.iso");
  EXPECT_EQ(d[4].target_dev, "vdc");
  EXPECT_TRUE(d[4].read_only);
  for (const Disk& disk : d) EXPECT_EQ(disk.boot_order, 0) << disk.target_dev;
  ASSERT_THAT(domain->controllers, SizeIs(2));
  EXPECT_EQ(domain->controllers[0].model, "virtio-scsi");
  EXPECT_EQ(domain->controllers[1].type, "sata");
}

TEST(BuildDomainSpecTest, ARootDiskNotFirstGetsBootOrders) {
  VmConfig vm = SpecConfig();
  AddDisk(vm, "data")->mutable_empty()->set_size("1Gi");
  AddDisk(vm, "root", "sata")->mutable_root();
  absl::StatusOr<Domain> domain = BuildSpec(vm);
  ASSERT_TRUE(domain.ok()) << domain.status();
  ASSERT_THAT(domain->disks, SizeIs(2));
  EXPECT_EQ(domain->disks[0].target_dev, "vda");
  EXPECT_EQ(domain->disks[0].boot_order, 0);
  EXPECT_EQ(domain->disks[1].source_file, "/var/lib/vmlet/disks/overlay.qcow2");
  EXPECT_EQ(domain->disks[1].target_dev, "sda");
  EXPECT_EQ(domain->disks[1].boot_order, 1);
}

TEST(BuildDomainSpecTest, AVolumeUnderDevIsABlockDeviceUnlessTheDriverSaysOtherwise) {
  VmConfig vm = SpecConfig();
  AddDisk(vm, "dev")->mutable_volume()->set_path("/dev/xvdf");
  EXPECT_EQ(BuildSpec(vm)->disks[1].type, "block");
  DomainOptions options = SpecOptions();
  options.volume_types = {{"/dev/xvdf", "file"}};
  EXPECT_EQ(BuildSpec(vm, options)->disks[1].type, "file");
}

TEST(BuildDomainSpecTest, NicSettingsOverThePods) {
  VmConfig vm = SpecConfig();
  v1::Nic* first = vm.machine.add_nics();
  first->set_model("e1000");
  first->set_mac("52:54:00:AB:CD:EF");
  vm.machine.add_nics()->set_queues(4);
  vm.machine.add_nics()->set_model("rtl8139");  // No such NIC in the pod: shown anyway.
  absl::StatusOr<Domain> domain = BuildSpec(vm);
  ASSERT_TRUE(domain.ok()) << domain.status();
  ASSERT_THAT(domain->nics, SizeIs(3));
  EXPECT_EQ(domain->nics[0].model, "e1000");
  EXPECT_EQ(domain->nics[0].mac, "52:54:00:ab:cd:ef");
  EXPECT_EQ(domain->nics[1].mac, "0a:58:0a:00:00:02");
  EXPECT_EQ(domain->nics[1].queues, 4);
  EXPECT_EQ(domain->nics[2].model, "rtl8139");
  EXPECT_EQ(domain->nics[2].mac, "");
}

TEST(BuildDomainSpecTest, TakesDevicesAndLifecycle) {
  VmConfig vm = SpecConfig();
  v1::Devices* devices = vm.machine.mutable_devices();
  devices->set_rng(false);
  devices->set_guest_agent(false);
  devices->mutable_watchdog()->set_model("i6300esb");
  devices->mutable_tpm()->set_version("2.0");
  devices->set_extra_serial_ports(2);
  devices->set_vnc(true);
  vm.machine.mutable_lifecycle()->set_on_reboot("poweroff");
  absl::StatusOr<Domain> domain = BuildSpec(vm);
  ASSERT_TRUE(domain.ok()) << domain.status();
  EXPECT_FALSE(domain->rng);
  EXPECT_EQ(domain->guest_agent_channel, "");
  EXPECT_EQ(domain->watchdog_model, "i6300esb");
  EXPECT_EQ(domain->watchdog_action, "reset");
  EXPECT_EQ(domain->tpm_model, "tpm-crb");
  EXPECT_EQ(domain->tpm_version, "2.0");
  EXPECT_THAT(domain->extra_serial_sockets,
              ::testing::ElementsAre("/run/vmlet/consoles/3f2a9c1d5e6b7a8f/serial1.sock",
                                     "/run/vmlet/consoles/3f2a9c1d5e6b7a8f/serial2.sock"));
  EXPECT_EQ(domain->vnc_socket, "/run/vmlet/consoles/3f2a9c1d5e6b7a8f/vnc.sock");
  EXPECT_EQ(domain->on_reboot, "destroy");
  devices->mutable_tpm()->set_version("1.2");
  EXPECT_EQ(BuildSpec(vm)->tpm_model, "tpm-tis");
}

TEST(QuantityBytesTest, ReadsKubernetesQuantities) {
  EXPECT_EQ(*QuantityBytes("1073741824"), 1073741824u);
  EXPECT_EQ(*QuantityBytes("2Mi"), 2u << 20);
  EXPECT_EQ(*QuantityBytes("1.5Gi"), 3u << 29);
  EXPECT_EQ(*QuantityBytes("1k"), 1000u);
  EXPECT_EQ(*QuantityBytes("0.5"), 1u);  // Rounded up.
  for (const char* bad : {"", "Mi", "1.Gi", ".5", "1e3", "-1", "0", "1KiB", "99999999999Ei"}) {
    EXPECT_FALSE(QuantityBytes(bad).ok()) << bad;
  }
}

struct SpecInvalidCase {
  std::string name;
  std::function<void(VmConfig&, DomainOptions&)> mutate;
  std::string expected;  // The field and its value.
};

void PrintTo(const SpecInvalidCase& c, std::ostream* os) { *os << c.name; }

class BuildDomainSpecInvalidTest : public ::testing::TestWithParam<SpecInvalidCase> {};

TEST_P(BuildDomainSpecInvalidTest, ReturnsInvalidArgumentNamingTheField) {
  VmConfig vm = SpecConfig();
  DomainOptions options = SpecOptions();
  GetParam().mutate(vm, options);
  absl::StatusOr<Domain> domain = BuildDomain(vm, options);
  ASSERT_FALSE(domain.ok());
  EXPECT_EQ(domain.status().code(), absl::StatusCode::kInvalidArgument) << domain.status();
  EXPECT_THAT(Message(domain.status()),
              AllOf(HasSubstr(GetParam().expected), HasSubstr("expected")));
}

using M = v1::Machine;
SpecInvalidCase Case(std::string name, std::function<void(M&)> mutate, std::string expected) {
  return SpecInvalidCase{std::move(name),
                         [mutate](VmConfig& vm, DomainOptions&) { mutate(vm.machine); },
                         std::move(expected)};
}

INSTANTIATE_TEST_SUITE_P(
    Cases, BuildDomainSpecInvalidTest,
    ::testing::Values(
        Case(
            "TopologyBelowVcpus", [](M& m) { m.mutable_cpu()->mutable_topology()->set_sockets(1); },
            "machine.cpu.topology: 1 sockets * 0 cores * 0 threads is 1 vCPUs"),
        Case(
            "TopologyTooLarge",
            [](M& m) {
              m.mutable_cpu()->mutable_topology()->set_sockets(64);
              m.mutable_cpu()->mutable_topology()->set_cores(64);
            },
            "machine.cpu.topology: 64 sockets * 64 cores"),
        Case(
            "HostPassthroughUnderTcg", [](M& m) { m.mutable_cpu()->set_mode("host-passthrough"); },
            "machine.cpu.mode: \"host-passthrough\" needs KVM"),
        Case(
            "UnknownCpuMode", [](M& m) { m.mutable_cpu()->set_mode("max"); },
            "machine.cpu.mode: \"max\""),
        Case(
            "CustomWithoutModel", [](M& m) { m.mutable_cpu()->set_mode("custom"); },
            "machine.cpu.model: \"\""),
        Case(
            "ModelWithoutCustom",
            [](M& m) {
              m.mutable_cpu()->set_mode("host-model");
              m.mutable_cpu()->set_model("qemu64");
            },
            "machine.cpu.model: \"qemu64\" given with mode \"host-model\""),
        Case(
            "BadFeatureName",
            [](M& m) {
              m.mutable_cpu()->set_mode("host-model");
              m.mutable_cpu()->add_features()->set_name("a b");
            },
            "machine.cpu.features[0].name: \"a b\""),
        Case(
            "BadFeaturePolicy",
            [](M& m) {
              m.mutable_cpu()->set_mode("host-model");
              v1::CpuFeature* f = m.mutable_cpu()->add_features();
              f->set_name("avx2");
              f->set_policy("maybe");
            },
            "machine.cpu.features[0].policy: \"maybe\""),
        Case(
            "FeaturesWithoutModeUnderTcg",
            [](M& m) { m.mutable_cpu()->add_features()->set_name("avx2"); },
            "machine.cpu.features: given without machine.cpu.mode under TCG"),
        Case(
            "PinOfAMissingVcpu",
            [](M& m) {
              v1::VcpuPin* pin = m.mutable_cpu()->add_pins();
              pin->set_vcpu(2);
              pin->set_cpuset("1");
            },
            "machine.cpu.pins[0].vcpu: 2"),
        Case(
            "PinTwice",
            [](M& m) {
              for (int i = 0; i < 2; ++i) m.mutable_cpu()->add_pins()->set_cpuset("1");
            },
            "machine.cpu.pins[1].vcpu: 0 is pinned twice"),
        Case(
            "BadPinCpuset", [](M& m) { m.mutable_cpu()->add_pins()->set_cpuset("1-x"); },
            "machine.cpu.pins[0].cpuset: \"1-x\""),
        Case(
            "DescendingPinRange", [](M& m) { m.mutable_cpu()->add_pins()->set_cpuset("3-1"); },
            "machine.cpu.pins[0].cpuset: \"3-1\" has the range 3-1"),
        Case(
            "PinCpuTooHigh", [](M& m) { m.mutable_cpu()->add_pins()->set_cpuset("1024"); },
            "machine.cpu.pins[0].cpuset: \"1024\" names CPU 1024"),
        Case(
            "BadEmulatorCpuset", [](M& m) { m.mutable_cpu()->set_emulator_cpuset("0,,1"); },
            "machine.cpu.emulator_cpuset: \"0,,1\""),
        Case(
            "BadHugepageSize", [](M& m) { m.mutable_memory()->set_hugepage_size("3Mi"); },
            "machine.memory.hugepage_size: \"3Mi\""),
        Case(
            "HugepageNotDividingMemory", [](M& m) { m.mutable_memory()->set_hugepage_size("1Ti"); },
            "machine.memory.hugepage_size: \"1Ti\" does not divide"),
        Case(
            "UnparsableHugepageSize", [](M& m) { m.mutable_memory()->set_hugepage_size("big"); },
            "machine.memory.hugepage_size: \"big\""),
        Case(
            "NumaCellWithoutMemory",
            [](M& m) {
              m.add_numa()->set_cpus("0-1");
              m.add_numa()->set_cpus("1");
            },
            "machine.numa[0].memory: empty"),
        Case(
            "NumaSharedVcpu",
            [](M& m) {
              v1::NumaCell* a = m.add_numa();
              a->set_cpus("0-1");
              a->set_memory("1Gi");
              v1::NumaCell* b = m.add_numa();
              b->set_cpus("1");
              b->set_memory("1Gi");
            },
            "machine.numa[1].cpus: \"1\" has vCPU 1 of another cell"),
        Case(
            "NumaGap",
            [](M& m) {
              v1::NumaCell* a = m.add_numa();
              a->set_cpus("0,2");
              a->set_memory("2Gi");
            },
            "machine.numa: the cells hold 2 vCPUs but name vCPU 2"),
        Case(
            "NumaFewerThanVcpus",
            [](M& m) {
              v1::NumaCell* a = m.add_numa();
              a->set_cpus("0");
              a->set_memory("2Gi");
            },
            "machine.numa: the cells hold 1 vCPUs"),
        Case(
            "NumaMemoryMismatch",
            [](M& m) {
              v1::NumaCell* a = m.add_numa();
              a->set_cpus("0-1");
              a->set_memory("1Gi");
            },
            "machine.numa: the cells' memory adds up to 1048576 KiB"),
        Case(
            "NumaOtherThanTopology",
            [](M& m) {
              m.mutable_cpu()->mutable_topology()->set_sockets(4);
              v1::NumaCell* a = m.add_numa();
              a->set_cpus("0-1");
              a->set_memory("2Gi");
            },
            "machine.numa: the cells hold 2 vCPUs: expected the topology's 4"),
        Case(
            "UnknownMachineType", [](M& m) { m.set_machine_type("virt"); },
            "machine.machine_type: \"virt\""),
        Case(
            "UnknownFirmware", [](M& m) { m.mutable_firmware()->set_type("coreboot"); },
            "machine.firmware.type: \"coreboot\""),
        Case(
            "SecureBootWithBios", [](M& m) { m.mutable_firmware()->set_secure_boot(true); },
            "machine.firmware.secure_boot: true with firmware type \"\""),
        Case(
            "SecureBootOnPc",
            [](M& m) {
              m.mutable_firmware()->set_type("uefi");
              m.mutable_firmware()->set_secure_boot(true);
              m.set_machine_type("pc");
            },
            "machine.firmware.secure_boot: Secure Boot needs SMM on a q35 machine"),
        Case(
            "SecureBootWithoutSmm",
            [](M& m) {
              m.mutable_firmware()->set_type("uefi");
              m.mutable_firmware()->set_secure_boot(true);
              m.mutable_features()->set_smm(false);
            },
            "machine.features.smm: false with firmware.secure_boot"),
        Case(
            "BadSmbios", [](M& m) { m.mutable_firmware()->mutable_smbios()->set_product("a\nb"); },
            "machine.firmware.smbios.product: \"a\nb\""),
        Case(
            "BadUuid", [](M& m) { m.mutable_firmware()->set_uuid("not-a-uuid"); },
            "machine.firmware.uuid: \"not-a-uuid\""),
        Case(
            "SmallSpinlocks",
            [](M& m) { m.mutable_features()->mutable_hyperv()->set_spinlocks(100); },
            "machine.features.hyperv.spinlocks: 100"),
        Case(
            "SynicWithoutVpindex",
            [](M& m) { m.mutable_features()->mutable_hyperv()->set_synic(true); },
            "machine.features.hyperv.synic: true without vpindex"),
        Case(
            "StimerWithoutSynic",
            [](M& m) { m.mutable_features()->mutable_hyperv()->set_stimer(true); },
            "machine.features.hyperv.stimer: true without synic"),
        Case(
            "UnknownClockOffset", [](M& m) { m.mutable_clock()->set_offset("gmt"); },
            "machine.clock.offset: \"gmt\""),
        Case(
            "UnknownTimer", [](M& m) { m.mutable_clock()->add_timers()->set_name("tsc2"); },
            "machine.clock.timers[0].name: \"tsc2\""),
        Case(
            "TimerTwice",
            [](M& m) {
              m.mutable_clock()->add_timers()->set_name("rtc");
              m.mutable_clock()->add_timers()->set_name("rtc");
            },
            "machine.clock.timers[1].name: \"rtc\" is listed twice"),
        Case(
            "TickPolicyOfKvmclock",
            [](M& m) {
              v1::Timer* t = m.mutable_clock()->add_timers();
              t->set_name("kvmclock");
              t->set_tick_policy("catchup");
            },
            "machine.clock.timers[0].tick_policy: \"catchup\" for timer \"kvmclock\""),
        Case(
            "UnknownTickPolicy",
            [](M& m) {
              v1::Timer* t = m.mutable_clock()->add_timers();
              t->set_name("rtc");
              t->set_tick_policy("later");
            },
            "machine.clock.timers[0].tick_policy: \"later\""),
        Case(
            "BadDiskName", [](M& m) { AddDiskTo(m, "Data")->mutable_root(); },
            "machine.disks[0].name: \"Data\""),
        Case(
            "DiskNameTwice",
            [](M& m) {
              AddDiskTo(m, "data")->mutable_empty()->set_size("1Gi");
              AddDiskTo(m, "data")->mutable_empty()->set_size("1Gi");
            },
            "machine.disks[1].name: \"data\" is used twice"),
        Case(
            "DiskWithoutSource", [](M& m) { AddDiskTo(m, "data"); },
            "machine.disks[0]: disk \"data\" has no source"),
        Case(
            "TwoRoots",
            [](M& m) {
              AddDiskTo(m, "a")->mutable_root();
              AddDiskTo(m, "b")->mutable_root();
            },
            "machine.disks[1].root: a second root disk"),
        Case(
            "EmptyWithoutSize", [](M& m) { AddDiskTo(m, "data")->mutable_empty(); },
            "machine.disks[0].empty.size: empty"),
        Case(
            "EmptyTooSmall", [](M& m) { AddDiskTo(m, "data")->mutable_empty()->set_size("1Ki"); },
            "machine.disks[0].empty.size: \"1Ki\" is out of range"),
        Case(
            "EmptyBadSize", [](M& m) { AddDiskTo(m, "data")->mutable_empty()->set_size("lots"); },
            "machine.disks[0].empty.size: \"lots\""),
        Case(
            "UnknownVolume",
            [](M& m) { AddDiskTo(m, "data")->mutable_volume()->set_path("/dev/sdz"); },
            "machine.disks[0].volume.path: \"/dev/sdz\" is not a device or mount"),
        Case(
            "VolumeTwice",
            [](M& m) {
              AddDiskTo(m, "a")->mutable_volume()->set_path("/dev/xvdf");
              AddDiskTo(m, "b")->mutable_volume()->set_path("/dev/xvdf");
            },
            "machine.disks[1].volume.path: \"/dev/xvdf\" is used by another disk"),
        Case(
            "UnknownBus",
            [](M& m) { AddDiskTo(m, "data", "ide")->mutable_empty()->set_size("1Gi"); },
            "machine.disks[0].bus: \"ide\""),
        Case(
            "UnknownCache",
            [](M& m) {
              v1::Disk* d = AddDiskTo(m, "data");
              d->mutable_empty()->set_size("1Gi");
              d->set_cache("fast");
            },
            "machine.disks[0].cache: \"fast\""),
        Case(
            "NativeIoWithWriteback",
            [](M& m) {
              v1::Disk* d = AddDiskTo(m, "data");
              d->mutable_empty()->set_size("1Gi");
              d->set_cache("writeback");
              d->set_io("native");
            },
            "machine.disks[0].io: \"native\" with cache \"writeback\""),
        Case(
            "UnknownIo",
            [](M& m) {
              v1::Disk* d = AddDiskTo(m, "data");
              d->mutable_empty()->set_size("1Gi");
              d->set_io("aio");
            },
            "machine.disks[0].io: \"aio\""),
        Case(
            "LongSerial",
            [](M& m) {
              v1::Disk* d = AddDiskTo(m, "data");
              d->mutable_empty()->set_size("1Gi");
              d->set_serial(std::string(21, 's'));
            },
            "machine.disks[0].serial: \"sssss"),
        Case(
            "SameBootOrder",
            [](M& m) {
              v1::Disk* d = AddDiskTo(m, "data");
              d->mutable_empty()->set_size("1Gi");
              d->set_boot_order(1);
            },
            "machine.disks: boot order 1 is given to two disks"),
        Case(
            "UnknownNicModel", [](M& m) { m.add_nics()->set_model("ne2k"); },
            "machine.nics[0].model: \"ne2k\""),
        Case(
            "MulticastMac", [](M& m) { m.add_nics()->set_mac("01:00:5e:00:00:01"); },
            "machine.nics[0].mac: \"01:00:5e:00:00:01\""),
        Case(
            "BadMac", [](M& m) { m.add_nics()->set_mac("52:54:00:12:34"); },
            "machine.nics[0].mac: \"52:54:00:12:34\""),
        Case(
            "QueuesOfE1000",
            [](M& m) {
              v1::Nic* nic = m.add_nics();
              nic->set_model("e1000");
              nic->set_queues(2);
            },
            "machine.nics[0].queues: 2 with model \"e1000\""),
        Case(
            "TooManyQueues", [](M& m) { m.add_nics()->set_queues(64); },
            "machine.nics[0].queues: 64"),
        Case(
            "UnknownWatchdog",
            [](M& m) { m.mutable_devices()->mutable_watchdog()->set_model("ib700"); },
            "machine.devices.watchdog.model: \"ib700\""),
        Case(
            "ItcoOnPc", [](M& m) { m.mutable_devices()->mutable_watchdog()->set_model("itco"); },
            "machine.devices.watchdog.model: \"itco\" is part of the q35 chipset"),
        Case(
            "UnknownWatchdogAction",
            [](M& m) {
              m.mutable_devices()->mutable_watchdog()->set_model("i6300esb");
              m.mutable_devices()->mutable_watchdog()->set_action("explode");
            },
            "machine.devices.watchdog.action: \"explode\""),
        Case(
            "WatchdogActionWithoutModel",
            [](M& m) { m.mutable_devices()->mutable_watchdog()->set_action("reset"); },
            "machine.devices.watchdog.action: \"reset\" without a model"),
        Case(
            "UnknownTpmVersion",
            [](M& m) { m.mutable_devices()->mutable_tpm()->set_version("3.0"); },
            "machine.devices.tpm.version: \"3.0\""),
        Case(
            "CrbTpm12",
            [](M& m) {
              m.mutable_devices()->mutable_tpm()->set_version("1.2");
              m.mutable_devices()->mutable_tpm()->set_model("tpm-crb");
            },
            "machine.devices.tpm.model: \"tpm-crb\" with version \"1.2\""),
        Case(
            "TpmModelWithoutVersion",
            [](M& m) { m.mutable_devices()->mutable_tpm()->set_model("tpm-tis"); },
            "machine.devices.tpm.model: \"tpm-tis\" without a version"),
        Case(
            "TooManySerialPorts", [](M& m) { m.mutable_devices()->set_extra_serial_ports(4); },
            "machine.devices.extra_serial_ports: 4"),
        Case(
            "UnknownOnReboot", [](M& m) { m.mutable_lifecycle()->set_on_reboot("halt"); },
            "machine.lifecycle.on_reboot: \"halt\""),
        SpecInvalidCase{"RootWithKernelBoot",
                        [](VmConfig& vm, DomainOptions&) {
                          vm.boot = KernelConfig().boot;
                          AddDiskTo(vm.machine, "root")->mutable_root();
                        },
                        "machine.disks[0].root: the VM boots a kernel"},
        SpecInvalidCase{"VncWithoutRunDir",
                        [](VmConfig& vm, DomainOptions& o) {
                          o.run_dir = "";
                          vm.machine.mutable_devices()->set_vnc(true);
                        },
                        "run_dir: empty"},
        SpecInvalidCase{"EmptyDiskWithoutPath",
                        [](VmConfig& vm, DomainOptions&) {
                          AddDiskTo(vm.machine, "other")->mutable_empty()->set_size("1Gi");
                        },
                        "empty_disk_paths: no file for the empty disk \"other\""}),
    [](const ::testing::TestParamInfo<SpecInvalidCase>& info) { return info.param.name; });

}  // namespace
}  // namespace vmlet::vmdriver::libvirt
