// RunPodSandbox: record the intent, prepare the sandbox, mark it ready.
#include "base/fault_point.h"
#include "base/file_util.h"
#include "base/id.h"
#include "base/logging.h"
#include "base/scope_guard.h"
#include "base/status.h"
#include "base/str_util.h"
#include "cri/convert.h"
#include "cri/cri_service.h"
#include "cri/validate.h"

namespace vmlet::cri {
namespace {

constexpr Logger kLog("cri");

// Runtime handlers vmletd answers to: the default one and "vmlet", the
// handler a RuntimeClass for VM pods names.
bool IsKnownRuntimeHandler(std::string_view handler) {
  return handler.empty() || handler == "vmlet";
}

}  // namespace

absl::Status CriService::RunPodSandbox(const v1::RunPodSandboxRequest& req,
                                       v1::RunPodSandboxResponse* resp) {
  VMLET_RETURN_IF_ERROR(ValidateSandboxConfig(req.config()));
  if (!IsKnownRuntimeHandler(req.runtime_handler())) {
    return absl::InvalidArgumentError(
        StrCat("runtime_handler \"", req.runtime_handler(),
               "\" is unknown: expected \"\" (the default) or \"vmlet\""));
  }
  const v1::PodSandboxMetadata& metadata = req.config().metadata();
  const std::string name = SandboxName(metadata);
  KeyedMutex::Lock name_lock = sandbox_locks_.Acquire(name);

  // A retry of a call that succeeded (or is still running) after the
  // kubelet gave up waiting: answer with the sandbox it made.
  if (std::optional<std::string> holder = sandbox_names_.Holder(name)) {
    absl::StatusOr<SandboxRecord> existing = sandboxes_.Get(*holder);
    if (existing.ok() && existing->state() == state::v1::SANDBOX_STATE_READY) {
      kLog.Info("RunPodSandbox for {}/{} attempt {} is a retry: sandbox {} exists",
                metadata.namespace_(), metadata.name(), metadata.attempt(), *holder);
      resp->set_pod_sandbox_id(*holder);
      return absl::OkStatus();
    }
    return absl::AlreadyExistsError(StrCat("sandbox name \"", name, "\" is taken by sandbox \"",
                                           *holder, "\" in state ",
                                           existing.ok() ? StateName(existing->state()) : "unknown",
                                           ": expected a new attempt number for a new sandbox"));
  }

  SandboxRecord record;
  record.set_id(GenerateId());
  *record.mutable_config() = req.config();
  record.set_state(state::v1::SANDBOX_STATE_CREATING);
  record.set_created_at(NowNanos());
  record.set_runtime_handler(req.runtime_handler());
  const std::string id = record.id();

  VMLET_RETURN_IF_ERROR(sandbox_names_.Reserve(name, id));
  ScopeGuard release_name([&] { sandbox_names_.Release(name, id); });
  // Intent first: if vmletd dies from here on, the next start finds the
  // CREATING record and undoes whatever was done.
  VMLET_RETURN_IF_ERROR(Annotate(sandboxes_.Add(record), StrCat("recording sandbox \"", id, "\"")));
  ScopeGuard delete_record([&] { (void)sandboxes_.Delete(id); });
  VMLET_FAULT_POINT("run_pod_sandbox.after_intent_record");

  VMLET_RETURN_IF_ERROR(
      Annotate(MakeDirs(SandboxDir(id), 0700), StrCat("creating state of sandbox \"", id, "\"")));
  ScopeGuard remove_dir([&] { (void)RemoveTree(SandboxDir(id)); });
  VMLET_FAULT_POINT("run_pod_sandbox.after_sandbox_dir");
  ScopeGuard tear_down([&] {
    absl::StatusOr<SandboxRecord> current = sandboxes_.Get(id);
    if (!current.ok()) return;
    if (absl::Status status = TearDownSandboxNetwork(*current); !status.ok()) {
      kLog.Error("sandbox {}: {}", id, status.message());
    }
  });
  VMLET_RETURN_IF_ERROR(SetUpSandboxNetwork(record));
  VMLET_FAULT_POINT("run_pod_sandbox.before_ready_record");

  VMLET_RETURN_IF_ERROR(Annotate(sandboxes_
                                     .Update(id,
                                             [](SandboxRecord& r) {
                                               r.set_state(state::v1::SANDBOX_STATE_READY);
                                               return absl::OkStatus();
                                             })
                                     .status(),
                                 StrCat("recording sandbox \"", id, "\" as ready")));
  VMLET_FAULT_POINT("run_pod_sandbox.after_ready_record");
  tear_down.Dismiss();
  remove_dir.Dismiss();
  delete_record.Dismiss();
  release_name.Dismiss();
  kLog.Info("sandbox {} is ready for pod {}/{} (uid {}, attempt {})", id, metadata.namespace_(),
            metadata.name(), metadata.uid(), metadata.attempt());
  resp->set_pod_sandbox_id(id);
  return absl::OkStatus();
}

}  // namespace vmlet::cri
