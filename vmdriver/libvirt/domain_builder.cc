#include "vmdriver/libvirt/domain_builder.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
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
  } else {
    // The image is never written: the VM boots from its overlay, which is
    // always qcow2 (backed by the image in its own format).
    domain.disks.push_back(Disk{
        .source_file = options.overlay_path,
        .format = "qcow2",
        .target_dev = "vda",
        .bus = "virtio",
    });
  }
  if (!options.seed_path.empty()) {
    // Found by its label ("cidata"), not by its place; after the root disk.
    domain.disks.push_back(Disk{
        .source_file = options.seed_path,
        .format = "raw",
        .target_dev = domain.disks.empty() ? "vda" : "vdb",
        .bus = "virtio",
        .read_only = true,
    });
  }
  domain.console_socket = options.console_socket;
  // Every VM can run a guest agent; ExecSync goes through it.
  domain.guest_agent_channel = kGuestAgentChannel;
  return domain;
}

}  // namespace vmlet::vmdriver::libvirt
