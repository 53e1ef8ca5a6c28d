// StopContainer: ask the guest to power off, destroy the VM after the timeout.
#include "base/fault_point.h"
#include "base/id.h"
#include "base/logging.h"
#include "base/status.h"
#include "base/str_util.h"
#include "cri/convert.h"
#include "cri/cri_service.h"
#include "cri/validate.h"

namespace vmlet::cri {
namespace {

constexpr Logger kLog("cri");

}  // namespace

absl::Status CriService::StopContainer(const v1::StopContainerRequest& req,
                                       v1::StopContainerResponse* /*resp*/) {
  VMLET_RETURN_IF_ERROR(ValidateIdField("container_id", req.container_id()));
  VMLET_ASSIGN_OR_RETURN(std::optional<Locked<ContainerRecord>> container,
                         LockContainerIfExists(req.container_id()));
  if (!container) return absl::OkStatus();  // Already gone.
  return StopContainerLocked(container->record, req.timeout());
}

absl::Status CriService::StopContainerLocked(const ContainerRecord& record, int64_t timeout_seconds,
                                             bool created_too) {
  // Only a running VM has anything to stop; stopping a created or exited
  // container succeeds and changes nothing, as in containerd.
  const bool created = record.state() == state::v1::CONTAINER_STATE_CREATED;
  if (record.state() != state::v1::CONTAINER_STATE_RUNNING && !(created && created_too)) {
    return absl::OkStatus();
  }
  const std::string& id = record.id();
  absl::Status stopped = timeout_seconds > 0 ? driver_->Stop(id, absl::Seconds(timeout_seconds))
                                             : driver_->Destroy(id);
  if (absl::IsNotFound(stopped)) {
    return ApplyVmInfo(id, vmdriver::VmInfo{
                               .id = id,
                               .state = vmdriver::VmState::kExited,
                               .finished_at = NowNanos(),
                               .exit_code = 255,
                               .reason = "Unknown",
                               .message = "the VM no longer exists",
                           });
  }
  VMLET_RETURN_IF_ERROR(Annotate(stopped, StrCat("stopping container \"", id, "\"")));
  VMLET_ASSIGN_OR_RETURN(vmdriver::VmInfo info, driver_->Inspect(id));
  VMLET_RETURN_IF_ERROR(ApplyVmInfo(id, info));
  VMLET_FAULT_POINT("stop_container.after_exited_record");
  kLog.Info("container {} stopped: exit code {}, reason {}", id, info.exit_code, info.reason);
  return absl::OkStatus();
}

}  // namespace vmlet::cri
