// Between the sandbox record and network/: what the pod's config says about
// its network (ports, DNS, hostname, bandwidth) and the persisted state of
// the network that network/ set up.
#ifndef VMLET_CRI_SANDBOX_NETWORK_H_
#define VMLET_CRI_SANDBOX_NETWORK_H_

#include "absl/status/statusor.h"
#include "cri/cri_service.h"
#include "network/pod_network.h"

namespace vmlet::cri {

// INVALID_ARGUMENT for a bad bandwidth annotation
// (kubernetes.io/ingress-bandwidth, kubernetes.io/egress-bandwidth).
absl::StatusOr<network::PodNetworkConfig> PodNetworkConfigOf(const SandboxRecord& record);

network::PodNetworkState PodNetworkStateOf(const SandboxRecord& record);
void SetPodNetworkState(const network::PodNetworkState& state, SandboxRecord* record);

}  // namespace vmlet::cri

#endif  // VMLET_CRI_SANDBOX_NETWORK_H_
