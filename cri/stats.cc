// ContainerStats, PodSandboxStats, their List forms and the CRI metrics:
// answered from the stats collector's memory (one bulk query of the driver
// per interval), never by a call to the driver.
//
// How a VM's figures map to the CRI's (the README's "Statistics" table):
// CPU is the whole VM process's CPU time; memory usage, RSS and the
// working set are the VM's resident memory as the host sees it; available
// memory is the guest's MemAvailable when its balloon driver reports it;
// the writable layer is the host space of the VM's overlay disks; the
// network is the pod's: the interfaces of its network namespace (eth0, whose
// frames tc relays to and from the VM's tap), read by the collector with
// the rest; when there are none, the VM's NIC as the engine counts it, if
// it does, reported as eth0.
#include <algorithm>

#include "base/status.h"
#include "base/str_util.h"
#include "cri/convert.h"
#include "cri/cri_service.h"
#include "cri/validate.h"

namespace vmlet::cri {
namespace {

// The pod's interface as the kubelet names the default one.
constexpr char kPodInterface[] = "eth0";

void SetValue(v1::UInt64Value* field, uint64_t value) { field->set_value(value); }

v1::ContainerAttributes AttributesOf(const ContainerRecord& record) {
  v1::ContainerAttributes attributes;
  attributes.set_id(record.id());
  *attributes.mutable_metadata() = record.config().metadata();
  *attributes.mutable_labels() = record.config().labels();
  *attributes.mutable_annotations() = record.config().annotations();
  return attributes;
}

void FillCpu(const StatsSample& sample, v1::CpuUsage* cpu) {
  cpu->set_timestamp(sample.stats.timestamp_ns);
  SetValue(cpu->mutable_usage_core_nano_seconds(), sample.stats.cpu_time_ns);
  if (sample.nano_cores.has_value()) SetValue(cpu->mutable_usage_nano_cores(), *sample.nano_cores);
}

void FillMemory(const StatsSample& sample, v1::MemoryUsage* memory) {
  const vmdriver::VmStats& stats = sample.stats;
  memory->set_timestamp(stats.timestamp_ns);
  SetValue(memory->mutable_working_set_bytes(), stats.rss_bytes);
  SetValue(memory->mutable_usage_bytes(), stats.rss_bytes);
  SetValue(memory->mutable_rss_bytes(), stats.rss_bytes);
  if (stats.guest_memory_reported) {
    SetValue(memory->mutable_available_bytes(), stats.guest_available_bytes);
  }
}

void FillInterface(const network::InterfaceCounters& counters, v1::NetworkInterfaceUsage* out) {
  out->set_name(counters.name);
  SetValue(out->mutable_rx_bytes(), counters.rx_bytes);
  SetValue(out->mutable_rx_errors(), counters.rx_errors);
  SetValue(out->mutable_tx_bytes(), counters.tx_bytes);
  SetValue(out->mutable_tx_errors(), counters.tx_errors);
}

// The pod's namespace's interfaces; the default one is eth0, or the first.
void FillPodNetwork(const NetworkSample& sample, v1::NetworkUsage* network) {
  network->set_timestamp(sample.timestamp_ns);
  const network::InterfaceCounters* default_interface = nullptr;
  for (const network::InterfaceCounters& counters : sample.interfaces) {
    FillInterface(counters, network->add_interfaces());
    if (counters.name == kPodInterface) default_interface = &counters;
  }
  if (default_interface == nullptr && !sample.interfaces.empty()) {
    default_interface = &sample.interfaces.front();
  }
  if (default_interface != nullptr) {
    FillInterface(*default_interface, network->mutable_default_interface());
  }
}

// The VM's NICs as the engine counts them, as the pod's eth0.
void FillVmNetwork(const StatsSample& sample, v1::NetworkUsage* network) {
  const vmdriver::VmStats& stats = sample.stats;
  network->set_timestamp(stats.timestamp_ns);
  v1::NetworkInterfaceUsage* eth0 = network->mutable_default_interface();
  eth0->set_name(kPodInterface);
  SetValue(eth0->mutable_rx_bytes(), stats.rx_bytes);
  SetValue(eth0->mutable_rx_errors(), stats.rx_errors);
  SetValue(eth0->mutable_tx_bytes(), stats.tx_bytes);
  SetValue(eth0->mutable_tx_errors(), stats.tx_errors);
}

// The stats of one container: attributes always; usage when the VM runs
// and has been sampled.
v1::ContainerStats ContainerStatsOf(const ContainerRecord& record,
                                    const std::optional<StatsSample>& sample,
                                    const std::string& disk_dir) {
  v1::ContainerStats out;
  *out.mutable_attributes() = AttributesOf(record);
  if (!sample.has_value()) return out;
  FillCpu(*sample, out.mutable_cpu());
  FillMemory(*sample, out.mutable_memory());
  v1::FilesystemUsage* layer = out.mutable_writable_layer();
  layer->set_timestamp(sample->stats.timestamp_ns);
  layer->mutable_fs_id()->set_mountpoint(disk_dir);
  SetValue(layer->mutable_used_bytes(), sample->stats.disk_allocated_bytes);
  SetValue(layer->mutable_inodes_used(), 0);  // Disk images, not files.
  return out;
}

v1::PodSandboxStats SandboxStatsOf(const SandboxRecord& sandbox,
                                   const std::vector<v1::ContainerStats>& containers,
                                   const std::optional<StatsSample>& sample,
                                   const NetworkSample* network) {
  v1::PodSandboxStats out;
  v1::PodSandboxAttributes* attributes = out.mutable_attributes();
  attributes->set_id(sandbox.id());
  *attributes->mutable_metadata() = sandbox.config().metadata();
  *attributes->mutable_labels() = sandbox.config().labels();
  *attributes->mutable_annotations() = sandbox.config().annotations();
  v1::LinuxPodSandboxStats* linux = out.mutable_linux();
  for (const v1::ContainerStats& container : containers) *linux->add_containers() = container;
  // The pod's usage is its VM's (a pod runs one VM).
  if (sample.has_value()) {
    FillCpu(*sample, linux->mutable_cpu());
    FillMemory(*sample, linux->mutable_memory());
    if ((network == nullptr || network->interfaces.empty()) && sample->stats.network_reported) {
      FillVmNetwork(*sample, linux->mutable_network());
    }
    linux->mutable_process()->set_timestamp(sample->stats.timestamp_ns);
    SetValue(linux->mutable_process()->mutable_process_count(), 1);
  }
  // The pod's namespace lives with the sandbox, whether its VM runs or not.
  // A namespace with nothing but lo (pod_network: none) has no figures.
  if (network != nullptr && !network->interfaces.empty()) {
    FillPodNetwork(*network, linux->mutable_network());
  }
  return out;
}

}  // namespace

absl::Status CriService::ContainerStats(const v1::ContainerStatsRequest& req,
                                        v1::ContainerStatsResponse* resp) {
  VMLET_RETURN_IF_ERROR(ValidateIdField("container_id", req.container_id()));
  VMLET_ASSIGN_OR_RETURN(ContainerRecord container, containers_.Get(req.container_id()));
  if (!IsVisible(container)) {
    return absl::NotFoundError(
        StrCat("container \"", req.container_id(), "\" not found (it is being created)"));
  }
  *resp->mutable_stats() =
      ContainerStatsOf(container, stats_.Get(container.id()), options_.state_dir);
  return absl::OkStatus();
}

absl::Status CriService::ListContainerStats(const v1::ListContainerStatsRequest& req,
                                            v1::ListContainerStatsResponse* resp) {
  const v1::ContainerStatsFilter& filter = req.filter();
  const auto samples = stats_.GetAll();
  for (const ContainerRecord& container : containers_.List([&filter](const ContainerRecord& c) {
         if (!IsVisible(c)) return false;
         if (!filter.id().empty() && !c.id().starts_with(filter.id())) return false;
         if (!filter.pod_sandbox_id().empty() &&
             !c.sandbox_id().starts_with(filter.pod_sandbox_id())) {
           return false;
         }
         return MatchesLabels(c.config().labels(), filter.label_selector());
       })) {
    auto it = samples.find(container.id());
    *resp->add_stats() =
        ContainerStatsOf(container, it == samples.end() ? std::nullopt : std::optional(it->second),
                         options_.state_dir);
  }
  return absl::OkStatus();
}

absl::Status CriService::PodSandboxStats(const v1::PodSandboxStatsRequest& req,
                                         v1::PodSandboxStatsResponse* resp) {
  VMLET_RETURN_IF_ERROR(ValidateIdField("pod_sandbox_id", req.pod_sandbox_id()));
  v1::ListPodSandboxStatsRequest list_request;
  list_request.mutable_filter()->set_id(req.pod_sandbox_id());
  VMLET_ASSIGN_OR_RETURN(SandboxRecord sandbox, sandboxes_.Get(req.pod_sandbox_id()));
  if (!IsVisible(sandbox)) {
    return absl::NotFoundError(
        StrCat("sandbox \"", req.pod_sandbox_id(), "\" not found (it is being created)"));
  }
  list_request.mutable_filter()->set_id(sandbox.id());
  v1::ListPodSandboxStatsResponse list;
  VMLET_RETURN_IF_ERROR(ListPodSandboxStats(list_request, &list));
  if (list.stats().empty()) {
    return absl::NotFoundError(StrCat("sandbox \"", req.pod_sandbox_id(), "\" not found"));
  }
  *resp->mutable_stats() = list.stats(0);
  return absl::OkStatus();
}

absl::Status CriService::ListPodSandboxStats(const v1::ListPodSandboxStatsRequest& req,
                                             v1::ListPodSandboxStatsResponse* resp) {
  const v1::PodSandboxStatsFilter& filter = req.filter();
  const auto samples = stats_.GetAll();
  const auto networks = stats_.GetAllNetwork();
  std::map<std::string, std::vector<ContainerRecord>> containers_by_sandbox;
  for (ContainerRecord& container :
       containers_.List([](const ContainerRecord& c) { return IsVisible(c); })) {
    containers_by_sandbox[container.sandbox_id()].push_back(std::move(container));
  }
  for (const SandboxRecord& sandbox : sandboxes_.List([&filter](const SandboxRecord& s) {
         if (!IsVisible(s)) return false;
         if (!filter.id().empty() && !s.id().starts_with(filter.id())) return false;
         return MatchesLabels(s.config().labels(), filter.label_selector());
       })) {
    std::vector<v1::ContainerStats> containers;
    std::optional<StatsSample> pod_sample;
    for (const ContainerRecord& container : containers_by_sandbox[sandbox.id()]) {
      auto it = samples.find(container.id());
      std::optional<StatsSample> sample;
      if (it != samples.end()) sample = it->second;
      if (sample.has_value()) pod_sample = sample;
      containers.push_back(ContainerStatsOf(container, sample, options_.state_dir));
    }
    auto network = networks.find(sandbox.id());
    *resp->add_stats() = SandboxStatsOf(sandbox, containers, pod_sample,
                                        network == networks.end() ? nullptr : &network->second);
  }
  return absl::OkStatus();
}

}  // namespace vmlet::cri
