// Plugs the VM's NICs into a domain that is up but paused (before the
// guest's firmware runs, so the guest finds them as if they were there
// from the start).
//
// Why not <interface> in the domain XML: libvirt opens a tap by name in its
// own network namespace, while a pod's tap lives in the pod's namespace,
// which libvirtd may not even be able to see (vmletd and libvirtd can run
// in different namespaces). So vmletd opens the tap itself, inside the
// pod's namespace, and hands the open file descriptor to QEMU through
// libvirt's QEMU monitor passthrough (getfd + netdev_add + device_add).
// libvirt marks such a domain as tainted ("custom-monitor") and does not
// list the NIC in its XML; vmletd keeps track of it instead.
#ifndef VMLET_VMDRIVER_LIBVIRT_NIC_HOTPLUG_H_
#define VMLET_VMDRIVER_LIBVIRT_NIC_HOTPLUG_H_

#include <libvirt/libvirt.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "vmdriver/libvirt/domain.h"
#include "vmdriver/vm_config.h"

namespace vmlet::vmdriver::libvirt {

// The QMP commands that plug NIC number `index` whose tap was passed as
// the monitor fd named `fd_name`, or one fd per queue pair named
// `fd_names` (exposed for tests).
std::string NetdevAddCommand(int index, const std::string& fd_name);
std::string NetdevAddCommand(int index, const std::vector<std::string>& fd_names);
// `settings` (from the domain, domain.h Nic) choose the device model
// (virtio-net-pci, e1000, e1000e, rtl8139), the MAC (the spec's over the
// pod's) and virtio queue pairs (mq=on, vectors=2*q+2 when q > 1). On a
// q35 machine (`pcie`) the NIC goes into the PCIe root port
// kNicPortAliasPrefix<index> the domain has; on pc into a fixed slot of
// pci.0. The overload without settings is a virtio NIC on pc.
std::string DeviceAddCommand(int index, const NetworkInterface& nic, const Nic& settings,
                             bool pcie);
std::string DeviceAddCommand(int index, const NetworkInterface& nic);

// Opens each NIC's tap in its namespace (once per queue pair: the pod's
// tap is multi-queue) and plugs it into `domain`, with settings[i] for
// nics[i] (defaults where settings has fewer entries).
// Thread-safe; the caller serialises operations on one domain.
absl::Status PlugNics(virDomainPtr domain, const std::vector<NetworkInterface>& nics,
                      const std::vector<Nic>& settings, bool pcie);

}  // namespace vmlet::vmdriver::libvirt

#endif  // VMLET_VMDRIVER_LIBVIRT_NIC_HOTPLUG_H_
