// BuildVmConfig: vmletd's defaults < the container's CRI resources < the
// vmlet.io/ annotations < the bound VM spec, and MergeMachine.
#include "cri/vm_config_builder.h"

#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace vmlet::cri {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

namespace vs = ::vmlet::vmspec::v1;
constexpr int64_t kMiB = int64_t{1} << 20;
constexpr int64_t kGiB = int64_t{1} << 30;

CriOptions Options() { return CriOptions{.default_vcpus = 1, .default_memory_bytes = 512 * kMiB}; }

VmConfigInputs Inputs() {
  VmConfigInputs in;
  in.id = "c0ffee";
  in.sandbox_id = "5a11d";
  in.pod_namespace = "ns";
  in.pod_name = "web";
  in.pod_uid = "uid";
  in.image = "vms/debian:12";
  in.boot = vmdriver::BootSource{.disk_path = "/images/disk.qcow2", .disk_format = "qcow2"};
  in.image_disk_bytes = 2 * kGiB;
  in.container.mutable_metadata()->set_name("vm");
  in.host_cpus = 8;
  return in;
}

void SetCriResources(VmConfigInputs& in, int cpus, int64_t memory) {
  v1::LinuxContainerResources* r = in.container.mutable_linux()->mutable_resources();
  r->set_cpu_period(100000);
  r->set_cpu_quota(cpus * 100000);
  r->set_memory_limit_in_bytes(memory);
}

vs::VmSpec Spec(int64_t generation = 3) {
  vs::VmSpec spec;
  spec.mutable_metadata()->set_namespace_("ns");
  spec.mutable_metadata()->set_name("big");
  spec.mutable_metadata()->set_generation(generation);
  return spec;
}

vmdriver::VmConfig Build(const VmConfigInputs& in, const CriOptions& options = Options()) {
  absl::StatusOr<vmdriver::VmConfig> vm = BuildVmConfig(options, in);
  EXPECT_TRUE(vm.ok()) << vm.status();
  return vm.ok() ? *vm : vmdriver::VmConfig{};
}

TEST(BuildVmConfigTest, CopiesIdentityAndPlacement) {
  VmConfigInputs in = Inputs();
  in.log_path = "/var/log/pods/x/vm/0.log";
  in.seed_path = "/state/seed.iso";
  in.nics.push_back({.netns_path = "/run/netns/x", .tap = "tap0", .mac = "52:54:00:00:00:01"});
  vmdriver::VmConfig vm = Build(in);
  EXPECT_EQ(vm.id, "c0ffee");
  EXPECT_EQ(vm.sandbox_id, "5a11d");
  EXPECT_EQ(vm.name, "ns_web_vm");
  EXPECT_EQ(vm.pod_namespace, "ns");
  EXPECT_EQ(vm.pod_name, "web");
  EXPECT_EQ(vm.pod_uid, "uid");
  EXPECT_EQ(vm.container_name, "vm");
  EXPECT_EQ(vm.image, "vms/debian:12");
  EXPECT_EQ(vm.boot.disk_path, "/images/disk.qcow2");
  EXPECT_EQ(vm.log_path, "/var/log/pods/x/vm/0.log");
  EXPECT_EQ(vm.seed_path, "/state/seed.iso");
  ASSERT_EQ(vm.nics.size(), 1u);
  EXPECT_EQ(vm.nics[0].tap, "tap0");
  EXPECT_EQ(vm.vmspec, "");
  EXPECT_EQ(vm.vmspec_generation, 0);
  EXPECT_EQ(vm.root_disk_bytes, 0u);
}

// The precedence table: each row adds one more source; the last one that
// sets a value wins.
TEST(BuildVmConfigTest, PrecedenceOfVcpusMemoryAndRootDisk) {
  struct Row {
    const char* what;
    bool cri, annotations, spec;
    int vcpus;
    int64_t memory;
    uint64_t root_disk;
  };
  const Row rows[] = {
      {"defaults", false, false, false, 1, 512 * kMiB, 0},
      {"CRI resources", true, false, false, 2, 1 * kGiB, 0},
      {"annotations over CRI", true, true, false, 4, 2 * kGiB, 10 * kGiB},
      {"annotations over defaults", false, true, false, 4, 2 * kGiB, 10 * kGiB},
      {"spec over annotations", true, true, true, 8, 4 * kGiB, 20 * kGiB},
      {"spec over CRI", true, false, true, 8, 4 * kGiB, 20 * kGiB},
  };
  for (const Row& row : rows) {
    SCOPED_TRACE(row.what);
    VmConfigInputs in = Inputs();
    if (row.cri) SetCriResources(in, 2, 1 * kGiB);
    if (row.annotations) {
      in.tunables.vcpus = 4;
      in.tunables.memory_bytes = 2 * kGiB;
      in.tunables.root_disk_bytes = 10 * kGiB;
    }
    if (row.spec) {
      vs::VmSpec spec = Spec();
      spec.mutable_spec()->mutable_cpu()->set_count(8);
      spec.mutable_spec()->mutable_memory()->set_size("4Gi");
      vs::Disk* root = spec.mutable_spec()->add_disks();
      root->set_name("root");
      root->mutable_root()->set_size("20Gi");
      in.vmspec = spec;
    }
    vmdriver::VmConfig vm = Build(in);
    EXPECT_EQ(vm.vcpus, row.vcpus);
    EXPECT_EQ(vm.memory_bytes, row.memory);
    EXPECT_EQ(vm.root_disk_bytes, row.root_disk);
    EXPECT_EQ(vm.vmspec, row.spec ? "ns/big" : "");
    EXPECT_EQ(vm.vmspec_generation, row.spec ? 3 : 0);
  }
}

TEST(BuildVmConfigTest, ASpecLeavingFieldsOutKeepsTheLowerSources) {
  VmConfigInputs in = Inputs();
  SetCriResources(in, 2, 1 * kGiB);
  in.tunables.memory_bytes = 3 * kGiB;
  in.tunables.root_disk_bytes = 5 * kGiB;
  in.tunables.machine.set_machine_type("q35");
  in.tunables.machine.mutable_firmware()->set_type("uefi");
  vs::VmSpec spec = Spec();
  spec.mutable_spec()->mutable_firmware()->mutable_smbios()->set_serial("abc");
  spec.mutable_spec()->mutable_devices()->set_vnc(true);
  in.vmspec = spec;
  vmdriver::VmConfig vm = Build(in);
  EXPECT_EQ(vm.vcpus, 2);                // CRI.
  EXPECT_EQ(vm.memory_bytes, 3 * kGiB);  // Annotation.
  EXPECT_EQ(vm.root_disk_bytes, 5 * kGiB);
  EXPECT_EQ(vm.machine.machine_type(), "q35");
  EXPECT_EQ(vm.machine.firmware().type(), "uefi");            // Annotation kept...
  EXPECT_EQ(vm.machine.firmware().smbios().serial(), "abc");  // ...beside the spec's field.
  EXPECT_TRUE(vm.machine.devices().vnc());
}

TEST(BuildVmConfigTest, CpusetComesFromTheCriResources) {
  VmConfigInputs in = Inputs();
  in.container.mutable_linux()->mutable_resources()->set_cpuset_cpus("0-2,5");
  EXPECT_THAT(Build(in).cpuset, ElementsAre(0, 1, 2, 5));
  in.container.mutable_linux()->mutable_resources()->set_cpuset_cpus("two");
  absl::StatusOr<vmdriver::VmConfig> vm = BuildVmConfig(Options(), in);
  EXPECT_EQ(vm.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(vm.status().message()), HasSubstr("cpuset_cpus"));
}

TEST(BuildVmConfigTest, MaxVcpusAndMemory) {
  VmConfigInputs in = Inputs();
  in.tunables.vcpus = 2;
  CriOptions options = Options();
  // As before: the host's CPUs, or the configured maximum; never below.
  EXPECT_EQ(Build(in, options).max_vcpus, 8);
  options.max_vcpus = 4;
  options.max_memory_bytes = 4 * kGiB;
  vmdriver::VmConfig vm = Build(in, options);
  EXPECT_EQ(vm.max_vcpus, 4);
  EXPECT_EQ(vm.max_memory_bytes, 4 * kGiB);
  in.tunables.vcpus = 6;
  EXPECT_EQ(Build(in, options).max_vcpus, 6);

  // A topology fixes the most vCPUs at its product.
  vs::VmSpec spec = Spec();
  vs::CpuTopology* topology = spec.mutable_spec()->mutable_cpu()->mutable_topology();
  topology->set_sockets(2);
  topology->set_cores(4);
  topology->set_threads(1);
  in.vmspec = spec;
  EXPECT_EQ(Build(in, options).max_vcpus, 8);
  topology->set_cores(2);  // 4 < 6 vCPUs.
  in.vmspec = spec;
  absl::StatusOr<vmdriver::VmConfig> refused = BuildVmConfig(options, in);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(refused.status().message()),
              AllOf(HasSubstr("topology"), HasSubstr("holds 4 vCPUs"), HasSubstr("6")));

  // Hugepages or NUMA fix the memory at its start size.
  in.vmspec = Spec();
  in.vmspec->mutable_spec()->mutable_memory()->set_hugepage_size("2Mi");
  EXPECT_EQ(Build(in, options).max_memory_bytes, 512 * kMiB);
  in.vmspec = Spec();
  in.vmspec->mutable_spec()->add_numa()->set_cpus("0-5");
  EXPECT_EQ(Build(in, options).max_memory_bytes, 512 * kMiB);
}

TEST(BuildVmConfigTest, RootDiskSizeChecks) {
  VmConfigInputs in = Inputs();
  in.tunables.root_disk_bytes = 1 * kGiB;  // Below the image's 2 GiB.
  absl::StatusOr<vmdriver::VmConfig> vm = BuildVmConfig(Options(), in);
  EXPECT_EQ(vm.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(vm.status().message()),
              AllOf(HasSubstr("config.annotations[\"vmlet.io/root-disk-size\"]"),
                    HasSubstr("at least the image's disk size")));

  in.vmspec = Spec();
  vs::Disk* data = in.vmspec->mutable_spec()->add_disks();
  data->set_name("data");
  data->mutable_empty()->set_size("1Gi");
  vs::Disk* root = in.vmspec->mutable_spec()->add_disks();
  root->set_name("root");
  root->mutable_root()->set_size("1Gi");
  vm = BuildVmConfig(Options(), in);
  EXPECT_THAT(std::string(vm.status().message()),
              HasSubstr("vmspec \"ns/big\" spec.disks[1].root.size is 1073741824 bytes"));

  in = Inputs();
  in.boot = vmdriver::BootSource{.kernel_path = "/images/boot/vmlinuz"};
  in.tunables.root_disk_bytes = 10 * kGiB;
  vm = BuildVmConfig(Options(), in);
  EXPECT_EQ(vm.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(vm.status().message()), HasSubstr("boots a kernel"));
}

TEST(BuildVmConfigTest, VolumesFromDevicesAndMounts) {
  VmConfigInputs in = Inputs();
  v1::Mount* mount = in.container.add_mounts();
  mount->set_container_path("/data");
  mount->set_host_path("/var/lib/kubelet/pods/x/volumes/data");
  v1::Device* device = in.container.add_devices();
  device->set_container_path("/dev/xvdb");
  device->set_host_path("/dev/sdb");
  in.vmspec = Spec();
  vs::Disk* disk = in.vmspec->mutable_spec()->add_disks();
  disk->set_name("block");
  disk->mutable_volume()->set_path("/dev/xvdb");
  vmdriver::VmConfig vm = Build(in);
  EXPECT_THAT(vm.volumes,
              UnorderedElementsAre(Pair("/data", "/var/lib/kubelet/pods/x/volumes/data"),
                                   Pair("/dev/xvdb", "/dev/sdb")));

  disk->mutable_volume()->set_path("/dev/xvdc");
  absl::StatusOr<vmdriver::VmConfig> refused = BuildVmConfig(Options(), in);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(refused.status().message()),
              AllOf(HasSubstr("spec.disks[0].volume.path \"/dev/xvdc\""),
                    HasSubstr("not a device or mount")));
}

TEST(MergeMachineTest, SetFieldsWinAndRepeatedFieldsReplaceAsAWhole) {
  vs::Machine base;
  base.mutable_cpu()->set_mode("host-passthrough");
  base.mutable_cpu()->set_emulator_cpuset("0");
  base.set_machine_type("pc");
  base.add_disks()->set_bus("sata");
  base.add_nics()->set_model("e1000");
  base.add_nics()->set_model("rtl8139");
  base.mutable_cloud_init()->set_user_data("#cloud-config\na: 1\n");
  base.mutable_cloud_init()->add_ssh_authorized_keys("ssh-rsa AAAA a");
  base.mutable_features()->set_acpi(true);

  vs::Machine over;
  over.mutable_cpu()->set_mode("custom");
  over.mutable_cpu()->set_model("qemu64");
  over.add_nics()->set_model("virtio");
  over.mutable_cloud_init()->add_ssh_authorized_keys("ssh-ed25519 AAAA b");
  over.mutable_features()->set_acpi(false);  // Optional: present, so it wins.
  over.mutable_devices()->set_rng(false);

  MergeMachine(over, &base);
  EXPECT_EQ(base.cpu().mode(), "custom");
  EXPECT_EQ(base.cpu().model(), "qemu64");
  EXPECT_EQ(base.cpu().emulator_cpuset(), "0");  // Not set in `over`: kept.
  EXPECT_EQ(base.machine_type(), "pc");
  ASSERT_EQ(base.disks_size(), 1);  // Empty in `over`: kept.
  ASSERT_EQ(base.nics_size(), 1);   // Replaced as a whole.
  EXPECT_EQ(base.nics(0).model(), "virtio");
  EXPECT_EQ(base.cloud_init().user_data(), "#cloud-config\na: 1\n");
  EXPECT_THAT(base.cloud_init().ssh_authorized_keys(), ElementsAre("ssh-ed25519 AAAA b"));
  ASSERT_TRUE(base.features().has_acpi());
  EXPECT_FALSE(base.features().acpi());
  ASSERT_TRUE(base.devices().has_rng());
  EXPECT_FALSE(base.devices().rng());
}

TEST(MergeMachineTest, AnEmptyOverrideChangesNothing) {
  vs::Machine base;
  base.set_machine_type("q35");
  base.mutable_memory()->set_hugepage_size("2Mi");
  const std::string before = base.SerializeAsString();
  MergeMachine(vs::Machine(), &base);
  EXPECT_EQ(base.SerializeAsString(), before);
}

}  // namespace
}  // namespace vmlet::cri
