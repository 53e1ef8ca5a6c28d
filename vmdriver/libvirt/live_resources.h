// Live changes of a running VM's resources (LibvirtDriver::UpdateResources):
// the checks, all made before anything changes, host CPU maps for libvirt's
// pin calls, and bringing the guest's CPUs online or offline through its
// agent (qemu-ga), which hot-plug needs: a Linux guest without udev rules
// leaves a hot-added CPU offline.
//
//   guest-get-vcpus                       -> [{logical-id, online, can-offline}]
//   guest-set-vcpus {vcpus: [{logical-id, online}]} -> how many it changed
#ifndef VMLET_VMDRIVER_LIBVIRT_LIVE_RESOURCES_H_
#define VMLET_VMDRIVER_LIBVIRT_LIVE_RESOURCES_H_

#include <cstdint>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "vmdriver/libvirt/guest_exec.h"

namespace vmlet::vmdriver::libvirt {

// The least memory UpdateResources gives a VM.
inline constexpr int64_t kMinLiveMemoryBytes = int64_t{16} << 20;

// OUT_OF_RANGE unless 1 <= vcpus <= max_vcpus; the message names the
// field, the value and the limit.
absl::Status CheckVcpuCount(int vcpus, int max_vcpus);

// OUT_OF_RANGE unless kMinLiveMemoryBytes <= bytes <= max_bytes.
absl::Status CheckMemorySize(int64_t bytes, int64_t max_bytes);

// INVALID_ARGUMENT for a CPU that `host_cpus` (one flag per host CPU: online)
// does not have, or one listed twice.
absl::Status CheckCpuset(const std::vector<int>& cpuset, const std::vector<bool>& host_cpus);

// virNodeGetCPUMap's bitmap of `cpus` host CPUs as one flag per CPU.
std::vector<bool> CpusOfMap(const unsigned char* map, int cpus);

// The bitmap libvirt's pin calls take, of VIR_CPU_MAPLEN(host_cpus) bytes,
// with the bits of `cpus` set; all online host CPUs for an empty `cpus`.
std::vector<unsigned char> CpuMapOf(const std::vector<int>& cpus,
                                    const std::vector<bool>& host_cpus);

// The guest-get-vcpus reply as (logical id, online, can offline); INTERNAL
// for a reply that is not such a list (exposed for tests).
struct GuestVcpu {
  int logical_id = 0;
  bool online = false;
  bool can_offline = false;
};
absl::StatusOr<std::vector<GuestVcpu>> ParseGuestVcpus(std::string_view reply);

// Brings the number of CPUs online in the guest to `count`: onlines the
// offline ones with the lowest ids, or offlines the highest that may go
// offline, and looks again every 200 ms while the guest kernel has not yet
// found a hot-added CPU, for at most `timeout`. OK once `count` are online;
// the agent's error when it does not answer (FAILED_PRECONDITION without
// one); DEADLINE_EXCEEDED naming how many are online when time runs out.
// Any thread; blocks it.
absl::Status SetGuestOnlineVcpus(const AgentCommand& agent, int count, absl::Duration timeout);

}  // namespace vmlet::vmdriver::libvirt

#endif  // VMLET_VMDRIVER_LIBVIRT_LIVE_RESOURCES_H_
