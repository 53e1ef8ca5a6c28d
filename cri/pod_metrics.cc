// ListMetricDescriptors and ListPodSandboxMetrics: the kubelet's
// /metrics/cadvisor figures for VM pods, from the stats collector's memory.
// Names follow cAdvisor's; values are integers, as the CRI carries them
// (CPU in whole seconds, as CRI-O does).
#include "cri/cri_service.h"

namespace vmlet::cri {
namespace {

struct Descriptor {
  const char* name;
  const char* help;
  v1::MetricType type;
  bool per_interface;
  uint64_t (*value)(const vmdriver::VmStats&);
};

constexpr Descriptor kDescriptors[] = {
    {"container_cpu_usage_seconds_total", "CPU time the VM consumed, in whole seconds", v1::COUNTER,
     false, [](const vmdriver::VmStats& s) { return s.cpu_time_ns / 1'000'000'000; }},
    {"container_memory_usage_bytes", "Resident memory of the VM as the host sees it", v1::GAUGE,
     false, [](const vmdriver::VmStats& s) { return s.rss_bytes; }},
    {"container_memory_working_set_bytes", "Working set of the VM (its resident memory)", v1::GAUGE,
     false, [](const vmdriver::VmStats& s) { return s.rss_bytes; }},
    {"container_memory_rss", "Resident memory of the VM as the host sees it", v1::GAUGE, false,
     [](const vmdriver::VmStats& s) { return s.rss_bytes; }},
    {"container_spec_memory_limit_bytes", "Memory given to the guest now", v1::GAUGE, false,
     [](const vmdriver::VmStats& s) { return s.memory_bytes; }},
    {"container_fs_usage_bytes", "Host bytes of the VM's writable disks", v1::GAUGE, false,
     [](const vmdriver::VmStats& s) { return s.disk_allocated_bytes; }},
    {"container_network_receive_bytes_total", "Bytes the VM received", v1::COUNTER, true,
     [](const vmdriver::VmStats& s) { return s.rx_bytes; }},
    {"container_network_receive_errors_total", "Receive errors of the VM's NIC", v1::COUNTER, true,
     [](const vmdriver::VmStats& s) { return s.rx_errors; }},
    {"container_network_transmit_bytes_total", "Bytes the VM sent", v1::COUNTER, true,
     [](const vmdriver::VmStats& s) { return s.tx_bytes; }},
    {"container_network_transmit_errors_total", "Transmit errors of the VM's NIC", v1::COUNTER,
     true, [](const vmdriver::VmStats& s) { return s.tx_errors; }},
};

}  // namespace

absl::Status CriService::ListMetricDescriptors(const v1::ListMetricDescriptorsRequest& /*req*/,
                                               v1::ListMetricDescriptorsResponse* resp) {
  for (const Descriptor& descriptor : kDescriptors) {
    v1::MetricDescriptor* out = resp->add_descriptors();
    out->set_name(descriptor.name);
    out->set_help(descriptor.help);
    for (const char* key : {"id", "name", "image"}) out->add_label_keys(key);
    if (descriptor.per_interface) out->add_label_keys("interface");
  }
  return absl::OkStatus();
}

absl::Status CriService::ListPodSandboxMetrics(const v1::ListPodSandboxMetricsRequest& /*req*/,
                                               v1::ListPodSandboxMetricsResponse* resp) {
  const auto samples = stats_.GetAll();
  std::map<std::string, v1::PodSandboxMetrics*> by_sandbox;
  for (const ContainerRecord& container : containers_.List()) {
    auto sample = samples.find(container.id());
    if (sample == samples.end()) continue;  // Not running.
    v1::PodSandboxMetrics*& pod = by_sandbox[container.sandbox_id()];
    if (pod == nullptr) {
      pod = resp->add_pod_metrics();
      pod->set_pod_sandbox_id(container.sandbox_id());
    }
    v1::ContainerMetrics* metrics = pod->add_container_metrics();
    metrics->set_container_id(container.id());
    const vmdriver::VmStats& stats = sample->second.stats;
    for (const Descriptor& descriptor : kDescriptors) {
      if (descriptor.per_interface && !stats.network_reported) continue;
      v1::Metric* metric = metrics->add_metrics();
      metric->set_name(descriptor.name);
      metric->set_timestamp(stats.timestamp_ns);
      metric->set_metric_type(descriptor.type);
      metric->add_label_values(container.id());
      metric->add_label_values(container.config().metadata().name());
      metric->add_label_values(container.config().image().image());
      if (descriptor.per_interface) metric->add_label_values("eth0");
      metric->mutable_value()->set_value(descriptor.value(stats));
    }
  }
  return absl::OkStatus();
}

}  // namespace vmlet::cri
