// Golden-file tests of VM specs: each case is a VmConfig built here plus a
// vmlet.vmspec.v1.Machine read from tests/vmdriver/golden/spec_<case>.textproto;
// BuildDomain and WriteDomainXml turn them into XML that must equal
// golden/spec_<case>.xml byte for byte. The expected files are also checked
// against libvirt's schema (virt-xml-validate) and, where this machine's
// libvirtd answers, defined and undefined under a throwaway name.
//
// The golden directory comes from VMLET_GOLDEN_DIR (tests/meson.build). To
// regenerate the XML files after an intended change, run
//
//   VMLET_UPDATE_GOLDEN=1 meson test -C <builddir> vmdriver_domain_golden
//
// then review the diff.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <ostream>
#include <string>

#include <gmock/gmock.h>
#include <google/protobuf/text_format.h>
#include <gtest/gtest.h>

#include "base/file_util.h"
#include "base/process.h"
#include "base/scope_guard.h"
#include "base/status.h"
#include "vmdriver/libvirt/domain.h"
#include "vmdriver/libvirt/domain_builder.h"

namespace vmlet::vmdriver::libvirt {
namespace {

constexpr char kId[] = "3f2a9c1d5e6b7a8f90a1b2c3d4e5f60718293a4b5c6d7e8f9012345678abcdef";
constexpr char kSandboxId[] = "5a4d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5";
constexpr char kImage[] =
    "/var/lib/vmlet/images/sha256/"
    "9b2c6f0e4d8a1b3c5e7f9a0b2c4d6e8f0a1b3c5d7e9f1a2b4c6d8e0f1a3b5c7d/disk/disk.qcow2";
constexpr char kVmDir[] =
    "/var/lib/vmlet/vms/3f2a9c1d5e6b7a8f90a1b2c3d4e5f60718293a4b5c6d7e8f9012345678abcdef";
constexpr char kRunDir[] = "/run/vmlet/consoles/3f2a9c1d5e6b7a8f";

std::string GoldenDir() {
  const char* dir = std::getenv("VMLET_GOLDEN_DIR");
  return dir != nullptr ? dir : "";
}

bool Updating() {
  const char* update = std::getenv("VMLET_UPDATE_GOLDEN");
  return update != nullptr && std::string(update) == "1";
}

// The "VmConfig-ish" part of a case: a disk-booted pod VM as the CRI side
// makes it, with the paths the libvirt driver would choose.
struct Fixture {
  VmConfig vm;
  DomainOptions options;
};

Fixture BaseFixture() {
  Fixture f;
  VmConfig& vm = f.vm;
  vm.id = kId;
  vm.sandbox_id = kSandboxId;
  vm.name = "default_web_vm";
  vm.pod_namespace = "default";
  vm.pod_name = "web";
  vm.pod_uid = "8c0e1c2a-4b7e-4d55-9a53-0f4d7b3e2a11";
  vm.container_name = "vm";
  vm.vcpus = 2;
  vm.memory_bytes = 2048 * kMiB;
  vm.image = "registry.example:5000/vms/debian:12";
  vm.log_path = "/var/log/pods/default_web_8c0e1c2a-4b7e-4d55-9a53-0f4d7b3e2a11/vm/0.log";
  vm.boot = BootSource{.disk_path = kImage, .disk_format = "qcow2"};
  DomainOptions& o = f.options;
  o.type = "qemu";
  o.console_socket = "/run/vmlet/consoles/3f2a9c1d5e6b7a8f.sock";
  o.overlay_path = std::string(kVmDir) + "/root.qcow2";
  o.instance = "/var/lib/vmlet/vms";
  o.run_dir = kRunDir;
  return f;
}

struct GoldenCase {
  std::string name;  // spec_<name>.textproto in, spec_<name>.xml out.
  std::function<void(Fixture&)> setup;
};

void PrintTo(const GoldenCase& c, std::ostream* os) { *os << c.name; }

void EmptyDisk(Fixture& f, const std::string& name) {
  f.options.empty_disk_paths[name] = std::string(kVmDir) + "/" + EmptyDiskFileName(name);
}

const GoldenCase kCases[] = {
    {"minimal", [](Fixture&) {}},
    {"uefi_secure_boot_tpm", [](Fixture&) {}},
    {"numa_hugepages_pinning",
     [](Fixture& f) {
       f.options.type = "kvm";
       f.vm.vcpus = 2;  // Two more may be hot-plugged: the topology holds 4.
       f.vm.max_vcpus = 4;
       f.vm.max_memory_bytes = 8192 * kMiB;  // Folded away by NUMA.
       f.vm.cpuset = {2, 3, 4, 5};
     }},
    {"four_disks_three_buses",
     [](Fixture& f) {
       EmptyDisk(f, "scratch");
       f.vm.volumes = {{"/dev/xvdf", "/dev/loop7"},
                       {"/media/installer.img",
                        "/var/lib/kubelet/pods/8c0e1c2a/volumes/installer/installer.img"}};
       // As Create finds them on the host.
       f.options.volume_types = {{"/dev/xvdf", "block"}, {"/media/installer.img", "file"}};
     }},
    {"two_nics",
     [](Fixture& f) {
       f.vm.nics = {
           NetworkInterface{
               .netns_path = "/run/vmlet/netns/web", .tap = "vmtap0", .mac = "0a:58:0a:63:00:05"},
           NetworkInterface{
               .netns_path = "/run/vmlet/netns/web", .tap = "vmtap1", .mac = "0a:58:0a:64:00:07"}};
     }},
    {"cloud_init",
     [](Fixture& f) {
       EmptyDisk(f, "data");
       f.options.seed_path = std::string(kVmDir) + "/seed.iso";
     }},
    {"devices_clock_features", [](Fixture& f) { f.options.type = "kvm"; }},
};

absl::StatusOr<std::string> XmlFor(const GoldenCase& golden) {
  Fixture f = BaseFixture();
  golden.setup(f);
  const std::string spec_path = GoldenDir() + "/spec_" + golden.name + ".textproto";
  VMLET_ASSIGN_OR_RETURN(std::string text, ReadFile(spec_path));
  if (!google::protobuf::TextFormat::ParseFromString(text, &f.vm.machine)) {
    return absl::InvalidArgumentError(spec_path + " is not a text-format Machine");
  }
  VMLET_ASSIGN_OR_RETURN(Domain domain, BuildDomain(f.vm, f.options));
  return WriteDomainXml(domain);
}

class DomainGoldenTest : public ::testing::TestWithParam<GoldenCase> {
 protected:
  void SetUp() override {
    ASSERT_FALSE(GoldenDir().empty()) << "VMLET_GOLDEN_DIR is not set (tests/meson.build sets it)";
  }
  std::string XmlPath() const { return GoldenDir() + "/spec_" + GetParam().name + ".xml"; }
};

TEST_P(DomainGoldenTest, MatchesTheGoldenFile) {
  absl::StatusOr<std::string> xml = XmlFor(GetParam());
  ASSERT_TRUE(xml.ok()) << xml.status();
  if (Updating()) {
    absl::Status written = WriteFileAtomically(XmlPath(), *xml + "\n", 0644);
    ASSERT_TRUE(written.ok()) << written;
    GTEST_SKIP() << "updated " << XmlPath();
  }
  absl::StatusOr<std::string> golden = ReadFile(XmlPath());
  ASSERT_TRUE(golden.ok()) << golden.status() << " (create it with VMLET_UPDATE_GOLDEN=1)";
  EXPECT_EQ(*xml + "\n", *golden) << "domain XML differs from " << XmlPath()
                                  << " (if intended: VMLET_UPDATE_GOLDEN=1, then review the diff)";
}

TEST_P(DomainGoldenTest, TheGoldenFileIsAValidLibvirtDomain) {
  if (::access("/usr/bin/virt-xml-validate", X_OK) != 0) {
    GTEST_SKIP() << "virt-xml-validate is not installed (package libvirt-clients): not checking "
                 << XmlPath() << " against libvirt's schema";
  }
  absl::StatusOr<ProcessResult> result =
      RunProcess({"virt-xml-validate", XmlPath(), "domain"}, absl::Seconds(60));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->exit_code, 0) << result->output;
}

// Defines the golden domain in this machine's libvirtd (as a domain that is
// not vmlet's: another name and UUID) and undefines it: libvirt's own
// checks, beyond the schema (firmware selection, the TPM, controllers).
// Skipped unless libvirtd answers on qemu:///system.
TEST_P(DomainGoldenTest, LibvirtDefinesTheGoldenDomain) {
  absl::StatusOr<ProcessResult> version =
      RunProcess({"virsh", "-c", "qemu:///system", "version"}, absl::Seconds(10));
  if (!version.ok() || version->exit_code != 0) {
    GTEST_SKIP() << "libvirtd does not answer on qemu:///system: not defining " << XmlPath();
  }
  absl::StatusOr<std::string> xml = ReadFile(XmlPath());
  ASSERT_TRUE(xml.ok()) << xml.status();
  const std::string name = "golden-test-" + std::to_string(::getpid()) + "-" + GetParam().name;
  // Another name and UUID than the golden ones (each occurs once).
  const std::string golden_name = "<name>vmlet-default-web-3f2a9c1d</name>";
  const size_t name_at = xml->find(golden_name);
  ASSERT_NE(name_at, std::string::npos) << *xml;
  xml->replace(name_at, golden_name.size(), "<name>" + name + "</name>");
  const size_t uuid_at = xml->find("<uuid>");
  ASSERT_NE(uuid_at, std::string::npos) << *xml;
  char uuid[40];
  std::snprintf(uuid, sizeof uuid, "0badc0de-0000-4000-8000-%012x",
                static_cast<unsigned>(::getpid()));
  xml->replace(uuid_at + 6, 36, uuid);
  char dir_template[] = "/tmp/vmlet-golden-XXXXXX";
  ASSERT_NE(::mkdtemp(dir_template), nullptr);
  const std::string dir = dir_template;
  ScopeGuard remove_dir([&] { (void)RemoveTree(dir); });
  const std::string path = dir + "/domain.xml";
  ASSERT_TRUE(WriteFileAtomically(path, *xml, 0644).ok());

  absl::StatusOr<ProcessResult> defined =
      RunProcess({"virsh", "-c", "qemu:///system", "define", path}, absl::Seconds(60));
  ScopeGuard undefine([&] {
    (void)RunProcess({"virsh", "-c", "qemu:///system", "undefine", name, "--nvram", "--tpm"},
                     absl::Seconds(60));
  });
  ASSERT_TRUE(defined.ok()) << defined.status();
  // A KVM domain can only be defined where QEMU has KVM.
  if (defined->exit_code != 0 && xml->find("<domain type=\"kvm\"") != std::string::npos &&
      defined->output.find("does not support virt type 'kvm'") != std::string::npos) {
    GTEST_SKIP() << "this host's QEMU has no KVM: not defining " << XmlPath();
  }
  EXPECT_EQ(defined->exit_code, 0) << defined->output;
}

INSTANTIATE_TEST_SUITE_P(Cases, DomainGoldenTest, ::testing::ValuesIn(kCases),
                         [](const ::testing::TestParamInfo<GoldenCase>& info) {
                           return info.param.name;
                         });

}  // namespace
}  // namespace vmlet::vmdriver::libvirt
