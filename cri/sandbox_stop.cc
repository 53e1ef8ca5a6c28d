// StopPodSandbox: stop the pod's VM, mark the sandbox not ready.
#include "base/fault_point.h"
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

absl::Status CriService::StopPodSandbox(const v1::StopPodSandboxRequest& req,
                                        v1::StopPodSandboxResponse* /*resp*/) {
  VMLET_RETURN_IF_ERROR(ValidateIdField("pod_sandbox_id", req.pod_sandbox_id()));
  VMLET_ASSIGN_OR_RETURN(std::optional<Locked<SandboxRecord>> locked,
                         LockSandboxIfExists(req.pod_sandbox_id()));
  if (!locked) return absl::OkStatus();  // Already gone.
  const SandboxRecord* sandbox = &locked->record;
  const std::string id = sandbox->id();

  // The kubelet stops containers with their grace period first; whatever
  // still runs now is stopped at once, as containerd does. A created
  // container's VM goes too: QEMU (paused) holds the pod's tap, which the
  // network teardown must delete, and the container can never start in a
  // stopped sandbox.
  for (const ContainerRecord& container :
       containers_.List([&id](const ContainerRecord& c) { return c.sandbox_id() == id; })) {
    VMLET_ASSIGN_OR_RETURN(std::optional<Locked<ContainerRecord>> current,
                           LockContainerIfExists(container.id()));
    if (!current) continue;  // Removed meanwhile.
    VMLET_RETURN_IF_ERROR(Annotate(StopContainerLocked(current->record, 0, /*created_too=*/true),
                                   StrCat("stopping sandbox \"", id, "\"")));
  }

  VMLET_ASSIGN_OR_RETURN(SandboxRecord updated, sandboxes_.Update(id, [](SandboxRecord& r) {
    if (r.state() == state::v1::SANDBOX_STATE_READY) {
      r.set_state(state::v1::SANDBOX_STATE_NOTREADY);
    }
    return absl::OkStatus();
  }));
  VMLET_FAULT_POINT("stop_pod_sandbox.after_not_ready_record");
  // As containerd does, the pod's address goes back to the network now,
  // not at removal: a stopped sandbox never runs again.
  VMLET_RETURN_IF_ERROR(TearDownSandboxNetwork(updated));
  if (sandbox->state() != updated.state()) kLog.Info("sandbox {} stopped", id);
  return absl::OkStatus();
}

}  // namespace vmlet::cri
