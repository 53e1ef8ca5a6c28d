#include "cmd/vmletctl/pod_lookup.h"

#include <algorithm>

#include "base/str_util.h"

namespace vmlet::ctl {

grpc::Status FindPodSandboxes(Client& client, const std::string& name,
                              const std::string& namespace_, std::vector<v1::PodSandbox>* pods) {
  // Metadata rather than a label selector: pods made without the kubelet's
  // labels (crictl, scripts) are found as well.
  v1::ListPodSandboxResponse response;
  grpc::Status status = client.Runtime(&v1::RuntimeService::Stub::ListPodSandbox,
                                       v1::ListPodSandboxRequest(), &response);
  if (!status.ok()) return status;
  pods->clear();
  for (const v1::PodSandbox& pod : response.items()) {
    if (pod.metadata().name() == name && pod.metadata().namespace_() == namespace_) {
      pods->push_back(pod);
    }
  }
  std::sort(pods->begin(), pods->end(), [](const v1::PodSandbox& a, const v1::PodSandbox& b) {
    return a.created_at() > b.created_at();
  });
  return grpc::Status::OK;
}

grpc::Status ListPodContainers(Client& client, const std::string& pod_id,
                               std::vector<v1::Container>* containers) {
  v1::ListContainersRequest request;
  request.mutable_filter()->set_pod_sandbox_id(pod_id);
  v1::ListContainersResponse response;
  grpc::Status status =
      client.Runtime(&v1::RuntimeService::Stub::ListContainers, request, &response);
  if (!status.ok()) return status;
  containers->assign(response.containers().begin(), response.containers().end());
  std::sort(containers->begin(), containers->end(),
            [](const v1::Container& a, const v1::Container& b) {
              return a.created_at() > b.created_at();
            });
  return grpc::Status::OK;
}

std::optional<v1::Container> FindPodVm(Client& client, const std::string& name,
                                       const std::string& namespace_) {
  std::vector<v1::PodSandbox> pods;
  grpc::Status status = FindPodSandboxes(client, name, namespace_, &pods);
  if (!status.ok()) {
    FailRpc("ListPodSandbox", status);
    return std::nullopt;
  }
  if (pods.empty()) {
    Fail(StrCat(DescribePod(name, namespace_), " not found"));
    return std::nullopt;
  }
  std::vector<v1::Container> containers;
  status = ListPodContainers(client, pods[0].id(), &containers);
  if (!status.ok()) {
    FailRpc("ListContainers", status);
    return std::nullopt;
  }
  if (containers.empty()) {
    Fail(StrCat(DescribePod(name, namespace_), " has no VM"));
    return std::nullopt;
  }
  return containers[0];
}

std::string DescribePod(const std::string& name, const std::string& namespace_) {
  return StrCat("pod \"", name, "\" in namespace \"", namespace_, "\"");
}

}  // namespace vmlet::ctl
