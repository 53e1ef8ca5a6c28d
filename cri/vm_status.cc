// The VM-spec API's view of pods: the domain XML a spec would give a pod
// (Render), what a pod's VM runs with (GetVmStatus) and which pods run an
// older generation of a spec.
#include <algorithm>
#include <map>
#include <thread>
#include <utility>

#include "annotations/annotations.h"
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

// The id of the VM a placeholder pod renders.
constexpr char kPlaceholderId[] =
    "0000000000000000000000000000000000000000000000000000000000000000";
constexpr char kPlaceholderPod[] = "placeholder";
constexpr char kPlaceholderContainer[] = "vm";
// How long GetVmStatus waits for the guest agent.
constexpr absl::Duration kGuestAgentProbe = absl::Seconds(1);

std::string_view ContainerStateWord(state::v1::ContainerState state) {
  switch (state) {
    case state::v1::CONTAINER_STATE_CREATED:
      return "created";
    case state::v1::CONTAINER_STATE_RUNNING:
      return "running";
    case state::v1::CONTAINER_STATE_EXITED:
      return "exited";
    default:
      return "none";
  }
}

bool AsksForRootDiskSize(const annotations::VmTunables& tunables, const vmspec::v1::Machine& spec) {
  if (tunables.root_disk_bytes > 0) return true;
  for (const vmspec::v1::Disk& disk : spec.disks()) {
    if (disk.has_root() && !disk.root().size().empty()) return true;
  }
  return false;
}

}  // namespace

absl::StatusOr<std::optional<SandboxRecord>> CriService::FindPod(std::string_view sandbox_id,
                                                                 std::string_view ns,
                                                                 std::string_view name) {
  if (!sandbox_id.empty()) {
    VMLET_RETURN_IF_ERROR(ValidateIdField("pod_sandbox_id", sandbox_id));
    absl::StatusOr<SandboxRecord> record = sandboxes_.Get(sandbox_id);
    if (absl::IsNotFound(record.status())) return std::nullopt;
    VMLET_RETURN_IF_ERROR(record.status());
    if (record->state() == state::v1::SANDBOX_STATE_CREATING) return std::nullopt;
    return *record;
  }
  if (ns.empty() || name.empty()) {
    return absl::InvalidArgumentError(
        "pod_sandbox_id is empty and so is pod_namespace or pod_name: expected the pod's sandbox "
        "id, or its namespace and name");
  }
  // The newest attempt, a ready one before any other.
  std::optional<SandboxRecord> best;
  for (SandboxRecord& record : sandboxes_.List([&](const SandboxRecord& r) {
         return r.state() != state::v1::SANDBOX_STATE_CREATING &&
                r.config().metadata().namespace_() == ns && r.config().metadata().name() == name;
       })) {
    auto rank = [](const SandboxRecord& r) {
      return std::pair(r.state() == state::v1::SANDBOX_STATE_READY, r.created_at());
    };
    if (!best.has_value() || rank(record) > rank(*best)) best = std::move(record);
  }
  return best;
}

std::optional<ContainerRecord> CriService::CurrentContainer(const std::string& sandbox_id) {
  std::optional<ContainerRecord> newest;
  for (ContainerRecord& record : containers_.List([&](const ContainerRecord& c) {
         return c.sandbox_id() == sandbox_id && c.state() != state::v1::CONTAINER_STATE_CREATING;
       })) {
    if (!newest.has_value() || record.created_at() > newest->created_at()) {
      newest = std::move(record);
    }
  }
  return newest;
}

absl::StatusOr<std::string> CriService::RenderVm(const vmspec::v1::RenderRequest& req) {
  std::optional<SandboxRecord> sandbox;
  if (!req.pod_sandbox_id().empty() || !req.pod_namespace().empty() || !req.pod_name().empty()) {
    VMLET_ASSIGN_OR_RETURN(sandbox,
                           FindPod(req.pod_sandbox_id(), req.pod_namespace(), req.pod_name()));
  }
  std::optional<ContainerRecord> container;
  if (sandbox.has_value()) container = CurrentContainer(sandbox->id());

  VmConfigInputs inputs;
  inputs.vmspec = req.vm_spec();
  if (sandbox.has_value()) {
    const v1::PodSandboxMetadata& metadata = sandbox->config().metadata();
    inputs.sandbox_id = sandbox->id();
    inputs.pod_namespace = metadata.namespace_();
    inputs.pod_name = metadata.name();
    inputs.pod_uid = metadata.uid();
    inputs.seed_path = sandbox->seed_path();
    if (!sandbox->network().tap().empty()) {
      inputs.nics.push_back(
          vmdriver::NetworkInterface{.netns_path = sandbox->network().netns_path(),
                                     .tap = sandbox->network().tap(),
                                     .mac = sandbox->network().mac()});
    }
  } else {
    inputs.sandbox_id = kPlaceholderId;
    inputs.pod_namespace = !req.pod_namespace().empty() ? req.pod_namespace()
                           : !req.vm_spec().metadata().namespace_().empty()
                               ? req.vm_spec().metadata().namespace_()
                               : "default";
    inputs.pod_name = !req.pod_name().empty() ? req.pod_name() : kPlaceholderPod;
    inputs.pod_uid = kPlaceholderId;
  }
  if (inputs.vmspec->metadata().namespace_().empty()) {
    inputs.vmspec->mutable_metadata()->set_namespace_(inputs.pod_namespace);
  }

  // The annotations, as CreateContainer merges them.
  std::map<std::string, std::string> merged;
  if (sandbox.has_value()) {
    merged.insert(sandbox->config().annotations().begin(), sandbox->config().annotations().end());
  }
  if (container.has_value()) {
    inputs.id = container->id();
    inputs.container = container->config();
    inputs.log_path = container->log_path();
    for (const auto& [key, value] : container->config().annotations()) merged[key] = value;
  } else {
    inputs.id = kPlaceholderId;
    inputs.container.mutable_metadata()->set_name(kPlaceholderContainer);
  }
  VMLET_ASSIGN_OR_RETURN(inputs.tunables,
                         annotations::ParseVmTunables(merged, "config.annotations"));

  // The container's image when it is still on the node, else a placeholder.
  std::optional<image::StoredImage> image;
  if (container.has_value()) image = images_->Find(container->image_ref());
  absl::StatusOr<vmdriver::BootSource> boot =
      image.has_value() ? image::ReadImageLayout(image->rootfs)
                        : absl::StatusOr<vmdriver::BootSource>(absl::NotFoundError("no image"));
  if (boot.ok()) {
    inputs.image = image->repo_tags.empty() ? image->id : image->repo_tags.front();
    inputs.boot = *boot;
    if (!boot->IsKernelBoot()) {
      absl::StatusOr<uint64_t> bytes = image::DiskVirtualSize(boot->disk_path, boot->disk_format);
      if (bytes.ok()) inputs.image_disk_bytes = *bytes;
    }
  } else {
    const std::string placeholder_dir = StrCat(options_.state_dir, "/placeholder");
    inputs.image = "placeholder";
    // A root-disk size needs a disk image; any size is at least its (0).
    if (AsksForRootDiskSize(inputs.tunables, req.vm_spec().spec())) {
      inputs.boot = vmdriver::BootSource{.disk_path = StrCat(placeholder_dir, "/disk/disk.qcow2"),
                                         .disk_format = "qcow2"};
      inputs.image_disk_bytes = 0;
    } else {
      inputs.boot = vmdriver::BootSource{.kernel_path = StrCat(placeholder_dir, "/boot/vmlinuz")};
    }
  }
  inputs.host_cpus = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));

  VMLET_ASSIGN_OR_RETURN(vmdriver::VmConfig vm, BuildVmConfig(options_, inputs));
  const vmspec::v1::CloudInit& cloud_init = vm.machine.cloud_init();
  if (!cloud_init.user_data().empty() || !cloud_init.meta_data().empty() ||
      !cloud_init.network_config().empty() || !cloud_init.ssh_authorized_keys().empty()) {
    // CreateContainer would write the VM a seed of its own.
    vm.seed_path = StrCat(SandboxDir(inputs.sandbox_id), "/seed-", inputs.id, ".iso");
  }
  return driver_->RenderDomainXml(vm);
}

absl::StatusOr<vmspec::v1::VmStatus> CriService::GetVmStatus(
    const vmspec::v1::GetVmStatusRequest& req) {
  VMLET_ASSIGN_OR_RETURN(std::optional<SandboxRecord> sandbox,
                         FindPod(req.pod_sandbox_id(), req.pod_namespace(), req.pod_name()));
  if (!sandbox.has_value()) {
    return absl::NotFoundError(
        req.pod_sandbox_id().empty()
            ? StrCat("pod \"", req.pod_namespace(), "/", req.pod_name(),
                     "\" has no sandbox on this node")
            : StrCat("pod_sandbox_id \"", req.pod_sandbox_id(), "\" names no sandbox"));
  }
  vmspec::v1::VmStatus status;
  status.set_pod_sandbox_id(sandbox->id());
  for (const std::string& ip : sandbox->network().ips()) status.add_addresses(ip);
  for (const auto& [key, value] : driver_->StatusInfo()) {
    if (key == "accelerator") status.set_accelerator(value);
  }
  std::optional<ContainerRecord> container = CurrentContainer(sandbox->id());
  if (!container.has_value()) {
    status.set_state("none");
    return status;
  }
  const std::string& id = container->id();
  status.set_container_id(id);
  status.set_state(std::string(ContainerStateWord(container->state())));

  // The spec, and whether a newer generation waits for the VM's next start.
  if (!container->vmspec().empty()) {
    const std::string& bound = container->vmspec();
    const size_t slash = bound.find('/');
    const std::string ns = bound.substr(0, slash);
    const std::string name = slash == std::string::npos ? "" : bound.substr(slash + 1);
    status.set_vmspec_name(name);
    status.set_vmspec_generation(container->vmspec_generation());
    if (options_.find_vmspec) {
      absl::StatusOr<vmspec::v1::VmSpec> spec = options_.find_vmspec(ns, name);
      if (spec.ok()) {
        status.set_vmspec_current_generation(spec->metadata().generation());
        status.set_spec_pending(spec->metadata().generation() > container->vmspec_generation());
      }
    }
  }

  // vCPUs and memory: what the VM had at the last statistics collection
  // (live updates included), else what it was created with.
  const v1::LinuxContainerResources& resources = container->config().linux().resources();
  // Records from before vmletd kept them: the CRI resources.
  status.set_vcpus(container->vcpus() > 0 ? container->vcpus()
                                          : VcpusFrom(resources, options_.default_vcpus));
  status.set_memory_bytes(container->memory_bytes() > 0
                              ? container->memory_bytes()
                              : MemoryFrom(resources, options_.default_memory_bytes));
  // The engine's name for the VM (virsh list), while it has one.
  if (absl::StatusOr<vmdriver::VmInfo> info = driver_->Inspect(id); info.ok()) {
    status.set_domain_name(info->domain_name);
  }
  if (container->state() == state::v1::CONTAINER_STATE_RUNNING) {
    if (std::optional<StatsSample> sample = stats_.Get(id)) {
      if (sample->stats.vcpus > 0) status.set_vcpus(sample->stats.vcpus);
      if (sample->stats.memory_bytes > 0) status.set_memory_bytes(sample->stats.memory_bytes);
    }
    // A guest-ping: any answer of the agent (even a failed command) will do.
    absl::StatusOr<vmdriver::ExecResult> ping = driver_->Exec(id, {"true"}, kGuestAgentProbe);
    const absl::StatusCode code = ping.status().code();
    status.set_guest_agent_connected(code != absl::StatusCode::kFailedPrecondition &&
                                     code != absl::StatusCode::kDeadlineExceeded &&
                                     code != absl::StatusCode::kUnavailable &&
                                     code != absl::StatusCode::kNotFound);
  }
  return status;
}

std::vector<std::string> CriService::PodsWithOlderSpec(std::string_view ns, std::string_view name,
                                                       int64_t gen) {
  const std::string bound = StrCat(ns, "/", name);
  // The newest container of each sandbox.
  std::map<std::string, ContainerRecord> current;
  for (ContainerRecord& record : containers_.List([](const ContainerRecord& c) {
         return c.state() != state::v1::CONTAINER_STATE_CREATING;
       })) {
    auto it = current.find(record.sandbox_id());
    if (it == current.end()) {
      current.emplace(record.sandbox_id(), std::move(record));
    } else if (record.created_at() > it->second.created_at()) {
      it->second = std::move(record);
    }
  }
  std::vector<std::string> sandboxes;
  for (const auto& [sandbox_id, record] : current) {
    if (record.vmspec() == bound && record.vmspec_generation() < gen) {
      sandboxes.push_back(sandbox_id);
    }
  }
  return sandboxes;  // Sorted: map order.
}

}  // namespace vmlet::cri
