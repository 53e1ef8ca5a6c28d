// The one place a VM's description (VmConfig) is put together, from, in
// increasing precedence:
//
//   vmletd's defaults (CriOptions)
//     < the container's CRI resources (CPU limit, memory limit, cpuset)
//       < the vmlet.io/ annotations (pod, then container)
//         < the VM spec bound by vmlet.io/vmspec
//
// Annotations and the spec are both a vmspec::v1::Machine and merge through
// MergeMachine. CreateContainer and the VM-spec API's Render use it.
// Everything here is pure: any thread may call it.
#ifndef VMLET_CRI_VM_CONFIG_BUILDER_H_
#define VMLET_CRI_VM_CONFIG_BUILDER_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "annotations/annotations.h"
#include "cri/cri_service.h"
#include "vmdriver/vm_config.h"
#include "vmlet/vmspec/v1/vmspec.pb.h"

namespace vmlet::cri {

// What BuildVmConfig starts from beyond vmletd's options.
struct VmConfigInputs {
  // Identity and placement, copied into the VmConfig as they are.
  std::string id;
  std::string sandbox_id;
  std::string pod_namespace;
  std::string pod_name;
  std::string pod_uid;
  std::string image;  // For display.
  vmdriver::BootSource boot;
  // The virtual size of the image's disk; required for a disk image when a
  // root-disk size is asked for.
  std::optional<uint64_t> image_disk_bytes;
  std::string log_path;
  std::vector<vmdriver::NetworkInterface> nics;
  std::string seed_path;
  // The container: metadata.name, linux.resources, devices and mounts.
  v1::ContainerConfig container;
  // The parsed vmlet.io/ annotations, the container's over the pod's.
  annotations::VmTunables tunables;
  // The spec bound to the pod, if any.
  std::optional<vmspec::v1::VmSpec> vmspec;
  // How many CPUs the host has (max_vcpus when options.max_vcpus is 0).
  int host_cpus = 1;
};

// `over` onto `base`, field by field: a field set in `over` (non-zero,
// non-empty, present for optional and message fields, recursively) wins;
// repeated fields (disks, nics, numa, cpu features and pins, timers) replace
// `base`'s as a whole when `over` has any.
void MergeMachine(const vmspec::v1::Machine& over, vmspec::v1::Machine* base);

// INVALID_ARGUMENT naming the field (annotation or spec field path), the
// value and what was expected: a root-disk size for a kernel image or below
// the image's size, more vCPUs than a CPU topology holds, a volume disk that
// names no device or mount of the container, an unreadable CRI cpuset.
absl::StatusOr<vmdriver::VmConfig> BuildVmConfig(const CriOptions& options,
                                                 const VmConfigInputs& inputs);

}  // namespace vmlet::cri

#endif  // VMLET_CRI_VM_CONFIG_BUILDER_H_
