// The VM's side of a pod network: a tap device in the sandbox's namespace,
// joined to the CNI interface by tc mirred redirects in both directions (the
// "tc redirect" model kata-containers uses). The VM's NIC takes the CNI
// interface's MAC, so what leaves the VM is indistinguishable from what the
// CNI interface would have sent, and no bridge or MAC rewrite is needed.
// One exception: IPv4 UDP to port 67 from the VM (DHCP) is not redirected;
// vmletd's responder answers it on the tap (dhcp.h) and it never reaches
// the pod network.
//
// Functions named *InNetns join the namespace on a thread of their own
// (netns.h); they are thread-safe.
#ifndef VMLET_NETWORK_TAP_H_
#define VMLET_NETWORK_TAP_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace vmlet::network {

struct LinkInfo {
  std::string mac;  // "0a:58:0a:63:00:05"
  int mtu = 0;
  int index = 0;
};

// NOT_FOUND when the namespace has no link called `name`.
absl::StatusOr<LinkInfo> GetLinkInNetns(const std::string& netns_path, const std::string& name);

// Creates the persistent tap `tap` (multi-purpose tap with vnet headers),
// gives it the MTU of `cni_ifname`, brings it up and installs the
// redirects. The CNI interface keeps its addresses (CNI plugins read them
// back at DEL); the namespace's stack never sees a frame for them.
// Replaces what an earlier, interrupted call left.
absl::Status WireTapInNetns(const std::string& netns_path, const std::string& cni_ifname,
                            const std::string& tap);

// Deletes the tap (a VM still holding it keeps it until it lets go). OK
// when the namespace or the tap no longer exists.
absl::Status DeleteTapInNetns(const std::string& netns_path, const std::string& tap);

// Opens the tap for a VM: a file descriptor to hand to QEMU (the caller
// closes it). The namespace may be one that vmletd's libvirtd cannot see.
absl::StatusOr<int> OpenTapInNetns(const std::string& netns_path, const std::string& tap);

// Opens `queues` queues of the tap (a multi-queue tap, as WireTapInNetns
// makes it): one file descriptor per queue, for a NIC with that many
// queue pairs (the caller closes them). FAILED_PRECONDITION when the tap
// takes fewer queues (a single-queue tap of an older vmletd).
absl::StatusOr<std::vector<int>> OpenTapQueuesInNetns(const std::string& netns_path,
                                                      const std::string& tap, int queues);

}  // namespace vmlet::network

#endif  // VMLET_NETWORK_TAP_H_
