// Finding a VM pod by its name, as people name pods, rather than by id.
#ifndef VMLET_CMD_VMLETCTL_POD_LOOKUP_H_
#define VMLET_CMD_VMLETCTL_POD_LOOKUP_H_

#include <optional>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "cmd/vmletctl/client.h"

namespace vmlet::ctl {

// The sandboxes whose metadata names pod `name` in `namespace_` (one per
// attempt), newest first; empty when there is none.
grpc::Status FindPodSandboxes(Client& client, const std::string& name,
                              const std::string& namespace_, std::vector<v1::PodSandbox>* pods);

// The containers of sandbox `pod_id`, newest first.
grpc::Status ListPodContainers(Client& client, const std::string& pod_id,
                               std::vector<v1::Container>* containers);

// The newest container (the VM) of the newest sandbox of pod `name` in
// `namespace_`. Prints what is wrong (no such pod, no VM, a failed call) and
// returns nullopt when there is none.
std::optional<v1::Container> FindPodVm(Client& client, const std::string& name,
                                       const std::string& namespace_);

// "pod \"NAME\" in namespace \"NS\"", for messages.
std::string DescribePod(const std::string& name, const std::string& namespace_);

}  // namespace vmlet::ctl

#endif  // VMLET_CMD_VMLETCTL_POD_LOOKUP_H_
