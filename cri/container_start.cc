// StartContainer: let the created (paused) VM run.
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

absl::Status CriService::StartContainer(const v1::StartContainerRequest& req,
                                        v1::StartContainerResponse* /*resp*/) {
  VMLET_RETURN_IF_ERROR(ValidateIdField("container_id", req.container_id()));
  VMLET_ASSIGN_OR_RETURN(ContainerRecord container, containers_.Get(req.container_id()));
  const std::string id = container.id();
  KeyedMutex::Lock lock = container_locks_.Acquire(id);
  VMLET_ASSIGN_OR_RETURN(container, containers_.Get(id));  // Fresh, under the lock.
  if (container.state() != state::v1::CONTAINER_STATE_CREATED) {
    return absl::FailedPreconditionError(StrCat("container \"", id, "\" is ",
                                                StateName(container.state()),
                                                ": only a created container can start"));
  }
  absl::Status started = driver_->Start(id);
  if (!started.ok()) {
    // Like a container whose process failed to start: it is exited, and the
    // kubelet creates the next attempt.
    (void)containers_.Update(id, [&started](ContainerRecord& r) {
      r.set_state(state::v1::CONTAINER_STATE_EXITED);
      r.set_finished_at(NowNanos());
      r.set_exit_code(128);
      r.set_reason("StartError");
      r.set_message(std::string(started.message()));
      return absl::OkStatus();
    });
    return Annotate(started, StrCat("starting VM of container \"", id, "\""));
  }
  absl::StatusOr<vmdriver::VmInfo> info = driver_->Inspect(id);
  VMLET_RETURN_IF_ERROR(containers_
                            .Update(id,
                                    [&info](ContainerRecord& r) {
                                      // An exit event may have come first.
                                      if (r.state() == state::v1::CONTAINER_STATE_CREATED) {
                                        r.set_state(state::v1::CONTAINER_STATE_RUNNING);
                                      }
                                      if (r.started_at() == 0) {
                                        r.set_started_at(info.ok() && info->started_at != 0
                                                             ? info->started_at
                                                             : NowNanos());
                                      }
                                      return absl::OkStatus();
                                    })
                            .status());
  VMLET_FAULT_POINT("start_container.after_running_record");
  kLog.Info("container {} started", id);
  return absl::OkStatus();
}

}  // namespace vmlet::cri
