#include "cri/vm_config_builder.h"

#include <algorithm>
#include <memory>
#include <utility>

#include "base/status.h"
#include "base/str_util.h"
#include "cri/resources.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"

namespace vmlet::cri {
namespace {

namespace pb = ::google::protobuf;

// Field-by-field override by reflection, so that fields added to the spec
// later merge without code here.
void MergeMessage(const pb::Message& over, pb::Message* base) {
  const pb::Reflection* over_reflection = over.GetReflection();
  const pb::Reflection* base_reflection = base->GetReflection();
  std::vector<const pb::FieldDescriptor*> set;  // Set (non-default) fields of `over`.
  over_reflection->ListFields(over, &set);
  std::vector<const pb::FieldDescriptor*> replaced;
  for (const pb::FieldDescriptor* field : set) {
    if (!field->is_repeated() && field->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE) {
      MergeMessage(over_reflection->GetMessage(over, field),
                   base_reflection->MutableMessage(base, field));
    } else {
      replaced.push_back(field);  // Scalars, strings and repeated fields.
    }
  }
  if (replaced.empty()) return;
  std::unique_ptr<pb::Message> copy(over.New());
  copy->CopyFrom(over);
  base_reflection->SwapFields(copy.get(), base, replaced);
}

// A quantity of a spec; the spec was validated when it was applied, so an
// error here means a spec stored by an older vmletd.
absl::StatusOr<uint64_t> SpecQuantity(std::string_view field, const std::string& value) {
  absl::StatusOr<uint64_t> bytes = annotations::ParseByteQuantity(value);
  if (!bytes.ok()) {
    return absl::InvalidArgumentError(
        StrCat(field, " \"", value.substr(0, 64),
               "\" is invalid: expected a quantity of bytes such as 4Gi"));
  }
  return *bytes;
}

bool HasTopology(const vmspec::v1::CpuTopology& topology) {
  return topology.sockets() != 0 || topology.cores() != 0 || topology.threads() != 0;
}

uint64_t TopologyProduct(const vmspec::v1::CpuTopology& topology) {
  auto at_least_one = [](uint32_t n) -> uint64_t { return n == 0 ? 1 : n; };
  return at_least_one(topology.sockets()) * at_least_one(topology.cores()) *
         at_least_one(topology.threads());
}

}  // namespace

void MergeMachine(const vmspec::v1::Machine& over, vmspec::v1::Machine* base) {
  MergeMessage(over, base);
}

absl::StatusOr<vmdriver::VmConfig> BuildVmConfig(const CriOptions& options,
                                                 const VmConfigInputs& in) {
  const v1::LinuxContainerResources& resources = in.container.linux().resources();
  VMLET_ASSIGN_OR_RETURN(std::vector<int> cpuset, ParseCpuList("config.linux.resources.cpuset_cpus",
                                                               resources.cpuset_cpus()));
  vmdriver::VmConfig vm{
      .id = in.id,
      .sandbox_id = in.sandbox_id,
      .name = StrCat(in.pod_namespace, "_", in.pod_name, "_", in.container.metadata().name()),
      .pod_namespace = in.pod_namespace,
      .pod_name = in.pod_name,
      .pod_uid = in.pod_uid,
      .container_name = in.container.metadata().name(),
      // Defaults, then the container's resources.
      .vcpus = VcpusFrom(resources, options.default_vcpus),
      .memory_bytes = MemoryFrom(resources, options.default_memory_bytes),
      .cpuset = std::move(cpuset),
      .image = in.image,
      .boot = in.boot,
      .log_path = in.log_path,
      .nics = in.nics,
      .seed_path = in.seed_path,
  };

  // Annotations.
  const annotations::VmTunables& tunables = in.tunables;
  std::string root_disk_field;
  if (tunables.vcpus > 0) vm.vcpus = tunables.vcpus;
  if (tunables.memory_bytes > 0) vm.memory_bytes = static_cast<int64_t>(tunables.memory_bytes);
  if (tunables.root_disk_bytes > 0) {
    vm.root_disk_bytes = tunables.root_disk_bytes;
    root_disk_field = StrCat("config.annotations[\"", annotations::kRootDiskSize, "\"]");
  }
  vm.machine = tunables.machine;

  // The VM spec.
  if (in.vmspec.has_value()) {
    const vmspec::v1::ObjectMeta& metadata = in.vmspec->metadata();
    const vmspec::v1::Machine& spec = in.vmspec->spec();
    vm.vmspec = StrCat(metadata.namespace_(), "/", metadata.name());
    vm.vmspec_generation = metadata.generation();
    const std::string field = StrCat("vmspec \"", vm.vmspec, "\" spec.");
    MergeMachine(spec, &vm.machine);
    if (spec.cpu().count() > 0) {
      if (spec.cpu().count() > static_cast<uint32_t>(annotations::kMaxVcpus)) {
        return absl::InvalidArgumentError(StrCat(field, "cpu.count ", spec.cpu().count(),
                                                 " is out of range: expected 1 to ",
                                                 annotations::kMaxVcpus));
      }
      vm.vcpus = static_cast<int>(spec.cpu().count());
    }
    if (!spec.memory().size().empty()) {
      VMLET_ASSIGN_OR_RETURN(uint64_t bytes,
                             SpecQuantity(StrCat(field, "memory.size"), spec.memory().size()));
      vm.memory_bytes = static_cast<int64_t>(bytes);
    }
    for (int i = 0; i < spec.disks_size(); ++i) {
      const vmspec::v1::Disk& disk = spec.disks(i);
      if (!disk.has_root() || disk.root().size().empty()) continue;
      root_disk_field = StrCat(field, "disks[", i, "].root.size");
      VMLET_ASSIGN_OR_RETURN(vm.root_disk_bytes, SpecQuantity(root_disk_field, disk.root().size()));
    }
  }

  // The root disk's size: disk images only, never below the image's.
  if (vm.root_disk_bytes > 0) {
    if (vm.boot.IsKernelBoot()) {
      return absl::InvalidArgumentError(StrCat(
          root_disk_field, " applies to disk images, but image \"", in.image, "\" boots a kernel"));
    }
    if (!in.image_disk_bytes.has_value()) {
      return absl::InternalError(
          StrCat(root_disk_field, " is set but the size of image \"", in.image, "\" is unknown"));
    }
    if (vm.root_disk_bytes < *in.image_disk_bytes) {
      return absl::InvalidArgumentError(StrCat(root_disk_field, " is ", vm.root_disk_bytes,
                                               " bytes: expected at least the image's disk size, ",
                                               *in.image_disk_bytes, " bytes"));
    }
  }

  // Room to grow live (UpdateContainerResources), never below the start.
  const vmspec::v1::CpuTopology& topology = vm.machine.cpu().topology();
  if (HasTopology(topology)) {
    // libvirt: the topology describes the most vCPUs the VM can have.
    const uint64_t product = TopologyProduct(topology);
    if (product > static_cast<uint64_t>(annotations::kMaxVcpus) ||
        static_cast<uint64_t>(vm.vcpus) > product) {
      return absl::InvalidArgumentError(
          StrCat("cpu.topology ", topology.sockets(), " sockets x ", topology.cores(), " cores x ",
                 topology.threads(), " threads holds ", product, " vCPUs, but ", vm.vcpus,
                 " are asked for: expected a topology of at least the vCPU count and at "
                 "most ",
                 annotations::kMaxVcpus));
    }
    vm.max_vcpus = static_cast<int>(product);
  } else {
    vm.max_vcpus = std::max(vm.vcpus, options.max_vcpus > 0 ? options.max_vcpus : in.host_cpus);
  }
  // Hugepages and guest NUMA cells fix the memory at its start size.
  if (!vm.machine.memory().hugepage_size().empty() || vm.machine.numa_size() > 0) {
    vm.max_memory_bytes = vm.memory_bytes;
  } else {
    vm.max_memory_bytes = std::max(vm.memory_bytes, options.max_memory_bytes);
  }

  // What the kubelet passed, by container path.
  for (const v1::Mount& mount : in.container.mounts()) {
    if (!mount.container_path().empty()) vm.volumes[mount.container_path()] = mount.host_path();
  }
  for (const v1::Device& device : in.container.devices()) {
    if (!device.container_path().empty()) vm.volumes[device.container_path()] = device.host_path();
  }
  for (int i = 0; i < vm.machine.disks_size(); ++i) {
    const vmspec::v1::Disk& disk = vm.machine.disks(i);
    if (!disk.has_volume() || vm.volumes.contains(disk.volume().path())) continue;
    return absl::InvalidArgumentError(
        StrCat(vm.vmspec.empty() ? "" : StrCat("vmspec \"", vm.vmspec, "\" "), "spec.disks[", i,
               "].volume.path \"", disk.volume().path().substr(0, 256),
               "\" is not a device or mount of container \"", in.container.metadata().name(),
               "\": expected the container path of a volume the pod passes to it"));
  }
  return vm;
}

}  // namespace vmlet::cri
