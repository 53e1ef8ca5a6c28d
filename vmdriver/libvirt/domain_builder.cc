#include "vmdriver/libvirt/domain_builder.h"

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "base/status.h"
#include "base/str_util.h"

namespace vmlet::vmdriver::libvirt {
namespace {

constexpr size_t kMaxDomainNameLength = 100;
constexpr size_t kShortIdLength = 8;
constexpr size_t kUuidHexLength = 32;
constexpr size_t kContainerIdLength = 64;
constexpr int kMaxVcpus = 512;
constexpr int64_t kMinMemoryBytes = 16 * kMiB;
// libvirt's and QEMU's cpusets handle far more, but no host vmlet runs on
// has more CPUs than this; it bounds what a config can ask for.
constexpr int kMaxHostCpu = 1023;

bool IsLowerHex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

bool IsLowerHexOfLength(std::string_view text, size_t length) {
  if (text.size() != length) return false;
  for (char c : text) {
    if (!IsLowerHex(c)) return false;
  }
  return true;
}

bool IsNameChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

std::string Sanitize(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (!IsNameChar(c)) c = '-';
  }
  return out;
}

// libvirt's schema forbids newlines in a title; a pod name never has one,
// but the title must not make the domain invalid if it did.
std::string SingleLine(std::string text) {
  for (char& c : text) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return text;
}

absl::Status Invalid(std::string_view message) {
  return absl::InvalidArgumentError(std::string(message));
}

absl::Status ValidateBoot(const VmConfig& vm, const DomainOptions& options) {
  const BootSource& boot = vm.boot;
  const bool kernel = !boot.kernel_path.empty();
  const bool disk = !boot.disk_path.empty();
  if (kernel && disk) {
    return Invalid(StrCat("boot: both a kernel (\"", boot.kernel_path, "\") and a disk image (\"",
                          boot.disk_path, "\"): expected exactly one of them"));
  }
  if (!kernel && !disk) {
    return Invalid("boot: neither a kernel nor a disk image: expected one of them");
  }
  if (kernel) {
    if (!boot.disk_format.empty()) {
      return Invalid(StrCat("boot.disk_format: \"", boot.disk_format,
                            "\" given for a kernel boot: expected it only with boot.disk_path"));
    }
    return absl::OkStatus();
  }
  if (!boot.initrd_path.empty()) {
    return Invalid(StrCat("boot.initrd_path: \"", boot.initrd_path,
                          "\" given without a kernel: expected it only with boot.kernel_path"));
  }
  if (!boot.cmdline.empty()) {
    return Invalid(StrCat("boot.cmdline: \"", boot.cmdline,
                          "\" given without a kernel: expected it only with boot.kernel_path"));
  }
  if (boot.disk_format != "qcow2" && boot.disk_format != "raw") {
    return Invalid(StrCat("boot.disk_format: \"", boot.disk_format,
                          "\" is not a disk format: expected \"qcow2\" or \"raw\""));
  }
  if (options.overlay_path.empty()) {
    return Invalid(StrCat("overlay_path: empty for the disk image \"", boot.disk_path,
                          "\": expected the path of the VM's qcow2 overlay"));
  }
  return absl::OkStatus();
}

absl::Status Validate(const VmConfig& vm, const DomainOptions& options) {
  if (!IsLowerHexOfLength(vm.id, kContainerIdLength)) {
    return Invalid(
        StrCat("id: \"", vm.id, "\" is not a container id: expected 64 lowercase hex characters"));
  }
  if (vm.vcpus < 1 || vm.vcpus > kMaxVcpus) {
    return Invalid(StrCat("vcpus: ", vm.vcpus, " is out of range: expected 1 to ", kMaxVcpus));
  }
  if (vm.memory_bytes < kMinMemoryBytes) {
    return Invalid(StrCat("memory_bytes: ", vm.memory_bytes, " is too small: expected at least ",
                          kMinMemoryBytes, " (16 MiB)"));
  }
  if (vm.max_vcpus != 0 && (vm.max_vcpus < vm.vcpus || vm.max_vcpus > kMaxVcpus)) {
    return Invalid(StrCat("max_vcpus: ", vm.max_vcpus, " is out of range: expected 0 or ", vm.vcpus,
                          " (vcpus) to ", kMaxVcpus));
  }
  if (vm.max_memory_bytes != 0 && vm.max_memory_bytes < vm.memory_bytes) {
    return Invalid(StrCat("max_memory_bytes: ", vm.max_memory_bytes,
                          " is less than memory_bytes: expected 0 or at least ", vm.memory_bytes));
  }
  std::set<int> seen;
  for (int cpu : vm.cpuset) {
    if (cpu < 0 || cpu > kMaxHostCpu) {
      return Invalid(StrCat("cpuset: CPU ", cpu, " is out of range: expected 0 to ", kMaxHostCpu));
    }
    if (!seen.insert(cpu).second) {
      return Invalid(StrCat("cpuset: CPU ", cpu, " is listed twice: expected each CPU once"));
    }
  }
  if (options.type != "kvm" && options.type != "qemu") {
    return Invalid(StrCat("type: \"", options.type,
                          "\" is not a libvirt domain type: expected \"kvm\" or \"qemu\""));
  }
  return ValidateBoot(vm, options);
}

// ---- The VM spec (VmConfig::machine) ----

namespace v1 = ::vmlet::vmspec::v1;

constexpr int kMaxSpecDisks = 16;
constexpr int kMaxSpecNics = 16;
constexpr int kMaxNicQueues = 16;
constexpr int kMaxNumaCells = 64;
constexpr int kMaxExtraSerialPorts = 3;
constexpr int kMaxTimers = 6;
constexpr int kMaxCpuFeatures = 64;
constexpr size_t kMaxNameLength = 64;
constexpr size_t kMaxDiskNameLength = 32;
constexpr size_t kMaxDiskSerialLength = 20;
constexpr size_t kMaxSmbiosLength = 64;
constexpr uint32_t kMinSpinlockRetries = 4095;
constexpr uint64_t kMinEmptyDiskBytes = uint64_t{1} << 20;   // 1 MiB.
constexpr uint64_t kMaxEmptyDiskBytes = uint64_t{64} << 40;  // 64 TiB.

template <size_t N>
bool OneOf(std::string_view value, const std::array<std::string_view, N>& allowed) {
  return std::find(allowed.begin(), allowed.end(), value) != allowed.end();
}

template <size_t N>
std::string Listed(const std::array<std::string_view, N>& allowed) {
  std::string out;
  for (size_t i = 0; i < N; ++i) {
    StrAppend(&out, i == 0 ? "" : (i + 1 == N ? " or " : ", "), "\"", allowed[i], "\"");
  }
  return out;
}

// INVALID_ARGUMENT for `field` (a path under "machine.") with value `value`
// not one of `allowed`.
template <size_t N>
absl::Status CheckOneOf(std::string_view field, std::string_view value,
                        const std::array<std::string_view, N>& allowed) {
  if (OneOf(value, allowed)) return absl::OkStatus();
  return Invalid(
      StrCat("machine.", field, ": \"", value, "\" is not supported: expected ", Listed(allowed)));
}

// [A-Za-z0-9_.-]+ of at most kMaxNameLength: names QEMU and libvirt take.
bool IsSimpleName(std::string_view text) {
  if (text.empty() || text.size() > kMaxNameLength) return false;
  return std::all_of(text.begin(), text.end(), IsNameChar);
}

bool IsPrintableAscii(std::string_view text) {
  return std::all_of(text.begin(), text.end(), [](char c) { return c >= 0x20 && c <= 0x7e; });
}

// Parses cpuset syntax ("0-3,8,10-11") of numbers 0..max; ranges go up.
absl::StatusOr<std::vector<int>> ParseCpuset(std::string_view field, std::string_view text,
                                             int max) {
  auto bad = [&](std::string_view why) {
    return Invalid(StrCat("machine.", field, ": \"", text, "\" ", why));
  };
  if (text.empty() || text.size() > 1024) {
    return bad("is not a CPU list: expected numbers and ranges such as \"0-1,4\"");
  }
  std::vector<int> cpus;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t end = text.find(',', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view item = text.substr(pos, end - pos);
    const size_t dash = item.find('-');
    std::string_view first = item.substr(0, dash);
    std::string_view last = dash == std::string_view::npos ? first : item.substr(dash + 1);
    auto number = [](std::string_view digits) -> int {
      if (digits.empty() || digits.size() > 4) return -1;
      int value = 0;
      for (char c : digits) {
        if (c < '0' || c > '9') return -1;
        value = value * 10 + (c - '0');
      }
      return value;
    };
    const int from = number(first);
    const int to = number(last);
    if (from < 0 || to < 0) {
      return bad("is not a CPU list: expected numbers and ranges such as \"0-1,4\"");
    }
    if (from > to) return bad(StrCat("has the range ", from, "-", to, ": expected low-high"));
    if (to > max) return bad(StrCat("names CPU ", to, ": expected CPUs 0 to ", max));
    for (int cpu = from; cpu <= to; ++cpu) cpus.push_back(cpu);
    pos = end + 1;
  }
  return cpus;
}

absl::StatusOr<uint64_t> FieldQuantity(std::string_view field, std::string_view text) {
  absl::StatusOr<uint64_t> bytes = QuantityBytes(text);
  if (!bytes.ok()) return Invalid(StrCat("machine.", field, ": ", ToStd(bytes.status().message())));
  return *bytes;
}

uint64_t KibOf(uint64_t bytes) { return (bytes + 1023) / 1024; }

// The vCPU side: mode, model, features, topology and pinning.
absl::Status ApplyCpu(const VmConfig& vm, const DomainOptions& options, Domain& d) {
  const v1::Cpu& cpu = vm.machine.cpu();
  const bool tcg = options.type == "qemu";
  static constexpr std::array<std::string_view, 3> kModes = {"host-passthrough", "host-model",
                                                             "custom"};
  if (!cpu.mode().empty()) {
    VMLET_RETURN_IF_ERROR(CheckOneOf("cpu.mode", cpu.mode(), kModes));
    if (tcg && cpu.mode() == "host-passthrough") {
      return Invalid(
          "machine.cpu.mode: \"host-passthrough\" needs KVM, and this node runs VMs under TCG "
          "(software emulation): expected \"host-model\", \"custom\" or no mode");
    }
    d.cpu_mode = cpu.mode();
  }
  if (cpu.mode() == "custom") {
    if (!IsSimpleName(cpu.model())) {
      return Invalid(StrCat("machine.cpu.model: \"", cpu.model(),
                            "\" is not a CPU model name: expected a QEMU CPU model such as "
                            "\"Skylake-Server\" with mode \"custom\""));
    }
    d.cpu_model = cpu.model();
  } else if (!cpu.model().empty()) {
    return Invalid(StrCat("machine.cpu.model: \"", cpu.model(), "\" given with mode \"", cpu.mode(),
                          "\": expected a model only with mode \"custom\""));
  }
  if (cpu.features_size() > kMaxCpuFeatures) {
    return Invalid(StrCat("machine.cpu.features: ", cpu.features_size(),
                          " features: expected at most ", kMaxCpuFeatures));
  }
  static constexpr std::array<std::string_view, 5> kPolicies = {"force", "require", "optional",
                                                                "disable", "forbid"};
  std::set<std::string> feature_names;
  for (int i = 0; i < cpu.features_size(); ++i) {
    const v1::CpuFeature& feature = cpu.features(i);
    const std::string field = StrCat("cpu.features[", i, "]");
    if (!IsSimpleName(feature.name())) {
      return Invalid(StrCat("machine.", field, ".name: \"", feature.name(),
                            "\" is not a CPU flag: expected a name such as \"avx2\""));
    }
    if (!feature_names.insert(feature.name()).second) {
      return Invalid(StrCat("machine.", field, ".name: \"", feature.name(),
                            "\" is listed twice: expected each feature once"));
    }
    const std::string policy = feature.policy().empty() ? "require" : feature.policy();
    VMLET_RETURN_IF_ERROR(CheckOneOf(StrCat(field, ".policy"), policy, kPolicies));
    d.cpu_features.push_back(CpuFeature{.name = feature.name(), .policy = policy});
  }
  if (!d.cpu_features.empty() && d.cpu_mode.empty()) {
    return Invalid(
        "machine.cpu.features: given without machine.cpu.mode under TCG, whose default CPU model "
        "takes no features: expected mode \"host-model\" or \"custom\"");
  }

  if (cpu.has_topology()) {
    const v1::CpuTopology& t = cpu.topology();
    d.sockets = static_cast<int>(std::max<uint32_t>(1, std::min<uint32_t>(t.sockets(), 1024)));
    d.cores = static_cast<int>(std::max<uint32_t>(1, std::min<uint32_t>(t.cores(), 1024)));
    d.threads = static_cast<int>(std::max<uint32_t>(1, std::min<uint32_t>(t.threads(), 1024)));
    const int64_t product = int64_t{d.sockets} * d.cores * d.threads;
    const std::string shown =
        StrCat(t.sockets(), " sockets * ", t.cores(), " cores * ", t.threads(), " threads");
    if (product > kMaxVcpus) {
      return Invalid(StrCat("machine.cpu.topology: ", shown, " is ", product,
                            " vCPUs: expected at most ", kMaxVcpus));
    }
    if (product < vm.vcpus) {
      return Invalid(StrCat("machine.cpu.topology: ", shown, " is ", product,
                            " vCPUs, fewer than the VM's ", vm.vcpus,
                            ": expected at least as many as the VM starts with"));
    }
    d.max_vcpus = static_cast<int>(product);
  }

  const int max_vcpus = std::max(d.vcpus, d.max_vcpus);
  std::set<uint32_t> pinned;
  for (int i = 0; i < cpu.pins_size(); ++i) {
    const v1::VcpuPin& pin = cpu.pins(i);
    const std::string field = StrCat("cpu.pins[", i, "]");
    if (pin.vcpu() >= static_cast<uint32_t>(max_vcpus)) {
      return Invalid(StrCat("machine.", field, ".vcpu: ", pin.vcpu(),
                            " is not a vCPU of the VM: expected 0 to ", max_vcpus - 1));
    }
    if (!pinned.insert(pin.vcpu()).second) {
      return Invalid(StrCat("machine.", field, ".vcpu: ", pin.vcpu(),
                            " is pinned twice: expected each vCPU once"));
    }
    VMLET_ASSIGN_OR_RETURN(std::vector<int> host,
                           ParseCpuset(StrCat(field, ".cpuset"), pin.cpuset(), kMaxHostCpu));
    d.vcpu_pins.push_back(
        VcpuPin{.vcpu = static_cast<int>(pin.vcpu()), .cpuset = CpusetString(std::move(host))});
  }
  if (!cpu.emulator_cpuset().empty()) {
    VMLET_ASSIGN_OR_RETURN(std::vector<int> host,
                           ParseCpuset("cpu.emulator_cpuset", cpu.emulator_cpuset(), kMaxHostCpu));
    d.emulator_cpuset = CpusetString(std::move(host));
  }
  return absl::OkStatus();
}

absl::Status ApplyMemory(const VmConfig& vm, Domain& d) {
  const v1::Memory& memory = vm.machine.memory();
  if (memory.has_balloon() && !memory.balloon()) {
    d.memory_balloon = false;
    d.balloon_stats_period_s = 0;
    d.memory_kib = d.current_memory_kib;  // Nothing could give it more.
  }
  if (!memory.hugepage_size().empty()) {
    VMLET_ASSIGN_OR_RETURN(uint64_t bytes,
                           FieldQuantity("memory.hugepage_size", memory.hugepage_size()));
    if (bytes < 4096 || (bytes & (bytes - 1)) != 0) {
      return Invalid(StrCat("machine.memory.hugepage_size: \"", memory.hugepage_size(),
                            "\" is not a page size: expected a power of two such as 2Mi or 1Gi"));
    }
    d.hugepage_kib = bytes / 1024;
  }
  d.memory_locked = memory.locked();
  return absl::OkStatus();
}

// After NUMA has settled <memory>: whole hugepages, and the hard limit
// that locked memory needs.
absl::Status FinishMemory(const VmConfig& vm, Domain& d) {
  if (d.hugepage_kib != 0 &&
      (d.memory_kib % d.hugepage_kib != 0 || d.current_memory_kib % d.hugepage_kib != 0)) {
    return Invalid(StrCat("machine.memory.hugepage_size: \"", vm.machine.memory().hugepage_size(),
                          "\" does not divide the VM's memory (", d.current_memory_kib,
                          " KiB, at most ", d.memory_kib,
                          " KiB): expected a memory size that is a multiple of the page size"));
  }
  if (d.memory_locked) d.hard_limit_kib = d.memory_kib + kLockedMemoryOverheadKib;
  return absl::OkStatus();
}

absl::Status ApplyNuma(const VmConfig& vm, Domain& d) {
  const auto& cells = vm.machine.numa();
  if (cells.empty()) return absl::OkStatus();
  if (cells.size() > kMaxNumaCells) {
    return Invalid(
        StrCat("machine.numa: ", cells.size(), " cells: expected at most ", kMaxNumaCells));
  }
  std::set<int> seen;
  uint64_t total_kib = 0;
  for (int i = 0; i < cells.size(); ++i) {
    const std::string field = StrCat("numa[", i, "]");
    VMLET_ASSIGN_OR_RETURN(std::vector<int> cpus,
                           ParseCpuset(StrCat(field, ".cpus"), cells[i].cpus(), kMaxVcpus - 1));
    for (int cpu : cpus) {
      if (!seen.insert(cpu).second) {
        return Invalid(StrCat("machine.", field, ".cpus: \"", cells[i].cpus(), "\" has vCPU ", cpu,
                              " of another cell: expected each vCPU in one cell"));
      }
    }
    if (cells[i].memory().empty()) {
      return Invalid(
          StrCat("machine.", field, ".memory: empty: expected the cell's memory such as 2Gi"));
    }
    VMLET_ASSIGN_OR_RETURN(uint64_t bytes,
                           FieldQuantity(StrCat(field, ".memory"), cells[i].memory()));
    const uint64_t kib = KibOf(bytes);
    if (d.hugepage_kib != 0 && kib % d.hugepage_kib != 0) {
      return Invalid(StrCat("machine.", field, ".memory: \"", cells[i].memory(),
                            "\" is not a multiple of the hugepage size (", d.hugepage_kib,
                            " KiB): expected whole pages"));
    }
    total_kib += kib;
    d.numa.push_back(NumaCell{.id = i, .cpus = CpusetString(std::move(cpus)), .memory_kib = kib});
  }
  // The cells hold vCPUs 0..N-1; N is the most the VM may have.
  const int count = static_cast<int>(seen.size());
  if (*seen.rbegin() != count - 1) {
    return Invalid(StrCat("machine.numa: the cells hold ", count, " vCPUs but name vCPU ",
                          *seen.rbegin(), ": expected vCPUs 0 to ", count - 1,
                          " with none left out"));
  }
  if (d.sockets > 0 && count != d.max_vcpus) {
    return Invalid(StrCat("machine.numa: the cells hold ", count,
                          " vCPUs: expected the topology's ", d.max_vcpus,
                          " (machine.cpu.topology)"));
  }
  if (count < d.vcpus) {
    return Invalid(StrCat("machine.numa: the cells hold ", count, " vCPUs: expected at least the ",
                          d.vcpus, " the VM starts with"));
  }
  d.max_vcpus = count;
  if (total_kib != d.current_memory_kib) {
    return Invalid(StrCat("machine.numa: the cells' memory adds up to ", total_kib,
                          " KiB: expected the VM's memory, ", d.current_memory_kib, " KiB"));
  }
  d.memory_kib = d.current_memory_kib;  // No hot-plug headroom with NUMA (see BuildDomain).
  return absl::OkStatus();
}

absl::Status ApplyMachineType(const VmConfig& vm, const DomainOptions& options, Domain& d) {
  const std::string& type = vm.machine.machine_type();
  if (type.empty()) {
    d.machine = vm.machine.firmware().secure_boot() ? "q35" : options.machine;
    return absl::OkStatus();
  }
  auto versioned = [&](std::string_view prefix) {
    if (!type.starts_with(prefix) || type.size() == prefix.size() || type.size() > 32) return false;
    return std::all_of(type.begin() + static_cast<std::ptrdiff_t>(prefix.size()), type.end(),
                       [](char c) { return (c >= '0' && c <= '9') || c == '.'; });
  };
  if (type != "pc" && type != "q35" && !versioned("pc-q35-") && !versioned("pc-i440fx-")) {
    return Invalid(StrCat("machine.machine_type: \"", type,
                          "\" is not an x86 machine type: expected \"pc\", \"q35\" or a versioned "
                          "one such as \"pc-q35-7.2\""));
  }
  d.machine = type;
  return absl::OkStatus();
}

absl::Status ApplyFirmware(const VmConfig& vm, Domain& d) {
  const v1::Firmware& firmware = vm.machine.firmware();
  static constexpr std::array<std::string_view, 2> kTypes = {"bios", "uefi"};
  if (!firmware.type().empty()) {
    VMLET_RETURN_IF_ERROR(CheckOneOf("firmware.type", firmware.type(), kTypes));
  }
  d.uefi = firmware.type() == "uefi";
  if (firmware.secure_boot()) {
    if (!d.uefi) {
      return Invalid(StrCat("machine.firmware.secure_boot: true with firmware type \"",
                            firmware.type(), "\": expected type \"uefi\""));
    }
    if (!IsQ35(d.machine)) {
      return Invalid(
          StrCat("machine.firmware.secure_boot: Secure Boot needs SMM on a q35 machine, "
                 "and machine_type is \"",
                 d.machine, "\": expected machine_type \"q35\" or none"));
    }
    d.secure_boot = true;
  }
  const v1::Smbios& smbios = firmware.smbios();
  const std::pair<const char*, const std::string*> entries[] = {
      {"manufacturer", &smbios.manufacturer()},
      {"product", &smbios.product()},
      {"version", &smbios.version()},
      {"serial", &smbios.serial()},
      {"sku", &smbios.sku()},
      {"family", &smbios.family()},
  };
  for (const auto& [name, value] : entries) {
    if (value->empty()) continue;
    if (value->size() > kMaxSmbiosLength || !IsPrintableAscii(*value)) {
      return Invalid(StrCat("machine.firmware.smbios.", name, ": \"", *value,
                            "\" is not an SMBIOS string: expected printable ASCII of at most ",
                            kMaxSmbiosLength, " characters"));
    }
    d.smbios_system.emplace_back(name, *value);
  }
  if (!firmware.uuid().empty()) {
    std::string uuid = firmware.uuid();
    bool ok = uuid.size() == 36;
    for (size_t i = 0; ok && i < uuid.size(); ++i) {
      char& c = uuid[i];
      if (c >= 'A' && c <= 'F') c = static_cast<char>(c - 'A' + 'a');
      ok = (i == 8 || i == 13 || i == 18 || i == 23) ? c == '-' : IsLowerHex(c);
    }
    if (!ok) {
      return Invalid(StrCat("machine.firmware.uuid: \"", firmware.uuid(),
                            "\" is not a UUID: expected 8-4-4-4-12 hex digits"));
    }
    d.uuid = uuid;
  }
  return absl::OkStatus();
}

absl::Status ApplyFeatures(const VmConfig& vm, Domain& d) {
  const v1::Features& features = vm.machine.features();
  if (features.has_acpi()) d.acpi = features.acpi();
  if (features.has_apic()) d.apic = features.apic();
  d.smm = features.has_smm() ? features.smm() : false;
  if (d.secure_boot) {
    if (features.has_smm() && !features.smm()) {
      return Invalid(
          "machine.features.smm: false with firmware.secure_boot: expected SMM on (Secure Boot "
          "needs it)");
    }
    d.smm = true;
  }
  const v1::HyperV& h = features.hyperv();
  if (h.spinlocks() != 0 && h.spinlocks() < kMinSpinlockRetries) {
    return Invalid(StrCat("machine.features.hyperv.spinlocks: ", h.spinlocks(),
                          " retries: expected 0 (off) or at least ", kMinSpinlockRetries));
  }
  if (h.synic() && !h.vpindex()) {
    return Invalid("machine.features.hyperv.synic: true without vpindex: expected vpindex too");
  }
  if (h.stimer() && !h.synic()) {
    return Invalid("machine.features.hyperv.stimer: true without synic: expected synic too");
  }
  if (h.ipi() && !h.vpindex()) {
    return Invalid("machine.features.hyperv.ipi: true without vpindex: expected vpindex too");
  }
  d.hyperv =
      HyperV{.relaxed = h.relaxed(),
             .vapic = h.vapic(),
             .spinlock_retries = static_cast<int>(std::min<uint32_t>(h.spinlocks(), 1 << 30)),
             .vpindex = h.vpindex(),
             .runtime = h.runtime(),
             .synic = h.synic(),
             .stimer = h.stimer(),
             .reset = h.reset(),
             .frequencies = h.frequencies(),
             .tlbflush = h.tlbflush(),
             .ipi = h.ipi()};
  return absl::OkStatus();
}

absl::Status ApplyClock(const VmConfig& vm, Domain& d) {
  const v1::Clock& clock = vm.machine.clock();
  static constexpr std::array<std::string_view, 2> kOffsets = {"utc", "localtime"};
  static constexpr std::array<std::string_view, 6> kTimers = {"rtc",      "pit",         "hpet",
                                                              "kvmclock", "hypervclock", "tsc"};
  static constexpr std::array<std::string_view, 4> kTickPolicies = {"delay", "catchup", "merge",
                                                                    "discard"};
  if (!clock.offset().empty()) {
    VMLET_RETURN_IF_ERROR(CheckOneOf("clock.offset", clock.offset(), kOffsets));
    d.clock_offset = clock.offset();
  }
  if (clock.timers_size() > kMaxTimers) {
    return Invalid(StrCat("machine.clock.timers: ", clock.timers_size(),
                          " timers: expected at most one of each of ", Listed(kTimers)));
  }
  std::set<std::string> names;
  for (int i = 0; i < clock.timers_size(); ++i) {
    const v1::Timer& timer = clock.timers(i);
    const std::string field = StrCat("clock.timers[", i, "]");
    VMLET_RETURN_IF_ERROR(CheckOneOf(StrCat(field, ".name"), timer.name(), kTimers));
    if (!names.insert(timer.name()).second) {
      return Invalid(StrCat("machine.", field, ".name: \"", timer.name(),
                            "\" is listed twice: expected each timer once"));
    }
    if (!timer.tick_policy().empty()) {
      VMLET_RETURN_IF_ERROR(
          CheckOneOf(StrCat(field, ".tick_policy"), timer.tick_policy(), kTickPolicies));
      if (timer.name() != "rtc" && timer.name() != "pit" && timer.name() != "hpet") {
        return Invalid(StrCat("machine.", field, ".tick_policy: \"", timer.tick_policy(),
                              "\" for timer \"", timer.name(),
                              "\": expected a tick policy only for \"rtc\", \"pit\" or \"hpet\""));
      }
    }
    d.timers.push_back(Timer{.name = timer.name(),
                             .tick_policy = timer.tick_policy(),
                             .present = timer.has_present() ? (timer.present() ? 1 : 0) : -1});
  }
  return absl::OkStatus();
}

// vda..vdz, vdaa.. as libvirt counts.
std::string DiskTarget(std::string_view prefix, int n) {
  std::string suffix;
  for (int i = n; i >= 0; i = i / 26 - 1)
    suffix.insert(suffix.begin(), static_cast<char>('a' + i % 26));
  return StrCat(prefix, suffix);
}

bool IsDiskNameChar(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'; }

// One disk of machine.disks (or the implicit root disk) before targets.
absl::Status ApplyDiskSettings(const v1::Disk& spec, std::string_view field, Disk& disk) {
  static constexpr std::array<std::string_view, 3> kBuses = {"virtio", "scsi", "sata"};
  static constexpr std::array<std::string_view, 5> kCaches = {"none", "writeback", "writethrough",
                                                              "directsync", "unsafe"};
  static constexpr std::array<std::string_view, 3> kIos = {"native", "threads", "io_uring"};
  disk.bus = spec.bus().empty() ? "virtio" : spec.bus();
  VMLET_RETURN_IF_ERROR(CheckOneOf(StrCat(field, ".bus"), disk.bus, kBuses));
  if (!spec.cache().empty()) {
    VMLET_RETURN_IF_ERROR(CheckOneOf(StrCat(field, ".cache"), spec.cache(), kCaches));
  }
  if (!spec.io().empty()) {
    VMLET_RETURN_IF_ERROR(CheckOneOf(StrCat(field, ".io"), spec.io(), kIos));
    if (spec.io() == "native" && spec.cache() != "none" && spec.cache() != "directsync") {
      return Invalid(StrCat("machine.", field, ".io: \"native\" with cache \"", spec.cache(),
                            "\": expected cache \"none\" or \"directsync\""));
    }
  }
  disk.cache = spec.cache();
  disk.io = spec.io();
  disk.read_only = disk.read_only || spec.read_only();
  if (spec.serial().size() > kMaxDiskSerialLength || !IsPrintableAscii(spec.serial())) {
    return Invalid(StrCat("machine.", field, ".serial: \"", spec.serial(),
                          "\" is not a disk serial: expected printable ASCII of at most ",
                          kMaxDiskSerialLength, " characters"));
  }
  disk.serial = spec.serial();
  if (spec.boot_order() > 1000) {
    return Invalid(StrCat("machine.", field, ".boot_order: ", spec.boot_order(),
                          " is too large: expected 0 to 1000"));
  }
  disk.boot_order = static_cast<int>(spec.boot_order());
  return absl::OkStatus();
}

absl::Status ApplyDisks(const VmConfig& vm, const DomainOptions& options, Domain& d) {
  const auto& specs = vm.machine.disks();
  if (specs.size() > kMaxSpecDisks) {
    return Invalid(
        StrCat("machine.disks: ", specs.size(), " disks: expected at most ", kMaxSpecDisks));
  }
  const bool disk_boot = !vm.boot.IsKernelBoot();
  const Disk root{.source_file = options.overlay_path, .format = "qcow2", .boot_order = 1};
  std::set<std::string> names, volume_paths;
  bool has_root = false;
  bool explicit_order = false;
  std::vector<Disk> disks;
  for (int i = 0; i < specs.size(); ++i) {
    const v1::Disk& spec = specs[i];
    const std::string field = StrCat("disks[", i, "]");
    if (spec.name().empty() || spec.name().size() > kMaxDiskNameLength ||
        !std::all_of(spec.name().begin(), spec.name().end(), IsDiskNameChar)) {
      return Invalid(StrCat("machine.", field, ".name: \"", spec.name(),
                            "\" is not a disk name: expected 1 to 32 of [a-z0-9-]"));
    }
    if (!names.insert(spec.name()).second) {
      return Invalid(StrCat("machine.", field, ".name: \"", spec.name(),
                            "\" is used twice: expected unique disk names"));
    }
    Disk disk;
    switch (spec.source_case()) {
      case v1::Disk::kRoot:
        if (has_root) {
          return Invalid(StrCat("machine.", field, ".root: a second root disk (\"", spec.name(),
                                "\"): expected at most one"));
        }
        if (!disk_boot) {
          return Invalid(StrCat("machine.", field,
                                ".root: the VM boots a kernel and has no root "
                                "disk: expected no root entry"));
        }
        has_root = true;
        disk = root;
        disk.boot_order = 0;
        break;
      case v1::Disk::kEmpty: {
        if (spec.empty().size().empty()) {
          return Invalid(StrCat("machine.", field,
                                ".empty.size: empty: expected the disk's size such as 10Gi"));
        }
        VMLET_ASSIGN_OR_RETURN(uint64_t bytes,
                               FieldQuantity(StrCat(field, ".empty.size"), spec.empty().size()));
        if (bytes < kMinEmptyDiskBytes || bytes > kMaxEmptyDiskBytes) {
          return Invalid(StrCat("machine.", field, ".empty.size: \"", spec.empty().size(),
                                "\" is out of range: expected 1Mi to 64Ti"));
        }
        auto path = options.empty_disk_paths.find(spec.name());
        if (path == options.empty_disk_paths.end()) {
          return Invalid(StrCat("empty_disk_paths: no file for the empty disk \"", spec.name(),
                                "\": expected the driver to name one"));
        }
        disk.source_file = path->second;
        disk.format = "qcow2";
        break;
      }
      case v1::Disk::kVolume: {
        const std::string& path = spec.volume().path();
        auto host = vm.volumes.find(path);
        if (host == vm.volumes.end()) {
          return Invalid(StrCat("machine.", field, ".volume.path: \"", path,
                                "\" is not a device or mount of the container: expected the "
                                "container path of one"));
        }
        if (!volume_paths.insert(path).second) {
          return Invalid(StrCat("machine.", field, ".volume.path: \"", path,
                                "\" is used by another disk: expected each volume once"));
        }
        auto type = options.volume_types.find(path);
        disk.type = type != options.volume_types.end()
                        ? type->second
                        : (host->second.starts_with("/dev/") ? "block" : "file");
        disk.source_file = host->second;
        disk.format = "raw";
        break;
      }
      case v1::Disk::SOURCE_NOT_SET:
        return Invalid(StrCat("machine.", field, ": disk \"", spec.name(),
                              "\" has no source: expected one of root, empty or volume"));
    }
    VMLET_RETURN_IF_ERROR(ApplyDiskSettings(spec, field, disk));
    if (spec.source_case() == v1::Disk::kRoot && disk.boot_order == 0) {
      disk.boot_order = 1;  // The root disk boots unless told otherwise.
    } else if (disk.boot_order > 0) {
      explicit_order = true;
    }
    disks.push_back(std::move(disk));
  }
  // Without orders the first disk boots; a root disk that is not first
  // needs them.
  if (has_root && specs[0].source_case() != v1::Disk::kRoot) explicit_order = true;
  if (disk_boot && !has_root) disks.insert(disks.begin(), root);
  if (explicit_order) {
    std::map<int, size_t> orders;
    for (size_t i = 0; i < disks.size(); ++i) {
      if (disks[i].boot_order == 0) continue;
      auto [it, inserted] = orders.emplace(disks[i].boot_order, i);
      if (!inserted) {
        return Invalid(StrCat("machine.disks: boot order ", disks[i].boot_order,
                              " is given to two disks: expected each order once (the root disk's "
                              "default is 1)"));
      }
    }
  } else {
    for (Disk& disk : disks) disk.boot_order = 0;
  }
  int virtio = 0, sd = 0;
  bool scsi = false, sata = false;
  for (Disk& disk : disks) {
    if (disk.bus == "virtio") {
      disk.target_dev = DiskTarget("vd", virtio++);
    } else {
      disk.target_dev = DiskTarget("sd", sd++);
      scsi = scsi || disk.bus == "scsi";
      sata = sata || disk.bus == "sata";
    }
  }
  if (!options.seed_path.empty()) {
    // Found by its label ("cidata"), not by its place; the last disk.
    disks.push_back(Disk{.source_file = options.seed_path,
                         .format = "raw",
                         .target_dev = DiskTarget("vd", virtio++),
                         .bus = "virtio",
                         .read_only = true});
  }
  d.disks = std::move(disks);
  if (scsi) d.controllers.push_back(Controller{.type = "scsi", .index = 0, .model = "virtio-scsi"});
  if (sata) d.controllers.push_back(Controller{.type = "sata", .index = 0});
  return absl::OkStatus();
}

bool IsMac(std::string_view mac) {
  if (mac.size() != 17) return false;
  for (size_t i = 0; i < mac.size(); ++i) {
    const char c = mac[i];
    if (i % 3 == 2) {
      if (c != ':') return false;
    } else if (!IsLowerHex(c)) {
      return false;
    }
  }
  return true;
}

absl::Status ApplyNics(const VmConfig& vm, Domain& d) {
  const auto& specs = vm.machine.nics();
  if (specs.size() > kMaxSpecNics) {
    return Invalid(
        StrCat("machine.nics: ", specs.size(), " NICs: expected at most ", kMaxSpecNics));
  }
  static constexpr std::array<std::string_view, 4> kModels = {"virtio", "e1000", "e1000e",
                                                              "rtl8139"};
  const size_t count = std::max(vm.nics.size(), static_cast<size_t>(specs.size()));
  for (size_t i = 0; i < count; ++i) {
    Nic nic{.index = static_cast<int>(i)};
    if (i < vm.nics.size()) nic.mac = vm.nics[i].mac;
    if (i < static_cast<size_t>(specs.size())) {
      const v1::Nic& spec = specs[static_cast<int>(i)];
      const std::string field = StrCat("nics[", i, "]");
      if (!spec.model().empty()) {
        VMLET_RETURN_IF_ERROR(CheckOneOf(StrCat(field, ".model"), spec.model(), kModels));
        nic.model = spec.model();
      }
      if (!spec.mac().empty()) {
        std::string mac = spec.mac();
        for (char& c : mac) {
          if (c >= 'A' && c <= 'F') c = static_cast<char>(c - 'A' + 'a');
        }
        // The group bit is the lowest bit of the first octet.
        const bool multicast =
            !IsMac(mac) || ((mac[1] >= 'a' ? mac[1] - 'a' + 10 : mac[1] - '0') & 1);
        if (multicast || mac == "00:00:00:00:00:00") {
          return Invalid(StrCat("machine.", field, ".mac: \"", spec.mac(),
                                "\" is not a unicast MAC address: expected one such as "
                                "\"52:54:00:12:34:56\""));
        }
        nic.mac = mac;
      }
      if (spec.queues() > 1) {
        if (nic.model != "virtio") {
          return Invalid(StrCat("machine.", field, ".queues: ", spec.queues(), " with model \"",
                                nic.model, "\": expected multiqueue only with \"virtio\""));
        }
        if (spec.queues() > kMaxNicQueues) {
          return Invalid(StrCat("machine.", field, ".queues: ", spec.queues(),
                                " is too many: expected at most ", kMaxNicQueues));
        }
        nic.queues = static_cast<int>(spec.queues());
      }
    }
    d.nics.push_back(std::move(nic));
  }
  if (IsQ35(d.machine)) {
    // A PCIe root port per NIC for nic_hotplug to plug into; the pc
    // machine's root bus takes NICs at fixed slots instead.
    for (size_t i = 0; i < vm.nics.size(); ++i) {
      // Index 0 is the machine's pcie-root; libvirt numbers the ports it
      // adds for other devices after these.
      d.controllers.push_back(Controller{.type = "pci",
                                         .index = static_cast<int>(i) + 1,
                                         .model = "pcie-root-port",
                                         .alias = StrCat(kNicPortAliasPrefix, i)});
    }
  }
  return absl::OkStatus();
}

absl::Status ApplyDevices(const VmConfig& vm, const DomainOptions& options, Domain& d) {
  const v1::Devices& devices = vm.machine.devices();
  if (devices.has_rng()) d.rng = devices.rng();
  if (devices.has_guest_agent() && !devices.guest_agent()) d.guest_agent_channel.clear();
  const v1::Watchdog& watchdog = devices.watchdog();
  static constexpr std::array<std::string_view, 2> kWatchdogs = {"i6300esb", "itco"};
  static constexpr std::array<std::string_view, 6> kActions = {"reset", "poweroff", "shutdown",
                                                               "pause", "none",     "inject-nmi"};
  if (!watchdog.model().empty()) {
    VMLET_RETURN_IF_ERROR(CheckOneOf("devices.watchdog.model", watchdog.model(), kWatchdogs));
    if (watchdog.model() == "itco" && !IsQ35(d.machine)) {
      return Invalid(
          StrCat("machine.devices.watchdog.model: \"itco\" is part of the q35 chipset "
                 "and machine_type is \"",
                 d.machine, "\": expected \"i6300esb\" or a q35 machine"));
    }
    d.watchdog_model = watchdog.model();
    d.watchdog_action = watchdog.action().empty() ? "reset" : watchdog.action();
    VMLET_RETURN_IF_ERROR(CheckOneOf("devices.watchdog.action", d.watchdog_action, kActions));
  } else if (!watchdog.action().empty()) {
    return Invalid(StrCat("machine.devices.watchdog.action: \"", watchdog.action(),
                          "\" without a model: expected a watchdog model too"));
  }
  const v1::Tpm& tpm = devices.tpm();
  static constexpr std::array<std::string_view, 2> kTpmVersions = {"2.0", "1.2"};
  static constexpr std::array<std::string_view, 2> kTpmModels = {"tpm-crb", "tpm-tis"};
  if (!tpm.version().empty()) {
    VMLET_RETURN_IF_ERROR(CheckOneOf("devices.tpm.version", tpm.version(), kTpmVersions));
    d.tpm_version = tpm.version();
    d.tpm_model =
        !tpm.model().empty() ? tpm.model() : (tpm.version() == "2.0" ? "tpm-crb" : "tpm-tis");
    VMLET_RETURN_IF_ERROR(CheckOneOf("devices.tpm.model", d.tpm_model, kTpmModels));
    if (d.tpm_model == "tpm-crb" && d.tpm_version != "2.0") {
      return Invalid(StrCat("machine.devices.tpm.model: \"tpm-crb\" with version \"", tpm.version(),
                            "\": expected \"tpm-tis\" for a TPM 1.2"));
    }
  } else if (!tpm.model().empty()) {
    return Invalid(StrCat("machine.devices.tpm.model: \"", tpm.model(),
                          "\" without a version: expected version \"2.0\" or \"1.2\" too"));
  }
  if (devices.extra_serial_ports() > kMaxExtraSerialPorts) {
    return Invalid(StrCat("machine.devices.extra_serial_ports: ", devices.extra_serial_ports(),
                          " is too many: expected at most ", kMaxExtraSerialPorts));
  }
  if ((devices.extra_serial_ports() > 0 || devices.vnc()) && options.run_dir.empty()) {
    return Invalid(
        "run_dir: empty: expected the VM's run directory for its serial and VNC sockets");
  }
  for (uint32_t port = 1; port <= devices.extra_serial_ports(); ++port) {
    d.extra_serial_sockets.push_back(StrCat(options.run_dir, "/serial", port, ".sock"));
  }
  if (devices.vnc()) d.vnc_socket = StrCat(options.run_dir, "/vnc.sock");
  return absl::OkStatus();
}

absl::Status ApplyLifecycle(const VmConfig& vm, Domain& d) {
  static constexpr std::array<std::string_view, 2> kOnReboot = {"restart", "poweroff"};
  const std::string& on_reboot = vm.machine.lifecycle().on_reboot();
  if (!on_reboot.empty()) {
    VMLET_RETURN_IF_ERROR(CheckOneOf("lifecycle.on_reboot", on_reboot, kOnReboot));
  }
  d.on_reboot = on_reboot == "poweroff" ? "destroy" : "restart";
  return absl::OkStatus();
}

absl::Status ApplyMachine(const VmConfig& vm, const DomainOptions& options, Domain& d) {
  VMLET_RETURN_IF_ERROR(ApplyMachineType(vm, options, d));
  VMLET_RETURN_IF_ERROR(ApplyFirmware(vm, d));
  VMLET_RETURN_IF_ERROR(ApplyCpu(vm, options, d));
  VMLET_RETURN_IF_ERROR(ApplyMemory(vm, d));
  VMLET_RETURN_IF_ERROR(ApplyNuma(vm, d));
  VMLET_RETURN_IF_ERROR(FinishMemory(vm, d));
  VMLET_RETURN_IF_ERROR(ApplyFeatures(vm, d));
  VMLET_RETURN_IF_ERROR(ApplyClock(vm, d));
  VMLET_RETURN_IF_ERROR(ApplyDisks(vm, options, d));
  VMLET_RETURN_IF_ERROR(ApplyNics(vm, d));
  VMLET_RETURN_IF_ERROR(ApplyDevices(vm, options, d));
  return ApplyLifecycle(vm, d);
}

}  // namespace

std::string DomainName(const VmConfig& vm) {
  const std::string short_id = Sanitize(std::string_view(vm.id).substr(0, kShortIdLength));
  std::string middle = Sanitize(StrCat(vm.pod_namespace, "-", vm.pod_name));
  // "vmlet-" + middle + "-" + short id; the middle gives way so that the
  // short id, which tells VMs of the same pod apart, is always kept.
  const size_t fixed = std::string_view(kDomainNamePrefix).size() + 1 + short_id.size();
  if (fixed + middle.size() > kMaxDomainNameLength) {
    middle.resize(kMaxDomainNameLength - fixed);
  }
  return StrCat(kDomainNamePrefix, middle, "-", short_id);
}

std::string CpusetString(std::vector<int> cpus) {
  std::sort(cpus.begin(), cpus.end());
  cpus.erase(std::unique(cpus.begin(), cpus.end()), cpus.end());
  std::string out;
  for (size_t i = 0; i < cpus.size();) {
    size_t end = i;  // The last CPU of the run that starts at i.
    while (end + 1 < cpus.size() && cpus[end + 1] == cpus[end] + 1) ++end;
    StrAppend(&out, out.empty() ? "" : ",", cpus[i]);
    if (end > i) StrAppend(&out, "-", cpus[end]);
    i = end + 1;
  }
  return out;
}

bool IsQ35(std::string_view machine) { return machine == "q35" || machine.starts_with("pc-q35-"); }

std::string EmptyDiskFileName(std::string_view name) { return StrCat("disk-", name, ".qcow2"); }

absl::StatusOr<uint64_t> QuantityBytes(std::string_view text) {
  static constexpr std::pair<std::string_view, uint64_t> kSuffixes[] = {
      {"Ki", uint64_t{1} << 10},
      {"Mi", uint64_t{1} << 20},
      {"Gi", uint64_t{1} << 30},
      {"Ti", uint64_t{1} << 40},
      {"Pi", uint64_t{1} << 50},
      {"Ei", uint64_t{1} << 60},
      {"k", 1000},
      {"M", 1000'000},
      {"G", 1000'000'000},
      {"T", 1000'000'000'000},
      {"P", 1000'000'000'000'000},
      {"E", 1000'000'000'000'000'000},
  };
  auto bad = [&] {
    return Invalid(StrCat("\"", text,
                          "\" is not a quantity of bytes: expected one such as 20Gi, 512Mi, 1.5G "
                          "or 1073741824"));
  };
  std::string_view number = text;
  uint64_t multiplier = 1;
  for (const auto& [suffix, factor] : kSuffixes) {
    if (number.ends_with(suffix)) {
      number.remove_suffix(suffix.size());
      multiplier = factor;
      break;
    }
  }
  const size_t dot = number.find('.');
  std::string_view whole = number.substr(0, dot);
  std::string_view fraction = dot == std::string_view::npos ? "" : number.substr(dot + 1);
  auto digits = [](std::string_view part) {
    return std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  if (whole.empty() || whole.size() > 20 || fraction.size() > 9 || !digits(whole) ||
      !digits(fraction) || (dot != std::string_view::npos && fraction.empty())) {
    return bad();
  }
  unsigned __int128 value = 0;
  for (char c : whole) value = value * 10 + static_cast<unsigned>(c - '0');
  value *= multiplier;
  unsigned __int128 part = 0, scale = 1;
  for (char c : fraction) {
    part = part * 10 + static_cast<unsigned>(c - '0');
    scale *= 10;
  }
  value += (part * multiplier + scale - 1) / scale;  // Rounded up to a whole byte.
  if (value == 0 || value > static_cast<unsigned __int128>(INT64_MAX)) {
    return Invalid(StrCat("\"", text, "\" is out of range: expected 1 byte to 8 EiB"));
  }
  return static_cast<uint64_t>(value);
}

std::string DomainUuid(std::string_view container_id) {
  if (container_id.size() < kUuidHexLength) return "";
  std::string_view hex = container_id.substr(0, kUuidHexLength);
  for (char c : hex) {
    if (!IsLowerHex(c)) return "";
  }
  return StrCat(hex.substr(0, 8), "-", hex.substr(8, 4), "-", hex.substr(12, 4), "-",
                hex.substr(16, 4), "-", hex.substr(20, 12));
}

absl::StatusOr<Domain> BuildDomain(const VmConfig& vm, const DomainOptions& options) {
  VMLET_RETURN_IF_ERROR(Validate(vm, options));

  Domain domain;
  domain.type = options.type;
  domain.name = DomainName(vm);
  domain.uuid = DomainUuid(vm.id);
  domain.title = SingleLine(
      StrCat("pod ", vm.pod_namespace, "/", vm.pod_name, " container ", vm.container_name));
  domain.metadata = DomainMetadata{
      .container_id = vm.id,
      .sandbox_id = vm.sandbox_id,
      .pod_namespace = vm.pod_namespace,
      .pod_name = vm.pod_name,
      .pod_uid = vm.pod_uid,
      .container_name = vm.container_name,
      .image = vm.image,
      .log_path = vm.log_path,
      .instance = options.instance,
      .start_paused = vm.machine.lifecycle().start_paused(),
  };
  // Rounded up, so that a VM never gets less memory than it asked for. The
  // guest boots with the most it may have and its balloon gives back the
  // rest (UpdateResources moves the balloon).
  domain.current_memory_kib = (static_cast<uint64_t>(vm.memory_bytes) + 1023) / 1024;
  domain.memory_kib = std::max(domain.current_memory_kib,
                               (static_cast<uint64_t>(vm.max_memory_bytes) + 1023) / 1024);
  domain.vcpus = vm.vcpus;
  domain.max_vcpus = std::max(vm.vcpus, vm.max_vcpus);
  domain.cpuset = CpusetString(vm.cpuset);
  domain.memory_balloon = true;
  domain.balloon_stats_period_s = kBalloonStatsPeriodSeconds;
  domain.machine = options.machine;
  domain.emulator = options.emulator;
  domain.cpu_mode = options.type == "kvm" ? "host-passthrough" : "";
  if (vm.boot.IsKernelBoot()) {
    domain.kernel = vm.boot.kernel_path;
    domain.initrd = vm.boot.initrd_path;
    domain.cmdline = vm.boot.cmdline;
  }
  // Disks (the root overlay, the spec's, the seed): ApplyDisks.
  domain.console_socket = options.console_socket;
  // Every VM can run a guest agent; ExecSync goes through it.
  domain.guest_agent_channel = kGuestAgentChannel;
  VMLET_RETURN_IF_ERROR(ApplyMachine(vm, options, domain));
  return domain;
}

}  // namespace vmlet::vmdriver::libvirt
