// `vmletctl cri runp|create|start|stop|rm|stopp|rmp`: the CRI calls that
// create, start, stop and remove pod sandboxes and their VM containers.
#include <cstdio>

#include "base/str_util.h"
#include "cmd/vmletctl/commands.h"
#include "cmd/vmletctl/flags.h"
#include "cmd/vmletctl/pod_config.h"

namespace vmlet::ctl {
namespace {

constexpr int64_t kDefaultStopTimeoutSeconds = 30;

// Runs `call` for every id in `flags.positional()` and prints each id done;
// stops at the first failure.
template <typename Call>
int ForEachId(const FlagSet& flags, Call call) {
  for (const std::string& id : flags.positional()) {
    if (int code = call(id); code != kExitOk) return code;
    std::printf("%s\n", id.c_str());
  }
  return kExitOk;
}

}  // namespace

int CriRunPod(Client& client, Args args) {
  PodParams params;
  int64_t attempt = 0;
  FlagSet flags("cri runp",
                "usage: vmletctl [options] cri runp --name NAME [options]\n"
                "\n"
                "RunPodSandbox with the labels the kubelet sets; prints the pod sandbox's id.\n"
                "\n"
                "Options:\n"
                "  --name NAME        the pod's name (required)\n"
                "  --namespace NS     the pod's namespace (default \"default\")\n"
                "  --uid UID          the pod's uid (default: a new random one)\n"
                "  --attempt N        the sandbox's attempt number (default 0)\n"
                "  --log-dir DIR      the pod's log directory\n"
                "                     (default /var/log/pods/<namespace>_<name>_<uid>)\n");
  flags.AddString("--name", &params.name);
  flags.AddString("--namespace|-n", &params.namespace_);
  flags.AddString("--uid", &params.uid);
  flags.AddInt("--attempt", &attempt, 0);
  flags.AddString("--log-dir", &params.log_dir);
  if (auto done = flags.Parse(args, 0, 0)) return *done;
  if (params.name.empty()) return flags.Error("--name is required");
  params.attempt = static_cast<uint32_t>(attempt);

  v1::RunPodSandboxRequest request;
  *request.mutable_config() = MakePodConfig(std::move(params));
  v1::RunPodSandboxResponse response;
  grpc::Status status = client.Runtime(&v1::RuntimeService::Stub::RunPodSandbox, request, &response,
                                       CallKind::kChange);
  if (!status.ok()) return FailRpc("RunPodSandbox", status);
  std::printf("%s\n", response.pod_sandbox_id().c_str());
  return kExitOk;
}

int CriCreate(Client& client, Args args) {
  VmParams params;
  params.name.clear();
  int64_t attempt = 0;
  FlagSet flags(
      "cri create",
      "usage: vmletctl [options] cri create POD_ID --name NAME --image IMAGE [options]\n"
      "\n"
      "CreateContainer: defines the VM of pod sandbox POD_ID; prints the container's id.\n"
      "\n"
      "Options:\n"
      "  --name NAME        the container's name (required)\n"
      "  --image IMAGE      the VM image, a name or id from \"cri images\" (required)\n"
      "  --cpus N           vCPUs (CPU limit); default: vmletd's default\n"
      "  --memory-mib M     memory in MiB (memory limit); default: vmletd's default\n"
      "  --attempt N        the container's attempt number (default 0)\n"
      "  --log-path REL     the log file, relative to the pod's log directory\n"
      "                     (default <name>/<attempt>.log)\n");
  flags.AddString("--name", &params.name);
  flags.AddString("--image", &params.image);
  flags.AddInt("--cpus", &params.cpus, 1);
  flags.AddInt("--memory-mib", &params.memory_mib, 1);
  flags.AddInt("--attempt", &attempt, 0);
  flags.AddString("--log-path", &params.log_path);
  if (auto done = flags.Parse(args, 1, 1)) return *done;
  if (params.name.empty()) return flags.Error("--name is required");
  if (params.image.empty()) return flags.Error("--image is required");
  params.attempt = static_cast<uint32_t>(attempt);

  // The pod's identity for the container's labels, and its full id.
  v1::PodSandboxStatusRequest status_request;
  status_request.set_pod_sandbox_id(flags.positional()[0]);
  v1::PodSandboxStatusResponse pod;
  grpc::Status status =
      client.Runtime(&v1::RuntimeService::Stub::PodSandboxStatus, status_request, &pod);
  if (!status.ok()) return FailRpc("PodSandboxStatus", status);

  v1::CreateContainerRequest request;
  request.set_pod_sandbox_id(pod.status().id());
  *request.mutable_config() = MakeContainerConfig(pod.status().metadata(), params);
  v1::PodSandboxConfig* sandbox = request.mutable_sandbox_config();
  *sandbox->mutable_metadata() = pod.status().metadata();
  *sandbox->mutable_labels() = pod.status().labels();
  *sandbox->mutable_annotations() = pod.status().annotations();
  v1::CreateContainerResponse response;
  status = client.Runtime(&v1::RuntimeService::Stub::CreateContainer, request, &response,
                          CallKind::kChange);
  if (!status.ok()) return FailRpc("CreateContainer", status);
  std::printf("%s\n", response.container_id().c_str());
  return kExitOk;
}

int CriStart(Client& client, Args args) {
  FlagSet flags("cri start",
                "usage: vmletctl [options] cri start ID...\n\n"
                "StartContainer: starts (resumes) the VM of each container.\n");
  if (auto done = flags.Parse(args, 1, SIZE_MAX)) return *done;
  return ForEachId(flags, [&](const std::string& id) {
    v1::StartContainerRequest request;
    request.set_container_id(id);
    v1::StartContainerResponse response;
    grpc::Status status = client.Runtime(&v1::RuntimeService::Stub::StartContainer, request,
                                         &response, CallKind::kChange);
    return status.ok() ? kExitOk : FailRpc(StrCat("StartContainer \"", id, "\""), status);
  });
}

int CriStop(Client& client, Args args) {
  int64_t timeout = kDefaultStopTimeoutSeconds;
  FlagSet flags("cri stop",
                "usage: vmletctl [options] cri stop [--timeout S] ID...\n"
                "\n"
                "StopContainer: asks each VM to power off and forces it off after the timeout.\n"
                "\n"
                "Options:\n"
                "  --timeout S   seconds the guest gets to shut down (default 30; 0 forces\n"
                "                it off at once)\n");
  flags.AddInt("--timeout|-t", &timeout, 0);
  if (auto done = flags.Parse(args, 1, SIZE_MAX)) return *done;
  return ForEachId(flags, [&](const std::string& id) {
    v1::StopContainerRequest request;
    request.set_container_id(id);
    request.set_timeout(timeout);
    v1::StopContainerResponse response;
    grpc::Status status = client.Runtime(&v1::RuntimeService::Stub::StopContainer, request,
                                         &response, CallKind::kChange, timeout);
    return status.ok() ? kExitOk : FailRpc(StrCat("StopContainer \"", id, "\""), status);
  });
}

int CriRemove(Client& client, Args args) {
  FlagSet flags("cri rm",
                "usage: vmletctl [options] cri rm ID...\n\n"
                "RemoveContainer: removes each container and its VM.\n");
  if (auto done = flags.Parse(args, 1, SIZE_MAX)) return *done;
  return ForEachId(flags, [&](const std::string& id) {
    v1::RemoveContainerRequest request;
    request.set_container_id(id);
    v1::RemoveContainerResponse response;
    grpc::Status status = client.Runtime(&v1::RuntimeService::Stub::RemoveContainer, request,
                                         &response, CallKind::kChange);
    return status.ok() ? kExitOk : FailRpc(StrCat("RemoveContainer \"", id, "\""), status);
  });
}

int CriStopPod(Client& client, Args args) {
  FlagSet flags("cri stopp",
                "usage: vmletctl [options] cri stopp POD_ID...\n\n"
                "StopPodSandbox: stops each pod sandbox, its VM forced off.\n");
  if (auto done = flags.Parse(args, 1, SIZE_MAX)) return *done;
  return ForEachId(flags, [&](const std::string& id) {
    v1::StopPodSandboxRequest request;
    request.set_pod_sandbox_id(id);
    v1::StopPodSandboxResponse response;
    grpc::Status status = client.Runtime(&v1::RuntimeService::Stub::StopPodSandbox, request,
                                         &response, CallKind::kChange);
    return status.ok() ? kExitOk : FailRpc(StrCat("StopPodSandbox \"", id, "\""), status);
  });
}

int CriRemovePod(Client& client, Args args) {
  FlagSet flags("cri rmp",
                "usage: vmletctl [options] cri rmp POD_ID...\n\n"
                "RemovePodSandbox: removes each pod sandbox with its containers.\n");
  if (auto done = flags.Parse(args, 1, SIZE_MAX)) return *done;
  return ForEachId(flags, [&](const std::string& id) {
    v1::RemovePodSandboxRequest request;
    request.set_pod_sandbox_id(id);
    v1::RemovePodSandboxResponse response;
    grpc::Status status = client.Runtime(&v1::RuntimeService::Stub::RemovePodSandbox, request,
                                         &response, CallKind::kChange);
    return status.ok() ? kExitOk : FailRpc(StrCat("RemovePodSandbox \"", id, "\""), status);
  });
}

}  // namespace vmlet::ctl
