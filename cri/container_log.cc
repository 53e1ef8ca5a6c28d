// ReopenContainerLog: the kubelet rotated the log file; write to a new one.
#include "base/status.h"
#include "base/str_util.h"
#include "cri/convert.h"
#include "cri/cri_service.h"
#include "cri/validate.h"

namespace vmlet::cri {

absl::Status CriService::ReopenContainerLog(const v1::ReopenContainerLogRequest& req,
                                            v1::ReopenContainerLogResponse* /*resp*/) {
  VMLET_RETURN_IF_ERROR(ValidateIdField("container_id", req.container_id()));
  VMLET_ASSIGN_OR_RETURN(ContainerRecord container, containers_.Get(req.container_id()));
  if (container.state() != state::v1::CONTAINER_STATE_RUNNING) {
    return absl::FailedPreconditionError(StrCat("container \"", container.id(), "\" is ",
                                                StateName(container.state()),
                                                ": only a running container's log is reopened"));
  }
  return Annotate(driver_->ReopenLog(container.id()),
                  StrCat("reopening the log of container \"", container.id(), "\""));
}

}  // namespace vmlet::cri
