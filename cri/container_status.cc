// ContainerStatus and ListContainers: answered from memory.
#include "base/status.h"
#include "base/str_util.h"
#include "cri/convert.h"
#include "cri/cri_service.h"
#include "cri/validate.h"

namespace vmlet::cri {

absl::Status CriService::ContainerStatus(const v1::ContainerStatusRequest& req,
                                         v1::ContainerStatusResponse* resp) {
  VMLET_RETURN_IF_ERROR(ValidateIdField("container_id", req.container_id()));
  VMLET_ASSIGN_OR_RETURN(ContainerRecord container, containers_.Get(req.container_id()));
  if (!IsVisible(container)) {
    return absl::NotFoundError(
        StrCat("container \"", req.container_id(), "\" not found (it is being created)"));
  }
  *resp->mutable_status() = ToCriContainerStatus(container);
  if (req.verbose()) AddVerboseInfo(container, resp->mutable_info());
  return absl::OkStatus();
}

absl::Status CriService::ListContainers(const v1::ListContainersRequest& req,
                                        v1::ListContainersResponse* resp) {
  const v1::ContainerFilter& filter = req.filter();
  for (const ContainerRecord& container : containers_.List([&filter](const ContainerRecord& c) {
         if (!IsVisible(c)) return false;
         if (!filter.id().empty() && !c.id().starts_with(filter.id())) return false;
         if (filter.has_state() && ToCriState(c.state()) != filter.state().state()) return false;
         if (!filter.pod_sandbox_id().empty() &&
             !c.sandbox_id().starts_with(filter.pod_sandbox_id())) {
           return false;
         }
         return MatchesLabels(c.config().labels(), filter.label_selector());
       })) {
    *resp->add_containers() = ToCriContainer(container);
  }
  return absl::OkStatus();
}

}  // namespace vmlet::cri
