// CreateContainer: record the intent, define the VM (paused), mark created.
#include <algorithm>
#include <thread>

#include "annotations/annotations.h"
#include "base/fault_point.h"
#include "base/id.h"
#include "base/logging.h"
#include "base/scope_guard.h"
#include "base/status.h"
#include "base/str_util.h"
#include "cri/convert.h"
#include "cri/cri_service.h"
#include "cri/resources.h"
#include "cri/validate.h"
#include "cri/vm_config_builder.h"
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
                         annotations::ParseVmTunables(merged, "config.annotations"));
  std::optional<vmspec::v1::VmSpec> spec;
  if (!tunables.vmspec.empty()) {
    VMLET_ASSIGN_OR_RETURN(spec, FindBoundVmSpec(sandbox, tunables.vmspec));
  }
  const std::string image_display = image->repo_tags.empty() ? image->id : image->repo_tags.front();
  const std::string id = GenerateId();
  const std::string log_path =
      JoinLogPath(sandbox.config().log_directory(), req.config().log_path());
  VmConfigInputs inputs{
      .id = id,
      .sandbox_id = sandbox.id(),
      .pod_namespace = sandbox.config().metadata().namespace_(),
      .pod_name = sandbox.config().metadata().name(),
      .pod_uid = sandbox.config().metadata().uid(),
      .image = image_display,
      .boot = *boot,
      .log_path = log_path,
      .seed_path = sandbox.seed_path(),
      .container = req.config(),
      .tunables = std::move(tunables),
      .vmspec = std::move(spec),
      .host_cpus = HostCpuCount(),
  };
  if (!boot->IsKernelBoot()) {
    // Only needed (and then required) when a root-disk size is asked for.
    absl::StatusOr<uint64_t> image_bytes =
        image::DiskVirtualSize(boot->disk_path, boot->disk_format);
    if (image_bytes.ok()) inputs.image_disk_bytes = *image_bytes;
  }
  if (!sandbox.network().tap().empty()) {
    inputs.nics.push_back(vmdriver::NetworkInterface{.netns_path = sandbox.network().netns_path(),
                                                     .tap = sandbox.network().tap(),
                                                     .mac = sandbox.network().mac()});
  }
  VMLET_ASSIGN_OR_RETURN(vmdriver::VmConfig vm, BuildVmConfig(options_, inputs));
  // Cloud-init input (annotations, the spec) may differ between attempts:
  // such a VM gets a seed of its own.
  const vmspec::v1::CloudInit& cloud_init = vm.machine.cloud_init();
  const bool own_seed = !cloud_init.user_data().empty() || !cloud_init.meta_data().empty() ||
                        !cloud_init.network_config().empty() ||
                        !cloud_init.ssh_authorized_keys().empty();

  ContainerRecord record;
  record.set_id(id);
  record.set_sandbox_id(sandbox.id());
  *record.mutable_config() = req.config();
  record.set_state(state::v1::CONTAINER_STATE_CREATING);
  record.set_created_at(NowNanos());
  record.set_image_ref(image->id);
  record.set_log_path(log_path);
  record.set_vmspec(vm.vmspec);
  record.set_vmspec_generation(vm.vmspec_generation);
  record.set_vcpus(vm.vcpus);
  record.set_memory_bytes(vm.memory_bytes);
  if (own_seed) record.set_seed_path(StrCat(SandboxDir(sandbox.id()), "/seed-", id, ".iso"));

  VMLET_RETURN_IF_ERROR(container_names_.Reserve(name, id));
  ScopeGuard release_name([&] { container_names_.Release(name, id); });
  VMLET_RETURN_IF_ERROR(
      Annotate(containers_.Add(record), StrCat("recording container \"", id, "\"")));
  ScopeGuard delete_record([&] { (void)containers_.Delete(id); });
  VMLET_FAULT_POINT("create_container.after_intent_record");
  // The record now holds the image; had RemoveImage run since Find, the
  // image is gone and the VM must not be built on it.
  if (!images_->Find(image->id).has_value()) {
    return absl::NotFoundError(StrCat("config.image.image \"", image_name,
                                      "\" was removed while the container was created"));
  }
  ScopeGuard remove_seed([&] { RemoveContainerSeed(record); });
  if (own_seed) {
    VMLET_RETURN_IF_ERROR(WriteContainerSeed(sandbox, record.seed_path(), cloud_init));
    VMLET_FAULT_POINT("create_container.after_own_seed");
    vm.seed_path = record.seed_path();
  }

  VMLET_RETURN_IF_ERROR(
      Annotate(driver_->Create(vm), StrCat("creating VM for container \"", id, "\"")));
  ScopeGuard remove_vm([&] { (void)driver_->Remove(id); });
  VMLET_FAULT_POINT("create_container.before_created_record");

  VMLET_RETURN_IF_ERROR(Annotate(containers_
                                     .Update(id,
                                             [](ContainerRecord& r) {
                                               r.set_state(state::v1::CONTAINER_STATE_CREATED);
                                               return absl::OkStatus();
                                             })
                                     .status(),
                                 StrCat("recording container \"", id, "\" as created")));
  VMLET_FAULT_POINT("create_container.after_created_record");
  remove_vm.Dismiss();
  remove_seed.Dismiss();
  delete_record.Dismiss();
  release_name.Dismiss();
  kLog.Info("container {} ({}) created in sandbox {}: {} vCPUs, {} MiB{}{}", id, metadata.name(),
            sandbox.id(), vm.vcpus, vm.memory_bytes / vmdriver::kMiB,
            vm.vmspec.empty() ? "" : ", VM spec ", vm.vmspec);
  resp->set_container_id(id);
  return absl::OkStatus();
}

absl::StatusOr<vmspec::v1::VmSpec> CriService::FindBoundVmSpec(const SandboxRecord& sandbox,
                                                               std::string_view name) {
  const std::string& ns = sandbox.config().metadata().namespace_();
  if (!options_.find_vmspec) {
    return absl::FailedPreconditionError(
        StrCat("pod annotation ", annotations::kVmSpec, " names VM spec \"", ns, "/", name,
               "\", but this vmletd serves no VM-spec API: expected a node with VM specs "
               "enabled, or a pod without the annotation"));
  }
  absl::StatusOr<vmspec::v1::VmSpec> spec = options_.find_vmspec(ns, name);
  if (absl::IsNotFound(spec.status())) {
    return absl::FailedPreconditionError(
        StrCat("pod annotation ", annotations::kVmSpec, " names VM spec \"", ns, "/", name,
               "\", which does not exist: apply it (vmletctl spec apply -f FILE); the kubelet "
               "retries CreateContainer"));
  }
  if (!spec.ok()) return Annotate(spec.status(), StrCat("reading VM spec \"", ns, "/", name, "\""));
  return spec;
}

}  // namespace vmlet::cri
