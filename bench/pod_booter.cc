#include "bench/pod_booter.h"

#include <chrono>
#include <functional>
#include <memory>

#include "base/id.h"
#include "base/status.h"
#include "base/str_util.h"
#include "bench/boot_probe.h"

namespace vmlet::bench {
namespace {

namespace v1 = ::runtime::v1;

constexpr absl::Duration kRpcTimeout = absl::Seconds(120);

// A unary call with a deadline, as a status that names the RPC.
absl::Status Rpc(const char* name, const std::function<grpc::Status(grpc::ClientContext*)>& call) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + absl::ToChronoSeconds(kRpcTimeout));
  grpc::Status status = call(&context);
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      StrCat(name, ": ", status.error_message()));
}

}  // namespace

absl::StatusOr<PodSample> PodBooter::Boot(const std::string& name) {
  PodSample sample;
  v1::RunPodSandboxRequest run;
  v1::PodSandboxConfig* config = run.mutable_config();
  config->mutable_metadata()->set_name(name);
  config->mutable_metadata()->set_namespace_(options_.pod_namespace);
  config->mutable_metadata()->set_uid(GenerateId().substr(0, 16));
  config->set_log_directory(StrCat(vmletd_.dir(), "/logs/", name));
  v1::RunPodSandboxResponse ran;
  const Clock::time_point run_sent = Clock::now();
  VMLET_RETURN_IF_ERROR(Rpc("RunPodSandbox", [&](grpc::ClientContext* context) {
    return vmletd_.runtime().RunPodSandbox(context, run, &ran);
  }));
  sample.run_pod = Ms(Clock::now() - run_sent);
  sandboxes_.push_back(ran.pod_sandbox_id());

  v1::CreateContainerRequest create;
  create.set_pod_sandbox_id(ran.pod_sandbox_id());
  create.mutable_config()->mutable_metadata()->set_name("vm");
  create.mutable_config()->mutable_image()->set_image(options_.image);
  create.mutable_config()->set_log_path("vm/0.log");
  v1::LinuxContainerResources* resources =
      create.mutable_config()->mutable_linux()->mutable_resources();
  resources->set_memory_limit_in_bytes(int64_t{options_.memory_mib} << 20);
  resources->set_cpu_period(100000);
  resources->set_cpu_quota(100000);  // 1 vCPU.
  v1::CreateContainerResponse created;
  const Clock::time_point create_sent = Clock::now();
  VMLET_RETURN_IF_ERROR(Rpc("CreateContainer", [&](grpc::ClientContext* context) {
    return vmletd_.runtime().CreateContainer(context, create, &created);
  }));
  sample.create = Ms(Clock::now() - create_sent);

  // CreateContainer opened the log; watch it before the guest can write.
  VMLET_ASSIGN_OR_RETURN(std::unique_ptr<LogWatcher> watcher,
                         LogWatcher::Start(StrCat(vmletd_.dir(), "/logs/", name, "/vm/0.log"),
                                           options_.marker, options_.boot_timeout));
  v1::StartContainerRequest start;
  start.set_container_id(created.container_id());
  v1::StartContainerResponse started;
  const Clock::time_point start_sent = Clock::now();
  VMLET_RETURN_IF_ERROR(Rpc("StartContainer", [&](grpc::ClientContext* context) {
    return vmletd_.runtime().StartContainer(context, start, &started);
  }));
  sample.start = Ms(Clock::now() - start_sent);
  absl::StatusOr<ConsoleTimes> console = watcher->Wait();
  if (!console.ok()) return Annotate(console.status(), StrCat("booting pod \"", name, "\""));
  sample.start_to_first_byte = Ms(console->first_byte - start_sent);
  sample.start_to_marker = Ms(console->marker - start_sent);
  sample.create_to_first_byte = Ms(console->first_byte - create_sent);
  VMLET_RETURN_IF_ERROR(Remove(ran.pod_sandbox_id()));
  return sample;
}

absl::Status PodBooter::RemoveAll() {
  absl::Status result;
  while (!sandboxes_.empty()) {
    absl::Status removed = Remove(sandboxes_.back());
    if (!removed.ok()) {
      if (result.ok()) result = removed;
      sandboxes_.pop_back();  // Left to CleanUpLeftovers (leftovers.h).
    }
  }
  return result;
}

absl::Status PodBooter::Remove(const std::string& sandbox) {
  v1::StopPodSandboxRequest stop;
  stop.set_pod_sandbox_id(sandbox);
  v1::StopPodSandboxResponse stopped;
  VMLET_RETURN_IF_ERROR(Rpc("StopPodSandbox", [&](grpc::ClientContext* context) {
    return vmletd_.runtime().StopPodSandbox(context, stop, &stopped);
  }));
  v1::RemovePodSandboxRequest remove;
  remove.set_pod_sandbox_id(sandbox);
  v1::RemovePodSandboxResponse removed;
  VMLET_RETURN_IF_ERROR(Rpc("RemovePodSandbox", [&](grpc::ClientContext* context) {
    return vmletd_.runtime().RemovePodSandbox(context, remove, &removed);
  }));
  std::erase(sandboxes_, sandbox);
  return absl::OkStatus();
}

}  // namespace vmlet::bench
