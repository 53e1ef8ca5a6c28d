// UpdateContainerResources and UpdatePodSandboxResources: vCPUs, memory and
// the cpuset of a VM, changed live (hot-plug, balloon, pinning).
#include "base/logging.h"
#include "base/status.h"
#include "base/str_util.h"
#include "cri/convert.h"
#include "cri/cri_service.h"
#include "cri/resources.h"
#include "cri/validate.h"

namespace vmlet::cri {
namespace {

constexpr Logger kLog("cri");

// Settings a VM cannot take live: they must stay as the container was
// created with them. Empty when the request keeps them.
std::string UnchangeableField(std::string_view field, const v1::LinuxContainerResources& before,
                              const v1::LinuxContainerResources& after) {
  if (after.cpuset_mems() != before.cpuset_mems()) {
    return StrCat(field, ".cpuset_mems: \"", after.cpuset_mems().substr(0, 64),
                  "\" differs from \"", before.cpuset_mems().substr(0, 64),
                  "\", the value the VM was created with: a VM's memory cannot move to other "
                  "NUMA nodes while it runs");
  }
  auto hugepages = [](const v1::LinuxContainerResources& r) {
    std::string text;
    for (const v1::HugepageLimit& limit : r.hugepage_limits()) {
      if (limit.limit() != 0) StrAppend(&text, limit.page_size(), "=", limit.limit(), " ");
    }
    return text;
  };
  if (hugepages(after) != hugepages(before)) {
    return StrCat(field, ".hugepage_limits: \"", hugepages(after).substr(0, 128),
                  "\" differs from \"", hugepages(before).substr(0, 128),
                  "\", the limits the VM was created with: hugepage backing cannot change "
                  "while the VM runs");
  }
  return "";
}

// `update` over `current`, as containerd applies an update: a field left
// at zero (or empty) keeps its value, so that `crictl update --memory 256M`
// changes only the memory.
v1::LinuxContainerResources Merged(const v1::LinuxContainerResources& current,
                                   const v1::LinuxContainerResources& update) {
  v1::LinuxContainerResources merged = current;
  if (update.cpu_period() != 0) merged.set_cpu_period(update.cpu_period());
  if (update.cpu_quota() != 0) merged.set_cpu_quota(update.cpu_quota());
  if (update.cpu_shares() != 0) merged.set_cpu_shares(update.cpu_shares());
  if (update.memory_limit_in_bytes() != 0) {
    merged.set_memory_limit_in_bytes(update.memory_limit_in_bytes());
  }
  if (update.oom_score_adj() != 0) merged.set_oom_score_adj(update.oom_score_adj());
  if (!update.cpuset_cpus().empty()) merged.set_cpuset_cpus(update.cpuset_cpus());
  if (!update.cpuset_mems().empty()) merged.set_cpuset_mems(update.cpuset_mems());
  if (!update.hugepage_limits().empty())
    *merged.mutable_hugepage_limits() = update.hugepage_limits();
  if (!update.unified().empty()) *merged.mutable_unified() = update.unified();
  if (update.memory_swap_limit_in_bytes() != 0) {
    merged.set_memory_swap_limit_in_bytes(update.memory_swap_limit_in_bytes());
  }
  return merged;
}

}  // namespace

absl::Status CriService::ApplyResources(const ContainerRecord& record, std::string_view field,
                                        const v1::LinuxContainerResources& requested) {
  const std::string& id = record.id();
  if (record.state() != state::v1::CONTAINER_STATE_RUNNING &&
      record.state() != state::v1::CONTAINER_STATE_CREATED) {
    return absl::FailedPreconditionError(
        StrCat("container \"", id, "\" is ", StateName(record.state()),
               ": only a created or running VM's resources can change"));
  }
  const v1::LinuxContainerResources& current = record.config().linux().resources();
  const v1::LinuxContainerResources resources = Merged(current, requested);
  std::string unchangeable = UnchangeableField(field, current, resources);
  if (!unchangeable.empty()) return absl::FailedPreconditionError(unchangeable);
  VMLET_ASSIGN_OR_RETURN(vmdriver::VmResourceUpdate update, ResourceUpdateFrom(field, resources));
  // Only what the request changes reaches the VM: the kubelet re-sends
  // unchanged limits, and a VM whose vCPUs or memory came from an
  // annotation or a VM spec (which override the CRI resources) must not be
  // resized to the pod's limits by such a call.
  if (VcpusFrom(resources, 0) == VcpusFrom(current, 0)) update.vcpus.reset();
  if (resources.memory_limit_in_bytes() == current.memory_limit_in_bytes()) {
    update.memory_bytes.reset();
  }
  if (resources.cpuset_cpus() == current.cpuset_cpus()) update.cpuset.reset();
  // QEMU's vCPU unplug does not complete reliably (under TCG the guest drops
  // the CPU but QEMU never reports it gone), which would leave the guest,
  // libvirt and the record disagreeing: vCPUs only grow live. What the VM
  // has is in its record (records from before vmletd kept it: the CRI
  // resources).
  const int vcpus_now =
      record.vcpus() > 0 ? record.vcpus() : VcpusFrom(current, options_.default_vcpus);
  if (update.vcpus.has_value() && *update.vcpus < vcpus_now) {
    return absl::FailedPreconditionError(
        StrCat(field, ".cpu_quota / cpu_period ask for ", *update.vcpus, " vCPUs, fewer than the ",
               vcpus_now,
               " the VM has: vCPUs of a running VM can only be added; recreate the container "
               "to give it fewer"));
  }
  if (update.vcpus.has_value() || update.memory_bytes.has_value() || update.cpuset.has_value()) {
    VMLET_RETURN_IF_ERROR(Annotate(driver_->UpdateResources(id, update),
                                   StrCat("updating the resources of container \"", id, "\"")));
  }
  // What the kubelet reads back in ContainerStatus.resources.
  VMLET_RETURN_IF_ERROR(
      Annotate(containers_
                   .Update(id,
                           [&resources, &update](ContainerRecord& r) {
                             *r.mutable_config()->mutable_linux()->mutable_resources() = resources;
                             if (update.vcpus.has_value()) r.set_vcpus(*update.vcpus);
                             if (update.memory_bytes.has_value()) {
                               r.set_memory_bytes(*update.memory_bytes);
                             }
                             return absl::OkStatus();
                           })
                   .status(),
               StrCat("recording the resources of container \"", id, "\"")));
  kLog.Info(
      "container {}: resources updated ({} vCPUs, {} MiB{}{})", id,
      update.vcpus.has_value() ? StrCat(*update.vcpus) : "same",
      update.memory_bytes.has_value() ? StrCat(*update.memory_bytes / vmdriver::kMiB) : "same",
      update.cpuset.has_value() ? ", cpuset " : "",
      update.cpuset.has_value() ? resources.cpuset_cpus() : "");
  return absl::OkStatus();
}

absl::Status CriService::UpdateContainerResources(const v1::UpdateContainerResourcesRequest& req,
                                                  v1::UpdateContainerResourcesResponse* /*resp*/) {
  VMLET_RETURN_IF_ERROR(ValidateIdField("container_id", req.container_id()));
  if (req.has_windows() && !req.has_linux()) {
    return absl::InvalidArgumentError(
        "windows: vmlet runs Linux-hosted VMs: expected the linux resources");
  }
  VMLET_ASSIGN_OR_RETURN(std::optional<Locked<ContainerRecord>> locked,
                         LockContainerIfExists(req.container_id()));
  if (!locked.has_value() || !IsVisible(locked->record)) {
    return absl::NotFoundError(StrCat("container \"", req.container_id(), "\" not found"));
  }
  return ApplyResources(locked->record, "linux", req.linux());
}

absl::Status CriService::UpdatePodSandboxResources(
    const v1::UpdatePodSandboxResourcesRequest& req,
    v1::UpdatePodSandboxResourcesResponse* /*resp*/) {
  VMLET_RETURN_IF_ERROR(ValidateIdField("pod_sandbox_id", req.pod_sandbox_id()));
  VMLET_ASSIGN_OR_RETURN(SandboxRecord sandbox, sandboxes_.Get(req.pod_sandbox_id()));
  if (!IsVisible(sandbox)) {
    return absl::NotFoundError(StrCat("sandbox \"", req.pod_sandbox_id(), "\" not found"));
  }
  // The pod's resources are its one VM's: its CPU and memory limits apply
  // to its container, as UpdateContainerResources would (the same values
  // make no change).
  std::vector<ContainerRecord> containers = containers_.List([&sandbox](const ContainerRecord& c) {
    return c.sandbox_id() == sandbox.id() && (c.state() == state::v1::CONTAINER_STATE_CREATED ||
                                              c.state() == state::v1::CONTAINER_STATE_RUNNING);
  });
  for (const ContainerRecord& container : containers) {
    VMLET_ASSIGN_OR_RETURN(std::optional<Locked<ContainerRecord>> locked,
                           LockContainerIfExists(container.id()));
    if (!locked.has_value()) continue;  // Removed meanwhile.
    // Only the pod's CPU and memory limits carry over; the container keeps
    // its other settings.
    v1::LinuxContainerResources limits;
    limits.set_cpu_period(req.resources().cpu_period());
    limits.set_cpu_quota(req.resources().cpu_quota());
    limits.set_memory_limit_in_bytes(req.resources().memory_limit_in_bytes());
    VMLET_RETURN_IF_ERROR(ApplyResources(locked->record, "resources", limits));
  }
  VMLET_RETURN_IF_ERROR(
      Annotate(sandboxes_
                   .Update(sandbox.id(),
                           [&req](SandboxRecord& r) {
                             auto* linux = r.mutable_config()->mutable_linux();
                             *linux->mutable_resources() = req.resources();
                             *linux->mutable_overhead() = req.overhead();
                             return absl::OkStatus();
                           })
                   .status(),
               StrCat("recording the resources of sandbox \"", sandbox.id(), "\"")));
  return absl::OkStatus();
}

}  // namespace vmlet::cri
