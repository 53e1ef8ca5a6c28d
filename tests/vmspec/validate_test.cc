// ValidateVmSpec, ValidateMachine and ValidateObjectKey: every rule with a
// value it accepts and one it refuses, each refusal checked for the field
// path and value its message starts with.
#include "vmspec/validate.h"

#include <functional>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <google/protobuf/text_format.h>
#include <gtest/gtest.h>

namespace vmlet::vmspec {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

// A spec that sets nearly every field, all valid: each case changes it.
constexpr char kValidSpec[] = R"pb(
  metadata {
    namespace: "default"
    name: "web-1.example"
    generation: 3
    source: "api"
    labels { key: "app" value: "web" }
    labels { key: "example.com/tier" value: "front_end.1" }
  }
  spec {
    cpu {
      count: 4
      topology { sockets: 1 cores: 2 threads: 2 }
      mode: "custom"
      model: "Skylake-Server"
      features { name: "avx2" policy: "require" }
      features { name: "vmx" policy: "disable" }
      pins { vcpu: 0 cpuset: "2" }
      pins { vcpu: 3 cpuset: "4-5" }
      emulator_cpuset: "0-1,6"
    }
    memory { size: "4Gi" hugepage_size: "2Mi" locked: true balloon: false }
    numa { cpus: "0-1" memory: "2Gi" }
    numa { cpus: "2,3" memory: "2048Mi" }
    firmware {
      type: "uefi"
      secure_boot: true
      smbios { manufacturer: "Acme" product: "Box 1" serial: "A-1" }
      uuid: "2f6d1c3e-8a1b-4c5d-9e7f-0a1b2c3d4e5f"
    }
    machine_type: "pc-q35-7.2"
    features {
      acpi: true
      smm: true
      hyperv { relaxed: true spinlocks: 8191 }
    }
    clock {
      offset: "localtime"
      timers { name: "rtc" tick_policy: "catchup" }
      timers { name: "hpet" present: false }
    }
    disks {
      name: "root"
      root { size: "20Gi" }
      boot_order: 1
    }
    disks {
      name: "data"
      empty { size: "100Gi" }
      bus: "scsi"
      cache: "none"
      io: "native"
      serial: "DATA-1"
    }
    disks {
      name: "logs"
      volume { path: "/dev/xvdb" }
      bus: "sata"
      read_only: true
      boot_order: 2
    }
    nics { model: "virtio" mac: "52:54:00:12:34:56" queues: 4 }
    nics { model: "e1000" }
    devices {
      rng: true
      watchdog { model: "itco" action: "poweroff" }
      tpm { version: "2.0" model: "tpm-crb" }
      extra_serial_ports: 3
      vnc: true
    }
    cloud_init {
      user_data: "#cloud-config\npackages: [nginx]\n"
      meta_data: "instance-id: web\n"
      network_config: "version: 2\nethernets: {}\n"
      ssh_authorized_keys: "ssh-ed25519 AAAAC3Nza user@host"
    }
    lifecycle { on_reboot: "poweroff" start_paused: true }
  }
)pb";

v1::VmSpec ValidSpec() {
  v1::VmSpec spec;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(kValidSpec, &spec));
  return spec;
}

struct Case {
  std::string name;
  std::function<void(v1::VmSpec&)> change;
  // Empty: the changed spec is valid. Otherwise the start of the message.
  std::string error;
};

std::string Message(const absl::Status& status) { return std::string(status.message()); }

void RunCases(const std::vector<Case>& cases) {
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    v1::VmSpec spec = ValidSpec();
    c.change(spec);
    const absl::Status status = ValidateVmSpec(spec);
    if (c.error.empty()) {
      EXPECT_TRUE(status.ok()) << status;
    } else {
      EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
      EXPECT_THAT(Message(status), StartsWith(c.error));
    }
  }
}

v1::Machine& M(v1::VmSpec& spec) { return *spec.mutable_spec(); }

// The machine without the parts that tie vCPUs and memory together.
void Untie(v1::VmSpec& spec) {
  M(spec).clear_numa();
  M(spec).mutable_cpu()->clear_topology();
  M(spec).mutable_cpu()->clear_pins();
}

// Without the parts that need a q35 machine type.
void NotQ35(v1::VmSpec& spec) {
  M(spec).mutable_firmware()->set_secure_boot(false);
  M(spec).mutable_devices()->mutable_watchdog()->set_model("i6300esb");
}

TEST(ValidateVmSpecTest, AcceptsTheFullSpecAndAnEmptyMachine) {
  EXPECT_TRUE(ValidateVmSpec(ValidSpec()).ok()) << ValidateVmSpec(ValidSpec());
  v1::VmSpec minimal;
  minimal.mutable_metadata()->set_namespace_("default");
  minimal.mutable_metadata()->set_name("web");
  EXPECT_TRUE(ValidateVmSpec(minimal).ok()) << ValidateVmSpec(minimal);
}

TEST(ValidateVmSpecTest, Metadata) {
  const std::string label63(63, 'a');
  RunCases({
      {"namespace missing", [](v1::VmSpec& s) { s.mutable_metadata()->clear_namespace_(); },
       "metadata.namespace: \"\" is not a DNS-1123 label"},
      {"namespace upper case", [](v1::VmSpec& s) { s.mutable_metadata()->set_namespace_("Prod"); },
       "metadata.namespace: \"Prod\" is not a DNS-1123 label"},
      {"namespace starts with -", [](v1::VmSpec& s) { s.mutable_metadata()->set_namespace_("-a"); },
       "metadata.namespace: \"-a\" is not a DNS-1123 label"},
      {"namespace with a dot", [](v1::VmSpec& s) { s.mutable_metadata()->set_namespace_("a.b"); },
       "metadata.namespace: \"a.b\" is not a DNS-1123 label"},
      {"namespace 63", [&](v1::VmSpec& s) { s.mutable_metadata()->set_namespace_(label63); }, ""},
      {"namespace 64", [&](v1::VmSpec& s) { s.mutable_metadata()->set_namespace_(label63 + "a"); },
       "metadata.namespace: \"aaaa"},
      {"name with _", [](v1::VmSpec& s) { s.mutable_metadata()->set_name("Web_1"); },
       "metadata.name: \"Web_1\" is not a DNS-1123 subdomain: expected lower-case letters, "
       "digits, '-' and '.'"},
      {"name missing", [](v1::VmSpec& s) { s.mutable_metadata()->clear_name(); },
       "metadata.name: \"\" is not a DNS-1123 subdomain"},
      {"name with ..", [](v1::VmSpec& s) { s.mutable_metadata()->set_name("a..b"); },
       "metadata.name: \"a..b\""},
      {"name ends with .", [](v1::VmSpec& s) { s.mutable_metadata()->set_name("a."); },
       "metadata.name: \"a.\""},
      {"name 253",
       [&](v1::VmSpec& s) {
         s.mutable_metadata()->set_name(label63 + "." + label63 + "." + label63 + "." +
                                        std::string(61, 'b'));
       },
       ""},
      {"name 254",
       [&](v1::VmSpec& s) {
         s.mutable_metadata()->set_name(label63 + "." + label63 + "." + label63 + "." +
                                        std::string(62, 'b'));
       },
       "metadata.name: "},
      {"vmletd's fields are not checked",
       [](v1::VmSpec& s) {
         s.mutable_metadata()->set_generation(-5);
         s.mutable_metadata()->set_created_at(-1);
         s.mutable_metadata()->set_source("any thing at all");
       },
       ""},
  });
}

TEST(ValidateVmSpecTest, Labels) {
  RunCases({
      {"64 labels",
       [](v1::VmSpec& s) {
         s.mutable_metadata()->clear_labels();
         for (int i = 0; i < 64; ++i)
           (*s.mutable_metadata()->mutable_labels())["k" + std::to_string(i)] = "v";
       },
       ""},
      {"65 labels",
       [](v1::VmSpec& s) {
         s.mutable_metadata()->clear_labels();
         for (int i = 0; i < 65; ++i)
           (*s.mutable_metadata()->mutable_labels())["k" + std::to_string(i)] = "v";
       },
       "metadata.labels: 65 labels are too many: expected at most 64"},
      {"longest key",
       [](v1::VmSpec& s) {
         const std::string prefix = std::string(63, 'p') + "." + std::string(63, 'p') + "." +
                                    std::string(63, 'p') + "." + std::string(61, 'p');
         (*s.mutable_metadata()->mutable_labels())[prefix + "/" + std::string(63, 'N')] = "";
       },
       ""},
      {"key name 64",
       [](v1::VmSpec& s) { (*s.mutable_metadata()->mutable_labels())[std::string(64, 'a')] = ""; },
       "metadata.labels[\"aaaa"},
      {"key prefix not a subdomain",
       [](v1::VmSpec& s) { (*s.mutable_metadata()->mutable_labels())["Example.com/a"] = ""; },
       "metadata.labels[\"Example.com/a\"]: the key is not a label key"},
      {"key with two slashes",
       [](v1::VmSpec& s) { (*s.mutable_metadata()->mutable_labels())["a/b/c"] = ""; },
       "metadata.labels[\"a/b/c\"]: the key is not a label key"},
      {"empty key", [](v1::VmSpec& s) { (*s.mutable_metadata()->mutable_labels())[""] = "x"; },
       "metadata.labels[\"\"]: the key is not a label key"},
      {"value 63",
       [](v1::VmSpec& s) { (*s.mutable_metadata()->mutable_labels())["a"] = std::string(63, 'v'); },
       ""},
      {"value 64",
       [](v1::VmSpec& s) { (*s.mutable_metadata()->mutable_labels())["a"] = std::string(64, 'v'); },
       "metadata.labels[\"a\"]: \"vvvv"},
      {"value with a space",
       [](v1::VmSpec& s) { (*s.mutable_metadata()->mutable_labels())["a"] = "b c"; },
       "metadata.labels[\"a\"]: \"b c\" is not a label value"},
  });
}

TEST(ValidateVmSpecTest, SerializedSize) {
  auto fill = [](v1::VmSpec& s, size_t key_bytes) {
    v1::CloudInit* cloud_init = M(s).mutable_cloud_init();
    cloud_init->set_user_data("#cloud-config\n" + std::string(65536 - 14, '#'));
    cloud_init->set_meta_data(std::string(65536, 'm'));
    cloud_init->set_network_config("version: 1\n#" + std::string(65536 - 12, 'n'));
    cloud_init->clear_ssh_authorized_keys();
    for (int i = 0; i < 8; ++i)
      cloud_init->add_ssh_authorized_keys("ssh-" + std::string(key_bytes - 4, 'k'));
  };
  RunCases({
      {"under 256 KiB", [&](v1::VmSpec& s) { fill(s, 7000); }, ""},
      {"over 256 KiB", [&](v1::VmSpec& s) { fill(s, 8192); }, "vm_spec: the spec is "},
  });
}

TEST(ValidateVmSpecTest, CpuCountAndTopology) {
  RunCases({
      {"512 vCPUs",
       [](v1::VmSpec& s) {
         Untie(s);
         M(s).mutable_cpu()->set_count(512);
       },
       ""},
      {"513 vCPUs",
       [](v1::VmSpec& s) {
         Untie(s);
         M(s).mutable_cpu()->set_count(513);
       },
       "spec.cpu.count: 513 vCPUs are too many: expected at most 512"},
      {"product differs from count",
       [](v1::VmSpec& s) {
         M(s).mutable_cpu()->mutable_topology()->set_sockets(3);
         M(s).mutable_cpu()->mutable_topology()->set_threads(1);
       },
       "spec.cpu.topology: sockets*cores*threads = 6, but cpu.count = 4"},
      {"a zero factor", [](v1::VmSpec& s) { M(s).mutable_cpu()->mutable_topology()->set_cores(0); },
       "spec.cpu.topology: sockets = 1, cores = 0, threads = 2: expected all three at least 1"},
      {"count from the topology", [](v1::VmSpec& s) { M(s).mutable_cpu()->set_count(0); }, ""},
      {"count from the topology, too many",
       [](v1::VmSpec& s) {
         Untie(s);
         M(s).mutable_cpu()->set_count(0);
         M(s).mutable_cpu()->mutable_topology()->set_sockets(16);
         M(s).mutable_cpu()->mutable_topology()->set_cores(16);
         M(s).mutable_cpu()->mutable_topology()->set_threads(4);
       },
       "spec.cpu.topology: sockets = 16, cores = 16, threads = 4 make more than 512 vCPUs"},
      {"a huge factor",
       [](v1::VmSpec& s) {
         Untie(s);
         M(s).mutable_cpu()->set_count(0);
         M(s).mutable_cpu()->mutable_topology()->set_sockets(4294967295u);
         M(s).mutable_cpu()->mutable_topology()->set_cores(4294967295u);
         M(s).mutable_cpu()->mutable_topology()->set_threads(4294967295u);
       },
       "spec.cpu.topology: sockets = 4294967295, cores = 4294967295, threads = 4294967295 make "
       "more than 512 vCPUs: expected sockets*cores*threads at most 512"},
  });
}

TEST(ValidateVmSpecTest, CpuModeModelAndFeatures) {
  RunCases({
      {"unknown mode", [](v1::VmSpec& s) { M(s).mutable_cpu()->set_mode("host"); },
       "spec.cpu.mode: \"host\" is not a CPU mode: expected \"host-passthrough\", \"host-model\" "
       "or \"custom\""},
      {"host-model without a model",
       [](v1::VmSpec& s) {
         M(s).mutable_cpu()->set_mode("host-model");
         M(s).mutable_cpu()->clear_model();
       },
       ""},
      {"a model without custom",
       [](v1::VmSpec& s) { M(s).mutable_cpu()->set_mode("host-passthrough"); },
       "spec.cpu.model: \"Skylake-Server\" is set, but cpu.mode is \"host-passthrough\""},
      {"a model without a mode", [](v1::VmSpec& s) { M(s).mutable_cpu()->clear_mode(); },
       "spec.cpu.model: \"Skylake-Server\" is set, but cpu.mode is \"\""},
      {"custom without a model", [](v1::VmSpec& s) { M(s).mutable_cpu()->clear_model(); },
       "spec.cpu.model: \"\" is not a QEMU CPU model, which cpu.mode \"custom\" needs"},
      {"model with a space", [](v1::VmSpec& s) { M(s).mutable_cpu()->set_model("Sky lake"); },
       "spec.cpu.model: \"Sky lake\" is not a QEMU CPU model"},
      {"model 65", [](v1::VmSpec& s) { M(s).mutable_cpu()->set_model(std::string(65, 'q')); },
       "spec.cpu.model: \"qqqq"},
      {"model qemu64_v1.2", [](v1::VmSpec& s) { M(s).mutable_cpu()->set_model("qemu64_v1.2"); },
       ""},
      {"feature upper case",
       [](v1::VmSpec& s) { M(s).mutable_cpu()->mutable_features(1)->set_name("VMX"); },
       "spec.cpu.features[1].name: \"VMX\" is not a CPU flag"},
      {"feature empty",
       [](v1::VmSpec& s) { M(s).mutable_cpu()->mutable_features(1)->clear_name(); },
       "spec.cpu.features[1].name: \"\" is not a CPU flag"},
      {"feature twice",
       [](v1::VmSpec& s) { M(s).mutable_cpu()->mutable_features(1)->set_name("avx2"); },
       "spec.cpu.features[1].name: \"avx2\" is already in features[0]"},
      {"feature policy",
       [](v1::VmSpec& s) { M(s).mutable_cpu()->mutable_features(0)->set_policy("maybe"); },
       "spec.cpu.features[0].policy: \"maybe\" is not a CPU feature policy: expected \"force\", "
       "\"require\", \"optional\", \"disable\" or \"forbid\""},
      {"feature without a policy, with dots",
       [](v1::VmSpec& s) {
         M(s).mutable_cpu()->mutable_features(0)->clear_policy();
         M(s).mutable_cpu()->mutable_features(0)->set_name("sse4.2");
       },
       ""},
  });
}

TEST(ValidateVmSpecTest, CpuPinsAndCpusets) {
  RunCases({
      {"vCPU beyond the count",
       [](v1::VmSpec& s) { M(s).mutable_cpu()->mutable_pins(1)->set_vcpu(4); },
       "spec.cpu.pins[1].vcpu: 4 is not a vCPU of the VM: expected 0 to 3"},
      {"vCPU pinned twice", [](v1::VmSpec& s) { M(s).mutable_cpu()->mutable_pins(1)->set_vcpu(0); },
       "spec.cpu.pins[1].vcpu: 0 is already pinned by pins[0]"},
      {"count unknown: any vCPU below 512",
       [](v1::VmSpec& s) {
         Untie(s);
         M(s).mutable_cpu()->set_count(0);
         v1::VcpuPin* pin = M(s).mutable_cpu()->add_pins();
         pin->set_vcpu(511);
         pin->set_cpuset("0-1023");
       },
       ""},
      {"count unknown: vCPU 512",
       [](v1::VmSpec& s) {
         Untie(s);
         M(s).mutable_cpu()->set_count(0);
         v1::VcpuPin* pin = M(s).mutable_cpu()->add_pins();
         pin->set_vcpu(512);
         pin->set_cpuset("1");
       },
       "spec.cpu.pins[0].vcpu: 512 is not a vCPU of the VM: expected 0 to 511"},
      {"empty cpuset", [](v1::VmSpec& s) { M(s).mutable_cpu()->mutable_pins(0)->clear_cpuset(); },
       "spec.cpu.pins[0].cpuset: \"\" is not a CPU list"},
      {"backwards range",
       [](v1::VmSpec& s) { M(s).mutable_cpu()->mutable_pins(0)->set_cpuset("3-1"); },
       "spec.cpu.pins[0].cpuset: \"3-1\" is not a CPU list (range \"3-1\" goes backwards): "
       "expected CPU numbers 0 to 1023 and ascending ranges, such as \"0-3,6\""},
      {"CPU 1024", [](v1::VmSpec& s) { M(s).mutable_cpu()->mutable_pins(0)->set_cpuset("1024"); },
       "spec.cpu.pins[0].cpuset: \"1024\" is not a CPU list (bad item \"1024\")"},
      {"overlapping and unordered items are fine",
       [](v1::VmSpec& s) { M(s).mutable_cpu()->mutable_pins(0)->set_cpuset("6,0-3,2"); }, ""},
      {"emulator cpuset junk",
       [](v1::VmSpec& s) { M(s).mutable_cpu()->set_emulator_cpuset("0-1,"); },
       "spec.cpu.emulator_cpuset: \"0-1,\" is not a CPU list"},
  });
  for (const char* bad : {"a", "1-", "-1", ",1", "1,,2", "1-2-3", " 1", "1 ", "0x1", "+1"}) {
    v1::VmSpec spec = ValidSpec();
    M(spec).mutable_cpu()->set_emulator_cpuset(bad);
    EXPECT_THAT(Message(ValidateVmSpec(spec)), StartsWith("spec.cpu.emulator_cpuset: ")) << bad;
  }
}

TEST(ValidateVmSpecTest, Memory) {
  RunCases({
      {"16Mi",
       [](v1::VmSpec& s) {
         Untie(s);
         M(s).mutable_memory()->set_size("16Mi");
       },
       ""},
      {"under 16Mi",
       [](v1::VmSpec& s) {
         Untie(s);
         M(s).mutable_memory()->set_size("15Mi");
       },
       "spec.memory.size: \"15Mi\" is not a quantity of bytes from 16Mi to 16Ti"},
      {"16Ti",
       [](v1::VmSpec& s) {
         Untie(s);
         M(s).mutable_memory()->set_size("16Ti");
       },
       ""},
      {"over 16Ti",
       [](v1::VmSpec& s) {
         Untie(s);
         M(s).mutable_memory()->set_size("17Ti");
       },
       "spec.memory.size: \"17Ti\" is not a quantity of bytes"},
      {"not a quantity", [](v1::VmSpec& s) { M(s).mutable_memory()->set_size("4GB"); },
       "spec.memory.size: \"4GB\" is not a quantity of bytes"},
      {"hugepage 4Mi", [](v1::VmSpec& s) { M(s).mutable_memory()->set_hugepage_size("4Mi"); },
       "spec.memory.hugepage_size: \"4Mi\" is not a hugepage size: expected \"2Mi\" or \"1Gi\""},
      {"hugepage 2048Ki", [](v1::VmSpec& s) { M(s).mutable_memory()->set_hugepage_size("2048Ki"); },
       ""},
      {"hugepage 1Gi", [](v1::VmSpec& s) { M(s).mutable_memory()->set_hugepage_size("1Gi"); }, ""},
      {"size not a multiple of the hugepage",
       [](v1::VmSpec& s) {
         Untie(s);
         M(s).mutable_memory()->set_size("4097Mi");
       },
       "spec.memory.size: \"4097Mi\" is not a multiple of memory.hugepage_size \"2Mi\""},
      {"hugepages with the size from the pod",
       [](v1::VmSpec& s) {
         Untie(s);
         M(s).mutable_memory()->clear_size();
       },
       ""},
  });
}

TEST(ValidateVmSpecTest, Numa) {
  RunCases({
      {"9 cells",
       [](v1::VmSpec& s) {
         Untie(s);
         M(s).mutable_cpu()->set_count(9);
         M(s).mutable_memory()->set_size("9Gi");
         for (int i = 0; i < 9; ++i) {
           v1::NumaCell* cell = M(s).add_numa();
           cell->set_cpus(std::to_string(i));
           cell->set_memory("1Gi");
         }
       },
       "spec.numa: 9 NUMA cells are too many: expected at most 8"},
      {"8 cells",
       [](v1::VmSpec& s) {
         Untie(s);
         M(s).mutable_cpu()->set_count(8);
         M(s).mutable_memory()->set_size("8Gi");
         for (int i = 0; i < 8; ++i) {
           v1::NumaCell* cell = M(s).add_numa();
           cell->set_cpus(std::to_string(i));
           cell->set_memory("1Gi");
         }
       },
       ""},
      {"cell without vCPUs", [](v1::VmSpec& s) { M(s).mutable_numa(1)->clear_cpus(); },
       "spec.numa[1].cpus: \"\" is not a CPU list"},
      {"vCPU beyond the count", [](v1::VmSpec& s) { M(s).mutable_numa(1)->set_cpus("2-4"); },
       "spec.numa[1].cpus: vCPU 4 is not a vCPU of the VM: expected 0 to 3"},
      {"vCPU in two cells", [](v1::VmSpec& s) { M(s).mutable_numa(1)->set_cpus("1-3"); },
       "spec.numa[1].cpus: vCPU 1 is already in numa[0]"},
      {"vCPU in no cell", [](v1::VmSpec& s) { M(s).mutable_numa(1)->set_cpus("3"); },
       "spec.numa: vCPU 2 is in no cell: the cells must hold vCPUs 0 to 3 once each"},
      {"memory missing", [](v1::VmSpec& s) { M(s).mutable_numa(0)->clear_memory(); },
       "spec.numa[0].memory: \"\" is not a quantity of bytes"},
      {"memory does not add up", [](v1::VmSpec& s) { M(s).mutable_numa(0)->set_memory("1Gi"); },
       "spec.numa: the cells' memory adds up to 3221225472 bytes, but memory.size is \"4Gi\" "
       "(4294967296 bytes)"},
      {"cell memory not a multiple of the hugepage",
       [](v1::VmSpec& s) {
         M(s).mutable_numa(0)->set_memory("2049Mi");
         M(s).mutable_numa(1)->set_memory("2047Mi");
       },
       "spec.numa[0].memory: \"2049Mi\" is not a multiple of memory.hugepage_size"},
      {"count and size from the pod",
       [](v1::VmSpec& s) {
         M(s).mutable_cpu()->clear_count();
         M(s).mutable_cpu()->clear_topology();
         M(s).mutable_memory()->clear_size();
         M(s).mutable_numa(1)->set_cpus("2-7");
         M(s).mutable_numa(1)->set_memory("6Gi");
       },
       ""},
      {"count from the pod, overlapping cells",
       [](v1::VmSpec& s) {
         M(s).mutable_cpu()->clear_count();
         M(s).mutable_cpu()->clear_topology();
         M(s).mutable_numa(1)->set_cpus("1-7");
       },
       "spec.numa[1].cpus: vCPU 1 is already in numa[0]"},
  });
}

TEST(ValidateVmSpecTest, FirmwareAndMachineType) {
  RunCases({
      {"unknown firmware", [](v1::VmSpec& s) { M(s).mutable_firmware()->set_type("efi"); },
       "spec.firmware.type: \"efi\" is not a firmware: expected \"bios\" or \"uefi\""},
      {"secure boot with bios", [](v1::VmSpec& s) { M(s).mutable_firmware()->set_type("bios"); },
       "spec.firmware.secure_boot: true needs firmware.type \"uefi\", got \"bios\""},
      {"bios",
       [](v1::VmSpec& s) {
         M(s).mutable_firmware()->set_type("bios");
         M(s).mutable_firmware()->set_secure_boot(false);
       },
       ""},
      {"secure boot on pc",
       [](v1::VmSpec& s) {
         M(s).set_machine_type("pc");
         M(s).mutable_devices()->clear_watchdog();
       },
       "spec.firmware.secure_boot: true needs a q35 machine type, got machine_type \"pc\": "
       "expected \"q35\" or \"pc-q35-<version>\""},
      {"secure boot on the default machine type", [](v1::VmSpec& s) { M(s).clear_machine_type(); },
       "spec.firmware.secure_boot: true needs a q35 machine type, got machine_type \"\""},
      {"secure boot on q35", [](v1::VmSpec& s) { M(s).set_machine_type("q35"); }, ""},
      {"secure boot without SMM", [](v1::VmSpec& s) { M(s).mutable_features()->set_smm(false); },
       "spec.features.smm: false, but firmware.secure_boot needs SMM"},
      {"secure boot, SMM unset", [](v1::VmSpec& s) { M(s).mutable_features()->clear_smm(); }, ""},
      {"pc-i440fx",
       [](v1::VmSpec& s) {
         NotQ35(s);
         M(s).set_machine_type("pc-i440fx-7.2.0");
       },
       ""},
      {"unknown machine type", [](v1::VmSpec& s) { M(s).set_machine_type("virt"); },
       "spec.machine_type: \"virt\" is not a QEMU machine type: expected \"pc\", \"q35\", "
       "\"pc-i440fx-<version>\" or \"pc-q35-<version>\""},
      {"machine type without a version", [](v1::VmSpec& s) { M(s).set_machine_type("pc-q35-"); },
       "spec.machine_type: \"pc-q35-\" is not a QEMU machine type"},
      {"machine type with a bad version",
       [](v1::VmSpec& s) { M(s).set_machine_type("pc-q35-7..2"); },
       "spec.machine_type: \"pc-q35-7..2\" is not a QEMU machine type"},
      {"smbios control character",
       [](v1::VmSpec& s) { M(s).mutable_firmware()->mutable_smbios()->set_product("a\x01"); },
       "spec.firmware.smbios.product: \"a\\x01\" is not printable ASCII of at most 64 characters"},
      {"smbios 64",
       [](v1::VmSpec& s) {
         M(s).mutable_firmware()->mutable_smbios()->set_family(std::string(64, 'f'));
       },
       ""},
      {"smbios 65",
       [](v1::VmSpec& s) {
         M(s).mutable_firmware()->mutable_smbios()->set_sku(std::string(65, 's'));
       },
       "spec.firmware.smbios.sku: \"ssss"},
      {"smbios non-ASCII",
       [](v1::VmSpec& s) { M(s).mutable_firmware()->mutable_smbios()->set_version("v\xc3\xa9"); },
       "spec.firmware.smbios.version: "},
      {"upper-case UUID",
       [](v1::VmSpec& s) {
         M(s).mutable_firmware()->set_uuid("2F6D1C3E-8A1B-4C5D-9E7F-0A1B2C3D4E5F");
       },
       ""},
      {"UUID without dashes",
       [](v1::VmSpec& s) { M(s).mutable_firmware()->set_uuid("2f6d1c3e8a1b4c5d9e7f0a1b2c3d4e5f"); },
       "spec.firmware.uuid: \"2f6d1c3e8a1b4c5d9e7f0a1b2c3d4e5f\" is not a UUID"},
      {"UUID with a non-hex digit",
       [](v1::VmSpec& s) {
         M(s).mutable_firmware()->set_uuid("2f6d1c3e-8a1b-4c5d-9e7f-0a1b2c3d4e5g");
       },
       "spec.firmware.uuid: "},
  });
}

TEST(ValidateVmSpecTest, FeaturesAndClock) {
  RunCases({
      {"spinlocks too few",
       [](v1::VmSpec& s) { M(s).mutable_features()->mutable_hyperv()->set_spinlocks(4094); },
       "spec.features.hyperv.spinlocks: 4094 retries are too few: expected 0 (off) or 4095 to "
       "4294967295"},
      {"spinlocks 4095",
       [](v1::VmSpec& s) { M(s).mutable_features()->mutable_hyperv()->set_spinlocks(4095); }, ""},
      {"spinlocks off",
       [](v1::VmSpec& s) { M(s).mutable_features()->mutable_hyperv()->set_spinlocks(0); }, ""},
      {"clock offset", [](v1::VmSpec& s) { M(s).mutable_clock()->set_offset("gmt"); },
       "spec.clock.offset: \"gmt\" is not a clock offset: expected \"utc\" or \"localtime\""},
      {"timer without a name",
       [](v1::VmSpec& s) { M(s).mutable_clock()->mutable_timers(1)->clear_name(); },
       "spec.clock.timers[1].name: missing: expected a timer name"},
      {"unknown timer",
       [](v1::VmSpec& s) { M(s).mutable_clock()->mutable_timers(1)->set_name("lapic"); },
       "spec.clock.timers[1].name: \"lapic\" is not a timer: expected \"rtc\", \"pit\", "
       "\"hpet\", \"kvmclock\", \"hypervclock\" or \"tsc\""},
      {"timer twice",
       [](v1::VmSpec& s) { M(s).mutable_clock()->mutable_timers(1)->set_name("rtc"); },
       "spec.clock.timers[1].name: \"rtc\" is already in timers[0]"},
      {"tick policy",
       [](v1::VmSpec& s) { M(s).mutable_clock()->mutable_timers(0)->set_tick_policy("skip"); },
       "spec.clock.timers[0].tick_policy: \"skip\" is not a tick policy"},
  });
}

TEST(ValidateVmSpecTest, Disks) {
  RunCases({
      {"16 disks",
       [](v1::VmSpec& s) {
         for (int i = 3; i < 16; ++i) {
           v1::Disk* disk = M(s).add_disks();
           disk->set_name("d" + std::to_string(i));
           disk->mutable_empty()->set_size("1Mi");
         }
       },
       ""},
      {"17 disks",
       [](v1::VmSpec& s) {
         for (int i = 3; i < 17; ++i) {
           v1::Disk* disk = M(s).add_disks();
           disk->set_name("d" + std::to_string(i));
           disk->mutable_empty()->set_size("1Mi");
         }
       },
       "spec.disks: 17 disks are too many: expected at most 16"},
      {"name upper case", [](v1::VmSpec& s) { M(s).mutable_disks(1)->set_name("Data"); },
       "spec.disks[1].name: \"Data\" is not a disk name: expected 1 to 32 lower-case letters, "
       "digits and '-'"},
      {"name missing", [](v1::VmSpec& s) { M(s).mutable_disks(1)->clear_name(); },
       "spec.disks[1].name: \"\" is not a disk name"},
      {"name 32", [](v1::VmSpec& s) { M(s).mutable_disks(1)->set_name(std::string(32, 'd')); }, ""},
      {"name 33", [](v1::VmSpec& s) { M(s).mutable_disks(1)->set_name(std::string(33, 'd')); },
       "spec.disks[1].name: \"dddd"},
      {"name twice", [](v1::VmSpec& s) { M(s).mutable_disks(2)->set_name("root"); },
       "spec.disks[2].name: \"root\" is already the name of disks[0]"},
      {"no source", [](v1::VmSpec& s) { M(s).mutable_disks(2)->clear_volume(); },
       "spec.disks[2]: no source: expected one of root, empty or volume"},
      {"two roots", [](v1::VmSpec& s) { M(s).mutable_disks(2)->mutable_root(); },
       "spec.disks[2].root: a second root disk: disks[0] is the root disk"},
      {"root size from the image",
       [](v1::VmSpec& s) { M(s).mutable_disks(0)->mutable_root()->clear_size(); }, ""},
      {"root size junk",
       [](v1::VmSpec& s) { M(s).mutable_disks(0)->mutable_root()->set_size("big"); },
       "spec.disks[0].root.size: \"big\" is not a quantity of bytes"},
      {"empty disk without a size",
       [](v1::VmSpec& s) { M(s).mutable_disks(1)->mutable_empty()->clear_size(); },
       "spec.disks[1].empty.size: \"\" is not a quantity of bytes from 1Mi to 64Ti"},
      {"empty disk under 1Mi",
       [](v1::VmSpec& s) { M(s).mutable_disks(1)->mutable_empty()->set_size("1023Ki"); },
       "spec.disks[1].empty.size: \"1023Ki\" is not a quantity of bytes from 1Mi to 64Ti"},
      {"empty disk 64Ti",
       [](v1::VmSpec& s) { M(s).mutable_disks(1)->mutable_empty()->set_size("64Ti"); }, ""},
      {"empty disk over 64Ti",
       [](v1::VmSpec& s) { M(s).mutable_disks(1)->mutable_empty()->set_size("65Ti"); },
       "spec.disks[1].empty.size: \"65Ti\""},
      {"volume without a path",
       [](v1::VmSpec& s) { M(s).mutable_disks(2)->mutable_volume()->clear_path(); },
       "spec.disks[2].volume.path: missing: expected the container path"},
      {"relative volume path",
       [](v1::VmSpec& s) { M(s).mutable_disks(2)->mutable_volume()->set_path("data/disk.img"); },
       "spec.disks[2].volume.path: \"data/disk.img\" is not a clean absolute path"},
      {"volume path with //",
       [](v1::VmSpec& s) { M(s).mutable_disks(2)->mutable_volume()->set_path("/data//disk.img"); },
       "spec.disks[2].volume.path: \"/data//disk.img\" is not a clean absolute path"},
      {"volume path with ..",
       [](v1::VmSpec& s) { M(s).mutable_disks(2)->mutable_volume()->set_path("/data/../etc"); },
       "spec.disks[2].volume.path: \"/data/../etc\" has a \"..\" component"},
      {"volume path ending in ..",
       [](v1::VmSpec& s) { M(s).mutable_disks(2)->mutable_volume()->set_path("/data/.."); },
       "spec.disks[2].volume.path: \"/data/..\" has a \"..\" component"},
      {"volume path with ..x",
       [](v1::VmSpec& s) { M(s).mutable_disks(2)->mutable_volume()->set_path("/data/..x/a..b"); },
       ""},
      {"volume path 4096",
       [](v1::VmSpec& s) {
         M(s).mutable_disks(2)->mutable_volume()->set_path("/" + std::string(4095, 'p'));
       },
       ""},
      {"volume path 4097",
       [](v1::VmSpec& s) {
         M(s).mutable_disks(2)->mutable_volume()->set_path("/" + std::string(4096, 'p'));
       },
       "spec.disks[2].volume.path: \"/ppp"},
      {"ide bus", [](v1::VmSpec& s) { M(s).mutable_disks(2)->set_bus("ide"); },
       "spec.disks[2].bus: \"ide\" is not a disk bus: expected \"virtio\", \"scsi\" or \"sata\""},
      {"cache", [](v1::VmSpec& s) { M(s).mutable_disks(2)->set_cache("fast"); },
       "spec.disks[2].cache: \"fast\" is not a disk cache mode: expected \"none\", \"writeback\", "
       "\"writethrough\", \"directsync\" or \"unsafe\""},
      {"io", [](v1::VmSpec& s) { M(s).mutable_disks(2)->set_io("aio"); },
       "spec.disks[2].io: \"aio\" is not a disk I/O mode: expected \"native\", \"threads\" or "
       "\"io_uring\""},
      {"native io with the default cache",
       [](v1::VmSpec& s) { M(s).mutable_disks(1)->clear_cache(); },
       "spec.disks[1].io: \"native\" needs cache \"none\" or \"directsync\", got cache \"\""},
      {"native io with writeback",
       [](v1::VmSpec& s) { M(s).mutable_disks(1)->set_cache("writeback"); },
       "spec.disks[1].io: \"native\" needs cache \"none\" or \"directsync\", got cache "
       "\"writeback\""},
      {"native io with directsync",
       [](v1::VmSpec& s) { M(s).mutable_disks(1)->set_cache("directsync"); }, ""},
      {"serial with a space", [](v1::VmSpec& s) { M(s).mutable_disks(1)->set_serial("DATA 1"); },
       "spec.disks[1].serial: \"DATA 1\" is not a disk serial"},
      {"serial 20", [](v1::VmSpec& s) { M(s).mutable_disks(1)->set_serial(std::string(20, 'S')); },
       ""},
      {"serial 21", [](v1::VmSpec& s) { M(s).mutable_disks(1)->set_serial(std::string(21, 'S')); },
       "spec.disks[1].serial: \"SSSS"},
      {"boot order twice", [](v1::VmSpec& s) { M(s).mutable_disks(2)->set_boot_order(1); },
       "spec.disks[2].boot_order: 1 is already the boot order of disks[0]"},
      {"no root disk entry", [](v1::VmSpec& s) { M(s).mutable_disks()->DeleteSubrange(0, 1); }, ""},
  });
}

TEST(ValidateVmSpecTest, Nics) {
  RunCases({
      {"8 NICs",
       [](v1::VmSpec& s) {
         for (int i = 2; i < 8; ++i) M(s).add_nics();
       },
       ""},
      {"9 NICs",
       [](v1::VmSpec& s) {
         for (int i = 2; i < 9; ++i) M(s).add_nics();
       },
       "spec.nics: 9 NICs are too many: expected at most 8"},
      {"model", [](v1::VmSpec& s) { M(s).mutable_nics(1)->set_model("ne2k_pci"); },
       "spec.nics[1].model: \"ne2k_pci\" is not a NIC model: expected \"virtio\", \"e1000\", "
       "\"e1000e\" or \"rtl8139\""},
      {"multicast MAC", [](v1::VmSpec& s) { M(s).mutable_nics(0)->set_mac("01:00:5e:00:00:01"); },
       "spec.nics[0].mac: \"01:00:5e:00:00:01\" is not a unicast MAC address"},
      {"zero MAC", [](v1::VmSpec& s) { M(s).mutable_nics(0)->set_mac("00:00:00:00:00:00"); },
       "spec.nics[0].mac: \"00:00:00:00:00:00\" is not a unicast MAC address"},
      {"MAC with dashes", [](v1::VmSpec& s) { M(s).mutable_nics(0)->set_mac("52-54-00-12-34-56"); },
       "spec.nics[0].mac: \"52-54-00-12-34-56\""},
      {"short MAC", [](v1::VmSpec& s) { M(s).mutable_nics(0)->set_mac("52:54:00:12:34"); },
       "spec.nics[0].mac: "},
      {"MAC with a non-hex digit",
       [](v1::VmSpec& s) { M(s).mutable_nics(0)->set_mac("52:54:00:12:34:5g"); },
       "spec.nics[0].mac: "},
      {"mixed-case MAC", [](v1::VmSpec& s) { M(s).mutable_nics(0)->set_mac("02:54:00:AB:cd:EF"); },
       ""},
      {"17 queues", [](v1::VmSpec& s) { M(s).mutable_nics(0)->set_queues(17); },
       "spec.nics[0].queues: 17 queues are too many: expected at most 16"},
      {"16 queues on the default model",
       [](v1::VmSpec& s) {
         M(s).mutable_nics(0)->clear_model();
         M(s).mutable_nics(0)->set_queues(16);
       },
       ""},
      {"queues on e1000", [](v1::VmSpec& s) { M(s).mutable_nics(1)->set_queues(2); },
       "spec.nics[1].queues: 2 queues need model \"virtio\", got model \"e1000\""},
      {"one queue on e1000", [](v1::VmSpec& s) { M(s).mutable_nics(1)->set_queues(1); }, ""},
  });
}

TEST(ValidateVmSpecTest, Devices) {
  RunCases({
      {"watchdog model",
       [](v1::VmSpec& s) { M(s).mutable_devices()->mutable_watchdog()->set_model("ib700"); },
       "spec.devices.watchdog.model: \"ib700\" is not a watchdog model: expected \"i6300esb\" or "
       "\"itco\""},
      {"itco on pc",
       [](v1::VmSpec& s) {
         M(s).mutable_firmware()->set_secure_boot(false);
         M(s).set_machine_type("pc");
       },
       "spec.devices.watchdog.model: \"itco\" needs a q35 machine type, got machine_type \"pc\""},
      {"i6300esb on pc",
       [](v1::VmSpec& s) {
         NotQ35(s);
         M(s).set_machine_type("pc");
       },
       ""},
      {"watchdog action",
       [](v1::VmSpec& s) { M(s).mutable_devices()->mutable_watchdog()->set_action("explode"); },
       "spec.devices.watchdog.action: \"explode\" is not a watchdog action"},
      {"watchdog action inject-nmi",
       [](v1::VmSpec& s) { M(s).mutable_devices()->mutable_watchdog()->set_action("inject-nmi"); },
       ""},
      {"watchdog action without a model",
       [](v1::VmSpec& s) { M(s).mutable_devices()->mutable_watchdog()->clear_model(); },
       "spec.devices.watchdog.action: \"poweroff\" is set without watchdog.model"},
      {"TPM version",
       [](v1::VmSpec& s) { M(s).mutable_devices()->mutable_tpm()->set_version("3"); },
       "spec.devices.tpm.version: \"3\" is not a TPM version: expected \"2.0\" or \"1.2\""},
      {"TPM model",
       [](v1::VmSpec& s) { M(s).mutable_devices()->mutable_tpm()->set_model("tpm-spapr"); },
       "spec.devices.tpm.model: \"tpm-spapr\" is not a TPM model"},
      {"TPM model without a version",
       [](v1::VmSpec& s) { M(s).mutable_devices()->mutable_tpm()->clear_version(); },
       "spec.devices.tpm.model: \"tpm-crb\" is set without tpm.version"},
      {"tpm-crb on 1.2",
       [](v1::VmSpec& s) { M(s).mutable_devices()->mutable_tpm()->set_version("1.2"); },
       "spec.devices.tpm.model: \"tpm-crb\" needs tpm.version \"2.0\", got \"1.2\""},
      {"tpm-tis on 1.2",
       [](v1::VmSpec& s) {
         M(s).mutable_devices()->mutable_tpm()->set_version("1.2");
         M(s).mutable_devices()->mutable_tpm()->set_model("tpm-tis");
       },
       ""},
      {"TPM version alone",
       [](v1::VmSpec& s) { M(s).mutable_devices()->mutable_tpm()->clear_model(); }, ""},
      {"4 serial ports", [](v1::VmSpec& s) { M(s).mutable_devices()->set_extra_serial_ports(4); },
       "spec.devices.extra_serial_ports: 4 ports are too many: expected at most 3"},
  });
}

TEST(ValidateVmSpecTest, CloudInit) {
  auto ci = [](v1::VmSpec& s) { return M(s).mutable_cloud_init(); };
  RunCases({
      {"user data 64 KiB",
       [&](v1::VmSpec& s) { ci(s)->set_user_data("#!" + std::string(65534, 'x')); }, ""},
      {"user data over 64 KiB",
       [&](v1::VmSpec& s) { ci(s)->set_user_data("#!" + std::string(65535, 'x')); },
       "spec.cloud_init.user_data: 65537 bytes are too many: expected at most 65536"},
      {"meta data over 64 KiB",
       [&](v1::VmSpec& s) { ci(s)->set_meta_data(std::string(65537, 'x')); },
       "spec.cloud_init.meta_data: 65537 bytes are too many"},
      {"network config over 64 KiB",
       [&](v1::VmSpec& s) { ci(s)->set_network_config(std::string(65537, 'x')); },
       "spec.cloud_init.network_config: 65537 bytes are too many"},
      {"user data with a NUL",
       [&](v1::VmSpec& s) { ci(s)->set_user_data(std::string("#!/bin/sh\n\0", 11)); },
       "spec.cloud_init.user_data: byte 10 is NUL"},
      {"meta data overlong UTF-8", [&](v1::VmSpec& s) { ci(s)->set_meta_data("a: \xc0\xaf"); },
       "spec.cloud_init.meta_data: byte 3 is not valid UTF-8"},
      {"meta data surrogate", [&](v1::VmSpec& s) { ci(s)->set_meta_data("a: \xed\xa0\x80"); },
       "spec.cloud_init.meta_data: byte 3 is not valid UTF-8"},
      {"meta data truncated sequence", [&](v1::VmSpec& s) { ci(s)->set_meta_data("a: \xe2\x82"); },
       "spec.cloud_init.meta_data: byte 3 is not valid UTF-8"},
      {"UTF-8 text",
       [&](v1::VmSpec& s) {
         ci(s)->set_meta_data("name: caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\n");
       },
       ""},
      {"user data without a header",
       [&](v1::VmSpec& s) { ci(s)->set_user_data("packages: [nginx]\n"); },
       "spec.cloud_init.user_data: starts with \"packages: [nginx]\\n\": expected a cloud-init "
       "header"},
      {"user data script", [&](v1::VmSpec& s) { ci(s)->set_user_data("#!/bin/sh\necho hi\n"); },
       ""},
      {"user data MIME",
       [&](v1::VmSpec& s) { ci(s)->set_user_data("Content-Type: multipart/mixed\n"); }, ""},
      {"user data include",
       [&](v1::VmSpec& s) { ci(s)->set_user_data("#include\nhttp://example.com/a\n"); }, ""},
      {"network config without a version",
       [&](v1::VmSpec& s) { ci(s)->set_network_config("ethernets: {}\n"); },
       "spec.cloud_init.network_config: is not cloud-init network config: expected YAML with a "
       "top-level \"version: 1\" or \"version: 2\""},
      {"network config version 3",
       [&](v1::VmSpec& s) { ci(s)->set_network_config("version: 3\n"); },
       "spec.cloud_init.network_config: is not cloud-init network config"},
      {"network config not YAML",
       [&](v1::VmSpec& s) { ci(s)->set_network_config("version: [1\n"); },
       "spec.cloud_init.network_config: is not cloud-init network config (line "},
      {"network config a list", [&](v1::VmSpec& s) { ci(s)->set_network_config("- version: 1\n"); },
       "spec.cloud_init.network_config: is not cloud-init network config"},
      {"network config under network:",
       [&](v1::VmSpec& s) { ci(s)->set_network_config("network:\n  version: 1\n  config: []\n"); },
       ""},
      {"32 keys",
       [&](v1::VmSpec& s) {
         for (int i = 1; i < 32; ++i) ci(s)->add_ssh_authorized_keys("ecdsa-sha2-nistp256 AAAA");
       },
       ""},
      {"33 keys",
       [&](v1::VmSpec& s) {
         for (int i = 1; i < 33; ++i) ci(s)->add_ssh_authorized_keys("ssh-rsa AAAA");
       },
       "spec.cloud_init.ssh_authorized_keys: 33 keys are too many: expected at most 32"},
      {"a key that is not one", [&](v1::VmSpec& s) { ci(s)->add_ssh_authorized_keys("rsa AAAA"); },
       "spec.cloud_init.ssh_authorized_keys[1]: \"rsa AAAA\" is not an SSH public key"},
      {"an empty key", [&](v1::VmSpec& s) { ci(s)->add_ssh_authorized_keys(""); },
       "spec.cloud_init.ssh_authorized_keys[1]: \"\" is not an SSH public key"},
      {"two keys in one",
       [&](v1::VmSpec& s) { ci(s)->add_ssh_authorized_keys("ssh-rsa AAAA\nssh-rsa BBBB"); },
       "spec.cloud_init.ssh_authorized_keys[1]: \"ssh-rsa AAAA\\nssh-rsa BBBB\" is not an SSH "
       "public key"},
      {"a security key",
       [&](v1::VmSpec& s) { ci(s)->add_ssh_authorized_keys("sk-ssh-ed25519@openssh.com AAAA"); },
       ""},
      {"a key of 8 KiB",
       [&](v1::VmSpec& s) { ci(s)->add_ssh_authorized_keys("ssh-" + std::string(8188, 'k')); }, ""},
      {"a key over 8 KiB",
       [&](v1::VmSpec& s) { ci(s)->add_ssh_authorized_keys("ssh-" + std::string(8189, 'k')); },
       "spec.cloud_init.ssh_authorized_keys[1]: \"ssh-kkkk"},
  });
}

TEST(ValidateVmSpecTest, Lifecycle) {
  RunCases({
      {"restart", [](v1::VmSpec& s) { M(s).mutable_lifecycle()->set_on_reboot("restart"); }, ""},
      {"halt", [](v1::VmSpec& s) { M(s).mutable_lifecycle()->set_on_reboot("halt"); },
       "spec.lifecycle.on_reboot: \"halt\" is not a reboot action: expected \"restart\" or "
       "\"poweroff\""},
  });
}

TEST(ValidateMachineTest, PrefixesPaths) {
  v1::Machine machine;
  machine.mutable_cpu()->set_count(600);
  EXPECT_THAT(Message(ValidateMachine(machine, "")), StartsWith("cpu.count: 600 vCPUs"));
  EXPECT_THAT(Message(ValidateMachine(machine, "vm_spec.spec")),
              StartsWith("vm_spec.spec.cpu.count: 600 vCPUs"));
  machine.mutable_cpu()->set_count(2);
  EXPECT_TRUE(ValidateMachine(machine, "spec").ok());
  EXPECT_TRUE(ValidateMachine(v1::Machine(), "spec").ok());
}

TEST(ValidateObjectKeyTest, NamesTheFields) {
  EXPECT_TRUE(ValidateObjectKey("kube-system", "coredns.example-1").ok());
  EXPECT_THAT(Message(ValidateObjectKey("kube_system", "a")),
              StartsWith("namespace: \"kube_system\" is not a DNS-1123 label"));
  EXPECT_THAT(Message(ValidateObjectKey("a", "")),
              StartsWith("name: \"\" is not a DNS-1123 subdomain"));
  EXPECT_EQ(ValidateObjectKey("a", "B").code(), absl::StatusCode::kInvalidArgument);
}

TEST(ValidateVmSpecTest, QuotesUnprintableValuesAndCutsLongOnes) {
  v1::VmSpec spec = ValidSpec();
  M(spec).mutable_disks(2)->set_bus(std::string("\x1b[31m") + std::string(100, 'b'));
  const std::string message = Message(ValidateVmSpec(spec));
  EXPECT_THAT(message, StartsWith("spec.disks[2].bus: \"\\x1b[31mbbb"));
  EXPECT_THAT(message, HasSubstr("...\" is not a disk bus"));
  EXPECT_LT(message.size(), 200u);
}

}  // namespace
}  // namespace vmlet::vmspec
