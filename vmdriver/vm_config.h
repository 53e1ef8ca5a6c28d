// The typed description of one VM: everything vmdriver/ needs to define it.
// Built by cri/ from vmletd's defaults, the container config, the pod's
// vmlet.io/ annotations and the VM spec bound to the pod (in that order of
// precedence); vmdriver/ never sees CRI messages.
#ifndef VMLET_VMDRIVER_VM_CONFIG_H_
#define VMLET_VMDRIVER_VM_CONFIG_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "vmdriver/boot_source.h"
#include "vmlet/vmspec/v1/vmspec.pb.h"

namespace vmlet::vmdriver {

inline constexpr int64_t kMiB = int64_t{1} << 20;

// A NIC of the VM: a tap device that lives in the pod's network namespace
// (made by network/), which the driver opens there and hands to QEMU.
struct NetworkInterface {
  std::string netns_path;
  std::string tap;
  std::string mac;  // "0a:58:0a:63:00:05"
};

struct VmConfig {
  std::string id;          // The container id; the VM is known by it.
  std::string sandbox_id;  // The pod sandbox the VM belongs to.
  std::string name;        // Human-readable: "<namespace>_<pod>_<container>".
  std::string pod_namespace;
  std::string pod_name;
  std::string pod_uid;
  std::string container_name;
  int vcpus = 1;
  int64_t memory_bytes = 512 * kMiB;
  // What UpdateResources may raise vCPUs and memory to while the VM runs;
  // 0: the start value (no growth). Never below the start value.
  int max_vcpus = 0;
  int64_t max_memory_bytes = 0;
  // Host CPUs the VM's vCPUs and emulator threads may run on; empty: all.
  std::vector<int> cpuset;
  std::string image;  // The image reference the VM boots from, as the kubelet named it.
  BootSource boot;
  uint64_t root_disk_bytes = 0;  // Virtual size of the root disk overlay; 0 = the image's size.
  std::string log_path;  // Where the serial console is written (CRI log format); may be empty.
  std::vector<NetworkInterface> nics;
  // A cloud-init NoCloud seed (ISO 9660) attached read-only; may be empty.
  std::string seed_path;
  // The VM's shape beyond the fields above, resolved from annotations and
  // the bound VM spec: CPU topology, model and pinning, hugepages, NUMA,
  // firmware, machine type, features, clock, disks, NIC settings, devices
  // and lifecycle. cpu.count and memory.size are already in `vcpus` and
  // `memory_bytes` and are ignored here; root-disk size is in
  // `root_disk_bytes`. Empty: vmlet's defaults.
  vmspec::v1::Machine machine;
  // What the kubelet passed to the container, by container path: devices
  // and mounts (host paths). A volume disk of `machine` names one.
  std::map<std::string, std::string> volumes;
  // The VM spec the machine came from ("<namespace>/<name>") and its
  // generation, for status; empty/0 without one.
  std::string vmspec;
  int64_t vmspec_generation = 0;
};

}  // namespace vmlet::vmdriver

#endif  // VMLET_VMDRIVER_VM_CONFIG_H_
