// The figures of vmlet's VMs from libvirt's bulk statistics call
// (virConnectGetAllDomainStats), which CollectStats makes once per collect.
//
//   cpu.time                          -> cpu_time_ns
//   vcpu.current                      -> vcpus
//   balloon.current, balloon.rss      -> memory_bytes, rss_bytes (KiB in libvirt)
//   balloon.available/unused/usable   -> guest_total/unused/available_bytes,
//                                        only when the guest's balloon
//                                        driver reports them
//   net.N.{rx,tx}.{bytes,errs}        -> summed over the NICs libvirt knows
//   block.N.allocation                -> summed over the writable disks (by
//                                        block.N.path)
//
// NICs that vmlet plugs through the QEMU monitor (nic_hotplug.h) are not in
// libvirt's domain model, so libvirt reports no net.N figures for them.
#ifndef VMLET_VMDRIVER_LIBVIRT_DOMAIN_STATS_H_
#define VMLET_VMDRIVER_LIBVIRT_DOMAIN_STATS_H_

#include <libvirt/libvirt.h>

#include <string>
#include <vector>

#include "vmdriver/vm_driver.h"

namespace vmlet::vmdriver::libvirt {

// The groups CollectStats asks for.
inline constexpr unsigned kStatsGroups = VIR_DOMAIN_STATS_STATE | VIR_DOMAIN_STATS_CPU_TOTAL |
                                         VIR_DOMAIN_STATS_BALLOON | VIR_DOMAIN_STATS_VCPU |
                                         VIR_DOMAIN_STATS_INTERFACE | VIR_DOMAIN_STATS_BLOCK;

struct DomainStats {
  VmStats stats;   // Without id and timestamp_ns, which the caller knows.
  int state = -1;  // state.state (a virDomainState); -1 when libvirt gave none.
};

// One domain's typed parameters (a virDomainStatsRecord's params and
// nparams) as VmStats. Disks whose path is in `read_only_disks` do not
// count towards disk_allocated_bytes. Parameters it does not know, or of a
// type it does not expect, are ignored. Pure; any thread.
DomainStats ParseDomainStats(const virTypedParameter* params, int count,
                             const std::vector<std::string>& read_only_disks);

}  // namespace vmlet::vmdriver::libvirt

#endif  // VMLET_VMDRIVER_LIBVIRT_DOMAIN_STATS_H_
