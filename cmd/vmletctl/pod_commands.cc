// `vmletctl run|rm|ls`: VM pods by name, each command a sequence of CRI
// calls shaped like the kubelet's.
#include <algorithm>
#include <cstdio>
#include <map>
#include <optional>
#include <tuple>

#include "base/scope_guard.h"
#include "base/str_util.h"
#include "cmd/vmletctl/commands.h"
#include "cmd/vmletctl/flags.h"
#include "cmd/vmletctl/output.h"
#include "cmd/vmletctl/pod_config.h"
#include "cmd/vmletctl/pod_lookup.h"

namespace vmlet::ctl {
namespace {

constexpr int64_t kDefaultStopTimeoutSeconds = 30;

// Undo steps of `run`: they report failures but cannot fail the command.
void UndoContainer(Client& client, const std::string& id) {
  v1::StopContainerRequest stop;
  stop.set_container_id(id);
  v1::StopContainerResponse stopped;
  grpc::Status status =
      client.Runtime(&v1::RuntimeService::Stub::StopContainer, stop, &stopped, CallKind::kChange);
  v1::RemoveContainerRequest remove;
  remove.set_container_id(id);
  v1::RemoveContainerResponse removed;
  if (status.ok()) {
    status = client.Runtime(&v1::RuntimeService::Stub::RemoveContainer, remove, &removed,
                            CallKind::kChange);
  }
  if (!status.ok()) {
    Warn(StrCat("removing container \"", id, "\" again: ", status.error_message(), " (",
                CodeName(status.error_code()), ")"));
  }
}

void UndoPod(Client& client, const std::string& id) {
  v1::StopPodSandboxRequest stop;
  stop.set_pod_sandbox_id(id);
  v1::StopPodSandboxResponse stopped;
  grpc::Status status =
      client.Runtime(&v1::RuntimeService::Stub::StopPodSandbox, stop, &stopped, CallKind::kChange);
  v1::RemovePodSandboxRequest remove;
  remove.set_pod_sandbox_id(id);
  v1::RemovePodSandboxResponse removed;
  if (status.ok()) {
    status = client.Runtime(&v1::RuntimeService::Stub::RemovePodSandbox, remove, &removed,
                            CallKind::kChange);
  }
  if (!status.ok()) {
    Warn(StrCat("removing pod sandbox \"", id, "\" again: ", status.error_message(), " (",
                CodeName(status.error_code()), ")"));
  }
}

}  // namespace

int RunPod(Client& client, Args args) {
  PodParams pod;
  VmParams vm;
  FlagSet flags("run",
                "usage: vmletctl [options] run NAME --image IMAGE [options]\n"
                "\n"
                "Runs a VM pod as the kubelet would: RunPodSandbox, CreateContainer (a\n"
                "container named \"vm\") and StartContainer. Prints the pod's and the\n"
                "container's ids and the path of the VM's console log. A failed step undoes\n"
                "the earlier ones.\n"
                "\n"
                "Options:\n"
                "  --image IMAGE     the VM image, a name or id from \"cri images\" (required)\n"
                "  --namespace NS    the pod's namespace (default \"default\")\n"
                "  --cpus N          vCPUs; default: vmletd's default\n"
                "  --memory-mib M    memory in MiB; default: vmletd's default\n"
                "  --vmspec NAME     bind the pod to VM spec NAME of its namespace\n"
                "                    (the annotation vmlet.io/vmspec)\n"
                "  --log-dir DIR     the pod's log directory\n"
                "                    (default /var/log/pods/<namespace>_<name>_<uid>)\n");
  flags.AddString("--image", &vm.image);
  flags.AddString("--namespace|-n", &pod.namespace_);
  flags.AddInt("--cpus", &vm.cpus, 1);
  flags.AddInt("--memory-mib", &vm.memory_mib, 1);
  flags.AddString("--log-dir", &pod.log_dir);
  flags.AddString("--vmspec", &pod.vmspec);
  if (auto done = flags.Parse(args, 1, 1)) return *done;
  pod.name = flags.positional()[0];
  if (vm.image.empty()) return flags.Error("--image is required");

  std::vector<v1::PodSandbox> existing;
  grpc::Status status = FindPodSandboxes(client, pod.name, pod.namespace_, &existing);
  if (!status.ok()) return FailRpc("ListPodSandbox", status);
  if (!existing.empty()) {
    return Fail(StrCat(DescribePod(pod.name, pod.namespace_), " already exists (sandbox \"",
                       ShortId(existing[0].id()), "\"): remove it first with \"vmletctl rm ",
                       pod.name, "\""));
  }

  v1::RunPodSandboxRequest run;
  *run.mutable_config() = MakePodConfig(pod);
  v1::RunPodSandboxResponse ran;
  status = client.Runtime(&v1::RuntimeService::Stub::RunPodSandbox, run, &ran, CallKind::kChange);
  if (!status.ok()) {
    int code = FailRpc("RunPodSandbox", status);
    // After a timeout vmletd may still have made the sandbox: undo it too.
    if (FindPodSandboxes(client, pod.name, pod.namespace_, &existing).ok()) {
      for (const v1::PodSandbox& made : existing) {
        if (made.metadata().uid() == run.config().metadata().uid()) UndoPod(client, made.id());
      }
    }
    return code;
  }
  const std::string pod_id = ran.pod_sandbox_id();
  ScopeGuard undo_pod([&] { UndoPod(client, pod_id); });

  v1::CreateContainerRequest create;
  create.set_pod_sandbox_id(pod_id);
  *create.mutable_config() = MakeContainerConfig(run.config().metadata(), vm);
  *create.mutable_sandbox_config() = run.config();
  v1::CreateContainerResponse created;
  status = client.Runtime(&v1::RuntimeService::Stub::CreateContainer, create, &created,
                          CallKind::kChange);
  if (!status.ok()) return FailRpc("CreateContainer", status);
  const std::string container_id = created.container_id();
  ScopeGuard undo_container([&] { UndoContainer(client, container_id); });

  v1::StartContainerRequest start;
  start.set_container_id(container_id);
  v1::StartContainerResponse started;
  status =
      client.Runtime(&v1::RuntimeService::Stub::StartContainer, start, &started, CallKind::kChange);
  if (!status.ok()) return FailRpc("StartContainer", status);
  undo_container.Dismiss();
  undo_pod.Dismiss();

  std::printf("pod:        %s\ncontainer:  %s\nlog file:   %s/%s\n", pod_id.c_str(),
              container_id.c_str(), run.config().log_directory().c_str(),
              create.config().log_path().c_str());
  return kExitOk;
}

int RemovePod(Client& client, Args args) {
  std::string namespace_ = "default";
  int64_t timeout = kDefaultStopTimeoutSeconds;
  FlagSet flags("rm",
                "usage: vmletctl [options] rm NAME [options]\n"
                "\n"
                "Stops a VM pod's VM (the guest gets --timeout seconds to power off), then\n"
                "stops and removes the pod with its VM and disks.\n"
                "\n"
                "Options:\n"
                "  --namespace NS   the pod's namespace (default \"default\")\n"
                "  --timeout S      seconds the guest gets to shut down (default 30)\n");
  flags.AddString("--namespace|-n", &namespace_);
  flags.AddInt("--timeout|-t", &timeout, 0);
  if (auto done = flags.Parse(args, 1, 1)) return *done;
  const std::string& name = flags.positional()[0];

  std::vector<v1::PodSandbox> pods;
  grpc::Status status = FindPodSandboxes(client, name, namespace_, &pods);
  if (!status.ok()) return FailRpc("ListPodSandbox", status);
  if (pods.empty()) return Fail(StrCat(DescribePod(name, namespace_), " not found"));
  for (const v1::PodSandbox& pod : pods) {
    std::vector<v1::Container> containers;
    status = ListPodContainers(client, pod.id(), &containers);
    if (!status.ok()) return FailRpc("ListContainers", status);
    for (const v1::Container& container : containers) {
      v1::StopContainerRequest stop;
      stop.set_container_id(container.id());
      stop.set_timeout(timeout);
      v1::StopContainerResponse stopped;
      status = client.Runtime(&v1::RuntimeService::Stub::StopContainer, stop, &stopped,
                              CallKind::kChange, timeout);
      if (!status.ok()) return FailRpc(StrCat("StopContainer \"", container.id(), "\""), status);
      v1::RemoveContainerRequest remove;
      remove.set_container_id(container.id());
      v1::RemoveContainerResponse removed;
      status = client.Runtime(&v1::RuntimeService::Stub::RemoveContainer, remove, &removed,
                              CallKind::kChange);
      if (!status.ok()) return FailRpc(StrCat("RemoveContainer \"", container.id(), "\""), status);
    }
    v1::StopPodSandboxRequest stop;
    stop.set_pod_sandbox_id(pod.id());
    v1::StopPodSandboxResponse stopped;
    status = client.Runtime(&v1::RuntimeService::Stub::StopPodSandbox, stop, &stopped,
                            CallKind::kChange);
    if (!status.ok()) return FailRpc(StrCat("StopPodSandbox \"", pod.id(), "\""), status);
    v1::RemovePodSandboxRequest remove;
    remove.set_pod_sandbox_id(pod.id());
    v1::RemovePodSandboxResponse removed;
    status = client.Runtime(&v1::RuntimeService::Stub::RemovePodSandbox, remove, &removed,
                            CallKind::kChange);
    if (!status.ok()) return FailRpc(StrCat("RemovePodSandbox \"", pod.id(), "\""), status);
    std::printf("removed %s (sandbox %s)\n", DescribePod(name, namespace_).c_str(),
                ShortId(pod.id()).c_str());
  }
  return kExitOk;
}

namespace {

// One line of `ls`: a pod sandbox and its newest VM container.
struct VmRow {
  v1::PodSandbox pod;
  std::optional<v1::ContainerStatus> vm;  // Unset when the pod has no container.
  std::string ip;                         // The pod's IP; empty without a network.
};

// "created", "running", "exited (CODE)", or "-" without a VM.
std::string VmState(const VmRow& row) {
  if (!row.vm.has_value()) return "-";
  switch (row.vm->state()) {
    case v1::CONTAINER_CREATED:
      return "created";
    case v1::CONTAINER_RUNNING:
      return "running";
    case v1::CONTAINER_EXITED:
      return StrCat("exited (", row.vm->exit_code(), ")");
    default:
      return "unknown";
  }
}

// vCPUs as vmletd derives them (the CPU limit rounded up); 0 without a limit.
int64_t Vcpus(const VmRow& row) {
  if (!row.vm.has_value()) return 0;
  const v1::LinuxContainerResources& resources = row.vm->resources().linux();
  if (resources.cpu_quota() <= 0 || resources.cpu_period() <= 0) return 0;
  return (resources.cpu_quota() + resources.cpu_period() - 1) / resources.cpu_period();
}

int64_t MemoryBytes(const VmRow& row) {
  return row.vm.has_value() ? row.vm->resources().linux().memory_limit_in_bytes() : 0;
}

// The image as people name it: the kubelet passes ids ("sha256:..."), which
// `names` maps back to a name.
std::string ImageName(const VmRow& row, const std::map<std::string, std::string>& names) {
  if (!row.vm.has_value()) return "-";
  const std::string& image = row.vm->image().image();
  auto it = names.find(image);
  return it != names.end() ? it->second : image;
}

void PrintRows(const std::vector<VmRow>& rows, const std::map<std::string, std::string>& images,
               std::string_view format) {
  std::string json = "{\"pods\":[";
  for (size_t i = 0; i < rows.size(); ++i) {
    const VmRow& row = rows[i];
    const bool has_vm = row.vm.has_value();
    StrAppend(&json, i == 0 ? "" : ",",                                       //
              "{\"name\":", JsonQuote(row.pod.metadata().name()),             //
              ",\"namespace\":", JsonQuote(row.pod.metadata().namespace_()),  //
              ",\"podId\":", JsonQuote(row.pod.id()),                         //
              ",\"podState\":\"", row.pod.state() == v1::SANDBOX_READY ? "ready" : "notready",
              "\",\"containerId\":", JsonQuote(has_vm ? row.vm->id() : ""),    //
              ",\"state\":", JsonQuote(has_vm ? VmState(row) : ""),            //
              ",\"ip\":", JsonQuote(row.ip),                                   //
              ",\"exitCode\":", has_vm ? row.vm->exit_code() : 0,              //
              ",\"vcpus\":", Vcpus(row),                                       //
              ",\"memoryBytes\":", MemoryBytes(row),                           //
              ",\"image\":", JsonQuote(has_vm ? ImageName(row, images) : ""),  //
              ",\"createdAt\":\"", row.pod.created_at(), "\"}");
  }
  json += "]}";
  PrintStructured(json, format);
}

}  // namespace

int ListPods(Client& client, Args args) {
  std::string output = client.options().output;
  FlagSet flags("ls",
                "usage: vmletctl [options] ls [-o table|json|yaml]\n"
                "\n"
                "The VM pods: each pod sandbox with its VM's state, IP, size and image.\n");
  flags.AddOutput(&output);
  if (auto done = flags.Parse(args, 0, 0)) return *done;

  v1::ListPodSandboxResponse pods;
  grpc::Status status =
      client.Runtime(&v1::RuntimeService::Stub::ListPodSandbox, v1::ListPodSandboxRequest(), &pods);
  if (!status.ok()) return FailRpc("ListPodSandbox", status);
  v1::ListContainersResponse containers;
  status = client.Runtime(&v1::RuntimeService::Stub::ListContainers, v1::ListContainersRequest(),
                          &containers);
  if (!status.ok()) return FailRpc("ListContainers", status);
  std::map<std::string, const v1::Container*> newest;  // By sandbox id.
  for (const v1::Container& container : containers.containers()) {
    const v1::Container*& slot = newest[container.pod_sandbox_id()];
    if (slot == nullptr || slot->created_at() < container.created_at()) slot = &container;
  }

  std::vector<VmRow> rows;
  for (const v1::PodSandbox& pod : pods.items()) {
    VmRow row{.pod = pod, .vm = std::nullopt, .ip = ""};
    v1::PodSandboxStatusRequest pod_request;
    pod_request.set_pod_sandbox_id(pod.id());
    v1::PodSandboxStatusResponse pod_status;
    status = client.Runtime(&v1::RuntimeService::Stub::PodSandboxStatus, pod_request, &pod_status);
    if (status.ok()) row.ip = pod_status.status().network().ip();
    if (auto it = newest.find(pod.id()); it != newest.end()) {
      v1::ContainerStatusRequest request;
      request.set_container_id(it->second->id());
      v1::ContainerStatusResponse response;
      status = client.Runtime(&v1::RuntimeService::Stub::ContainerStatus, request, &response);
      // A container removed since the list is left out; other errors fail.
      if (status.ok()) {
        row.vm = response.status();
      } else if (status.error_code() != grpc::StatusCode::NOT_FOUND) {
        return FailRpc(StrCat("ContainerStatus \"", it->second->id(), "\""), status);
      }
    }
    rows.push_back(std::move(row));
  }
  std::sort(rows.begin(), rows.end(), [](const VmRow& a, const VmRow& b) {
    return std::tuple(a.pod.metadata().namespace_(), a.pod.metadata().name(), b.pod.created_at()) <
           std::tuple(b.pod.metadata().namespace_(), b.pod.metadata().name(), a.pod.created_at());
  });

  // Image ids back to names, when the kubelet passed ids.
  std::map<std::string, std::string> image_names;
  if (std::any_of(rows.begin(), rows.end(), [](const VmRow& row) {
        return row.vm.has_value() && row.vm->image().image().starts_with("sha256:");
      })) {
    v1::ListImagesResponse images;
    status = client.Image(&v1::ImageService::Stub::ListImages, v1::ListImagesRequest(), &images);
    if (!status.ok()) return FailRpc("ListImages", status);
    for (const v1::Image& image : images.images()) {
      if (!image.repo_tags().empty()) image_names[image.id()] = image.repo_tags(0);
    }
  }

  if (output != "table") {
    PrintRows(rows, image_names, output);
    return kExitOk;
  }
  Table table({"POD", "NAMESPACE", "STATE", "IP", "VCPUS", "MEMORY", "IMAGE", "AGE"});
  for (const VmRow& row : rows) {
    const int64_t vcpus = Vcpus(row);
    const int64_t memory = MemoryBytes(row);
    table.AddRow({row.pod.metadata().name(), row.pod.metadata().namespace_(), VmState(row),
                  row.ip.empty() ? "-" : row.ip, vcpus > 0 ? StrCat(vcpus) : "-",
                  memory > 0 ? FormatBytes(static_cast<uint64_t>(memory)) : "-",
                  ImageName(row, image_names), Age(row.pod.created_at())});
  }
  table.Print();
  return kExitOk;
}

}  // namespace vmlet::ctl
