// Turns a VmConfig into the typed Domain that the libvirt driver defines.
#ifndef VMLET_VMDRIVER_LIBVIRT_DOMAIN_BUILDER_H_
#define VMLET_VMDRIVER_LIBVIRT_DOMAIN_BUILDER_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "vmdriver/libvirt/domain.h"
#include "vmdriver/vm_config.h"

namespace vmlet::vmdriver::libvirt {

// Host-side choices the driver makes for every VM.
struct DomainOptions {
  std::string type = "kvm";  // "kvm" or "qemu" (TCG).
  std::string emulator = "/usr/bin/qemu-system-x86_64";
  std::string machine = "pc";
  std::string console_socket;  // Unix socket of the serial console.
  std::string overlay_path;    // The VM's qcow2 overlay; required for disk boot.
  std::string seed_path;       // The VM's copy of its cloud-init seed; optional.
};

// "vmlet-<namespace>-<pod>-<first 8 hex of the id>", at most 100 characters,
// with characters outside [A-Za-z0-9._-] replaced by '-'.
std::string DomainName(const VmConfig& vm);

// The domain UUID derived from a container id: its first 32 hex characters
// as 8-4-4-4-12. Lets the driver find a VM's domain from the id alone.
std::string DomainUuid(std::string_view container_id);

// Host CPU numbers in libvirt's cpuset syntax, sorted, runs as ranges:
// {3, 0, 1} -> "0-1,3". Duplicates count once.
std::string CpusetString(std::vector<int> cpus);

// How often the guest's balloon driver reports its memory figures.
inline constexpr int kBalloonStatsPeriodSeconds = 5;

// INVALID_ARGUMENT (naming the field) when the config cannot make a domain.
absl::StatusOr<Domain> BuildDomain(const VmConfig& vm, const DomainOptions& options);

}  // namespace vmlet::vmdriver::libvirt

#endif  // VMLET_VMDRIVER_LIBVIRT_DOMAIN_BUILDER_H_
