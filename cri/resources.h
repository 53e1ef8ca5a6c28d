// CRI container resources as a VM's: vCPUs from the CPU limit, memory from
// the memory limit, the cpuset as host CPUs to pin to.
#ifndef VMLET_CRI_RESOURCES_H_
#define VMLET_CRI_RESOURCES_H_

#include <cstdint>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "cri/v1/api.pb.h"
#include "vmdriver/vm_driver.h"

namespace vmlet::cri {

// The most CPUs a cpuset may name (libvirt's cpumap limit is far above).
inline constexpr int kMaxCpusetCpu = 4095;

// vCPUs from the CPU limit (quota / period, rounded up); `fallback` when
// there is no limit.
int VcpusFrom(const ::runtime::v1::LinuxContainerResources& resources, int fallback);

// The memory limit; `fallback` when there is none.
int64_t MemoryFrom(const ::runtime::v1::LinuxContainerResources& resources, int64_t fallback);

// A Linux CPU list ("0-3,8,10-11") as sorted, unique CPU numbers; "" is
// the empty list. INVALID_ARGUMENT naming `field`, the value and the form.
absl::StatusOr<std::vector<int>> ParseCpuList(std::string_view field, std::string_view value);

// The live change `resources` asks of a VM: vCPUs when there is a CPU
// limit, memory when there is a memory limit, the cpuset when one is
// given. Settings a VM has no use for (shares, OOM score, swap, hugepage
// limits, unified cgroup files) are not part of it. `field` prefixes the
// field names in errors ("linux", "resources").
absl::StatusOr<vmdriver::VmResourceUpdate> ResourceUpdateFrom(
    std::string_view field, const ::runtime::v1::LinuxContainerResources& resources);

}  // namespace vmlet::cri

#endif  // VMLET_CRI_RESOURCES_H_
