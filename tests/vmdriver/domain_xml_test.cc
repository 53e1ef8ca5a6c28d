// Golden-file tests of the domain XML: each case is a VmConfig and
// DomainOptions, built with BuildDomain, written with WriteDomainXml and
// compared byte for byte with tests/vmdriver/golden/<case>.xml. The golden
// files are the spec of the domain shape; read them when they change.
//
// The golden directory comes from the environment variable
// VMLET_GOLDEN_DIR, which tests/meson.build sets. To regenerate the files
// after an intended change of the domain shape, run
//
//   VMLET_REGENERATE_GOLDEN=1 meson test -C <builddir> vmdriver_domain_xml
//
// which writes every golden file instead of comparing, then review the diff.
// Every golden file is also checked against libvirt's schema by the
// vmdriver_domain_schema test (domain_schema_test.sh).
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xpath.h>
#include <libxml/xpathInternals.h>

#include <cstdlib>
#include <functional>
#include <memory>
#include <ostream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "base/file_util.h"
#include "vmdriver/libvirt/domain.h"
#include "vmdriver/libvirt/domain_builder.h"

namespace vmlet::vmdriver::libvirt {
namespace {

using ::testing::HasSubstr;

constexpr char kId[] = "3f2a9c1d5e6b7a8f90a1b2c3d4e5f60718293a4b5c6d7e8f9012345678abcdef";
constexpr char kSandboxId[] = "5a4d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5";
constexpr char kImageDir[] =
    "/var/lib/vmlet/images/sha256/"
    "9b2c6f0e4d8a1b3c5e7f9a0b2c4d6e8f0a1b3c5d7e9f1a2b4c6d8e0f1a3b5c7d";

// Escaping: every character XML treats specially, plus non-ASCII text.
constexpr char kSpecialPodName[] = "web<b>&\"'app \xc3\xbc";
constexpr char kSpecialImage[] = "registry.example:5000/vms/<x>&\"'y:1";
constexpr char kSpecialCmdline[] = "console=ttyS0 init=/bin/sh -c \"echo <a> && echo 'b'\"";
constexpr char kSpecialSocket[] = "/run/vmlet/it's \"<&>\"/console.sock";

VmConfig BaseConfig() {
  VmConfig vm;
  vm.id = kId;
  vm.sandbox_id = kSandboxId;
  vm.name = "default_web_vm";
  vm.pod_namespace = "default";
  vm.pod_name = "web";
  vm.pod_uid = "8c0e1c2a-4b7e-4d55-9a53-0f4d7b3e2a11";
  vm.container_name = "vm";
  vm.vcpus = 2;
  vm.memory_bytes = 1024 * kMiB;
  vm.image = "registry.example:5000/vms/alpine:3.19";
  vm.log_path = "/var/log/pods/default_web_8c0e1c2a-4b7e-4d55-9a53-0f4d7b3e2a11/vm/0.log";
  return vm;
}

DomainOptions BaseOptions() {
  DomainOptions options;
  options.console_socket = std::string("/run/vmlet/sandboxes/") + kSandboxId + "/console.sock";
  return options;
}

struct GoldenCase {
  std::string name;  // Also the golden file's name, without ".xml".
  std::function<void(VmConfig&, DomainOptions&)> setup;
};

// Names the case in gtest's messages instead of dumping its bytes.
void PrintTo(const GoldenCase& c, std::ostream* os) { *os << c.name; }

void KernelBoot(VmConfig& vm) {
  vm.boot.kernel_path = std::string(kImageDir) + "/boot/vmlinuz";
  vm.boot.initrd_path = std::string(kImageDir) + "/boot/initrd";
  vm.boot.cmdline = "console=ttyS0 root=/dev/vda rw quiet";
}

void DiskBoot(VmConfig& vm, DomainOptions& options, const std::string& format) {
  vm.boot.disk_path = std::string(kImageDir) + "/disk/disk." + format;
  vm.boot.disk_format = format;
  options.overlay_path =
      std::string("/var/lib/vmlet/sandboxes/") + kSandboxId + "/disks/" + kId + ".qcow2";
}

const GoldenCase kGoldenCases[] = {
    {"kernel_tcg_initrd_cmdline",
     [](VmConfig& vm, DomainOptions& options) {
       KernelBoot(vm);
       options.type = "qemu";
     }},
    {"kernel_kvm_no_initrd",
     [](VmConfig& vm, DomainOptions& options) {
       KernelBoot(vm);
       vm.boot.initrd_path = "";
       vm.vcpus = 1;
       vm.memory_bytes = 256 * kMiB;
       options.type = "kvm";
     }},
    {"disk_qcow2", [](VmConfig& vm, DomainOptions& o) { DiskBoot(vm, o, "qcow2"); }},
    {"disk_with_seed",
     [](VmConfig& vm, DomainOptions& o) {
       DiskBoot(vm, o, "qcow2");
       o.seed_path = std::string("/var/lib/vmlet/vms/") + kId + "/seed.iso";
     }},
    {"kernel_with_seed",
     [](VmConfig& vm, DomainOptions& o) {
       KernelBoot(vm);
       o.type = "qemu";
       o.seed_path = std::string("/var/lib/vmlet/vms/") + kId + "/seed.iso";
     }},
    {"disk_raw",
     [](VmConfig& vm, DomainOptions& o) {
       DiskBoot(vm, o, "raw");
       o.machine = "q35";
     }},
    {"escaping",
     [](VmConfig& vm, DomainOptions& options) {
       KernelBoot(vm);
       vm.pod_name = kSpecialPodName;
       vm.container_name = "vm&<1>";
       vm.image = kSpecialImage;
       vm.boot.cmdline = kSpecialCmdline;
       options.type = "qemu";
       options.console_socket = kSpecialSocket;
     }},
    {"resources",
     [](VmConfig& vm, DomainOptions& options) {
       KernelBoot(vm);
       vm.vcpus = 1;
       vm.max_vcpus = 4;
       vm.memory_bytes = 512 * kMiB;
       vm.max_memory_bytes = 2048 * kMiB;
       vm.cpuset = {3, 0, 1};
       options.type = "qemu";
     }},
    {"long_names",
     [](VmConfig& vm, DomainOptions& options) {
       KernelBoot(vm);
       vm.pod_namespace = std::string(63, 'n');
       vm.pod_name = "long-pod-" + std::string(200, 'p');
       options.type = "qemu";
     }},
};

absl::StatusOr<std::string> XmlFor(const GoldenCase& golden) {
  VmConfig vm = BaseConfig();
  DomainOptions options = BaseOptions();
  golden.setup(vm, options);
  absl::StatusOr<Domain> domain = BuildDomain(vm, options);
  if (!domain.ok()) return domain.status();
  return WriteDomainXml(*domain);
}

class DomainXmlGoldenTest : public ::testing::TestWithParam<GoldenCase> {};

TEST_P(DomainXmlGoldenTest, MatchesTheGoldenFile) {
  const char* dir = std::getenv("VMLET_GOLDEN_DIR");
  ASSERT_NE(dir, nullptr) << "VMLET_GOLDEN_DIR is not set (tests/meson.build sets it)";
  const std::string path = std::string(dir) + "/" + GetParam().name + ".xml";
  absl::StatusOr<std::string> xml = XmlFor(GetParam());
  ASSERT_TRUE(xml.ok()) << xml.status();

  const char* regenerate = std::getenv("VMLET_REGENERATE_GOLDEN");
  if (regenerate != nullptr && std::string(regenerate) == "1") {
    absl::Status written = WriteFileAtomically(path, *xml, 0644);
    ASSERT_TRUE(written.ok()) << written;
    GTEST_SKIP() << "regenerated " << path;
  }
  absl::StatusOr<std::string> golden = ReadFile(path);
  ASSERT_TRUE(golden.ok()) << golden.status() << " (regenerate with VMLET_REGENERATE_GOLDEN=1)";
  EXPECT_EQ(*xml, *golden) << "domain XML differs from " << path
                           << " (if intended: VMLET_REGENERATE_GOLDEN=1, then review the diff)";
}

INSTANTIATE_TEST_SUITE_P(Cases, DomainXmlGoldenTest, ::testing::ValuesIn(kGoldenCases),
                         [](const ::testing::TestParamInfo<GoldenCase>& info) {
                           return info.param.name;
                         });

struct XmlDocFree {
  void operator()(xmlDoc* doc) const { xmlFreeDoc(doc); }
};
struct XPathContextFree {
  void operator()(xmlXPathContext* context) const { xmlXPathFreeContext(context); }
};
struct XPathObjectFree {
  void operator()(xmlXPathObject* object) const { xmlXPathFreeObject(object); }
};

// A parsed document with XPath lookups, the vmlet metadata namespace bound
// to the prefix "v".
class ParsedXml {
 public:
  explicit ParsedXml(const std::string& xml)
      : doc_(xmlReadMemory(xml.data(), static_cast<int>(xml.size()), "domain.xml", nullptr,
                           XML_PARSE_NONET)),
        context_(doc_ ? xmlXPathNewContext(doc_.get()) : nullptr) {
    if (context_) {
      xmlXPathRegisterNs(context_.get(), reinterpret_cast<const xmlChar*>("v"),
                         reinterpret_cast<const xmlChar*>(kMetadataNamespace));
    }
  }
  bool ok() const { return context_ != nullptr; }

  // The string value of `xpath` (text of an element, value of an attribute).
  std::string String(const std::string& xpath) { return Eval("string(" + xpath + ")"); }
  std::string Count(const std::string& xpath) { return Eval("count(" + xpath + ")"); }

 private:
  std::string Eval(const std::string& expression) {
    std::unique_ptr<xmlXPathObject, XPathObjectFree> result(xmlXPathEvalExpression(
        reinterpret_cast<const xmlChar*>(expression.c_str()), context_.get()));
    if (result == nullptr) return "<xpath error>";
    xmlChar* text = xmlXPathCastToString(result.get());
    if (text == nullptr) return "";
    std::string value(reinterpret_cast<const char*>(text));
    xmlFree(text);
    return value;
  }

  std::unique_ptr<xmlDoc, XmlDocFree> doc_;
  std::unique_ptr<xmlXPathContext, XPathContextFree> context_;
};

const GoldenCase& CaseNamed(const std::string& name) {
  for (const GoldenCase& golden : kGoldenCases) {
    if (golden.name == name) return golden;
  }
  std::abort();
}

TEST(DomainXmlTest, EscapedValuesReadBackExactly) {
  absl::StatusOr<std::string> xml = XmlFor(CaseNamed("escaping"));
  ASSERT_TRUE(xml.ok()) << xml.status();
  ParsedXml parsed(*xml);
  ASSERT_TRUE(parsed.ok()) << *xml;

  EXPECT_EQ(parsed.String("/domain/os/cmdline"), kSpecialCmdline);
  EXPECT_EQ(parsed.String("/domain/title"),
            std::string("pod default/") + kSpecialPodName + " container vm&<1>");
  EXPECT_EQ(parsed.String("/domain/metadata/v:vm/v:pod-name"), kSpecialPodName);
  EXPECT_EQ(parsed.String("/domain/metadata/v:vm/v:container-name"), "vm&<1>");
  EXPECT_EQ(parsed.String("/domain/metadata/v:vm/v:image"), kSpecialImage);
  EXPECT_EQ(parsed.String("/domain/devices/serial/source/@path"), kSpecialSocket);
  // The values added no structure: the same elements as a plain kernel boot.
  EXPECT_EQ(parsed.Count("/domain/os/*"), "4");  // type, kernel, initrd, cmdline.
  absl::StatusOr<std::string> plain = XmlFor(CaseNamed("kernel_tcg_initrd_cmdline"));
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ(parsed.Count("//*"), ParsedXml(*plain).Count("//*"));
  EXPECT_EQ(parsed.Count("//@*"), ParsedXml(*plain).Count("//@*"));
}

TEST(DomainXmlTest, EscapedAttributeOfADiskReadsBackExactly) {
  Domain domain;
  domain.name = "vmlet-default-web-3f2a9c1d";
  domain.disks.push_back(Disk{
      .source_file = "/var/lib/vmlet/a'b\"c<d>&e.qcow2", .format = "qcow2", .target_dev = "vda"});
  absl::StatusOr<std::string> xml = WriteDomainXml(domain);
  ASSERT_TRUE(xml.ok()) << xml.status();
  ParsedXml parsed(*xml);
  ASSERT_TRUE(parsed.ok()) << *xml;
  EXPECT_EQ(parsed.String("/domain/devices/disk/source/@file"), "/var/lib/vmlet/a'b\"c<d>&e.qcow2");
}

TEST(DomainXmlTest, WritesNoElementForEmptyOptionalFields) {
  Domain domain;
  domain.name = "vmlet-default-web-3f2a9c1d";
  absl::StatusOr<std::string> xml = WriteDomainXml(domain);
  ASSERT_TRUE(xml.ok()) << xml.status();
  ParsedXml parsed(*xml);
  ASSERT_TRUE(parsed.ok()) << *xml;
  for (const char* absent :
       {"/domain/uuid", "/domain/title", "/domain/cpu", "/domain/currentMemory", "/domain/cputune",
        "/domain/vcpu/@current", "/domain/vcpu/@cpuset", "/domain/os/kernel",
        "/domain/devices/disk", "/domain/devices/serial", "/domain/devices/channel",
        "/domain/metadata/v:vm/*"}) {
    EXPECT_EQ(parsed.Count(absent), "0") << absent;
  }
  EXPECT_EQ(parsed.String("/domain/os/boot/@dev"), "hd");
}

TEST(DomainXmlTest, TheGuestAgentChannelIsAVirtioPortWhosePathLibvirtPicks) {
  absl::StatusOr<std::string> xml = XmlFor(CaseNamed("disk_qcow2"));
  ASSERT_TRUE(xml.ok()) << xml.status();
  ParsedXml parsed(*xml);
  ASSERT_TRUE(parsed.ok()) << *xml;
  EXPECT_EQ(parsed.Count("/domain/devices/channel"), "1");
  EXPECT_EQ(parsed.String("/domain/devices/channel/@type"), "unix");
  EXPECT_EQ(parsed.String("/domain/devices/channel/source/@mode"), "bind");
  EXPECT_EQ(parsed.Count("/domain/devices/channel/source/@path"), "0");
  EXPECT_EQ(parsed.String("/domain/devices/channel/target/@type"), "virtio");
  EXPECT_EQ(parsed.String("/domain/devices/channel/target/@name"), "org.qemu.guest_agent.0");
}

TEST(DomainXmlTest, HotPlugRoomIsTheVcpuCountWithTheStartValueAsCurrent) {
  absl::StatusOr<std::string> xml = XmlFor(CaseNamed("resources"));
  ASSERT_TRUE(xml.ok()) << xml.status();
  ParsedXml parsed(*xml);
  ASSERT_TRUE(parsed.ok()) << *xml;
  EXPECT_EQ(parsed.String("/domain/vcpu"), "4");
  EXPECT_EQ(parsed.String("/domain/vcpu/@current"), "1");
  EXPECT_EQ(parsed.String("/domain/vcpu/@placement"), "static");
  EXPECT_EQ(parsed.String("/domain/memory"), "2097152");
  EXPECT_EQ(parsed.String("/domain/memory/@unit"), "KiB");
  EXPECT_EQ(parsed.String("/domain/currentMemory"), "524288");
  EXPECT_EQ(parsed.String("/domain/currentMemory/@unit"), "KiB");
}

TEST(DomainXmlTest, ACpusetPinsTheVcpusAndTheEmulator) {
  absl::StatusOr<std::string> xml = XmlFor(CaseNamed("resources"));
  ASSERT_TRUE(xml.ok()) << xml.status();
  ParsedXml parsed(*xml);
  ASSERT_TRUE(parsed.ok()) << *xml;
  EXPECT_EQ(parsed.String("/domain/vcpu/@cpuset"), "0-1,3");
  EXPECT_EQ(parsed.String("/domain/cputune/emulatorpin/@cpuset"), "0-1,3");
}

TEST(DomainXmlTest, WithoutRoomOrCpusetTheVcpuHasNoCurrentAndNoPinning) {
  absl::StatusOr<std::string> xml = XmlFor(CaseNamed("disk_qcow2"));
  ASSERT_TRUE(xml.ok()) << xml.status();
  ParsedXml parsed(*xml);
  ASSERT_TRUE(parsed.ok()) << *xml;
  EXPECT_EQ(parsed.String("/domain/vcpu"), "2");
  EXPECT_EQ(parsed.Count("/domain/vcpu/@current"), "0");
  EXPECT_EQ(parsed.Count("/domain/vcpu/@cpuset"), "0");
  EXPECT_EQ(parsed.Count("/domain/cputune"), "0");
  EXPECT_EQ(parsed.String("/domain/memory"), parsed.String("/domain/currentMemory"));
}

TEST(DomainXmlTest, TheBalloonIsVirtioAndReportsEveryFiveSeconds) {
  absl::StatusOr<std::string> xml = XmlFor(CaseNamed("disk_qcow2"));
  ASSERT_TRUE(xml.ok()) << xml.status();
  ParsedXml parsed(*xml);
  ASSERT_TRUE(parsed.ok()) << *xml;
  EXPECT_EQ(parsed.Count("/domain/devices/memballoon"), "1");
  EXPECT_EQ(parsed.String("/domain/devices/memballoon/@model"), "virtio");
  EXPECT_EQ(parsed.String("/domain/devices/memballoon/stats/@period"), "5");
}

TEST(DomainXmlTest, ADomainWithoutBalloonSaysSo) {
  Domain domain;
  domain.name = "vmlet-default-web-3f2a9c1d";
  domain.memory_balloon = false;
  domain.balloon_stats_period_s = 5;
  absl::StatusOr<std::string> xml = WriteDomainXml(domain);
  ASSERT_TRUE(xml.ok()) << xml.status();
  ParsedXml parsed(*xml);
  ASSERT_TRUE(parsed.ok()) << *xml;
  EXPECT_EQ(parsed.String("/domain/devices/memballoon/@model"), "none");
  EXPECT_EQ(parsed.Count("/domain/devices/memballoon/*"), "0");
}

TEST(DomainXmlTest, RejectsControlCharactersNamingTheElement) {
  Domain domain;
  domain.name = "vmlet-default-web-3f2a9c1d";
  domain.kernel = "/boot/vmlinuz";
  domain.cmdline = std::string("console=ttyS0\x01", 14);
  absl::StatusOr<std::string> xml = WriteDomainXml(domain);
  ASSERT_FALSE(xml.ok());
  EXPECT_EQ(xml.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(xml.status().message()),
              HasSubstr("element <cmdline>: \"console=ttyS0\\x01\""));
}

TEST(DomainXmlTest, RejectsInvalidUtf8NamingTheAttribute) {
  Domain domain;
  domain.name = "vmlet-default-web-3f2a9c1d";
  domain.console_socket = "/run/vmlet/\xff.sock";
  absl::StatusOr<std::string> xml = WriteDomainXml(domain);
  ASSERT_FALSE(xml.ok());
  EXPECT_EQ(xml.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(xml.status().message()), HasSubstr("attribute path: \"/run/vmlet/\\xff"));
}

TEST(DomainXmlTest, KeepsNewlinesAndTabsInValues) {
  Domain domain;
  domain.name = "vmlet-default-web-3f2a9c1d";
  domain.kernel = "/boot/vmlinuz";
  domain.cmdline = "a\tb\nc";
  domain.console_socket = "/run/x\ty\nz";
  absl::StatusOr<std::string> xml = WriteDomainXml(domain);
  ASSERT_TRUE(xml.ok()) << xml.status();
  ParsedXml parsed(*xml);
  ASSERT_TRUE(parsed.ok()) << *xml;
  EXPECT_EQ(parsed.String("/domain/os/cmdline"), "a\tb\nc");
  EXPECT_EQ(parsed.String("/domain/devices/serial/source/@path"), "/run/x\ty\nz");
}

TEST(DomainXmlTest, NicSettingsGoIntoTheMetadata) {
  Domain domain;
  domain.name = "vmlet-default-web-3f2a9c1d";
  domain.metadata.container_id = "3f2a";
  domain.nics = {Nic{.index = 0, .model = "e1000", .mac = "52:54:00:12:34:56", .queues = 1},
                 Nic{.index = 1, .model = "virtio", .mac = "", .queues = 4}};
  absl::StatusOr<std::string> xml = WriteDomainXml(domain);
  ASSERT_TRUE(xml.ok()) << xml.status();
  ParsedXml parsed(*xml);
  ASSERT_TRUE(parsed.ok()) << *xml;
  EXPECT_EQ(parsed.Count("/domain/metadata/v:vm/v:nic"), "2");
  EXPECT_EQ(parsed.String("/domain/metadata/v:vm/v:nic[1]/@model"), "e1000");
  EXPECT_EQ(parsed.String("/domain/metadata/v:vm/v:nic[1]/@mac"), "52:54:00:12:34:56");
  EXPECT_EQ(parsed.Count("/domain/metadata/v:vm/v:nic[2]/@mac"), "0");
  EXPECT_EQ(parsed.String("/domain/metadata/v:vm/v:nic[2]/@queues"), "4");
  // ParseDomainMetadata (domain_metadata.cc) reads elements by name and
  // skips these.
}

TEST(DomainXmlTest, PerDiskBootOrdersReplaceTheOsBootDevice) {
  Domain domain;
  domain.name = "vmlet-default-web-3f2a9c1d";
  domain.disks = {Disk{.source_file = "/a.qcow2", .format = "qcow2", .target_dev = "vda"},
                  Disk{.type = "block",
                       .source_file = "/dev/loop7",
                       .format = "raw",
                       .target_dev = "sda",
                       .bus = "sata",
                       .boot_order = 1}};
  absl::StatusOr<std::string> xml = WriteDomainXml(domain);
  ASSERT_TRUE(xml.ok()) << xml.status();
  ParsedXml parsed(*xml);
  ASSERT_TRUE(parsed.ok()) << *xml;
  EXPECT_EQ(parsed.Count("/domain/os/boot"), "0");
  EXPECT_EQ(parsed.Count("/domain/devices/disk[1]/boot"), "0");
  EXPECT_EQ(parsed.String("/domain/devices/disk[2]/boot/@order"), "1");
  EXPECT_EQ(parsed.String("/domain/devices/disk[2]/@type"), "block");
  EXPECT_EQ(parsed.String("/domain/devices/disk[2]/source/@dev"), "/dev/loop7");
}

TEST(DomainXmlTest, TheEmulatorCpusetTakesPrecedenceOverTheVmsCpuset) {
  Domain domain;
  domain.name = "vmlet-default-web-3f2a9c1d";
  domain.cpuset = "0-3";
  domain.emulator_cpuset = "0";
  domain.vcpu_pins = {VcpuPin{.vcpu = 1, .cpuset = "3"}};
  absl::StatusOr<std::string> xml = WriteDomainXml(domain);
  ASSERT_TRUE(xml.ok()) << xml.status();
  ParsedXml parsed(*xml);
  ASSERT_TRUE(parsed.ok()) << *xml;
  EXPECT_EQ(parsed.String("/domain/vcpu/@cpuset"), "0-3");
  EXPECT_EQ(parsed.String("/domain/cputune/emulatorpin/@cpuset"), "0");
  EXPECT_EQ(parsed.String("/domain/cputune/vcpupin/@vcpu"), "1");
  EXPECT_EQ(parsed.String("/domain/cputune/vcpupin/@cpuset"), "3");
}

TEST(DomainXmlTest, DefaultDevicesAreTheRngAndTheBalloonOnly) {
  Domain domain;
  domain.name = "vmlet-default-web-3f2a9c1d";
  absl::StatusOr<std::string> xml = WriteDomainXml(domain);
  ASSERT_TRUE(xml.ok()) << xml.status();
  ParsedXml parsed(*xml);
  ASSERT_TRUE(parsed.ok()) << *xml;
  EXPECT_EQ(parsed.String("/domain/devices/rng/@model"), "virtio");
  EXPECT_EQ(parsed.String("/domain/devices/rng/backend/@model"), "random");
  EXPECT_EQ(parsed.String("/domain/devices/rng/backend"), "/dev/urandom");
  for (const char* absent :
       {"/domain/devices/tpm", "/domain/devices/watchdog", "/domain/devices/graphics",
        "/domain/devices/video", "/domain/devices/controller", "/domain/memoryBacking",
        "/domain/memtune", "/domain/sysinfo", "/domain/features/hyperv", "/domain/features/smm",
        "/domain/os/loader", "/domain/os/@firmware"}) {
    EXPECT_EQ(parsed.Count(absent), "0") << absent;
  }
}

}  // namespace
}  // namespace vmlet::vmdriver::libvirt
