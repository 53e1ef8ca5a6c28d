// Pod sandbox verbs of CriService over the fake VM driver.
#include <functional>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/cri/cri_test_util.h"

namespace vmlet::cri {
namespace {

using ::testing::HasSubstr;
using ::testing::SizeIs;
using vmlet::testing::SandboxConfig;

class SandboxTest : public vmlet::testing::CriFixture {};

TEST_F(SandboxTest, RunPodSandboxReturnsA64HexId) {
  std::string id = RunSandbox("web");
  EXPECT_EQ(id.size(), 64u);
  EXPECT_EQ(id.find_first_not_of("0123456789abcdef"), std::string::npos);
}

TEST_F(SandboxTest, StatusEchoesMetadataLabelsAndAnnotationsVerbatim) {
  std::string id = RunSandbox("web");
  v1::PodSandboxStatus status = SandboxStatus(id);
  v1::PodSandboxConfig config = SandboxConfig("web");
  EXPECT_EQ(status.id(), id);
  EXPECT_EQ(status.state(), v1::SANDBOX_READY);
  EXPECT_EQ(status.metadata().SerializeAsString(), config.metadata().SerializeAsString());
  EXPECT_EQ(status.labels().size(), config.labels().size());
  for (const auto& [key, value] : config.labels()) EXPECT_EQ(status.labels().at(key), value);
  for (const auto& [key, value] : config.annotations()) {
    EXPECT_EQ(status.annotations().at(key), value);
  }
  EXPECT_GT(status.created_at(), 0);
}

TEST_F(SandboxTest, StatusReportsThePodAddressesIpv4First) {
  v1::PodSandboxStatus status = SandboxStatus(RunSandbox("web"));
  EXPECT_EQ(status.network().ip(), "10.88.0.1");
  ASSERT_EQ(status.network().additional_ips_size(), 1);
  EXPECT_EQ(status.network().additional_ips(0).ip(), "fd00::1");
  EXPECT_EQ(status.linux().namespaces().options().network(), v1::POD);
}

TEST_F(SandboxTest, NetworkConfigCarriesPortsDnsHostnameAndBandwidth) {
  v1::RunPodSandboxRequest request;
  *request.mutable_config() = SandboxConfig("web");
  v1::PodSandboxConfig* config = request.mutable_config();
  config->set_hostname("web-0");
  config->mutable_dns_config()->add_servers("10.96.0.10");
  config->mutable_dns_config()->add_searches("default.svc.cluster.local");
  config->mutable_dns_config()->add_options("ndots:5");
  v1::PortMapping* published = config->add_port_mappings();
  published->set_protocol(v1::UDP);
  published->set_container_port(53);
  published->set_host_port(5353);
  config->add_port_mappings()->set_container_port(80);  // Not published: no hostPort.
  (*config->mutable_annotations())["kubernetes.io/ingress-bandwidth"] = "10M";
  (*config->mutable_annotations())["kubernetes.io/egress-bandwidth"] = "1Mi";
  v1::RunPodSandboxResponse response;
  ASSERT_TRUE(service_->RunPodSandbox(request, &response).ok());

  network::PodNetworkConfig seen = network_.LastConfig();
  EXPECT_EQ(seen.sandbox_id, response.pod_sandbox_id());
  EXPECT_EQ(seen.hostname, "web-0");
  EXPECT_EQ(seen.pod_name, "web");
  EXPECT_THAT(seen.dns.servers, ::testing::ElementsAre("10.96.0.10"));
  EXPECT_THAT(seen.dns.searches, ::testing::ElementsAre("default.svc.cluster.local"));
  EXPECT_THAT(seen.dns.options, ::testing::ElementsAre("ndots:5"));
  ASSERT_THAT(seen.port_mappings, SizeIs(1));
  EXPECT_EQ(seen.port_mappings[0].protocol, "udp");
  EXPECT_EQ(seen.port_mappings[0].host_port, 5353);
  EXPECT_EQ(seen.port_mappings[0].container_port, 53);
  ASSERT_TRUE(seen.bandwidth.has_value());
  EXPECT_EQ(seen.bandwidth->ingress_rate, 10'000'000);
  EXPECT_EQ(seen.bandwidth->egress_rate, 1 << 20);
}

TEST_F(SandboxTest, AFailedNetworkSetupFailsRunPodSandboxAndLeavesNothing) {
  network_.FailSetup(absl::InternalError("CNI plugin \"bridge\" failed ADD: no bridge"));
  v1::RunPodSandboxRequest request;
  *request.mutable_config() = SandboxConfig("web");
  v1::RunPodSandboxResponse response;
  absl::Status status = service_->RunPodSandbox(request, &response);
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(std::string(status.message()), HasSubstr("failed ADD: no bridge"));
  v1::ListPodSandboxResponse list;
  ASSERT_TRUE(service_->ListPodSandbox({}, &list).ok());
  EXPECT_THAT(list.items(), SizeIs(0));
  EXPECT_THAT(network_.Active(), ::testing::IsEmpty());
  // The kubelet's retry succeeds once the network works.
  network_.FailSetup(absl::OkStatus());
  EXPECT_NE(RunSandbox("web"), "");
}

TEST_F(SandboxTest, StopGivesTheNetworkBackAndStatusStillShowsTheAddress) {
  std::string id = RunSandbox("web");
  EXPECT_THAT(network_.Active(), ::testing::ElementsAre(id));
  v1::StopPodSandboxRequest stop;
  stop.set_pod_sandbox_id(id);
  v1::StopPodSandboxResponse stopped;
  ASSERT_TRUE(service_->StopPodSandbox(stop, &stopped).ok());
  EXPECT_THAT(network_.Active(), ::testing::IsEmpty());
  EXPECT_EQ(SandboxStatus(id).network().ip(), "10.88.0.1");
  v1::RemovePodSandboxRequest remove;
  remove.set_pod_sandbox_id(id);
  v1::RemovePodSandboxResponse removed;
  ASSERT_TRUE(service_->RemovePodSandbox(remove, &removed).ok());
}

TEST_F(SandboxTest, StopAlsoStopsTheVmOfACreatedContainer) {
  // A created container's VM is QEMU, paused, holding the pod's tap: the
  // network cannot be torn down under it, and it can never start now.
  std::string id = RunSandbox("web");
  std::string container = CreateContainer(id, "vm");
  v1::StopPodSandboxRequest stop;
  stop.set_pod_sandbox_id(id);
  v1::StopPodSandboxResponse stopped;
  ASSERT_TRUE(service_->StopPodSandbox(stop, &stopped).ok());
  v1::ContainerStatus status = ContainerStatus(container);
  EXPECT_EQ(status.state(), v1::CONTAINER_EXITED);
  EXPECT_EQ(status.started_at(), 0);
  EXPECT_GT(status.finished_at(), 0);
  EXPECT_EQ(driver_->Inspect(container)->state, vmdriver::VmState::kExited);
  EXPECT_THAT(network_.Active(), ::testing::IsEmpty());
}

TEST_F(SandboxTest, NetworkReadyFollowsThePodNetwork) {
  auto network_ready = [&] {
    v1::StatusResponse response;
    EXPECT_TRUE(service_->Status({}, &response).ok());
    for (const v1::RuntimeCondition& c : response.status().conditions()) {
      if (c.type() == "NetworkReady") return c;
    }
    return v1::RuntimeCondition();
  };
  EXPECT_TRUE(network_ready().status());
  network_.SetReady(absl::FailedPreconditionError("no valid CNI network configuration in /x"));
  v1::RuntimeCondition condition = network_ready();
  EXPECT_FALSE(condition.status());
  EXPECT_EQ(condition.reason(), "NetworkPluginNotReady");
  EXPECT_THAT(condition.message(), HasSubstr("no valid CNI network configuration in /x"));
}

TEST_F(SandboxTest, RetriedRunPodSandboxReturnsTheSameSandbox) {
  std::string first = RunSandbox("web");
  std::string second = RunSandbox("web");
  EXPECT_EQ(first, second);
  v1::ListPodSandboxResponse list;
  ASSERT_TRUE(service_->ListPodSandbox({}, &list).ok());
  EXPECT_THAT(list.items(), SizeIs(1));
}

TEST_F(SandboxTest, NextAttemptCreatesANewSandbox) {
  std::string first = RunSandbox("web", 0);
  std::string second = RunSandbox("web", 1);
  EXPECT_NE(first, second);
}

TEST_F(SandboxTest, RunPodSandboxWithAStoppedSandboxOfTheSameAttemptIsAlreadyExists) {
  std::string id = RunSandbox("web");
  v1::StopPodSandboxRequest stop;
  stop.set_pod_sandbox_id(id);
  v1::StopPodSandboxResponse stopped;
  ASSERT_TRUE(service_->StopPodSandbox(stop, &stopped).ok());
  v1::RunPodSandboxRequest request;
  *request.mutable_config() = SandboxConfig("web");
  v1::RunPodSandboxResponse response;
  absl::Status status = service_->RunPodSandbox(request, &response);
  EXPECT_EQ(status.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(std::string(status.message()), HasSubstr(id));
}

struct BadSandboxCase {
  std::string name;
  std::function<void(v1::RunPodSandboxRequest&)> mutate;
  std::string message;
};

class BadSandboxTest : public SandboxTest, public ::testing::WithParamInterface<BadSandboxCase> {};

TEST_P(BadSandboxTest, IsRejectedWithInvalidArgumentNamingTheField) {
  v1::RunPodSandboxRequest request;
  *request.mutable_config() = SandboxConfig("web");
  GetParam().mutate(request);
  v1::RunPodSandboxResponse response;
  absl::Status status = service_->RunPodSandbox(request, &response);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr(GetParam().message));
  // Nothing half-created stays behind.
  v1::ListPodSandboxResponse list;
  ASSERT_TRUE(service_->ListPodSandbox({}, &list).ok());
  EXPECT_THAT(list.items(), SizeIs(0));
}

INSTANTIATE_TEST_SUITE_P(
    Cases, BadSandboxTest,
    ::testing::Values(
        BadSandboxCase{"NoMetadata", [](auto& r) { r.mutable_config()->clear_metadata(); },
                       "config.metadata is missing"},
        BadSandboxCase{"EmptyName",
                       [](auto& r) { r.mutable_config()->mutable_metadata()->clear_name(); },
                       "config.metadata.name is empty"},
        BadSandboxCase{"EmptyNamespace",
                       [](auto& r) { r.mutable_config()->mutable_metadata()->clear_namespace_(); },
                       "config.metadata.namespace is empty"},
        BadSandboxCase{"EmptyUid",
                       [](auto& r) { r.mutable_config()->mutable_metadata()->clear_uid(); },
                       "config.metadata.uid is empty"},
        BadSandboxCase{"SlashInName",
                       [](auto& r) { r.mutable_config()->mutable_metadata()->set_name("a/../b"); },
                       "config.metadata.name \"a/../b\" is invalid"},
        BadSandboxCase{"HugeName",
                       [](auto& r) {
                         r.mutable_config()->mutable_metadata()->set_name(std::string(300, 'x'));
                       },
                       "is 300 bytes long"},
        BadSandboxCase{"RelativeLogDirectory",
                       [](auto& r) { r.mutable_config()->set_log_directory("var/log"); },
                       "config.log_directory \"var/log\" is invalid: expected an absolute path"},
        BadSandboxCase{"UnknownRuntimeHandler", [](auto& r) { r.set_runtime_handler("runc"); },
                       "runtime_handler \"runc\" is unknown"},
        BadSandboxCase{"HostNetwork",
                       [](auto& r) {
                         r.mutable_config()
                             ->mutable_linux()
                             ->mutable_security_context()
                             ->mutable_namespace_options()
                             ->set_network(v1::NODE);
                       },
                       "a VM cannot share the node's network stack"},
        BadSandboxCase{"BadHostname", [](auto& r) { r.mutable_config()->set_hostname("a_b"); },
                       "config.hostname \"a_b\" is not a DNS name"},
        BadSandboxCase{"ContainerPortZero",
                       [](auto& r) { r.mutable_config()->add_port_mappings()->set_host_port(80); },
                       "config.port_mappings[0].container_port 0 is out of range"},
        BadSandboxCase{"HostPortTooBig",
                       [](auto& r) {
                         v1::PortMapping* port = r.mutable_config()->add_port_mappings();
                         port->set_container_port(80);
                         port->set_host_port(70000);
                       },
                       "config.port_mappings[0].host_port 70000 is out of range"},
        BadSandboxCase{
            "DnsServerNotAnAddress",
            [](auto& r) { r.mutable_config()->mutable_dns_config()->add_servers("dns.example"); },
            "config.dns_config.servers[0] \"dns.example\" is not an IP address"},
        BadSandboxCase{
            "BadBandwidth",
            [](auto& r) {
              (*r.mutable_config()->mutable_annotations())["kubernetes.io/ingress-bandwidth"] =
                  "fast";
            },
            "config.annotations[\"kubernetes.io/ingress-bandwidth\"] \"fast\" is not "
            "a bandwidth"}),
    [](const auto& info) { return info.param.name; });

TEST_F(SandboxTest, StatusOfAnUnknownIdIsNotFound) {
  v1::PodSandboxStatusRequest request;
  request.set_pod_sandbox_id(std::string(64, 'a'));
  v1::PodSandboxStatusResponse response;
  EXPECT_EQ(service_->PodSandboxStatus(request, &response).code(), absl::StatusCode::kNotFound);
}

TEST_F(SandboxTest, StatusAcceptsAUniquePrefix) {
  std::string id = RunSandbox("web");
  EXPECT_EQ(SandboxStatus(id.substr(0, 12)).id(), id);
}

TEST_F(SandboxTest, StatusOfANonHexIdIsInvalidArgument) {
  v1::PodSandboxStatusRequest request;
  request.set_pod_sandbox_id("../../etc");
  v1::PodSandboxStatusResponse response;
  absl::Status status = service_->PodSandboxStatus(request, &response);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("pod_sandbox_id \"../../etc\""));
}

TEST_F(SandboxTest, StopAndRemoveOfUnknownSandboxesSucceed) {
  v1::StopPodSandboxRequest stop;
  stop.set_pod_sandbox_id(std::string(64, 'b'));
  v1::StopPodSandboxResponse stopped;
  EXPECT_TRUE(service_->StopPodSandbox(stop, &stopped).ok());
  v1::RemovePodSandboxRequest remove;
  remove.set_pod_sandbox_id(std::string(64, 'b'));
  v1::RemovePodSandboxResponse removed;
  EXPECT_TRUE(service_->RemovePodSandbox(remove, &removed).ok());
}

TEST_F(SandboxTest, StopMarksNotReadyAndStopsItsVm) {
  std::string sandbox = RunSandbox("web");
  std::string container = CreateContainer(sandbox, "vm");
  v1::StartContainerRequest start;
  start.set_container_id(container);
  v1::StartContainerResponse started;
  ASSERT_TRUE(service_->StartContainer(start, &started).ok());

  v1::StopPodSandboxRequest stop;
  stop.set_pod_sandbox_id(sandbox);
  v1::StopPodSandboxResponse stopped;
  ASSERT_TRUE(service_->StopPodSandbox(stop, &stopped).ok());
  EXPECT_EQ(SandboxStatus(sandbox).state(), v1::SANDBOX_NOTREADY);
  EXPECT_EQ(ContainerStatus(container).state(), v1::CONTAINER_EXITED);
  // Stopping again is fine.
  EXPECT_TRUE(service_->StopPodSandbox(stop, &stopped).ok());
}

TEST_F(SandboxTest, RemoveDeletesTheSandboxItsContainersAndTheirVms) {
  std::string sandbox = RunSandbox("web");
  std::string container = CreateContainer(sandbox, "vm");
  v1::RemovePodSandboxRequest remove;
  remove.set_pod_sandbox_id(sandbox);
  v1::RemovePodSandboxResponse removed;
  ASSERT_TRUE(service_->RemovePodSandbox(remove, &removed).ok());

  v1::PodSandboxStatusRequest request;
  request.set_pod_sandbox_id(sandbox);
  v1::PodSandboxStatusResponse response;
  EXPECT_EQ(service_->PodSandboxStatus(request, &response).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(driver_->Inspect(container).status().code(), absl::StatusCode::kNotFound);
  v1::ListContainersResponse containers;
  ASSERT_TRUE(service_->ListContainers({}, &containers).ok());
  EXPECT_THAT(containers.containers(), SizeIs(0));
  // The name is free again: the same pod attempt can be run anew.
  EXPECT_NE(RunSandbox("web"), sandbox);
}

TEST_F(SandboxTest, ListFiltersByIdPrefixStateAndLabels) {
  std::string a = RunSandbox("a");
  std::string b = RunSandbox("b");
  v1::StopPodSandboxRequest stop;
  stop.set_pod_sandbox_id(b);
  v1::StopPodSandboxResponse stopped;
  ASSERT_TRUE(service_->StopPodSandbox(stop, &stopped).ok());

  auto list = [this](const v1::PodSandboxFilter& filter) {
    v1::ListPodSandboxRequest request;
    *request.mutable_filter() = filter;
    v1::ListPodSandboxResponse response;
    EXPECT_TRUE(service_->ListPodSandbox(request, &response).ok());
    std::vector<std::string> ids;
    for (const auto& item : response.items()) ids.push_back(item.id());
    return ids;
  };
  v1::PodSandboxFilter by_id;
  by_id.set_id(a.substr(0, 10));
  EXPECT_THAT(list(by_id), ::testing::ElementsAre(a));
  v1::PodSandboxFilter by_state;
  by_state.mutable_state()->set_state(v1::SANDBOX_NOTREADY);
  EXPECT_THAT(list(by_state), ::testing::ElementsAre(b));
  v1::PodSandboxFilter by_label;
  (*by_label.mutable_label_selector())["io.kubernetes.pod.name"] = "a";
  EXPECT_THAT(list(by_label), ::testing::ElementsAre(a));
  (*by_label.mutable_label_selector())["missing"] = "x";
  EXPECT_THAT(list(by_label), SizeIs(0));
  EXPECT_THAT(list({}), SizeIs(2));
}

TEST_F(SandboxTest, ConcurrentRetriesOfOneRunPodSandboxMakeOneSandbox) {
  std::vector<std::thread> threads;
  std::vector<std::string> ids(8);
  for (size_t i = 0; i < ids.size(); ++i) {
    threads.emplace_back([this, &ids, i] { ids[i] = RunSandbox("web"); });
  }
  for (auto& thread : threads) thread.join();
  for (const std::string& id : ids) EXPECT_EQ(id, ids[0]);
  v1::ListPodSandboxResponse list;
  ASSERT_TRUE(service_->ListPodSandbox({}, &list).ok());
  EXPECT_THAT(list.items(), SizeIs(1));
}

}  // namespace
}  // namespace vmlet::cri
