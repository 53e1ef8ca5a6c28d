#include "vmspec/validate.h"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <exception>
#include <initializer_list>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "absl/strings/escaping.h"
#include "annotations/annotations.h"
#include "base/status.h"
#include "base/str_util.h"

namespace vmlet::vmspec {
namespace {

constexpr uint32_t kMaxVcpus = 512;
constexpr int kMaxCpu = 1023;  // The largest CPU number of a CPU list.
constexpr uint64_t kKi = 1024, kMi = kKi << 10, kGi = kMi << 10, kTi = kGi << 10;
constexpr std::string_view kQ35Expected = "expected \"q35\" or \"pc-q35-<version>\"";

// Facts one part of a machine holds that checks of another part need.
struct Facts {
  uint32_t vcpus = 0;           // 0: decided later, from the pod.
  uint64_t memory_bytes = 0;    // 0: decided later, from the pod.
  uint64_t hugepage_bytes = 0;  // 0: no hugepages.
  bool q35 = false;
};

std::string Join(std::string_view path, std::string_view name) {
  return path.empty() ? std::string(name) : StrCat(path, ".", name);
}

std::string Item(std::string_view path, std::string_view name, int index) {
  return StrCat(Join(path, name), "[", index, "]");
}

// `value` quoted for a message: C escapes, at most 64 bytes of it.
std::string Q(std::string_view value) {
  const bool cut = value.size() > 64;
  const std::string escaped =
      absl::CHexEscape(absl::string_view(value.data(), cut ? 64 : value.size()));
  return StrCat("\"", escaped, cut ? "...\"" : "\"");
}

absl::Status Invalid(std::string_view path, std::string_view what) {
  return absl::InvalidArgumentError(StrCat(path, ": ", what));
}

// "\"a\", \"b\" or \"c\"".
std::string Alternatives(std::initializer_list<std::string_view> allowed) {
  std::string text;
  size_t i = 0;
  for (std::string_view value : allowed) {
    StrAppend(&text, i == 0 ? "" : (i + 1 == allowed.size() ? " or " : ", "), "\"", value, "\"");
    ++i;
  }
  return text;
}

// `value` is empty or one of `allowed`; `what` names the set ("a disk bus").
absl::Status CheckOneOf(std::string_view path, std::string_view value, std::string_view what,
                        std::initializer_list<std::string_view> allowed) {
  if (value.empty() || std::find(allowed.begin(), allowed.end(), value) != allowed.end()) {
    return absl::OkStatus();
  }
  return Invalid(path, StrCat(Q(value), " is not ", what, ": expected ", Alternatives(allowed)));
}

bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool IsAlnum(char c) { return IsLowerAlnum(c) || (c >= 'A' && c <= 'Z'); }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsHex(char c) { return IsDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
bool IsPrintableAscii(char c) { return c >= 0x20 && c < 0x7f; }

// 1 to `max` characters, each `ok`.
template <typename Pred>
bool AllOf(std::string_view text, size_t max, Pred ok) {
  return !text.empty() && text.size() <= max && std::all_of(text.begin(), text.end(), ok);
}

// [a-z0-9]([-a-z0-9]*[a-z0-9])?, at most `max`.
bool IsDnsLabel(std::string_view text, size_t max) {
  return AllOf(text, max, [](char c) { return IsLowerAlnum(c) || c == '-'; }) &&
         text.front() != '-' && text.back() != '-';
}

bool IsDnsSubdomain(std::string_view text) {
  if (text.empty() || text.size() > 253) return false;
  size_t start = 0;
  while (true) {
    const size_t dot = text.find('.', start);
    if (!IsDnsLabel(text.substr(start, dot - start), 253)) return false;
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

// A label name or value: [A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?, at most 63.
bool IsQualifiedNamePart(std::string_view text) {
  return AllOf(text, 63, [](char c) { return IsAlnum(c) || c == '-' || c == '_' || c == '.'; }) &&
         IsAlnum(text.front()) && IsAlnum(text.back());
}

// A CPU list ("0-3,6") as sorted, unique CPU numbers; "" is invalid.
absl::StatusOr<std::vector<int>> ParseCpus(std::string_view path, std::string_view text) {
  auto invalid = [&](std::string_view why) {
    return Invalid(path, StrCat(Q(text), " is not a CPU list (", why,
                                "): expected CPU numbers 0 to 1023 and ascending ranges, such as "
                                "\"0-3,6\""));
  };
  if (text.empty()) return invalid("it is empty");
  if (text.size() > 4096) return invalid("it is too long");
  auto number = [&](std::string_view digits, int* cpu) {
    if (!AllOf(digits, 4, IsDigit)) return false;
    std::from_chars(digits.data(), digits.data() + digits.size(), *cpu);
    return *cpu <= kMaxCpu;
  };
  std::vector<int> cpus;
  size_t start = 0;
  while (true) {
    const size_t comma = text.find(',', start);
    const std::string_view item = text.substr(start, comma - start);
    const size_t dash = item.find('-');
    int first = 0, last = 0;
    if (!number(item.substr(0, dash), &first) ||
        (dash != std::string_view::npos && !number(item.substr(dash + 1), &last))) {
      return invalid(StrCat("bad item ", Q(item)));
    }
    if (dash == std::string_view::npos) last = first;
    if (last < first) return invalid(StrCat("range ", Q(item), " goes backwards"));
    for (int cpu = first; cpu <= last; ++cpu) cpus.push_back(cpu);
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  std::sort(cpus.begin(), cpus.end());
  cpus.erase(std::unique(cpus.begin(), cpus.end()), cpus.end());
  return cpus;
}

// A quantity of bytes from `min` to `max` (written `range`, "16Mi to 16Ti").
absl::StatusOr<uint64_t> Quantity(std::string_view path, std::string_view value, uint64_t min,
                                  uint64_t max, std::string_view range) {
  absl::StatusOr<uint64_t> bytes = annotations::ParseByteQuantity(value);
  if (!bytes.ok() || *bytes < min || *bytes > max) {
    return Invalid(path, StrCat(Q(value), " is not a quantity of bytes from ", range,
                                ": expected a number with an optional suffix (Ki, Mi, Gi, Ti), "
                                "such as \"4Gi\""));
  }
  return *bytes;
}

bool IsMachineVersion(std::string_view version) {
  if (version.empty() || version.size() > 32 || version.front() == '.' || version.back() == '.' ||
      version.find("..") != std::string_view::npos) {
    return false;
  }
  return std::all_of(version.begin(), version.end(), [](char c) { return IsDigit(c) || c == '.'; });
}

absl::Status CheckMachineType(std::string_view type, std::string_view path, Facts& facts) {
  facts.q35 = type == "q35" || type.starts_with("pc-q35-");
  if (type.empty() || type == "pc" || type == "q35" ||
      (type.starts_with("pc-q35-") && IsMachineVersion(type.substr(7))) ||
      (type.starts_with("pc-i440fx-") && IsMachineVersion(type.substr(10)))) {
    return absl::OkStatus();
  }
  return Invalid(path, StrCat(Q(type),
                              " is not a QEMU machine type: expected \"pc\", \"q35\", "
                              "\"pc-i440fx-<version>\" or \"pc-q35-<version>\""));
}

absl::Status CheckCpu(const v1::Cpu& cpu, const std::string& path, Facts& facts) {
  if (cpu.count() > kMaxVcpus) {
    return Invalid(Join(path, "count"),
                   StrCat(cpu.count(), " vCPUs are too many: expected at most ", kMaxVcpus));
  }
  facts.vcpus = cpu.count();
  const v1::CpuTopology& topology = cpu.topology();
  if (topology.sockets() != 0 || topology.cores() != 0 || topology.threads() != 0) {
    const std::string topology_path = Join(path, "topology");
    if (topology.sockets() == 0 || topology.cores() == 0 || topology.threads() == 0) {
      return Invalid(topology_path, StrCat("sockets = ", topology.sockets(), ", cores = ",
                                           topology.cores(), ", threads = ", topology.threads(),
                                           ": expected all three at least 1 when any is set"));
    }
    // Capping the first two factors' product keeps the whole exact up to
    // kMaxVcpus and far from overflowing.
    const uint64_t product =
        std::min<uint64_t>(uint64_t{topology.sockets()} * topology.cores(), kMaxVcpus + 1) *
        topology.threads();
    if (product > kMaxVcpus) {
      return Invalid(topology_path,
                     StrCat("sockets = ", topology.sockets(), ", cores = ", topology.cores(),
                            ", threads = ", topology.threads(), " make more than ", kMaxVcpus,
                            " vCPUs: expected sockets*cores*threads at most ", kMaxVcpus));
    }
    if (cpu.count() != 0 && product != cpu.count()) {
      return Invalid(topology_path, StrCat("sockets*cores*threads = ", product,
                                           ", but cpu.count = ", cpu.count()));
    }
    facts.vcpus = static_cast<uint32_t>(product);
  }
  VMLET_RETURN_IF_ERROR(CheckOneOf(Join(path, "mode"), cpu.mode(), "a CPU mode",
                                   {"host-passthrough", "host-model", "custom"}));
  const std::string model_path = Join(path, "model");
  if (cpu.mode() == "custom") {
    if (!AllOf(cpu.model(), 64,
               [](char c) { return IsAlnum(c) || c == '.' || c == '_' || c == '-'; })) {
      return Invalid(
          model_path,
          StrCat(Q(cpu.model()),
                 " is not a QEMU CPU model, which cpu.mode \"custom\" needs: expected "
                 "1 to 64 letters, digits, '.', '_' and '-', such as \"Skylake-Server\""));
    }
  } else if (!cpu.model().empty()) {
    return Invalid(model_path, StrCat(Q(cpu.model()), " is set, but cpu.mode is ", Q(cpu.mode()),
                                      ": a model needs mode \"custom\""));
  }
  std::map<std::string_view, int> features;
  for (int i = 0; i < cpu.features_size(); ++i) {
    const v1::CpuFeature& feature = cpu.features(i);
    const std::string feature_path = Item(path, "features", i);
    if (!AllOf(feature.name(), 64,
               [](char c) { return IsLowerAlnum(c) || c == '_' || c == '.' || c == '-'; })) {
      return Invalid(Join(feature_path, "name"),
                     StrCat(Q(feature.name()),
                            " is not a CPU flag: expected 1 to 64 lower-case letters, digits, "
                            "'_', '.' and '-', such as \"avx2\""));
    }
    if (auto [it, inserted] = features.emplace(feature.name(), i); !inserted) {
      return Invalid(Join(feature_path, "name"),
                     StrCat(Q(feature.name()), " is already in features[", it->second, "]"));
    }
    VMLET_RETURN_IF_ERROR(CheckOneOf(Join(feature_path, "policy"), feature.policy(),
                                     "a CPU feature policy",
                                     {"force", "require", "optional", "disable", "forbid"}));
  }
  std::map<uint32_t, int> pinned;
  for (int i = 0; i < cpu.pins_size(); ++i) {
    const v1::VcpuPin& pin = cpu.pins(i);
    const std::string pin_path = Item(path, "pins", i);
    const uint32_t limit = facts.vcpus != 0 ? facts.vcpus : kMaxVcpus;
    if (pin.vcpu() >= limit) {
      return Invalid(Join(pin_path, "vcpu"),
                     StrCat(pin.vcpu(), " is not a vCPU of the VM: expected 0 to ", limit - 1));
    }
    if (auto [it, inserted] = pinned.emplace(pin.vcpu(), i); !inserted) {
      return Invalid(Join(pin_path, "vcpu"),
                     StrCat(pin.vcpu(), " is already pinned by pins[", it->second, "]"));
    }
    VMLET_RETURN_IF_ERROR(ParseCpus(Join(pin_path, "cpuset"), pin.cpuset()).status());
  }
  if (!cpu.emulator_cpuset().empty()) {
    VMLET_RETURN_IF_ERROR(ParseCpus(Join(path, "emulator_cpuset"), cpu.emulator_cpuset()).status());
  }
  return absl::OkStatus();
}

absl::Status CheckMemory(const v1::Memory& memory, const std::string& path, Facts& facts) {
  if (!memory.size().empty()) {
    VMLET_ASSIGN_OR_RETURN(facts.memory_bytes, Quantity(Join(path, "size"), memory.size(), 16 * kMi,
                                                        16 * kTi, "16Mi to 16Ti"));
  }
  if (!memory.hugepage_size().empty()) {
    absl::StatusOr<uint64_t> page = annotations::ParseByteQuantity(memory.hugepage_size());
    if (!page.ok() || (*page != 2 * kMi && *page != kGi)) {
      return Invalid(Join(path, "hugepage_size"),
                     StrCat(Q(memory.hugepage_size()),
                            " is not a hugepage size: expected \"2Mi\" or \"1Gi\""));
    }
    facts.hugepage_bytes = *page;
    if (facts.memory_bytes % facts.hugepage_bytes != 0) {
      return Invalid(Join(path, "size"),
                     StrCat(Q(memory.size()), " is not a multiple of memory.hugepage_size ",
                            Q(memory.hugepage_size())));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckNuma(const v1::Machine& machine, const std::string& path, const Facts& facts) {
  if (machine.numa_size() > 8) {
    return Invalid(path,
                   StrCat(machine.numa_size(), " NUMA cells are too many: expected at most 8"));
  }
  std::vector<int> cell_of(kMaxCpu + 1, -1);
  uint64_t total = 0;
  for (int i = 0; i < machine.numa_size(); ++i) {
    const v1::NumaCell& cell = machine.numa(i);
    const std::string cell_path = StrCat(path, "[", i, "]");
    const std::string cpus_path = Join(cell_path, "cpus");
    VMLET_ASSIGN_OR_RETURN(std::vector<int> cpus, ParseCpus(cpus_path, cell.cpus()));
    for (int vcpu : cpus) {
      if (facts.vcpus != 0 && static_cast<uint32_t>(vcpu) >= facts.vcpus) {
        return Invalid(cpus_path, StrCat("vCPU ", vcpu, " is not a vCPU of the VM: expected 0 to ",
                                         facts.vcpus - 1));
      }
      if (cell_of[vcpu] != -1) {
        return Invalid(cpus_path,
                       StrCat("vCPU ", vcpu, " is already in numa[", cell_of[vcpu], "]"));
      }
      cell_of[vcpu] = i;
    }
    const std::string memory_path = Join(cell_path, "memory");
    VMLET_ASSIGN_OR_RETURN(uint64_t bytes,
                           Quantity(memory_path, cell.memory(), kMi, 16 * kTi, "1Mi to 16Ti"));
    if (facts.hugepage_bytes != 0 && bytes % facts.hugepage_bytes != 0) {
      return Invalid(memory_path,
                     StrCat(Q(cell.memory()), " is not a multiple of memory.hugepage_size (",
                            facts.hugepage_bytes, " bytes)"));
    }
    total += bytes;
  }
  if (machine.numa_size() == 0) return absl::OkStatus();
  for (uint32_t vcpu = 0; vcpu < facts.vcpus; ++vcpu) {
    if (cell_of[vcpu] == -1) {
      return Invalid(path, StrCat("vCPU ", vcpu, " is in no cell: the cells must hold vCPUs 0 to ",
                                  facts.vcpus - 1, " once each"));
    }
  }
  if (facts.memory_bytes != 0 && total != facts.memory_bytes) {
    return Invalid(path,
                   StrCat("the cells' memory adds up to ", total, " bytes, but memory.size is ",
                          Q(machine.memory().size()), " (", facts.memory_bytes, " bytes)"));
  }
  return absl::OkStatus();
}

absl::Status CheckFirmware(const v1::Machine& machine, const std::string& path,
                           const Facts& facts) {
  const v1::Firmware& firmware = machine.firmware();
  const std::string firmware_path = Join(path, "firmware");
  VMLET_RETURN_IF_ERROR(
      CheckOneOf(Join(firmware_path, "type"), firmware.type(), "a firmware", {"bios", "uefi"}));
  if (firmware.secure_boot()) {
    const std::string secure_path = Join(firmware_path, "secure_boot");
    if (firmware.type() != "uefi") {
      return Invalid(secure_path,
                     StrCat("true needs firmware.type \"uefi\", got ", Q(firmware.type())));
    }
    if (!facts.q35) {
      return Invalid(secure_path, StrCat("true needs a q35 machine type, got machine_type ",
                                         Q(machine.machine_type()), ": ", kQ35Expected));
    }
    if (machine.features().has_smm() && !machine.features().smm()) {
      return Invalid(Join(path, "features.smm"), "false, but firmware.secure_boot needs SMM");
    }
  }
  const v1::Smbios& smbios = firmware.smbios();
  const std::pair<std::string_view, const std::string*> strings[] = {
      {"manufacturer", &smbios.manufacturer()},
      {"product", &smbios.product()},
      {"version", &smbios.version()},
      {"serial", &smbios.serial()},
      {"sku", &smbios.sku()},
      {"family", &smbios.family()},
  };
  for (const auto& [name, value] : strings) {
    if (!value->empty() && !AllOf(*value, 64, IsPrintableAscii)) {
      return Invalid(Join(firmware_path, StrCat("smbios.", name)),
                     StrCat(Q(*value), " is not printable ASCII of at most 64 characters"));
    }
  }
  const std::string& uuid = firmware.uuid();
  if (!uuid.empty()) {
    bool ok = uuid.size() == 36;
    for (size_t i = 0; ok && i < uuid.size(); ++i) {
      ok = (i == 8 || i == 13 || i == 18 || i == 23) ? uuid[i] == '-' : IsHex(uuid[i]);
    }
    if (!ok) {
      return Invalid(Join(firmware_path, "uuid"),
                     StrCat(Q(uuid),
                            " is not a UUID: expected 8-4-4-4-12 hexadecimal digits, "
                            "such as \"2f6d1c3e-8a1b-4c5d-9e7f-0a1b2c3d4e5f\""));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckClock(const v1::Clock& clock, const std::string& path) {
  VMLET_RETURN_IF_ERROR(
      CheckOneOf(Join(path, "offset"), clock.offset(), "a clock offset", {"utc", "localtime"}));
  std::map<std::string_view, int> timers;
  for (int i = 0; i < clock.timers_size(); ++i) {
    const v1::Timer& timer = clock.timers(i);
    const std::string timer_path = Item(path, "timers", i);
    const std::string name_path = Join(timer_path, "name");
    if (timer.name().empty()) {
      return Invalid(name_path, "missing: expected a timer name such as \"rtc\"");
    }
    VMLET_RETURN_IF_ERROR(CheckOneOf(name_path, timer.name(), "a timer",
                                     {"rtc", "pit", "hpet", "kvmclock", "hypervclock", "tsc"}));
    if (auto [it, inserted] = timers.emplace(timer.name(), i); !inserted) {
      return Invalid(name_path, StrCat(Q(timer.name()), " is already in timers[", it->second, "]"));
    }
    VMLET_RETURN_IF_ERROR(CheckOneOf(Join(timer_path, "tick_policy"), timer.tick_policy(),
                                     "a tick policy", {"delay", "catchup", "merge", "discard"}));
  }
  return absl::OkStatus();
}

absl::Status CheckVolumePath(std::string_view path, std::string_view value) {
  if (value.empty()) {
    return Invalid(path, "missing: expected the container path of a device or mount");
  }
  if (value.size() > 4096 || value.front() != '/' || value.find("//") != std::string_view::npos ||
      value.find('\0') != std::string_view::npos) {
    return Invalid(path, StrCat(Q(value),
                                " is not a clean absolute path of at most 4096 bytes: expected a "
                                "container path such as \"/dev/xvdb\" or \"/data/disk.img\""));
  }
  for (size_t start = 1; start <= value.size();) {
    const size_t slash = std::min(value.find('/', start), value.size());
    if (value.substr(start, slash - start) == "..") {
      return Invalid(path, StrCat(Q(value),
                                  " has a \"..\" component: expected a path inside the "
                                  "container such as \"/data/disk.img\""));
    }
    start = slash + 1;
  }
  return absl::OkStatus();
}

absl::Status CheckDisks(const v1::Machine& machine, const std::string& path) {
  if (machine.disks_size() > 16) {
    return Invalid(path, StrCat(machine.disks_size(), " disks are too many: expected at most 16"));
  }
  std::map<std::string_view, int> names;
  std::map<uint32_t, int> boot_orders;
  int root = -1;
  for (int i = 0; i < machine.disks_size(); ++i) {
    const v1::Disk& disk = machine.disks(i);
    const std::string disk_path = StrCat(path, "[", i, "]");
    const std::string name_path = Join(disk_path, "name");
    if (!AllOf(disk.name(), 32, [](char c) { return IsLowerAlnum(c) || c == '-'; })) {
      return Invalid(name_path, StrCat(Q(disk.name()),
                                       " is not a disk name: expected 1 to 32 lower-case letters, "
                                       "digits and '-'"));
    }
    if (auto [it, inserted] = names.emplace(disk.name(), i); !inserted) {
      return Invalid(name_path,
                     StrCat(Q(disk.name()), " is already the name of disks[", it->second, "]"));
    }
    switch (disk.source_case()) {
      case v1::Disk::SOURCE_NOT_SET:
        return Invalid(disk_path, "no source: expected one of root, empty or volume");
      case v1::Disk::kRoot:
        if (root != -1) {
          return Invalid(Join(disk_path, "root"),
                         StrCat("a second root disk: disks[", root, "] is the root disk"));
        }
        root = i;
        if (!disk.root().size().empty()) {
          VMLET_RETURN_IF_ERROR(Quantity(Join(disk_path, "root.size"), disk.root().size(), 1,
                                         64 * kTi, "1 byte to 64Ti")
                                    .status());
        }
        break;
      case v1::Disk::kEmpty:
        VMLET_RETURN_IF_ERROR(Quantity(Join(disk_path, "empty.size"), disk.empty().size(), kMi,
                                       64 * kTi, "1Mi to 64Ti")
                                  .status());
        break;
      case v1::Disk::kVolume:
        VMLET_RETURN_IF_ERROR(
            CheckVolumePath(Join(disk_path, "volume.path"), disk.volume().path()));
        break;
    }
    VMLET_RETURN_IF_ERROR(
        CheckOneOf(Join(disk_path, "bus"), disk.bus(), "a disk bus", {"virtio", "scsi", "sata"}));
    VMLET_RETURN_IF_ERROR(
        CheckOneOf(Join(disk_path, "cache"), disk.cache(), "a disk cache mode",
                   {"none", "writeback", "writethrough", "directsync", "unsafe"}));
    VMLET_RETURN_IF_ERROR(CheckOneOf(Join(disk_path, "io"), disk.io(), "a disk I/O mode",
                                     {"native", "threads", "io_uring"}));
    if (disk.io() == "native" && disk.cache() != "none" && disk.cache() != "directsync") {
      return Invalid(
          Join(disk_path, "io"),
          StrCat("\"native\" needs cache \"none\" or \"directsync\", got cache ", Q(disk.cache())));
    }
    if (!disk.serial().empty() &&
        !AllOf(disk.serial(), 20, [](char c) { return IsPrintableAscii(c) && c != ' '; })) {
      return Invalid(Join(disk_path, "serial"),
                     StrCat(Q(disk.serial()),
                            " is not a disk serial: expected at most 20 "
                            "printable ASCII characters without spaces"));
    }
    if (disk.boot_order() != 0) {
      if (auto [it, inserted] = boot_orders.emplace(disk.boot_order(), i); !inserted) {
        return Invalid(
            Join(disk_path, "boot_order"),
            StrCat(disk.boot_order(), " is already the boot order of disks[", it->second, "]"));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status CheckNics(const v1::Machine& machine, const std::string& path) {
  if (machine.nics_size() > 8) {
    return Invalid(path, StrCat(machine.nics_size(), " NICs are too many: expected at most 8"));
  }
  for (int i = 0; i < machine.nics_size(); ++i) {
    const v1::Nic& nic = machine.nics(i);
    const std::string nic_path = StrCat(path, "[", i, "]");
    VMLET_RETURN_IF_ERROR(CheckOneOf(Join(nic_path, "model"), nic.model(), "a NIC model",
                                     {"virtio", "e1000", "e1000e", "rtl8139"}));
    const std::string& mac = nic.mac();
    if (!mac.empty()) {
      bool ok = mac.size() == 17;
      for (size_t k = 0; ok && k < mac.size(); ++k) ok = k % 3 == 2 ? mac[k] == ':' : IsHex(mac[k]);
      int first_octet = 0;
      if (ok) std::from_chars(mac.data(), mac.data() + 2, first_octet, 16);
      if (!ok || (first_octet & 1) != 0 || mac == "00:00:00:00:00:00") {
        return Invalid(Join(nic_path, "mac"),
                       StrCat(Q(mac),
                              " is not a unicast MAC address: expected six hexadecimal "
                              "octets, the first even, not all zero, such as "
                              "\"52:54:00:12:34:56\""));
      }
    }
    if (nic.queues() > 16) {
      return Invalid(Join(nic_path, "queues"),
                     StrCat(nic.queues(), " queues are too many: expected at most 16"));
    }
    if (nic.queues() > 1 && !nic.model().empty() && nic.model() != "virtio") {
      return Invalid(Join(nic_path, "queues"), StrCat(nic.queues(),
                                                      " queues need model \"virtio\", "
                                                      "got model ",
                                                      Q(nic.model())));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckDevices(const v1::Machine& machine, const std::string& path, const Facts& facts) {
  const v1::Devices& devices = machine.devices();
  const std::string watchdog_path = Join(path, "watchdog");
  const v1::Watchdog& watchdog = devices.watchdog();
  VMLET_RETURN_IF_ERROR(CheckOneOf(Join(watchdog_path, "model"), watchdog.model(),
                                   "a watchdog model", {"i6300esb", "itco"}));
  if (watchdog.model() == "itco" && !facts.q35) {
    return Invalid(Join(watchdog_path, "model"),
                   StrCat("\"itco\" needs a q35 machine type, got machine_type ",
                          Q(machine.machine_type()), ": ", kQ35Expected));
  }
  VMLET_RETURN_IF_ERROR(
      CheckOneOf(Join(watchdog_path, "action"), watchdog.action(), "a watchdog action",
                 {"reset", "poweroff", "shutdown", "pause", "none", "inject-nmi"}));
  if (!watchdog.action().empty() && watchdog.model().empty()) {
    return Invalid(Join(watchdog_path, "action"),
                   StrCat(Q(watchdog.action()),
                          " is set without watchdog.model: expected a model, \"i6300esb\" or "
                          "\"itco\""));
  }
  const std::string tpm_path = Join(path, "tpm");
  const v1::Tpm& tpm = devices.tpm();
  VMLET_RETURN_IF_ERROR(
      CheckOneOf(Join(tpm_path, "version"), tpm.version(), "a TPM version", {"2.0", "1.2"}));
  VMLET_RETURN_IF_ERROR(
      CheckOneOf(Join(tpm_path, "model"), tpm.model(), "a TPM model", {"tpm-crb", "tpm-tis"}));
  if (!tpm.model().empty() && tpm.version().empty()) {
    return Invalid(Join(tpm_path, "model"),
                   StrCat(Q(tpm.model()),
                          " is set without tpm.version: expected a version, \"2.0\" or \"1.2\""));
  }
  if (tpm.model() == "tpm-crb" && tpm.version() != "2.0") {
    return Invalid(Join(tpm_path, "model"),
                   StrCat("\"tpm-crb\" needs tpm.version \"2.0\", got ", Q(tpm.version())));
  }
  if (devices.extra_serial_ports() > 3) {
    return Invalid(Join(path, "extra_serial_ports"),
                   StrCat(devices.extra_serial_ports(), " ports are too many: expected at most 3"));
  }
  return absl::OkStatus();
}

// The `version` of cloud-init network config, at the top or under `network`;
// 0 when there is none. Throws yaml-cpp's exceptions.
int NetworkConfigVersion(const std::string& text) {
  YAML::Node root = YAML::Load(text);
  if (!root.IsMap()) return 0;
  YAML::Node version = root["version"];
  if (!version && root["network"].IsMap()) version = root["network"]["version"];
  if (!version || !version.IsScalar()) return 0;
  const std::string& value = version.Scalar();
  return value == "1" ? 1 : value == "2" ? 2 : 0;
}

absl::Status CheckCloudInit(const v1::CloudInit& cloud_init, const std::string& path) {
  const std::pair<std::string_view, const std::string*> texts[] = {
      {"user_data", &cloud_init.user_data()},
      {"meta_data", &cloud_init.meta_data()},
      {"network_config", &cloud_init.network_config()},
  };
  for (const auto& [name, text] : texts) {
    const std::string text_path = Join(path, name);
    if (text->size() > 64 * kKi) {
      return Invalid(text_path,
                     StrCat(text->size(), " bytes are too many: expected at most ", 64 * kKi));
    }
    if (size_t at = InvalidUtf8At(*text); at != std::string_view::npos) {
      return Invalid(text_path, StrCat("byte ", at, " is not valid UTF-8: expected UTF-8 text"));
    }
    if (size_t at = text->find('\0'); at != std::string::npos) {
      return Invalid(text_path, StrCat("byte ", at, " is NUL: expected text"));
    }
  }
  const std::string& user_data = cloud_init.user_data();
  if (!user_data.empty()) {
    bool known = false;
    for (std::string_view header :
         {"#cloud-config", "#!", "#include", "#cloud-boothook", "#part-handler", "Content-Type:"}) {
      known = known || std::string_view(user_data).starts_with(header);
    }
    if (!known) {
      return Invalid(Join(path, "user_data"),
                     StrCat("starts with ", Q(std::string_view(user_data).substr(0, 20)),
                            ": expected a cloud-init header, \"#cloud-config\", \"#!\", "
                            "\"#include\", \"#cloud-boothook\", \"#part-handler\" or "
                            "\"Content-Type:\""));
    }
  }
  if (!cloud_init.network_config().empty()) {
    int version = 0;
    std::string error;
    try {
      version = NetworkConfigVersion(cloud_init.network_config());
    } catch (const YAML::Exception& e) {
      error = StrCat(" (line ", e.mark.line + 1, ": ", e.msg, ")");
    } catch (const std::exception& e) {
      error = StrCat(" (", e.what(), ")");
    }
    if (version == 0) {
      return Invalid(Join(path, "network_config"),
                     StrCat("is not cloud-init network config", error,
                            ": expected YAML with a top-level \"version: 1\" or \"version: 2\""));
    }
  }
  if (cloud_init.ssh_authorized_keys_size() > 32) {
    return Invalid(
        Join(path, "ssh_authorized_keys"),
        StrCat(cloud_init.ssh_authorized_keys_size(), " keys are too many: expected at most 32"));
  }
  for (int i = 0; i < cloud_init.ssh_authorized_keys_size(); ++i) {
    const std::string_view key = cloud_init.ssh_authorized_keys(i);
    if (key.size() > 8 * kKi || key.find_first_of(std::string_view("\n\r\0", 3)) != key.npos ||
        !(key.starts_with("ssh-") || key.starts_with("ecdsa-") || key.starts_with("sk-"))) {
      return Invalid(Join(path, StrCat("ssh_authorized_keys[", i, "]")),
                     StrCat(Q(key),
                            " is not an SSH public key: expected one line of at most "
                            "8192 bytes starting with \"ssh-\", \"ecdsa-\" or \"sk-\""));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckKey(std::string_view ns, std::string_view name, std::string_view ns_path,
                      std::string_view name_path) {
  if (!IsDnsLabel(ns, 63)) {
    return Invalid(ns_path, StrCat(Q(ns),
                                   " is not a DNS-1123 label: expected 1 to 63 lower-case "
                                   "letters, digits and '-', starting and ending with a letter or "
                                   "digit"));
  }
  if (!IsDnsSubdomain(name)) {
    return Invalid(name_path,
                   StrCat(Q(name),
                          " is not a DNS-1123 subdomain: expected lower-case letters, digits, '-' "
                          "and '.', at most 253, each part starting and ending with a letter or "
                          "digit"));
  }
  return absl::OkStatus();
}

absl::Status CheckLabels(const v1::ObjectMeta& metadata) {
  if (metadata.labels_size() > 64) {
    return Invalid("metadata.labels",
                   StrCat(metadata.labels_size(), " labels are too many: expected at most 64"));
  }
  // Sorted, so that the first bad label reported is always the same one.
  const std::map<std::string_view, std::string_view> labels(metadata.labels().begin(),
                                                            metadata.labels().end());
  for (const auto& [key, value] : labels) {
    const std::string path = StrCat("metadata.labels[", Q(key), "]");
    const size_t slash = key.find('/');
    const bool key_ok =
        slash == std::string_view::npos
            ? IsQualifiedNamePart(key)
            : IsDnsSubdomain(key.substr(0, slash)) && IsQualifiedNamePart(key.substr(slash + 1));
    if (!key_ok) {
      return Invalid(path,
                     "the key is not a label key: expected an optional DNS subdomain prefix and "
                     "'/', then 1 to 63 letters, digits, '-', '_' and '.', starting and ending "
                     "with a letter or digit (at most 317 in all)");
    }
    if (!value.empty() && !IsQualifiedNamePart(value)) {
      return Invalid(path, StrCat(Q(value),
                                  " is not a label value: expected at most 63 letters, digits, "
                                  "'-', '_' and '.', starting and ending with a letter or digit"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

size_t InvalidUtf8At(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    const auto byte = [&](size_t at) { return static_cast<unsigned char>(text[at]); };
    const unsigned char lead = byte(i);
    size_t length;
    uint32_t min, code;
    if (lead < 0x80) {
      ++i;
      continue;
    } else if ((lead & 0xe0) == 0xc0) {
      length = 2, min = 0x80, code = lead & 0x1f;
    } else if ((lead & 0xf0) == 0xe0) {
      length = 3, min = 0x800, code = lead & 0x0f;
    } else if ((lead & 0xf8) == 0xf0) {
      length = 4, min = 0x10000, code = lead & 0x07;
    } else {
      return i;
    }
    if (i + length > text.size()) return i;
    for (size_t k = 1; k < length; ++k) {
      if ((byte(i + k) & 0xc0) != 0x80) return i;
      code = (code << 6) | (byte(i + k) & 0x3f);
    }
    if (code < min || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) return i;
    i += length;
  }
  return std::string_view::npos;
}

absl::Status ValidateObjectKey(std::string_view ns, std::string_view name) {
  return CheckKey(ns, name, "namespace", "name");
}

absl::Status ValidateMachine(const v1::Machine& machine, std::string_view path) {
  Facts facts;
  VMLET_RETURN_IF_ERROR(
      CheckMachineType(machine.machine_type(), Join(path, "machine_type"), facts));
  VMLET_RETURN_IF_ERROR(CheckCpu(machine.cpu(), Join(path, "cpu"), facts));
  VMLET_RETURN_IF_ERROR(CheckMemory(machine.memory(), Join(path, "memory"), facts));
  VMLET_RETURN_IF_ERROR(CheckNuma(machine, Join(path, "numa"), facts));
  VMLET_RETURN_IF_ERROR(CheckFirmware(machine, std::string(path), facts));
  const uint32_t spinlocks = machine.features().hyperv().spinlocks();
  if (spinlocks != 0 && spinlocks < 4095) {
    return Invalid(
        Join(path, "features.hyperv.spinlocks"),
        StrCat(spinlocks, " retries are too few: expected 0 (off) or 4095 to 4294967295"));
  }
  VMLET_RETURN_IF_ERROR(CheckClock(machine.clock(), Join(path, "clock")));
  VMLET_RETURN_IF_ERROR(CheckDisks(machine, Join(path, "disks")));
  VMLET_RETURN_IF_ERROR(CheckNics(machine, Join(path, "nics")));
  VMLET_RETURN_IF_ERROR(CheckDevices(machine, Join(path, "devices"), facts));
  VMLET_RETURN_IF_ERROR(CheckCloudInit(machine.cloud_init(), Join(path, "cloud_init")));
  return CheckOneOf(Join(path, "lifecycle.on_reboot"), machine.lifecycle().on_reboot(),
                    "a reboot action", {"restart", "poweroff"});
}

absl::Status ValidateVmSpec(const v1::VmSpec& spec) {
  if (const size_t size = spec.ByteSizeLong(); size > kMaxVmSpecBytes) {
    return Invalid("vm_spec", StrCat("the spec is ", size, " bytes serialized: expected at most ",
                                     kMaxVmSpecBytes));
  }
  VMLET_RETURN_IF_ERROR(CheckKey(spec.metadata().namespace_(), spec.metadata().name(),
                                 "metadata.namespace", "metadata.name"));
  VMLET_RETURN_IF_ERROR(CheckLabels(spec.metadata()));
  return ValidateMachine(spec.spec(), "spec");
}

}  // namespace vmlet::vmspec
