// Pod annotations under "vmlet.io/": typed VM tunables that the CRI's
// container config cannot carry. Keys are strict: an unknown key under the
// prefix is an error, never ignored (DESIGN.md "Fixed names").
//
// Two kinds of keys:
//  - pod keys (kCloudInitUserData, kCloudInitNetworkConfig, kSshKeys,
//    kVmSpec) belong to the pod: they are read from the sandbox config's
//    annotations (checked by RunPodSandbox, used when the seed is written)
//    and refused on a container;
//  - every other key describes the VM and may be set on the pod or on the
//    container (the container's value wins).
//
// Everything here is pure: any thread may call it.
#ifndef VMLET_ANNOTATIONS_ANNOTATIONS_H_
#define VMLET_ANNOTATIONS_ANNOTATIONS_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "vmlet/vmspec/v1/vmspec.pb.h"

namespace vmlet::annotations {

inline constexpr std::string_view kPrefix = "vmlet.io/";

// vCPUs at boot, 1 to 512.
inline constexpr std::string_view kVcpus = "vmlet.io/vcpus";
// Guest memory, a Kubernetes quantity ("4Gi"), at least 16Mi.
inline constexpr std::string_view kMemory = "vmlet.io/memory";
// "host-passthrough", "host-model" or a QEMU CPU model ("Skylake-Server").
inline constexpr std::string_view kCpuModel = "vmlet.io/cpu-model";
// A QEMU machine type: "pc", "q35", "pc-q35-7.2", "pc-i440fx-7.2".
inline constexpr std::string_view kMachine = "vmlet.io/machine";
// "bios", "uefi" or "uefi-secure".
inline constexpr std::string_view kFirmware = "vmlet.io/firmware";
// The root disk's bus: "virtio", "scsi" or "sata".
inline constexpr std::string_view kDiskBus = "vmlet.io/disk-bus";
// The primary NIC's model: "virtio", "e1000", "e1000e" or "rtl8139".
inline constexpr std::string_view kNicModel = "vmlet.io/nic-model";
// The virtual size of the VM's root disk overlay, a Kubernetes quantity
// ("20Gi"); at least the image's own size. Disk images only.
inline constexpr std::string_view kRootDiskSize = "vmlet.io/root-disk-size";
// Pod keys: cloud-init user-data and network-config (version 1 or 2) as
// they go into the seed, and authorized SSH keys, one per line.
inline constexpr std::string_view kCloudInitUserData = "vmlet.io/cloud-init-user-data";
inline constexpr std::string_view kCloudInitNetworkConfig = "vmlet.io/cloud-init-network-config";
inline constexpr std::string_view kSshKeys = "vmlet.io/ssh-keys";
// Pod key: the VM spec (of the pod's namespace) the pod's VM is made from.
inline constexpr std::string_view kVmSpec = "vmlet.io/vmspec";

// Size limits of values.
inline constexpr size_t kMaxCloudInitBytes = 64 * 1024;
inline constexpr size_t kMaxSshKeys = 32;
inline constexpr size_t kMaxSshKeyBytes = 8 * 1024;
inline constexpr size_t kMaxValueBytes = 256;  // Every other key.
// All vmlet.io/ keys and values of one annotation map together.
inline constexpr size_t kMaxTotalBytes = 256 * 1024;

inline constexpr int kMaxVcpus = 512;
inline constexpr uint64_t kMinMemoryBytes = uint64_t{16} << 20;

// Where a map of annotations comes from.
enum class Scope {
  kPod,        // PodSandboxConfig.annotations: every key.
  kContainer,  // ContainerConfig.annotations: pod keys are refused.
};

// What the vmlet.io/ annotations ask for. Zero or empty: not set.
struct VmTunables {
  int vcpus = 0;
  uint64_t memory_bytes = 0;
  uint64_t root_disk_bytes = 0;
  std::string vmspec;  // A spec name of the pod's namespace.
  // The rest, in the VM spec's terms, so that annotations and a spec merge
  // through one code path: cpu.mode/model, machine_type, firmware.type and
  // secure_boot, disks (one "root" entry with its bus), nics (nics[0] with
  // its model) and cloud_init (user_data, network_config,
  // ssh_authorized_keys).
  vmspec::v1::Machine machine;
};

// Reads the vmlet.io/ keys of `annotations`; other keys are ignored.
// INVALID_ARGUMENT names the field path (`field`["<key>"]), the value (cut
// to 64 characters) and the accepted form.
absl::StatusOr<VmTunables> ParseVmTunables(const std::map<std::string, std::string>& annotations,
                                           std::string_view field, Scope scope = Scope::kPod);

// A Kubernetes quantity of bytes: "1073741824", "512Mi", "20Gi", "1T", "1.5Gi".
absl::StatusOr<uint64_t> ParseByteQuantity(std::string_view value);

// A DNS-1123 subdomain as Kubernetes names objects: at most 253 characters
// of [a-z0-9-.], each dot-separated part starting and ending alphanumeric.
bool IsDns1123Subdomain(std::string_view name);

}  // namespace vmlet::annotations

#endif  // VMLET_ANNOTATIONS_ANNOTATIONS_H_
