// RemovePodSandbox: stop and remove the pod's VM, then everything of the pod.
#include "base/fault_point.h"
#include "base/file_util.h"
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

absl::Status CriService::RemovePodSandbox(const v1::RemovePodSandboxRequest& req,
                                          v1::RemovePodSandboxResponse* /*resp*/) {
  VMLET_RETURN_IF_ERROR(ValidateIdField("pod_sandbox_id", req.pod_sandbox_id()));
  VMLET_ASSIGN_OR_RETURN(std::optional<Locked<SandboxRecord>> locked,
                         LockSandboxIfExists(req.pod_sandbox_id()));
  if (!locked) return absl::OkStatus();  // Already gone.
  const SandboxRecord* sandbox = &locked->record;
  const std::string id = sandbox->id();

  for (const ContainerRecord& container :
       containers_.List([&id](const ContainerRecord& c) { return c.sandbox_id() == id; })) {
    VMLET_ASSIGN_OR_RETURN(std::optional<Locked<ContainerRecord>> current,
                           LockContainerIfExists(container.id()));
    if (!current) continue;  // Removed meanwhile.
    VMLET_RETURN_IF_ERROR(
        Annotate(RemoveContainerLocked(current->record), StrCat("removing sandbox \"", id, "\"")));
  }
  VMLET_FAULT_POINT("remove_pod_sandbox.after_containers_removed");
  VMLET_ASSIGN_OR_RETURN(SandboxRecord current, sandboxes_.Get(id));
  VMLET_RETURN_IF_ERROR(TearDownSandboxNetwork(current));
  VMLET_RETURN_IF_ERROR(
      Annotate(RemoveTree(SandboxDir(id)), StrCat("removing state of sandbox \"", id, "\"")));
  VMLET_FAULT_POINT("remove_pod_sandbox.after_sandbox_dir");
  // The record goes last: until then a retry finds the sandbox and finishes.
  VMLET_RETURN_IF_ERROR(sandboxes_.Delete(id));
  sandbox_names_.Release(SandboxName(sandbox->config().metadata()), id);
  kLog.Info("sandbox {} removed", id);
  return absl::OkStatus();
}

}  // namespace vmlet::cri
