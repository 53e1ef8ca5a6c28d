// PodSandboxStatus and ListPodSandbox: answered from memory.
#include "base/id.h"
#include "base/status.h"
#include "base/str_util.h"
#include "cri/convert.h"
#include "cri/cri_service.h"
#include "cri/validate.h"

namespace vmlet::cri {

absl::Status CriService::PodSandboxStatus(const v1::PodSandboxStatusRequest& req,
                                          v1::PodSandboxStatusResponse* resp) {
  VMLET_RETURN_IF_ERROR(ValidateIdField("pod_sandbox_id", req.pod_sandbox_id()));
  VMLET_ASSIGN_OR_RETURN(SandboxRecord sandbox, sandboxes_.Get(req.pod_sandbox_id()));
  if (!IsVisible(sandbox)) {
    return absl::NotFoundError(
        StrCat("sandbox \"", req.pod_sandbox_id(), "\" not found (it is being created)"));
  }
  *resp->mutable_status() = ToCriSandboxStatus(sandbox);
  for (const ContainerRecord& container : containers_.List([&sandbox](const ContainerRecord& c) {
         return c.sandbox_id() == sandbox.id() && IsVisible(c);
       })) {
    *resp->add_containers_statuses() = ToCriContainerStatus(container);
  }
  resp->set_timestamp(NowNanos());
  if (req.verbose()) AddVerboseInfo(sandbox, resp->mutable_info());
  return absl::OkStatus();
}

absl::Status CriService::ListPodSandbox(const v1::ListPodSandboxRequest& req,
                                        v1::ListPodSandboxResponse* resp) {
  const v1::PodSandboxFilter& filter = req.filter();
  for (const SandboxRecord& sandbox : sandboxes_.List([&filter](const SandboxRecord& s) {
         if (!IsVisible(s)) return false;
         if (!filter.id().empty() && !s.id().starts_with(filter.id())) return false;
         if (filter.has_state() && ToCriState(s.state()) != filter.state().state()) return false;
         return MatchesLabels(s.config().labels(), filter.label_selector());
       })) {
    *resp->add_items() = ToCriSandbox(sandbox);
  }
  return absl::OkStatus();
}

}  // namespace vmlet::cri
