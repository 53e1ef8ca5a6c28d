// CreateContainer: record the intent, define the VM (paused), mark created.
#include <algorithm>
#include <thread>

#include "annotations/annotations.h"
#include "base/id.h"
#include "base/logging.h"
#include "base/scope_guard.h"
#include "base/status.h"
#include "base/str_util.h"
#include "cri/convert.h"
#include "cri/cri_service.h"
#include "cri/resources.h"
#include "cri/validate.h"
#include "image/image_layout.h"
#include "image/qcow2_overlay.h"

namespace vmlet::cri {
namespace {

constexpr Logger kLog("cri");

int HostCpuCount() { return std::max(1, static_cast<int>(std::thread::hardware_concurrency())); }

std::string JoinLogPath(const std::string& directory, const std::string& relative) {
  if (directory.empty() || relative.empty()) return "";
  return StrCat(directory, directory.back() == '/' ? "" : "/", relative);
}

}  // namespace

absl::Status CriService::CreateContainer(const v1::CreateContainerRequest& req,
                                         v1::CreateContainerResponse* resp) {
  VMLET_RETURN_IF_ERROR(ValidateIdField("pod_sandbox_id", req.pod_sandbox_id()));
  VMLET_RETURN_IF_ERROR(ValidateContainerConfig(req.config()));
  VMLET_ASSIGN_OR_RETURN(SandboxRecord sandbox, sandboxes_.Get(req.pod_sandbox_id()));
  KeyedMutex::Lock sandbox_lock = sandbox_locks_.Acquire(sandbox.id());
  VMLET_ASSIGN_OR_RETURN(sandbox, sandboxes_.Get(sandbox.id()));  // Fresh, under the lock.
  if (sandbox.state() != state::v1::SANDBOX_STATE_READY) {
    return absl::FailedPreconditionError(StrCat("sandbox \"", sandbox.id(), "\" is ",
                                                StateName(sandbox.state()),
                                                ": expected a ready sandbox"));
  }
  const v1::ContainerMetadata& metadata = req.config().metadata();
  const std::string name = ContainerName(metadata, sandbox.config().metadata());

  if (std::optional<std::string> holder = container_names_.Holder(name)) {
    absl::StatusOr<ContainerRecord> existing = containers_.Get(*holder);
    if (existing.ok() && existing->state() == state::v1::CONTAINER_STATE_CREATED) {
      kLog.Info("CreateContainer for {} in sandbox {} is a retry: container {} exists",
                metadata.name(), sandbox.id(), *holder);
      resp->set_container_id(*holder);
      return absl::OkStatus();
    }
    return absl::AlreadyExistsError(StrCat("container name \"", name, "\" is taken by container \"",
                                           *holder, "\" in state ",
                                           existing.ok() ? StateName(existing->state()) : "unknown",
                                           ": expected a new attempt number for a new container"));
  }
  // A pod is one VM: restarts of that VM (same name, next attempt) are
  // fine, a second, differently named container is not.
  for (const ContainerRecord& other : containers_.List([&](const ContainerRecord& c) {
         return c.sandbox_id() == sandbox.id() && c.config().metadata().name() != metadata.name();
       })) {
    return absl::FailedPreconditionError(StrCat(
        "sandbox \"", sandbox.id(), "\" already has container \"", other.id(), "\" (\"",
        other.config().metadata().name(), "\"): a vmlet pod runs exactly one VM container, so \"",
        metadata.name(), "\" cannot be added"));
  }

  const std::string& image_name = req.config().image().image();
  std::optional<image::StoredImage> image = images_->Find(image_name);
  if (!image.has_value()) {
    return absl::NotFoundError(StrCat("config.image.image \"", image_name,
                                      "\" is not present on this node: pull it first"));
  }
  absl::StatusOr<vmdriver::BootSource> boot = image::ReadImageLayout(image->rootfs);
  if (!boot.ok()) {
    return Annotate(boot.status(), StrCat("config.image.image \"", image_name, "\" (", image->id,
                                          ") cannot boot a VM"));
  }
  // Pod annotations, overridden by the container's own.
  std::map<std::string, std::string> merged(sandbox.config().annotations().begin(),
                                            sandbox.config().annotations().end());
  for (const auto& [key, value] : req.config().annotations()) merged[key] = value;
  VMLET_ASSIGN_OR_RETURN(annotations::VmTunables tunables,
                         annotations::ParseVmTunables(merged, "annotations"));
  if (tunables.root_disk_bytes > 0) {
    if (boot->IsKernelBoot()) {
      return absl::InvalidArgumentError(StrCat("annotation ", annotations::kRootDiskSize,
                                               " applies to disk images, but \"", image_name,
                                               "\" boots a kernel"));
    }
    VMLET_ASSIGN_OR_RETURN(uint64_t image_bytes,
                           image::DiskVirtualSize(boot->disk_path, boot->disk_format));
    if (tunables.root_disk_bytes < image_bytes) {
      return absl::InvalidArgumentError(
          StrCat("annotation ", annotations::kRootDiskSize, " is ", tunables.root_disk_bytes,
                 " bytes: expected at least the image's disk size, ", image_bytes, " bytes"));
    }
  }
  const std::string image_display = image->repo_tags.empty() ? image->id : image->repo_tags.front();
  const v1::LinuxContainerResources& resources = req.config().linux().resources();
  VMLET_ASSIGN_OR_RETURN(std::vector<int> cpuset, ParseCpuList("config.linux.resources.cpuset_cpus",
                                                               resources.cpuset_cpus()));

  ContainerRecord record;
  record.set_id(GenerateId());
  record.set_sandbox_id(sandbox.id());
  *record.mutable_config() = req.config();
  record.set_state(state::v1::CONTAINER_STATE_CREATING);
  record.set_created_at(NowNanos());
  record.set_image_ref(image->id);
  record.set_log_path(JoinLogPath(sandbox.config().log_directory(), req.config().log_path()));
  const std::string id = record.id();

  VMLET_RETURN_IF_ERROR(container_names_.Reserve(name, id));
  ScopeGuard release_name([&] { container_names_.Release(name, id); });
  VMLET_RETURN_IF_ERROR(
      Annotate(containers_.Add(record), StrCat("recording container \"", id, "\"")));
  ScopeGuard delete_record([&] { (void)containers_.Delete(id); });
  // The record now holds the image; had RemoveImage run since Find, the
  // image is gone and the VM must not be built on it.
  if (!images_->Find(image->id).has_value()) {
    return absl::NotFoundError(StrCat("config.image.image \"", image_name,
                                      "\" was removed while the container was created"));
  }

  vmdriver::VmConfig vm{
      .id = id,
      .sandbox_id = sandbox.id(),
      .name = StrCat(sandbox.config().metadata().namespace_(), "_",
                     sandbox.config().metadata().name(), "_", metadata.name()),
      .pod_namespace = sandbox.config().metadata().namespace_(),
      .pod_name = sandbox.config().metadata().name(),
      .pod_uid = sandbox.config().metadata().uid(),
      .container_name = metadata.name(),
      .vcpus = VcpusFrom(resources, options_.default_vcpus),
      .memory_bytes = MemoryFrom(resources, options_.default_memory_bytes),
      .max_vcpus = 0,
      .max_memory_bytes = 0,
      .cpuset = std::move(cpuset),
      .image = image_display,
      .boot = *boot,
      .root_disk_bytes = tunables.root_disk_bytes,
      .log_path = record.log_path(),
      .nics = {},
      .seed_path = sandbox.seed_path(),
  };
  // Room to grow live (UpdateContainerResources), never below the start.
  vm.max_vcpus = std::max(vm.vcpus, options_.max_vcpus > 0 ? options_.max_vcpus : HostCpuCount());
  vm.max_memory_bytes = std::max(vm.memory_bytes, options_.max_memory_bytes);
  if (!sandbox.network().tap().empty()) {
    vm.nics.push_back(vmdriver::NetworkInterface{.netns_path = sandbox.network().netns_path(),
                                                 .tap = sandbox.network().tap(),
                                                 .mac = sandbox.network().mac()});
  }
  VMLET_RETURN_IF_ERROR(
      Annotate(driver_->Create(vm), StrCat("creating VM for container \"", id, "\"")));
  ScopeGuard remove_vm([&] { (void)driver_->Remove(id); });

  VMLET_RETURN_IF_ERROR(Annotate(containers_
                                     .Update(id,
                                             [](ContainerRecord& r) {
                                               r.set_state(state::v1::CONTAINER_STATE_CREATED);
                                               return absl::OkStatus();
                                             })
                                     .status(),
                                 StrCat("recording container \"", id, "\" as created")));
  remove_vm.Dismiss();
  delete_record.Dismiss();
  release_name.Dismiss();
  kLog.Info("container {} ({}) created in sandbox {}: {} vCPUs, {} MiB", id, metadata.name(),
            sandbox.id(), vm.vcpus, vm.memory_bytes / vmdriver::kMiB);
  resp->set_container_id(id);
  return absl::OkStatus();
}

}  // namespace vmlet::cri
