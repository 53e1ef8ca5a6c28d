// Container (VM) verbs of CriService over the fake VM driver.
#include <functional>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/cri/cri_test_util.h"

namespace vmlet::cri {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::SizeIs;
using vmlet::testing::ContainerConfig;

class ContainerTest : public vmlet::testing::CriFixture {
 protected:
  absl::Status Start(const std::string& id) {
    v1::StartContainerRequest request;
    request.set_container_id(id);
    v1::StartContainerResponse response;
    return service_->StartContainer(request, &response);
  }
  absl::Status Stop(const std::string& id, int64_t timeout) {
    v1::StopContainerRequest request;
    request.set_container_id(id);
    request.set_timeout(timeout);
    v1::StopContainerResponse response;
    return service_->StopContainer(request, &response);
  }
  absl::Status Remove(const std::string& id) {
    v1::RemoveContainerRequest request;
    request.set_container_id(id);
    v1::RemoveContainerResponse response;
    return service_->RemoveContainer(request, &response);
  }
  absl::Status Create(const std::string& sandbox, const v1::ContainerConfig& config,
                      std::string* id = nullptr) {
    v1::CreateContainerRequest request;
    request.set_pod_sandbox_id(sandbox);
    *request.mutable_config() = config;
    v1::CreateContainerResponse response;
    absl::Status status = service_->CreateContainer(request, &response);
    if (id != nullptr) *id = response.container_id();
    return status;
  }
};

TEST_F(ContainerTest, LifecycleGoesCreatedRunningExited) {
  std::string sandbox = RunSandbox("web");
  std::string id = CreateContainer(sandbox, "vm");
  v1::ContainerStatus status = ContainerStatus(id);
  EXPECT_EQ(status.state(), v1::CONTAINER_CREATED);
  EXPECT_GT(status.created_at(), 0);
  EXPECT_EQ(status.started_at(), 0);

  ASSERT_TRUE(Start(id).ok());
  status = ContainerStatus(id);
  EXPECT_EQ(status.state(), v1::CONTAINER_RUNNING);
  EXPECT_GT(status.started_at(), 0);

  ASSERT_TRUE(Stop(id, 30).ok());
  status = ContainerStatus(id);
  EXPECT_EQ(status.state(), v1::CONTAINER_EXITED);
  EXPECT_EQ(status.exit_code(), 0);
  EXPECT_EQ(status.reason(), "Completed");
  EXPECT_GE(status.finished_at(), status.started_at());

  ASSERT_TRUE(Remove(id).ok());
  v1::ContainerStatusRequest request;
  request.set_container_id(id);
  v1::ContainerStatusResponse response;
  EXPECT_EQ(service_->ContainerStatus(request, &response).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(driver_->Inspect(id).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ContainerTest, StopWithZeroTimeoutKillsTheVm) {
  std::string id = CreateContainer(RunSandbox("web"), "vm");
  ASSERT_TRUE(Start(id).ok());
  ASSERT_TRUE(Stop(id, 0).ok());
  v1::ContainerStatus status = ContainerStatus(id);
  EXPECT_EQ(status.state(), v1::CONTAINER_EXITED);
  EXPECT_EQ(status.reason(), "Killed");
  EXPECT_NE(status.exit_code(), 0);
}

TEST_F(ContainerTest, StatusEchoesLabelsAnnotationsImageAndLogPath) {
  std::string sandbox = RunSandbox("web");
  std::string id = CreateContainer(sandbox, "vm");
  v1::ContainerStatus status = ContainerStatus(id);
  v1::ContainerConfig config = ContainerConfig("vm");
  EXPECT_EQ(status.metadata().name(), "vm");
  EXPECT_EQ(status.labels().at("io.kubernetes.container.name"), "vm");
  EXPECT_EQ(status.annotations().at("io.kubernetes.container.restartCount"), "0");
  EXPECT_EQ(status.image().image(), config.image().image());
  EXPECT_THAT(status.image_ref(), ::testing::StartsWith("sha256:"));
  EXPECT_EQ(status.log_path(), "/var/log/pods/default_web_uid-web/vm/0.log");
}

TEST_F(ContainerTest, VcpusAndMemoryComeFromTheLimits) {
  std::string sandbox = RunSandbox("web");
  v1::ContainerConfig config = ContainerConfig("vm");
  config.mutable_linux()->mutable_resources()->set_cpu_quota(150000);
  config.mutable_linux()->mutable_resources()->set_cpu_period(100000);
  config.mutable_linux()->mutable_resources()->set_memory_limit_in_bytes(int64_t{1} << 30);
  std::string id;
  ASSERT_TRUE(Create(sandbox, config, &id).ok());
  absl::StatusOr<vmdriver::VmConfig> vm = driver_->ConfigOf(id);
  ASSERT_TRUE(vm.ok());
  EXPECT_EQ(vm->vcpus, 2);  // 1.5 CPUs round up.
  EXPECT_EQ(vm->memory_bytes, int64_t{1} << 30);
  EXPECT_EQ(vm->sandbox_id, sandbox);
  EXPECT_EQ(vm->pod_name, "web");
  EXPECT_EQ(vm->pod_namespace, "default");
  EXPECT_EQ(vm->container_name, "vm");
  EXPECT_THAT(vm->boot.kernel_path, ::testing::EndsWith("/images/tiny/boot/vmlinuz"));
}

TEST_F(ContainerTest, WithoutLimitsTheVmGetsTheDefaults) {
  std::string id = CreateContainer(RunSandbox("web"), "vm");
  absl::StatusOr<vmdriver::VmConfig> vm = driver_->ConfigOf(id);
  ASSERT_TRUE(vm.ok());
  EXPECT_EQ(vm->vcpus, 1);
  EXPECT_EQ(vm->memory_bytes, 512 * vmdriver::kMiB);
}

TEST_F(ContainerTest, RetriedCreateContainerReturnsTheSameContainer) {
  std::string sandbox = RunSandbox("web");
  EXPECT_EQ(CreateContainer(sandbox, "vm"), CreateContainer(sandbox, "vm"));
  v1::ListContainersResponse list;
  ASSERT_TRUE(service_->ListContainers({}, &list).ok());
  EXPECT_THAT(list.containers(), SizeIs(1));
}

TEST_F(ContainerTest, ASecondDifferentlyNamedContainerIsFailedPrecondition) {
  std::string sandbox = RunSandbox("web");
  CreateContainer(sandbox, "vm");
  absl::Status status = Create(sandbox, ContainerConfig("sidecar"));
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(status.message()), HasSubstr("exactly one VM container"));
}

TEST_F(ContainerTest, TheNextAttemptOfTheSameContainerIsAllowed) {
  std::string sandbox = RunSandbox("web");
  std::string first = CreateContainer(sandbox, "vm", 0);
  ASSERT_TRUE(Start(first).ok());
  ASSERT_TRUE(Stop(first, 0).ok());
  std::string second = CreateContainer(sandbox, "vm", 1);
  EXPECT_NE(first, second);
}

TEST_F(ContainerTest, CreateInAStoppedSandboxIsFailedPrecondition) {
  std::string sandbox = RunSandbox("web");
  v1::StopPodSandboxRequest stop;
  stop.set_pod_sandbox_id(sandbox);
  v1::StopPodSandboxResponse stopped;
  ASSERT_TRUE(service_->StopPodSandbox(stop, &stopped).ok());
  absl::Status status = Create(sandbox, ContainerConfig("vm"));
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(status.message()), HasSubstr("not ready"));
}

TEST_F(ContainerTest, AnImageThatIsNotOnTheNodeIsNotFound) {
  std::string sandbox = RunSandbox("web");
  v1::ContainerConfig config = ContainerConfig("vm");
  config.mutable_image()->set_image("registry.example/vms/debian:12");
  absl::Status status = Create(sandbox, config);
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(status.message()), HasSubstr("registry.example/vms/debian:12"));
  EXPECT_THAT(*driver_->List(), SizeIs(0));
}

TEST_F(ContainerTest, RootDiskSizeAnnotationIsChecked) {
  std::string sandbox = RunSandbox("web");
  v1::ContainerConfig config = ContainerConfig("vm");
  (*config.mutable_annotations())["vmlet.io/root-disk-size"] = "lots";
  absl::Status status = Create(sandbox, config);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()),
              AllOf(HasSubstr("vmlet.io/root-disk-size"), HasSubstr("lots")));
  config.mutable_annotations()->clear();
  (*config.mutable_annotations())["vmlet.io/no-such-key"] = "1";
  status = Create(sandbox, config);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("vmlet.io/no-such-key"));
  EXPECT_THAT(*driver_->List(), SizeIs(0));
}

TEST_F(ContainerTest, ReopenContainerLogNeedsARunningContainer) {
  std::string id = CreateContainer(RunSandbox("web"), "vm");
  v1::ReopenContainerLogRequest request;
  request.set_container_id(id);
  v1::ReopenContainerLogResponse response;
  EXPECT_EQ(service_->ReopenContainerLog(request, &response).code(),
            absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(Start(id).ok());
  EXPECT_TRUE(service_->ReopenContainerLog(request, &response).ok());
}

TEST_F(ContainerTest, CreateInAnUnknownSandboxIsNotFound) {
  EXPECT_EQ(Create(std::string(64, 'c'), ContainerConfig("vm")).code(),
            absl::StatusCode::kNotFound);
}

TEST_F(ContainerTest, AFailedVmCreationLeavesNothingBehind) {
  std::string sandbox = RunSandbox("web");
  driver_->FailNext("Create", absl::InternalError("libvirt said no"));
  absl::Status status = Create(sandbox, ContainerConfig("vm"));
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(std::string(status.message()), HasSubstr("libvirt said no"));
  v1::ListContainersResponse list;
  ASSERT_TRUE(service_->ListContainers({}, &list).ok());
  EXPECT_THAT(list.containers(), SizeIs(0));
  EXPECT_THAT(*driver_->List(), SizeIs(0));
  // The name was released: the kubelet's retry succeeds.
  EXPECT_TRUE(Create(sandbox, ContainerConfig("vm")).ok());
}

TEST_F(ContainerTest, AFailedStartLeavesAnExitedContainerWithTheReason) {
  std::string id = CreateContainer(RunSandbox("web"), "vm");
  driver_->FailNext("Start", absl::InternalError("no memory for the guest"));
  EXPECT_EQ(Start(id).code(), absl::StatusCode::kInternal);
  v1::ContainerStatus status = ContainerStatus(id);
  EXPECT_EQ(status.state(), v1::CONTAINER_EXITED);
  EXPECT_EQ(status.reason(), "StartError");
  EXPECT_THAT(status.message(), HasSubstr("no memory for the guest"));
}

TEST_F(ContainerTest, StartingTwiceIsFailedPrecondition) {
  std::string id = CreateContainer(RunSandbox("web"), "vm");
  ASSERT_TRUE(Start(id).ok());
  absl::Status status = Start(id);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(status.message()), HasSubstr("is running"));
}

TEST_F(ContainerTest, AGuestPowerOffIsRecordedFromTheDriverEvent) {
  std::string id = CreateContainer(RunSandbox("web"), "vm");
  ASSERT_TRUE(Start(id).ok());
  ASSERT_TRUE(driver_->SimulateExit(id, 3, "Error").ok());
  v1::ContainerStatus status = ContainerStatus(id);
  EXPECT_EQ(status.state(), v1::CONTAINER_EXITED);
  EXPECT_EQ(status.exit_code(), 3);
  EXPECT_EQ(status.reason(), "Error");
}

TEST_F(ContainerTest, StopAndRemoveOfUnknownOrExitedContainersSucceed) {
  EXPECT_TRUE(Stop(std::string(64, 'd'), 10).ok());
  EXPECT_TRUE(Remove(std::string(64, 'd')).ok());
  std::string id = CreateContainer(RunSandbox("web"), "vm");
  ASSERT_TRUE(Start(id).ok());
  ASSERT_TRUE(Stop(id, 10).ok());
  EXPECT_TRUE(Stop(id, 10).ok());
  EXPECT_TRUE(Remove(id).ok());
  EXPECT_TRUE(Remove(id).ok());
}

TEST_F(ContainerTest, RemovingARunningContainerDestroysItsVm) {
  std::string id = CreateContainer(RunSandbox("web"), "vm");
  ASSERT_TRUE(Start(id).ok());
  ASSERT_TRUE(Remove(id).ok());
  EXPECT_THAT(*driver_->List(), SizeIs(0));
}

struct BadContainerCase {
  std::string name;
  std::function<void(v1::ContainerConfig&)> mutate;
  std::string message;
};

class BadContainerTest : public ContainerTest,
                         public ::testing::WithParamInterface<BadContainerCase> {};

TEST_P(BadContainerTest, IsRejectedWithInvalidArgumentNamingTheField) {
  std::string sandbox = RunSandbox("web");
  v1::ContainerConfig config = ContainerConfig("vm");
  GetParam().mutate(config);
  absl::Status status = Create(sandbox, config);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr(GetParam().message));
  EXPECT_THAT(*driver_->List(), SizeIs(0));
}

INSTANTIATE_TEST_SUITE_P(
    Cases, BadContainerTest,
    ::testing::Values(
        BadContainerCase{"NoMetadata", [](auto& c) { c.clear_metadata(); },
                         "config.metadata is missing"},
        BadContainerCase{"EmptyName", [](auto& c) { c.mutable_metadata()->clear_name(); },
                         "config.metadata.name is empty"},
        BadContainerCase{"NoImage", [](auto& c) { c.clear_image(); },
                         "config.image.image is empty"},
        BadContainerCase{"AbsoluteLogPath", [](auto& c) { c.set_log_path("/etc/passwd"); },
                         "config.log_path \"/etc/passwd\" is invalid"},
        BadContainerCase{"EscapingLogPath", [](auto& c) { c.set_log_path("../../x.log"); },
                         "config.log_path \"../../x.log\" is invalid"}),
    [](const auto& info) { return info.param.name; });

TEST_F(ContainerTest, ListFiltersBySandboxStateIdAndLabels) {
  std::string a = RunSandbox("a");
  std::string b = RunSandbox("b");
  std::string in_a = CreateContainer(a, "vm");
  std::string in_b = CreateContainer(b, "vm");
  ASSERT_TRUE(Start(in_b).ok());

  auto list = [this](const v1::ContainerFilter& filter) {
    v1::ListContainersRequest request;
    *request.mutable_filter() = filter;
    v1::ListContainersResponse response;
    EXPECT_TRUE(service_->ListContainers(request, &response).ok());
    std::vector<std::string> ids;
    for (const auto& container : response.containers()) ids.push_back(container.id());
    return ids;
  };
  v1::ContainerFilter by_sandbox;
  by_sandbox.set_pod_sandbox_id(a);
  EXPECT_THAT(list(by_sandbox), ::testing::ElementsAre(in_a));
  v1::ContainerFilter by_state;
  by_state.mutable_state()->set_state(v1::CONTAINER_RUNNING);
  EXPECT_THAT(list(by_state), ::testing::ElementsAre(in_b));
  v1::ContainerFilter by_id;
  by_id.set_id(in_a.substr(0, 8));
  EXPECT_THAT(list(by_id), ::testing::ElementsAre(in_a));
  v1::ContainerFilter by_label;
  (*by_label.mutable_label_selector())["io.kubernetes.container.name"] = "vm";
  EXPECT_THAT(list(by_label), SizeIs(2));
}

}  // namespace
}  // namespace vmlet::cri
