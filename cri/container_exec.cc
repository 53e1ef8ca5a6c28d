// ExecSync: run a command in the VM through its guest agent and return its
// output (the kubelet's exec probes, `crictl exec -s`). Streaming Exec needs
// the streaming server and is not here.
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"
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

absl::Status CriService::ExecSync(const v1::ExecSyncRequest& req, v1::ExecSyncResponse* resp) {
  VMLET_RETURN_IF_ERROR(ValidateIdField("container_id", req.container_id()));
  VMLET_RETURN_IF_ERROR(ValidateCommand(req.cmd()));
  if (req.timeout() < 0) {
    return absl::InvalidArgumentError(
        StrCat("timeout: ", req.timeout(), " is negative: expected seconds, or 0 for no limit"));
  }
  // No lock: a command may run for long, and stopping the container must
  // not wait for it (the command then fails, as its VM is gone).
  VMLET_ASSIGN_OR_RETURN(
      ContainerRecord container,
      GetRunningContainer(req.container_id(), "commands run only in a running container"));
  const std::string& id = container.id();
  const std::vector<std::string> argv(req.cmd().begin(), req.cmd().end());
  // CRI: a timeout of 0 means no limit, as does the driver's zero.
  absl::StatusOr<vmdriver::ExecResult> result =
      driver_->Exec(id, argv, absl::Seconds(req.timeout()));
  if (!result.ok()) {
    return Annotate(result.status(), StrCat("exec in container \"", id, "\""));
  }
  if (result->output_truncated) {
    kLog.Warning("container {}: exec of {}: output cut at {} bytes per stream", id, argv[0],
                 vmdriver::kMaxExecOutputBytes);
  }
  resp->set_stdout(std::move(result->stdout_data));
  resp->set_stderr(std::move(result->stderr_data));
  resp->set_exit_code(result->exit_code);
  return absl::OkStatus();
}

}  // namespace vmlet::cri
