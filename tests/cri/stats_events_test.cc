// Stats, metrics, container events, live resource updates and
// RuntimeConfig of CriService over the fake VM driver.
#include <algorithm>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/time/clock.h"
#include "base/str_util.h"
#include "cri/container_events.h"
#include "cri/resources.h"
#include "tests/cri/cri_test_util.h"

namespace vmlet::cri {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using vmlet::testing::ContainerConfig;

class StatsEventsTest : public vmlet::testing::CriFixture {
 protected:
  std::string RunningContainer(const std::string& pod) {
    std::string id = CreateContainer(RunSandbox(pod), "vm");
    v1::StartContainerRequest request;
    request.set_container_id(id);
    v1::StartContainerResponse response;
    EXPECT_TRUE(service_->StartContainer(request, &response).ok());
    return id;
  }
  vmdriver::VmStats Figures(const std::string& id, int64_t at_ns, uint64_t cpu_ns) {
    return vmdriver::VmStats{.id = id,
                             .timestamp_ns = at_ns,
                             .cpu_time_ns = cpu_ns,
                             .vcpus = 1,
                             .memory_bytes = 512 << 20,
                             .rss_bytes = 200 << 20,
                             .guest_memory_reported = true,
                             .guest_total_bytes = 500 << 20,
                             .guest_unused_bytes = 300 << 20,
                             .guest_available_bytes = 400 << 20,
                             .network_reported = true,
                             .rx_bytes = 1000,
                             .rx_errors = 1,
                             .tx_bytes = 2000,
                             .tx_errors = 2,
                             .disk_allocated_bytes = 64 << 20};
  }
  absl::Status Update(const std::string& id, const v1::LinuxContainerResources& resources) {
    v1::UpdateContainerResourcesRequest request;
    request.set_container_id(id);
    *request.mutable_linux() = resources;
    v1::UpdateContainerResourcesResponse response;
    return service_->UpdateContainerResources(request, &response);
  }
};

TEST_F(StatsEventsTest, ContainerStatsComeFromTheLastCollection) {
  std::string id = RunningContainer("web");
  ASSERT_TRUE(driver_->SetStats(id, Figures(id, 1'000'000'000, 5'000'000'000)).ok());
  ASSERT_TRUE(service_->stats()->CollectNow().ok());
  // Half a core over two seconds.
  ASSERT_TRUE(driver_->SetStats(id, Figures(id, 3'000'000'000, 6'000'000'000)).ok());
  ASSERT_TRUE(service_->stats()->CollectNow().ok());
  const uint64_t queries = driver_->bulk_stats_queries();

  v1::ContainerStatsRequest request;
  request.set_container_id(id);
  v1::ContainerStatsResponse response;
  ASSERT_TRUE(service_->ContainerStats(request, &response).ok());
  const v1::ContainerStats& stats = response.stats();
  EXPECT_EQ(stats.attributes().id(), id);
  EXPECT_EQ(stats.attributes().metadata().name(), "vm");
  EXPECT_EQ(stats.cpu().timestamp(), 3'000'000'000);
  EXPECT_EQ(stats.cpu().usage_core_nano_seconds().value(), 6'000'000'000u);
  EXPECT_EQ(stats.cpu().usage_nano_cores().value(), 500'000'000u);
  EXPECT_EQ(stats.memory().working_set_bytes().value(), 200u << 20);
  EXPECT_EQ(stats.memory().rss_bytes().value(), 200u << 20);
  EXPECT_EQ(stats.memory().available_bytes().value(), 400u << 20);
  EXPECT_EQ(stats.writable_layer().used_bytes().value(), 64u << 20);
  EXPECT_FALSE(stats.writable_layer().fs_id().mountpoint().empty());
  // Answered from memory: no query of the driver per call.
  EXPECT_EQ(driver_->bulk_stats_queries(), queries);
}

TEST_F(StatsEventsTest, ListContainerStatsFiltersAndSkipsUsageOfStoppedVms) {
  std::string running = RunningContainer("web");
  std::string created = CreateContainer(RunSandbox("db"), "vm");
  ASSERT_TRUE(service_->stats()->CollectNow().ok());

  v1::ListContainerStatsResponse all;
  ASSERT_TRUE(service_->ListContainerStats({}, &all).ok());
  ASSERT_EQ(all.stats_size(), 2);
  for (const v1::ContainerStats& stats : all.stats()) {
    EXPECT_EQ(stats.has_cpu(), stats.attributes().id() == running) << stats.attributes().id();
  }
  v1::ListContainerStatsRequest by_id;
  by_id.mutable_filter()->set_id(created.substr(0, 12));
  v1::ListContainerStatsResponse one;
  ASSERT_TRUE(service_->ListContainerStats(by_id, &one).ok());
  ASSERT_EQ(one.stats_size(), 1);
  EXPECT_EQ(one.stats(0).attributes().id(), created);

  v1::ListContainerStatsRequest by_label;
  (*by_label.mutable_filter()->mutable_label_selector())["no-such-label"] = "x";
  v1::ListContainerStatsResponse none;
  ASSERT_TRUE(service_->ListContainerStats(by_label, &none).ok());
  EXPECT_EQ(none.stats_size(), 0);
}

TEST_F(StatsEventsTest, PodSandboxStatsCarryTheVmsUsageAndNetwork) {
  std::string id = RunningContainer("web");
  ASSERT_TRUE(driver_->SetStats(id, Figures(id, 1'000'000'000, 5'000'000'000)).ok());
  ASSERT_TRUE(service_->stats()->CollectNow().ok());
  v1::ListPodSandboxStatsResponse list;
  ASSERT_TRUE(service_->ListPodSandboxStats({}, &list).ok());
  ASSERT_EQ(list.stats_size(), 1);
  const v1::LinuxPodSandboxStats& linux = list.stats(0).linux();
  EXPECT_EQ(list.stats(0).attributes().metadata().name(), "web");
  EXPECT_EQ(linux.cpu().usage_core_nano_seconds().value(), 5'000'000'000u);
  EXPECT_EQ(linux.network().default_interface().name(), "eth0");
  EXPECT_EQ(linux.network().default_interface().rx_bytes().value(), 1000u);
  EXPECT_EQ(linux.network().default_interface().tx_errors().value(), 2u);
  ASSERT_EQ(linux.containers_size(), 1);
  EXPECT_EQ(linux.containers(0).attributes().id(), id);

  v1::PodSandboxStatsRequest request;
  request.set_pod_sandbox_id(list.stats(0).attributes().id());
  v1::PodSandboxStatsResponse response;
  ASSERT_TRUE(service_->PodSandboxStats(request, &response).ok());
  EXPECT_EQ(response.stats().attributes().id(), request.pod_sandbox_id());

  request.set_pod_sandbox_id("abcdef0123456789");
  EXPECT_EQ(service_->PodSandboxStats(request, &response).code(), absl::StatusCode::kNotFound);
  v1::ContainerStatsRequest container;
  container.set_container_id("abcdef0123456789");
  v1::ContainerStatsResponse container_response;
  EXPECT_EQ(service_->ContainerStats(container, &container_response).code(),
            absl::StatusCode::kNotFound);
}

TEST_F(StatsEventsTest, AFailedCollectionKeepsTheLastFigures) {
  std::string id = RunningContainer("web");
  ASSERT_TRUE(driver_->SetStats(id, Figures(id, 1'000'000'000, 5'000'000'000)).ok());
  ASSERT_TRUE(service_->stats()->CollectNow().ok());
  driver_->FailNext("CollectStats", absl::UnavailableError("libvirtd is gone"));
  EXPECT_FALSE(service_->stats()->CollectNow().ok());
  EXPECT_THAT(std::string(service_->stats()->last_error().message()), HasSubstr("libvirtd"));
  ASSERT_TRUE(service_->stats()->Get(id).has_value());
  EXPECT_EQ(service_->stats()->Get(id)->stats.cpu_time_ns, 5'000'000'000u);
}

TEST_F(StatsEventsTest, MetricsMatchTheirDescriptors) {
  std::string id = RunningContainer("web");
  ASSERT_TRUE(driver_->SetStats(id, Figures(id, 1'000'000'000, 5'000'000'000)).ok());
  ASSERT_TRUE(service_->stats()->CollectNow().ok());
  v1::ListMetricDescriptorsResponse descriptors;
  ASSERT_TRUE(service_->ListMetricDescriptors({}, &descriptors).ok());
  std::map<std::string, int> label_count;
  for (const v1::MetricDescriptor& descriptor : descriptors.descriptors()) {
    EXPECT_TRUE(label_count.emplace(descriptor.name(), descriptor.label_keys_size()).second)
        << "duplicate " << descriptor.name();
  }
  v1::ListPodSandboxMetricsResponse metrics;
  ASSERT_TRUE(service_->ListPodSandboxMetrics({}, &metrics).ok());
  ASSERT_EQ(metrics.pod_metrics_size(), 1);
  ASSERT_EQ(metrics.pod_metrics(0).container_metrics_size(), 1);
  const v1::ContainerMetrics& container = metrics.pod_metrics(0).container_metrics(0);
  EXPECT_EQ(container.container_id(), id);
  // The containers' series have no interface; the network's are the pod's.
  const int per_container = static_cast<int>(
      std::count_if(descriptors.descriptors().begin(), descriptors.descriptors().end(),
                    [](const v1::MetricDescriptor& d) { return d.label_keys_size() == 3; }));
  EXPECT_EQ(container.metrics_size(), per_container);
  for (const v1::Metric& metric : container.metrics()) {
    ASSERT_TRUE(label_count.contains(metric.name())) << metric.name();
    EXPECT_EQ(metric.label_values_size(), label_count[metric.name()]) << metric.name();
    if (metric.name() == "container_cpu_usage_seconds_total") {
      EXPECT_EQ(metric.value().value(), 5u);
      EXPECT_EQ(metric.metric_type(), v1::COUNTER);
    }
  }
  // Without the pod's namespace figures, the engine's NIC counters stand in
  // for eth0: bytes and errors, as the engine counts no packets.
  std::set<std::string> pod_names;
  for (const v1::Metric& metric : metrics.pod_metrics(0).metrics()) {
    ASSERT_TRUE(label_count.contains(metric.name())) << metric.name();
    EXPECT_EQ(metric.label_values_size(), label_count[metric.name()]) << metric.name();
    EXPECT_EQ(metric.label_values(3), "eth0");
    pod_names.insert(metric.name());
  }
  EXPECT_THAT(pod_names, ElementsAre("container_network_receive_bytes_total",
                                     "container_network_receive_errors_total",
                                     "container_network_transmit_bytes_total",
                                     "container_network_transmit_errors_total"));
}

// The pods' network namespaces, as CriService lists them for the collector,
// and a stand-in for reading their counters.
class PodNetworkStatsTest : public StatsEventsTest {
 protected:
  void SetUp() override {
    StatsEventsTest::SetUp();
    service_->stats()->SetNetnsLister([this] {
      std::vector<cri::PodNetns> pods;
      std::lock_guard lock(mu_);
      for (const auto& [sandbox, path] : netns_) pods.push_back({sandbox, path});
      return pods;
    });
    service_->stats()->SetNetworkCounterReader(
        [this](const std::string& path) -> absl::StatusOr<std::vector<network::InterfaceCounters>> {
          std::lock_guard lock(mu_);
          reads_.push_back(path);
          auto it = counters_.find(path);
          if (it == counters_.end()) return absl::NotFoundError(StrCat("no netns \"", path, "\""));
          return it->second;
        });
  }

  // Runs a sandbox whose namespace has `interfaces`; its id.
  std::string PodWith(const std::string& name, std::vector<network::InterfaceCounters> interfaces) {
    std::string sandbox = RunSandbox(name);
    const std::string path = StrCat("/fake/netns/", sandbox);
    std::lock_guard lock(mu_);
    netns_[sandbox] = path;
    counters_[path] = std::move(interfaces);
    return sandbox;
  }

  v1::PodSandboxStats PodStats(const std::string& sandbox) {
    v1::PodSandboxStatsRequest request;
    request.set_pod_sandbox_id(sandbox);
    v1::PodSandboxStatsResponse response;
    EXPECT_TRUE(service_->PodSandboxStats(request, &response).ok());
    return response.stats();
  }

  std::mutex mu_;
  std::map<std::string, std::string> netns_;                                 // Sandbox id -> path.
  std::map<std::string, std::vector<network::InterfaceCounters>> counters_;  // By path.
  std::vector<std::string> reads_;
};

network::InterfaceCounters Counters(const std::string& name, uint64_t base) {
  return {.name = name,
          .rx_bytes = base + 1,
          .rx_packets = base + 2,
          .rx_errors = base + 3,
          .rx_dropped = base + 4,
          .tx_bytes = base + 5,
          .tx_packets = base + 6,
          .tx_errors = base + 7,
          .tx_dropped = base + 8};
}

TEST_F(PodNetworkStatsTest, PodStatsCarryEveryInterfaceOfTheNamespaceWithEth0AsDefault) {
  std::string sandbox = PodWith("web", {Counters("net1", 100), Counters("eth0", 5000)});
  std::string vm = CreateContainer(sandbox, "vm");
  v1::StartContainerRequest start;
  start.set_container_id(vm);
  v1::StartContainerResponse started;
  ASSERT_TRUE(service_->StartContainer(start, &started).ok());
  // The engine's NIC figures (Figures: 1000 bytes in) give way to the pod's.
  ASSERT_TRUE(driver_->SetStats(vm, Figures(vm, 1'000'000'000, 5'000'000'000)).ok());
  const int64_t before = absl::ToUnixNanos(absl::Now());
  ASSERT_TRUE(service_->stats()->CollectNow().ok());
  const uint64_t queries = driver_->bulk_stats_queries();
  const size_t reads = reads_.size();

  v1::PodSandboxStats stats = PodStats(sandbox);
  const v1::NetworkUsage& network = stats.linux().network();
  EXPECT_GE(network.timestamp(), before);
  EXPECT_EQ(network.default_interface().name(), "eth0");
  EXPECT_EQ(network.default_interface().rx_bytes().value(), 5001u);
  EXPECT_EQ(network.default_interface().rx_errors().value(), 5003u);
  EXPECT_EQ(network.default_interface().tx_bytes().value(), 5005u);
  EXPECT_EQ(network.default_interface().tx_errors().value(), 5007u);
  ASSERT_EQ(network.interfaces_size(), 2);
  EXPECT_EQ(network.interfaces(0).name(), "net1");
  EXPECT_EQ(network.interfaces(0).tx_bytes().value(), 105u);
  EXPECT_EQ(network.interfaces(1).name(), "eth0");
  EXPECT_EQ(stats.linux().cpu().usage_core_nano_seconds().value(), 5'000'000'000u);

  v1::ListPodSandboxStatsResponse list;
  ASSERT_TRUE(service_->ListPodSandboxStats({}, &list).ok());
  ASSERT_EQ(list.stats_size(), 1);
  EXPECT_EQ(list.stats(0).linux().network().default_interface().rx_bytes().value(), 5001u);
  // Answered from memory: neither the engine nor a namespace was read.
  EXPECT_EQ(driver_->bulk_stats_queries(), queries);
  EXPECT_EQ(reads_.size(), reads);
}

TEST_F(PodNetworkStatsTest, WithoutEth0TheFirstInterfaceIsTheDefaultAndAVmIsNotNeeded) {
  std::string sandbox = PodWith("web", {Counters("net0", 10), Counters("net1", 20)});
  std::string empty = PodWith("bare", {});
  ASSERT_TRUE(service_->stats()->CollectNow().ok());
  v1::PodSandboxStats stats = PodStats(sandbox);
  EXPECT_EQ(stats.linux().network().default_interface().name(), "net0");
  EXPECT_EQ(stats.linux().network().interfaces_size(), 2);
  EXPECT_FALSE(stats.linux().has_cpu());  // No VM runs.
  // A namespace with nothing but lo (pod_network: none): no figures.
  v1::PodSandboxStats bare = PodStats(empty);
  EXPECT_FALSE(bare.linux().has_network());
}

TEST_F(PodNetworkStatsTest, AFailedReadKeepsTheLastFiguresAndAnUnlistedPodLosesThem) {
  std::string sandbox = PodWith("web", {Counters("eth0", 100)});
  ASSERT_TRUE(service_->stats()->CollectNow().ok());
  ASSERT_TRUE(service_->stats()->GetNetwork(sandbox).has_value());
  const int64_t first = service_->stats()->GetNetwork(sandbox)->timestamp_ns;
  {
    std::lock_guard lock(mu_);
    counters_.clear();  // Every read fails now.
  }
  // A failed read is no failed collection: the engine answered.
  ASSERT_TRUE(service_->stats()->CollectNow().ok());
  std::optional<cri::NetworkSample> kept = service_->stats()->GetNetwork(sandbox);
  ASSERT_TRUE(kept.has_value());
  EXPECT_EQ(kept->timestamp_ns, first);
  EXPECT_EQ(PodStats(sandbox).linux().network().default_interface().rx_bytes().value(), 101u);
  {
    std::lock_guard lock(mu_);
    netns_.clear();  // The pod is gone from the list.
  }
  ASSERT_TRUE(service_->stats()->CollectNow().ok());
  EXPECT_FALSE(service_->stats()->GetNetwork(sandbox).has_value());
  EXPECT_FALSE(PodStats(sandbox).linux().has_network());
  EXPECT_TRUE(service_->stats()->GetAllNetwork().empty());
}

TEST_F(PodNetworkStatsTest, TheNamespacesAreReadEvenWhenTheEngineFails) {
  std::string sandbox = PodWith("web", {Counters("eth0", 100)});
  driver_->FailNext("CollectStats", absl::UnavailableError("libvirtd is gone"));
  EXPECT_FALSE(service_->stats()->CollectNow().ok());
  EXPECT_TRUE(service_->stats()->GetNetwork(sandbox).has_value());
}

TEST_F(PodNetworkStatsTest, MetricsCarryEachInterfaceOfThePod) {
  std::string sandbox = PodWith("web", {Counters("eth0", 100), Counters("net1", 200)});
  std::string vm = CreateContainer(sandbox, "vm");
  v1::StartContainerRequest start;
  start.set_container_id(vm);
  v1::StartContainerResponse started;
  ASSERT_TRUE(service_->StartContainer(start, &started).ok());
  std::string idle = PodWith("idle", {Counters("eth0", 300)});  // No VM.
  ASSERT_TRUE(service_->stats()->CollectNow().ok());

  v1::ListMetricDescriptorsResponse descriptors;
  ASSERT_TRUE(service_->ListMetricDescriptors({}, &descriptors).ok());
  std::map<std::string, std::vector<std::string>> keys;
  for (const v1::MetricDescriptor& d : descriptors.descriptors()) {
    keys[d.name()] = {d.label_keys().begin(), d.label_keys().end()};
  }
  v1::ListPodSandboxMetricsResponse metrics;
  ASSERT_TRUE(service_->ListPodSandboxMetrics({}, &metrics).ok());
  ASSERT_EQ(metrics.pod_metrics_size(), 2);
  std::map<std::string, const v1::PodSandboxMetrics*> by_sandbox;
  for (const v1::PodSandboxMetrics& pod : metrics.pod_metrics()) {
    by_sandbox[pod.pod_sandbox_id()] = &pod;
  }
  ASSERT_TRUE(by_sandbox.contains(sandbox));
  ASSERT_TRUE(by_sandbox.contains(idle));
  EXPECT_EQ(by_sandbox[sandbox]->container_metrics_size(), 1);
  EXPECT_EQ(by_sandbox[idle]->container_metrics_size(), 0);

  // name/interface -> value, with every label as the descriptor says.
  std::map<std::string, uint64_t> values;
  for (const v1::Metric& metric : by_sandbox[sandbox]->metrics()) {
    ASSERT_TRUE(keys.contains(metric.name())) << metric.name();
    ASSERT_THAT(keys[metric.name()], ElementsAre("id", "name", "image", "interface"));
    ASSERT_EQ(metric.label_values_size(), 4) << metric.name();
    EXPECT_EQ(metric.label_values(0), sandbox);
    EXPECT_EQ(metric.metric_type(), v1::COUNTER);
    EXPECT_GT(metric.timestamp(), 0);
    values[StrCat(metric.name(), "/", metric.label_values(3))] = metric.value().value();
  }
  EXPECT_EQ(values.size(), 16u);  // 8 series of 2 interfaces.
  EXPECT_EQ(values["container_network_receive_bytes_total/eth0"], 101u);
  EXPECT_EQ(values["container_network_receive_packets_total/eth0"], 102u);
  EXPECT_EQ(values["container_network_receive_errors_total/eth0"], 103u);
  EXPECT_EQ(values["container_network_receive_packets_dropped_total/eth0"], 104u);
  EXPECT_EQ(values["container_network_transmit_bytes_total/eth0"], 105u);
  EXPECT_EQ(values["container_network_transmit_packets_total/eth0"], 106u);
  EXPECT_EQ(values["container_network_transmit_errors_total/eth0"], 107u);
  EXPECT_EQ(values["container_network_transmit_packets_dropped_total/net1"], 208u);
  EXPECT_EQ(by_sandbox[idle]->metrics_size(), 8);
}

std::vector<v1::ContainerEventType> TypesOf(const std::vector<v1::ContainerEventResponse>& events) {
  std::vector<v1::ContainerEventType> types;
  for (const auto& event : events) types.push_back(event.container_event_type());
  return types;
}

std::vector<v1::ContainerEventResponse> Drain(ContainerEventHub::Subscription& subscription,
                                              absl::Status* end = nullptr) {
  std::vector<v1::ContainerEventResponse> events;
  while (true) {
    absl::StatusOr<std::optional<v1::ContainerEventResponse>> next =
        subscription.Next([] { return true; }, absl::Milliseconds(1));
    if (!next.ok()) {
      if (end != nullptr) *end = next.status();
      return events;
    }
    if (!next->has_value()) return events;
    events.push_back(**next);
  }
}

TEST_F(StatsEventsTest, EventsFollowTheLifecycleOnEverySubscriber) {
  auto first = service_->container_events()->Subscribe();
  auto second = service_->container_events()->Subscribe();
  EXPECT_EQ(service_->container_events()->subscribers(), 2u);
  std::string id = RunningContainer("web");
  v1::StopContainerRequest stop;
  stop.set_container_id(id);
  v1::StopContainerResponse stopped;
  ASSERT_TRUE(service_->StopContainer(stop, &stopped).ok());
  v1::RemoveContainerRequest remove;
  remove.set_container_id(id);
  v1::RemoveContainerResponse removed;
  ASSERT_TRUE(service_->RemoveContainer(remove, &removed).ok());

  for (auto* subscription : {first.get(), second.get()}) {
    std::vector<v1::ContainerEventResponse> events = Drain(*subscription);
    EXPECT_THAT(TypesOf(events),
                ElementsAre(v1::CONTAINER_CREATED_EVENT, v1::CONTAINER_STARTED_EVENT,
                            v1::CONTAINER_STOPPED_EVENT, v1::CONTAINER_DELETED_EVENT));
    for (const auto& event : events) {
      EXPECT_EQ(event.container_id(), id);
      EXPECT_GT(event.created_at(), 0);
      EXPECT_EQ(event.pod_sandbox_status().metadata().name(), "web");
    }
    ASSERT_EQ(events[1].containers_statuses_size(), 1);
    EXPECT_EQ(events[1].containers_statuses(0).state(), v1::CONTAINER_RUNNING);
    EXPECT_EQ(events[2].containers_statuses(0).state(), v1::CONTAINER_EXITED);
    EXPECT_EQ(events[3].containers_statuses_size(), 0);
  }
  first.reset();
  EXPECT_EQ(service_->container_events()->subscribers(), 1u);
}

TEST_F(StatsEventsTest, AGuestPowerOffIsAStoppedEvent) {
  std::string id = RunningContainer("web");
  auto subscription = service_->container_events()->Subscribe();
  ASSERT_TRUE(driver_->SimulateExit(id, 0, "Completed").ok());
  std::vector<v1::ContainerEventResponse> events = Drain(*subscription);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].container_event_type(), v1::CONTAINER_STOPPED_EVENT);
  EXPECT_EQ(events[0].containers_statuses(0).reason(), "Completed");
}

TEST(ContainerEventHubTest, ASlowSubscriberIsDroppedAndNeverBlocksThePublisher) {
  ContainerEventHub hub(/*max_queued=*/3);
  auto slow = hub.Subscribe();
  auto fast = hub.Subscribe();
  state::v1::ContainerRecord record;
  record.set_id("c1");
  record.set_sandbox_id("s1");
  std::vector<v1::ContainerEventResponse> fast_events;
  for (int i = 0; i < 5; ++i) {
    state::v1::ContainerRecord before = record, after = record;
    before.set_state(state::v1::CONTAINER_STATE_RUNNING);
    after.set_state(state::v1::CONTAINER_STATE_EXITED);
    hub.OnContainerChange(&before, &after);  // Returns at once, reader or not.
    std::vector<v1::ContainerEventResponse> drained = Drain(*fast);
    fast_events.insert(fast_events.end(), drained.begin(), drained.end());
  }
  EXPECT_EQ(fast_events.size(), 5u);
  absl::Status end;
  std::vector<v1::ContainerEventResponse> slow_events = Drain(*slow, &end);
  EXPECT_EQ(end.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(end.message()), HasSubstr("fell more than 3 events behind"));
  EXPECT_EQ(hub.subscribers(), 1u);
  // Without a sandbox status the event still names the pod's sandbox.
  EXPECT_EQ(fast_events[0].pod_sandbox_status().id(), "s1");

  hub.Shutdown();
  Drain(*fast, &end);
  EXPECT_EQ(end.code(), absl::StatusCode::kUnavailable);
}

TEST_F(StatsEventsTest, UpdateResourcesChangesTheRunningVmAndItsStatus) {
  std::string id = RunningContainer("web");
  v1::LinuxContainerResources resources;
  resources.set_cpu_period(100000);
  resources.set_cpu_quota(100000);
  resources.set_memory_limit_in_bytes(256 << 20);
  resources.set_cpuset_cpus("0");
  ASSERT_TRUE(Update(id, resources).ok());
  absl::StatusOr<vmdriver::VmConfig> vm = driver_->ConfigOf(id);
  ASSERT_TRUE(vm.ok());
  EXPECT_EQ(vm->vcpus, 1);
  EXPECT_EQ(vm->memory_bytes, 256 << 20);
  EXPECT_THAT(vm->cpuset, ElementsAre(0));
  EXPECT_EQ(ContainerStatus(id).resources().linux().memory_limit_in_bytes(), 256 << 20);
  EXPECT_EQ(ContainerStatus(id).resources().linux().cpuset_cpus(), "0");
}

TEST_F(StatsEventsTest, APartialUpdateKeepsTheOtherLimits) {
  std::string id = RunningContainer("web");
  v1::LinuxContainerResources first;
  first.set_cpu_period(100000);
  first.set_cpu_quota(100000);
  first.set_memory_limit_in_bytes(256 << 20);
  ASSERT_TRUE(Update(id, first).ok());
  v1::LinuxContainerResources memory_only;  // As `crictl update --memory 128M`.
  memory_only.set_memory_limit_in_bytes(128 << 20);
  ASSERT_TRUE(Update(id, memory_only).ok());
  const v1::LinuxContainerResources& now = ContainerStatus(id).resources().linux();
  EXPECT_EQ(now.memory_limit_in_bytes(), 128 << 20);
  EXPECT_EQ(now.cpu_quota(), 100000);
  EXPECT_EQ(now.cpu_period(), 100000);
  EXPECT_EQ(driver_->ConfigOf(id)->memory_bytes, 128 << 20);
}

TEST_F(StatsEventsTest, RefusedUpdatesNameTheFieldAndChangeNothing) {
  std::string id = RunningContainer("web");
  const int64_t memory_before = driver_->ConfigOf(id)->memory_bytes;
  v1::LinuxContainerResources too_many;
  too_many.set_cpu_period(100000);
  too_many.set_cpu_quota(100000 * 64);
  absl::Status status = Update(id, too_many);
  EXPECT_EQ(status.code(), absl::StatusCode::kOutOfRange) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr("vcpus"));

  v1::LinuxContainerResources two;
  two.set_cpu_period(100000);
  two.set_cpu_quota(200000);
  if (std::thread::hardware_concurrency() >= 2) {
    ASSERT_TRUE(Update(id, two).ok());
    v1::LinuxContainerResources one;
    one.set_cpu_period(100000);
    one.set_cpu_quota(100000);
    status = Update(id, one);
    EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
    EXPECT_THAT(std::string(status.message()), HasSubstr("can only be added"));
    EXPECT_EQ(driver_->ConfigOf(id)->vcpus, 2);
  }

  v1::LinuxContainerResources more_memory;
  more_memory.set_memory_limit_in_bytes(memory_before * 2);
  status = Update(id, more_memory);
  EXPECT_EQ(status.code(), absl::StatusCode::kOutOfRange) << status;
  EXPECT_EQ(driver_->ConfigOf(id)->memory_bytes, memory_before);

  v1::LinuxContainerResources bad_cpuset;
  bad_cpuset.set_cpuset_cpus("3-1");
  status = Update(id, bad_cpuset);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("linux.cpuset_cpus: \"3-1\""));

  v1::LinuxContainerResources numa;
  numa.set_cpuset_mems("1");
  status = Update(id, numa);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(status.message()), HasSubstr("linux.cpuset_mems"));
  EXPECT_EQ(ContainerStatus(id).resources().linux().cpuset_mems(), "");

  v1::StopContainerRequest stop;
  stop.set_container_id(id);
  v1::StopContainerResponse stopped;
  ASSERT_TRUE(service_->StopContainer(stop, &stopped).ok());
  EXPECT_EQ(Update(id, more_memory).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Update("abcdef0123456789", more_memory).code(), absl::StatusCode::kNotFound);
}

TEST_F(StatsEventsTest, UpdatesKeepVcpusAndMemoryGivenByAnnotationsUntilTheyChange) {
  // 3 vCPUs and 384 MiB from annotations; the pod's limits say 1 CPU and
  // 256 MiB.
  v1::CreateContainerRequest create;
  create.set_pod_sandbox_id(RunSandbox("web"));
  *create.mutable_config() = ContainerConfig("vm");
  v1::LinuxContainerResources* limits = create.mutable_config()->mutable_linux()->mutable_resources();
  limits->set_cpu_period(100000);
  limits->set_cpu_quota(100000);
  limits->set_memory_limit_in_bytes(256 << 20);
  (*create.mutable_config()->mutable_annotations())["vmlet.io/vcpus"] = "3";
  (*create.mutable_config()->mutable_annotations())["vmlet.io/memory"] = "384Mi";
  v1::CreateContainerResponse created;
  ASSERT_TRUE(service_->CreateContainer(create, &created).ok());
  const std::string id = created.container_id();
  v1::StartContainerRequest start;
  start.set_container_id(id);
  v1::StartContainerResponse started;
  ASSERT_TRUE(service_->StartContainer(start, &started).ok());
  ASSERT_EQ(driver_->ConfigOf(id)->vcpus, 3);

  // The kubelet re-sends the limits unchanged: the VM keeps what it has.
  ASSERT_TRUE(Update(id, *limits).ok());
  EXPECT_EQ(driver_->ConfigOf(id)->vcpus, 3);
  EXPECT_EQ(driver_->ConfigOf(id)->memory_bytes, 384 << 20);

  // Fewer vCPUs than the 3 the VM has is refused, naming the 3.
  v1::LinuxContainerResources two = *limits;
  two.set_cpu_quota(200000);
  absl::Status status = Update(id, two);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr("fewer than the 3"));
  EXPECT_EQ(driver_->ConfigOf(id)->vcpus, 3);

  // A changed memory limit applies and is what the VM now has.
  v1::LinuxContainerResources memory = *limits;
  memory.set_memory_limit_in_bytes(320 << 20);
  ASSERT_TRUE(Update(id, memory).ok());
  EXPECT_EQ(driver_->ConfigOf(id)->memory_bytes, 320 << 20);
}

TEST_F(StatsEventsTest, UpdatePodSandboxResourcesResizesItsVm) {
  std::string id = RunningContainer("web");
  v1::UpdatePodSandboxResourcesRequest request;
  v1::ListPodSandboxResponse sandboxes;
  ASSERT_TRUE(service_->ListPodSandbox({}, &sandboxes).ok());
  request.set_pod_sandbox_id(sandboxes.items(0).id());
  request.mutable_resources()->set_memory_limit_in_bytes(128 << 20);
  v1::UpdatePodSandboxResourcesResponse response;
  ASSERT_TRUE(service_->UpdatePodSandboxResources(request, &response).ok());
  EXPECT_EQ(driver_->ConfigOf(id)->memory_bytes, 128 << 20);
}

TEST_F(StatsEventsTest, RuntimeConfigReportsTheCgroupDriver) {
  v1::RuntimeConfigResponse response;
  ASSERT_TRUE(service_->RuntimeConfig({}, &response).ok());
  EXPECT_EQ(response.linux().cgroup_driver(), v1::CGROUPFS);
}

TEST(CpuListTest, ParsesRangesAndRejectsJunk) {
  EXPECT_THAT(*ParseCpuList("f", "0-2,5,1"), ElementsAre(0, 1, 2, 5));
  EXPECT_TRUE(ParseCpuList("f", "")->empty());
  for (const char* bad : {"a", "1-", "-1", "1,", "3-1", "1,,2", "99999", "1-2-3", " 1"}) {
    absl::StatusOr<std::vector<int>> cpus = ParseCpuList("linux.cpuset_cpus", bad);
    EXPECT_EQ(cpus.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(std::string(cpus.status().message()), HasSubstr("linux.cpuset_cpus")) << bad;
  }
}

}  // namespace
}  // namespace vmlet::cri
