// ListMetricDescriptors and ListPodSandboxMetrics: the kubelet's
// /metrics/cadvisor figures for VM pods, from the stats collector's memory.
// Names follow cAdvisor's; values are integers, as the CRI carries them
// (CPU in whole seconds, as CRI-O does).
#include "cri/convert.h"
#include "cri/cri_service.h"

namespace vmlet::cri {
namespace {

struct Descriptor {
  const char* name;
  const char* help;
  v1::MetricType type;
  uint64_t (*value)(const vmdriver::VmStats&);
};

// Of each container (its VM); labels id, name and image.
constexpr Descriptor kDescriptors[] = {
    {"container_cpu_usage_seconds_total", "CPU time the VM consumed, in whole seconds", v1::COUNTER,
     [](const vmdriver::VmStats& s) { return s.cpu_time_ns / 1'000'000'000; }},
    {"container_memory_usage_bytes", "Resident memory of the VM as the host sees it", v1::GAUGE,
     [](const vmdriver::VmStats& s) { return s.rss_bytes; }},
    {"container_memory_working_set_bytes", "Working set of the VM (its resident memory)", v1::GAUGE,
     [](const vmdriver::VmStats& s) { return s.rss_bytes; }},
    {"container_memory_rss", "Resident memory of the VM as the host sees it", v1::GAUGE,
     [](const vmdriver::VmStats& s) { return s.rss_bytes; }},
    {"container_spec_memory_limit_bytes", "Memory given to the guest now", v1::GAUGE,
     [](const vmdriver::VmStats& s) { return s.memory_bytes; }},
    {"container_fs_usage_bytes", "Host bytes of the VM's writable disks", v1::GAUGE,
     [](const vmdriver::VmStats& s) { return s.disk_allocated_bytes; }},
};

struct NetworkDescriptor {
  const char* name;
  const char* help;
  uint64_t (*value)(const network::InterfaceCounters&);
  bool engine_counts;  // Also known from the engine's NIC counters (bytes, errors).
};

// Of each pod (its network namespace), per interface: cAdvisor reports
// the network of the pod, not of its containers. Labels id (the sandbox),
// name and image (empty, as cAdvisor's pod-level series) and interface.
constexpr NetworkDescriptor kNetworkDescriptors[] = {
    {"container_network_receive_bytes_total", "Bytes the pod's interface received",
     [](const network::InterfaceCounters& c) { return c.rx_bytes; }, true},
    {"container_network_receive_packets_total", "Packets the pod's interface received",
     [](const network::InterfaceCounters& c) { return c.rx_packets; }, false},
    {"container_network_receive_errors_total", "Receive errors of the pod's interface",
     [](const network::InterfaceCounters& c) { return c.rx_errors; }, true},
    {"container_network_receive_packets_dropped_total",
     "Received packets the pod's interface dropped",
     [](const network::InterfaceCounters& c) { return c.rx_dropped; }, false},
    {"container_network_transmit_bytes_total", "Bytes the pod's interface sent",
     [](const network::InterfaceCounters& c) { return c.tx_bytes; }, true},
    {"container_network_transmit_packets_total", "Packets the pod's interface sent",
     [](const network::InterfaceCounters& c) { return c.tx_packets; }, false},
    {"container_network_transmit_errors_total", "Transmit errors of the pod's interface",
     [](const network::InterfaceCounters& c) { return c.tx_errors; }, true},
    {"container_network_transmit_packets_dropped_total",
     "Packets to send the pod's interface dropped",
     [](const network::InterfaceCounters& c) { return c.tx_dropped; }, false},
};

constexpr const char* kLabelKeys[] = {"id", "name", "image"};

// The pod-level network series of one pod: every interface of its
// namespace; or, when it has none, the VM's NICs as the engine counts them
// (as eth0; bytes and errors only).
void AddNetworkMetrics(const std::string& sandbox_id, const NetworkSample* network,
                       const vmdriver::VmStats* vm, v1::PodSandboxMetrics* pod) {
  std::vector<network::InterfaceCounters> interfaces;
  int64_t timestamp_ns = 0;
  bool engine_only = false;
  if (network != nullptr) {
    interfaces = network->interfaces;
    timestamp_ns = network->timestamp_ns;
  } else if (vm != nullptr && vm->network_reported) {
    interfaces.push_back({.name = "eth0",
                          .rx_bytes = vm->rx_bytes,
                          .rx_errors = vm->rx_errors,
                          .tx_bytes = vm->tx_bytes,
                          .tx_errors = vm->tx_errors});
    timestamp_ns = vm->timestamp_ns;
    engine_only = true;
  }
  for (const network::InterfaceCounters& counters : interfaces) {
    for (const NetworkDescriptor& descriptor : kNetworkDescriptors) {
      if (engine_only && !descriptor.engine_counts) continue;
      v1::Metric* metric = pod->add_metrics();
      metric->set_name(descriptor.name);
      metric->set_timestamp(timestamp_ns);
      metric->set_metric_type(v1::COUNTER);
      metric->add_label_values(sandbox_id);
      metric->add_label_values("");
      metric->add_label_values("");
      metric->add_label_values(counters.name);
      metric->mutable_value()->set_value(descriptor.value(counters));
    }
  }
}

}  // namespace

absl::Status CriService::ListMetricDescriptors(const v1::ListMetricDescriptorsRequest& /*req*/,
                                               v1::ListMetricDescriptorsResponse* resp) {
  for (const Descriptor& descriptor : kDescriptors) {
    v1::MetricDescriptor* out = resp->add_descriptors();
    out->set_name(descriptor.name);
    out->set_help(descriptor.help);
    for (const char* key : kLabelKeys) out->add_label_keys(key);
  }
  for (const NetworkDescriptor& descriptor : kNetworkDescriptors) {
    v1::MetricDescriptor* out = resp->add_descriptors();
    out->set_name(descriptor.name);
    out->set_help(descriptor.help);
    for (const char* key : kLabelKeys) out->add_label_keys(key);
    out->add_label_keys("interface");
  }
  return absl::OkStatus();
}

absl::Status CriService::ListPodSandboxMetrics(const v1::ListPodSandboxMetricsRequest& /*req*/,
                                               v1::ListPodSandboxMetricsResponse* resp) {
  const auto samples = stats_.GetAll();
  const auto networks = stats_.GetAllNetwork();
  std::map<std::string, v1::PodSandboxMetrics*> by_sandbox;
  auto pod_of = [&](const std::string& sandbox_id) {
    v1::PodSandboxMetrics*& pod = by_sandbox[sandbox_id];
    if (pod == nullptr) {
      pod = resp->add_pod_metrics();
      pod->set_pod_sandbox_id(sandbox_id);
    }
    return pod;
  };
  std::map<std::string, const vmdriver::VmStats*> vm_of_sandbox;
  for (const ContainerRecord& container :
       containers_.List([](const ContainerRecord& c) { return IsVisible(c); })) {
    auto sample = samples.find(container.id());
    if (sample == samples.end()) continue;  // Not running.
    v1::PodSandboxMetrics* pod = pod_of(container.sandbox_id());
    v1::ContainerMetrics* metrics = pod->add_container_metrics();
    metrics->set_container_id(container.id());
    const vmdriver::VmStats& stats = sample->second.stats;
    vm_of_sandbox[container.sandbox_id()] = &stats;
    for (const Descriptor& descriptor : kDescriptors) {
      v1::Metric* metric = metrics->add_metrics();
      metric->set_name(descriptor.name);
      metric->set_timestamp(stats.timestamp_ns);
      metric->set_metric_type(descriptor.type);
      metric->add_label_values(container.id());
      metric->add_label_values(container.config().metadata().name());
      metric->add_label_values(container.config().image().image());
      metric->mutable_value()->set_value(descriptor.value(stats));
    }
  }
  for (const SandboxRecord& sandbox :
       sandboxes_.List([](const SandboxRecord& s) { return IsVisible(s); })) {
    auto network = networks.find(sandbox.id());
    auto vm = vm_of_sandbox.find(sandbox.id());
    const NetworkSample* pod_network = network == networks.end() ? nullptr : &network->second;
    const vmdriver::VmStats* pod_vm = vm == vm_of_sandbox.end() ? nullptr : vm->second;
    if (pod_network == nullptr && (pod_vm == nullptr || !pod_vm->network_reported)) continue;
    AddNetworkMetrics(sandbox.id(), pod_network, pod_vm, pod_of(sandbox.id()));
  }
  return absl::OkStatus();
}

}  // namespace vmlet::cri
