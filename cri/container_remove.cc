// RemoveContainer: destroy the VM if it runs, delete it and its record.
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

absl::Status CriService::RemoveContainer(const v1::RemoveContainerRequest& req,
                                         v1::RemoveContainerResponse* /*resp*/) {
  VMLET_RETURN_IF_ERROR(ValidateIdField("container_id", req.container_id()));
  VMLET_ASSIGN_OR_RETURN(std::optional<Locked<ContainerRecord>> container,
                         LockContainerIfExists(req.container_id()));
  if (!container) return absl::OkStatus();  // Already gone.
  return RemoveContainerLocked(container->record);
}

absl::Status CriService::RemoveContainerLocked(const ContainerRecord& record) {
  const std::string& id = record.id();
  // Remove destroys a running VM first (the CRI asks for forcible removal).
  VMLET_RETURN_IF_ERROR(
      Annotate(driver_->Remove(id), StrCat("removing VM of container \"", id, "\"")));
  VMLET_FAULT_POINT("remove_container.after_vm_removed");
  // Its own cloud-init seed, if it had one, before the record that names
  // it: a crash in between leaves the record, and a retry finishes.
  RemoveContainerSeed(record);
  VMLET_RETURN_IF_ERROR(containers_.Delete(id));
  absl::StatusOr<SandboxRecord> sandbox = sandboxes_.Get(record.sandbox_id());
  if (sandbox.ok()) {
    container_names_.Release(
        ContainerName(record.config().metadata(), sandbox->config().metadata()), id);
  }
  kLog.Info("container {} removed", id);
  images_->Collect();  // Its image may have been removed while it was in use.
  return absl::OkStatus();
}

}  // namespace vmlet::cri
