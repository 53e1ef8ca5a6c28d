// Turns a VmConfig into the typed Domain that the libvirt driver defines.
#ifndef VMLET_VMDRIVER_LIBVIRT_DOMAIN_BUILDER_H_
#define VMLET_VMDRIVER_LIBVIRT_DOMAIN_BUILDER_H_

#include <cstdint>
#include <map>
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
  std::string instance;        // DomainMetadata::instance.
  // The VM's files under the run directory: serial<N>.sock for the extra
  // serial ports and vnc.sock (machine.devices); required only with them.
  std::string run_dir;
  // The qcow2 file of each empty disk of machine.disks, by disk name; the
  // driver makes them (EmptyDiskFileName).
  std::map<std::string, std::string> empty_disk_paths;
  // What the host path of each volume disk is, by container path: "block"
  // (a block device) or "file" (a regular file), as the driver found it.
  // A volume not listed is taken as a block device when its host path is
  // under /dev/, else as a file (RenderDomainXml does not look).
  std::map<std::string, std::string> volume_types;
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

// Whether a QEMU machine type is a q35 one ("q35", "pc-q35-7.2").
bool IsQ35(std::string_view machine);

// The file name (in the VM's directory) of the empty disk `name`.
std::string EmptyDiskFileName(std::string_view name);

// A Kubernetes quantity of bytes ("10Gi", "512Mi", "1.5G", "1048576"),
// rounded up to a whole byte. INVALID_ARGUMENT without a field name.
absl::StatusOr<uint64_t> QuantityBytes(std::string_view text);

// What guest memory is locked with (machine.memory.locked): the domain's
// <memtune><hard_limit> is its memory plus this much for QEMU itself.
inline constexpr uint64_t kLockedMemoryOverheadKib = uint64_t{1} << 20;  // 1 GiB.

// How often the guest's balloon driver reports its memory figures.
inline constexpr int kBalloonStatsPeriodSeconds = 5;

// INVALID_ARGUMENT (naming the field) when the config cannot make a domain.
// Every field of vm.machine maps onto the domain; an error names it as
// "machine.<path>" with its value. Decisions beyond the proto's comments:
//   - cpu.topology: sockets * cores * threads is the most vCPUs the VM may
//     have (<vcpu>, hot-plug room); below `vcpus` is an error. An unset
//     member of a given topology counts as 1.
//   - cpu.mode "host-passthrough" needs KVM; features under TCG need a mode.
//   - numa: the cells hold vCPUs 0..N-1 once each, and N is the most vCPUs
//     (the topology's product when there is one, else at least `vcpus`);
//     their memory adds up to memory_bytes. Memory headroom for hot-plug
//     (max_memory_bytes) is folded away with NUMA: the guest's NUMA layout
//     is fixed at boot, so <memory> is the cells' sum. Likewise without a
//     balloon (memory.balloon false) <memory> is memory_bytes.
//   - firmware.secure_boot needs type "uefi" and a q35 machine; with no
//     machine_type it picks "q35". It turns SMM on (features.smm false is
//     an error).
//   - disks: without a boot order anywhere and the root disk first, the
//     domain boots its first disk (<os><boot dev="hd"/>); otherwise every
//     disk with an order gets <boot order> (the root's default is 1) and
//     orders must differ.
//   - nics: one pcie-root-port (alias ua-vmletport<i>) per NIC of the pod
//     on q35; the settings go to vmlet's metadata for nic_hotplug.
absl::StatusOr<Domain> BuildDomain(const VmConfig& vm, const DomainOptions& options);

}  // namespace vmlet::vmdriver::libvirt

#endif  // VMLET_VMDRIVER_LIBVIRT_DOMAIN_BUILDER_H_
