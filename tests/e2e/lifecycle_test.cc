// End-to-end test of vmletd: starts the real binary (with the fake VM driver)
// and drives it over its CRI socket as the kubelet does, across a crash
// (SIGKILL) and restart, a graceful stop, bad configs and vmletctl.
//
// Needs $VMLETD (and $VMLETCTL for the vmletctl tests), set by meson; without
// $VMLETD the test exits 77, which meson reports as skipped.
#include <stdlib.h>
#include <sys/stat.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <google/protobuf/text_format.h>
#include <google/protobuf/util/message_differencer.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "base/file_util.h"
#include "base/str_util.h"
#include "cri/v1/api.grpc.pb.h"
#include "tests/e2e/vmletd_process.h"

// Lets gtest print a grpc::Status as: code 5: "message".
namespace grpc {
void PrintTo(const Status& status, std::ostream* os) {
  *os << "code " << static_cast<int>(status.error_code()) << ": \"" << status.error_message()
      << "\"";
}
}  // namespace grpc

namespace vmlet::e2e {
namespace {

namespace v1 = ::runtime::v1;
using ::google::protobuf::util::MessageDifferencer;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::SizeIs;
using ::testing::UnorderedElementsAreArray;
using Stub = v1::RuntimeService::Stub;

constexpr const char* kImageId = kFakeImage;
constexpr char kNamespace[] = "e2e";
// A valid id that names nothing.
constexpr char kUnknownId[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
constexpr int64_t kGiB = int64_t{1} << 30;

MATCHER(IsOk, "is OK") { return arg.ok(); }

MATCHER_P2(StatusIs, code, message_matcher, "") {
  if (arg.error_code() != code) {
    *result_listener << "whose code is " << static_cast<int>(arg.error_code());
    return false;
  }
  return ::testing::ExplainMatchResult(message_matcher, arg.error_message(), result_listener);
}

// A message from protobuf text format; a parse error fails the test.
template <typename Message>
Message ParseText(const std::string& text) {
  Message message;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &message)) << text;
  return message;
}

std::map<std::string, std::string> AsMap(
    const google::protobuf::Map<std::string, std::string>& map) {
  return {map.begin(), map.end()};
}

// What the kubelet sends for pod `name`.
v1::PodSandboxConfig PodConfig(const std::string& name, uint32_t attempt = 0) {
  const std::string uid = "uid-" + name;
  v1::PodSandboxConfig config;
  config.mutable_metadata()->set_name(name);
  config.mutable_metadata()->set_namespace_(kNamespace);
  config.mutable_metadata()->set_uid(uid);
  config.mutable_metadata()->set_attempt(attempt);
  config.set_hostname(name);
  config.set_log_directory(vmlet::StrCat("/var/log/pods/", kNamespace, "_", name, "_", uid));
  (*config.mutable_labels())["io.kubernetes.pod.name"] = name;
  (*config.mutable_labels())["io.kubernetes.pod.namespace"] = kNamespace;
  (*config.mutable_labels())["io.kubernetes.pod.uid"] = uid;
  (*config.mutable_labels())["app"] = name;
  (*config.mutable_annotations())["kubernetes.io/config.seen"] = "2026-11-22T10:00:00.123Z";
  (*config.mutable_annotations())["kubernetes.io/config.source"] = "api";
  (*config.mutable_annotations())["e2e/odd value"] = "line one\nline two: \"quoted\" {}";
  config.mutable_linux()->set_cgroup_parent("/kubepods/besteffort/pod" + uid);
  config.mutable_linux()->mutable_security_context()->mutable_namespace_options()->set_pid(
      v1::CONTAINER);
  return config;
}

// What the kubelet sends for container `name` of pod `pod`.
v1::ContainerConfig ContainerConfig(const std::string& pod, const std::string& name,
                                    uint32_t attempt = 0) {
  v1::ContainerConfig config;
  config.mutable_metadata()->set_name(name);
  config.mutable_metadata()->set_attempt(attempt);
  config.mutable_image()->set_image(kImageId);
  (*config.mutable_labels())["io.kubernetes.container.name"] = name;
  (*config.mutable_labels())["io.kubernetes.pod.name"] = pod;
  (*config.mutable_labels())["io.kubernetes.pod.namespace"] = kNamespace;
  (*config.mutable_labels())["io.kubernetes.pod.uid"] = "uid-" + pod;
  (*config.mutable_annotations())["io.kubernetes.container.hash"] = "5a3c7e1f";
  (*config.mutable_annotations())["io.kubernetes.container.restartCount"] = std::to_string(attempt);
  (*config.mutable_annotations())["io.kubernetes.container.terminationMessagePath"] =
      "/dev/termination-log";
  config.set_log_path(vmlet::StrCat(name, "/", attempt, ".log"));
  v1::LinuxContainerResources* resources = config.mutable_linux()->mutable_resources();
  resources->set_cpu_period(100000);
  resources->set_cpu_quota(150000);
  resources->set_cpu_shares(1536);
  resources->set_memory_limit_in_bytes(kGiB);
  return config;
}

// Each test talks to a vmletd of its own (see VmletdFixture).
class VmletdTest : public VmletdFixture {
 protected:
  // Calls `method` of the RuntimeService with the deadline every call gets.
  template <typename Request, typename Response>
  grpc::Status Call(grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&, Response*),
                    const Request& request, Response* response) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    return (vmletd_.runtime().*method)(&context, request, response);
  }

  grpc::Status RunPod(const v1::PodSandboxConfig& config, std::string* id) {
    v1::RunPodSandboxRequest request;
    *request.mutable_config() = config;
    v1::RunPodSandboxResponse response;
    grpc::Status status = Call(&Stub::RunPodSandbox, request, &response);
    *id = response.pod_sandbox_id();
    return status;
  }

  grpc::Status CreateContainer(const std::string& pod_id, const v1::PodSandboxConfig& pod,
                               const v1::ContainerConfig& config, std::string* id) {
    v1::CreateContainerRequest request;
    request.set_pod_sandbox_id(pod_id);
    *request.mutable_config() = config;
    *request.mutable_sandbox_config() = pod;
    v1::CreateContainerResponse response;
    grpc::Status status = Call(&Stub::CreateContainer, request, &response);
    *id = response.container_id();
    return status;
  }

  grpc::Status StartContainer(const std::string& id) {
    v1::StartContainerRequest request;
    request.set_container_id(id);
    v1::StartContainerResponse response;
    return Call(&Stub::StartContainer, request, &response);
  }

  grpc::Status StopContainer(const std::string& id, int64_t timeout) {
    v1::StopContainerRequest request;
    request.set_container_id(id);
    request.set_timeout(timeout);
    v1::StopContainerResponse response;
    return Call(&Stub::StopContainer, request, &response);
  }

  grpc::Status RemoveContainer(const std::string& id) {
    v1::RemoveContainerRequest request;
    request.set_container_id(id);
    v1::RemoveContainerResponse response;
    return Call(&Stub::RemoveContainer, request, &response);
  }

  grpc::Status StopPod(const std::string& id) {
    v1::StopPodSandboxRequest request;
    request.set_pod_sandbox_id(id);
    v1::StopPodSandboxResponse response;
    return Call(&Stub::StopPodSandbox, request, &response);
  }

  grpc::Status RemovePod(const std::string& id) {
    v1::RemovePodSandboxRequest request;
    request.set_pod_sandbox_id(id);
    v1::RemovePodSandboxResponse response;
    return Call(&Stub::RemovePodSandbox, request, &response);
  }

  grpc::Status PodStatus(const std::string& id, v1::PodSandboxStatusResponse* response) {
    v1::PodSandboxStatusRequest request;
    request.set_pod_sandbox_id(id);
    return Call(&Stub::PodSandboxStatus, request, response);
  }

  grpc::Status ContainerStatus(const std::string& id, v1::ContainerStatusResponse* response) {
    v1::ContainerStatusRequest request;
    request.set_container_id(id);
    return Call(&Stub::ContainerStatus, request, response);
  }

  grpc::Status ListPods(const v1::PodSandboxFilter& filter, v1::ListPodSandboxResponse* response) {
    v1::ListPodSandboxRequest request;
    *request.mutable_filter() = filter;
    return Call(&Stub::ListPodSandbox, request, response);
  }

  grpc::Status ListContainers(const v1::ContainerFilter& filter,
                              v1::ListContainersResponse* response) {
    v1::ListContainersRequest request;
    *request.mutable_filter() = filter;
    return Call(&Stub::ListContainers, request, response);
  }

  // Runs pod `name` with container "main" in it, started when `start`.
  grpc::Status RunPodWithContainer(const std::string& name, bool start, std::string* pod_id,
                                   std::string* container_id) {
    const v1::PodSandboxConfig pod = PodConfig(name);
    if (grpc::Status status = RunPod(pod, pod_id); !status.ok()) return status;
    grpc::Status status =
        CreateContainer(*pod_id, pod, ContainerConfig(name, "main"), container_id);
    if (!status.ok() || !start) return status;
    return StartContainer(*container_id);
  }

  // Ids of the items of a list, in the order listed.
  static std::vector<std::string> Ids(const v1::ListPodSandboxResponse& list) {
    std::vector<std::string> ids;
    for (const v1::PodSandbox& pod : list.items()) ids.push_back(pod.id());
    return ids;
  }
  static std::vector<std::string> Ids(const v1::ListContainersResponse& list) {
    std::vector<std::string> ids;
    for (const v1::Container& container : list.containers()) ids.push_back(container.id());
    return ids;
  }
};

TEST_F(VmletdTest, AnswersVersionAsTheKubeletRequires) {
  v1::VersionRequest request;
  request.set_version("v1");
  v1::VersionResponse response;
  ASSERT_THAT(Call(&Stub::Version, request, &response), IsOk());
  EXPECT_EQ(response.version(), "0.1.0");
  EXPECT_EQ(response.runtime_name(), "vmlet");
  EXPECT_EQ(response.runtime_api_version(), "v1");
}

// The fixture's vmletd runs with pod_network: none, which is always ready
// (tests/e2e/network_test.cc covers CNI's readiness).
TEST_F(VmletdTest, ReportsTheRuntimeAndThePodNetworkReady) {
  v1::StatusResponse response;
  ASSERT_THAT(Call(&Stub::Status, v1::StatusRequest(), &response), IsOk());
  std::map<std::string, v1::RuntimeCondition> conditions;
  for (const v1::RuntimeCondition& condition : response.status().conditions()) {
    conditions[condition.type()] = condition;
  }
  ASSERT_TRUE(conditions.contains("RuntimeReady"));
  ASSERT_TRUE(conditions.contains("NetworkReady"));
  EXPECT_TRUE(conditions["RuntimeReady"].status());
  EXPECT_TRUE(conditions["NetworkReady"].status());
  EXPECT_THAT(conditions["NetworkReady"].reason(), IsEmpty());
}

TEST_F(VmletdTest, ServesOnASocketWithMode0660) {
  struct stat st {};
  ASSERT_EQ(::lstat(vmletd_.socket_path().c_str(), &st), 0) << std::strerror(errno);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0660u);
}

TEST_F(VmletdTest, RunsAPodAndItsContainerAsTheKubeletDoes) {
  const v1::PodSandboxConfig pod = PodConfig("web");
  std::string pod_id;
  ASSERT_THAT(RunPod(pod, &pod_id), IsOk());
  ASSERT_THAT(pod_id, SizeIs(64));

  v1::PodSandboxStatusResponse pod_status;
  ASSERT_THAT(PodStatus(pod_id, &pod_status), IsOk());
  EXPECT_EQ(pod_status.status().id(), pod_id);
  EXPECT_EQ(pod_status.status().state(), v1::SANDBOX_READY);
  EXPECT_TRUE(MessageDifferencer::Equals(pod_status.status().metadata(), pod.metadata()))
      << pod_status.status().metadata().DebugString();
  EXPECT_EQ(AsMap(pod_status.status().labels()), AsMap(pod.labels()));
  EXPECT_EQ(AsMap(pod_status.status().annotations()), AsMap(pod.annotations()));
  EXPECT_GT(pod_status.status().created_at(), 0);
  // An empty ip in a set `network` would make the kubelet recreate the pod.
  EXPECT_FALSE(pod_status.status().has_network());
  EXPECT_EQ(pod_status.status().linux().namespaces().options().pid(), v1::CONTAINER);

  const v1::ContainerConfig container = ContainerConfig("web", "main");
  std::string container_id;
  ASSERT_THAT(CreateContainer(pod_id, pod, container, &container_id), IsOk());
  ASSERT_THAT(container_id, SizeIs(64));
  v1::ContainerStatusResponse created;
  ASSERT_THAT(ContainerStatus(container_id, &created), IsOk());
  EXPECT_EQ(created.status().state(), v1::CONTAINER_CREATED);
  EXPECT_EQ(created.status().started_at(), 0);

  ASSERT_THAT(StartContainer(container_id), IsOk());
  v1::ContainerStatusResponse running;
  ASSERT_THAT(ContainerStatus(container_id, &running), IsOk());
  const v1::ContainerStatus& status = running.status();
  EXPECT_EQ(status.id(), container_id);
  EXPECT_EQ(status.state(), v1::CONTAINER_RUNNING);
  EXPECT_GT(status.created_at(), 0);
  EXPECT_GT(status.started_at(), 0);
  EXPECT_EQ(status.finished_at(), 0);
  EXPECT_TRUE(MessageDifferencer::Equals(status.metadata(), container.metadata()));
  EXPECT_EQ(status.image().image(), kImageId);
  EXPECT_THAT(status.image_ref(), ::testing::StartsWith("sha256:"));
  EXPECT_EQ(AsMap(status.labels()), AsMap(container.labels()));
  EXPECT_EQ(AsMap(status.annotations()), AsMap(container.annotations()));
  EXPECT_EQ(status.log_path(), pod.log_directory() + "/main/0.log");
  EXPECT_EQ(status.resources().linux().cpu_quota(), 150000);
  EXPECT_EQ(status.resources().linux().cpu_period(), 100000);
  EXPECT_EQ(status.resources().linux().memory_limit_in_bytes(), kGiB);

  // The pod's status lists its container too.
  ASSERT_THAT(PodStatus(pod_id, &pod_status), IsOk());
  ASSERT_THAT(pod_status.containers_statuses(), SizeIs(1));
  EXPECT_EQ(pod_status.containers_statuses(0).id(), container_id);
  EXPECT_EQ(pod_status.containers_statuses(0).state(), v1::CONTAINER_RUNNING);

  v1::ListPodSandboxResponse pods;
  ASSERT_THAT(ListPods({}, &pods), IsOk());
  ASSERT_THAT(pods.items(), SizeIs(1));
  EXPECT_EQ(pods.items(0).id(), pod_id);
  EXPECT_EQ(pods.items(0).state(), v1::SANDBOX_READY);
  EXPECT_EQ(pods.items(0).metadata().name(), "web");
  EXPECT_EQ(AsMap(pods.items(0).labels()), AsMap(pod.labels()));
  EXPECT_EQ(AsMap(pods.items(0).annotations()), AsMap(pod.annotations()));

  v1::ListContainersResponse containers;
  ASSERT_THAT(ListContainers({}, &containers), IsOk());
  ASSERT_THAT(containers.containers(), SizeIs(1));
  EXPECT_EQ(containers.containers(0).id(), container_id);
  EXPECT_EQ(containers.containers(0).pod_sandbox_id(), pod_id);
  EXPECT_EQ(containers.containers(0).state(), v1::CONTAINER_RUNNING);
  EXPECT_EQ(containers.containers(0).image().image(), kImageId);
  EXPECT_EQ(AsMap(containers.containers(0).labels()), AsMap(container.labels()));
  EXPECT_EQ(AsMap(containers.containers(0).annotations()), AsMap(container.annotations()));
}

TEST_F(VmletdTest, FiltersListsByIdPrefixStateLabelsAndPod) {
  std::string alpha_pod, alpha, beta_pod, beta;
  ASSERT_THAT(RunPodWithContainer("alpha", /*start=*/true, &alpha_pod, &alpha), IsOk());
  ASSERT_THAT(RunPodWithContainer("beta", /*start=*/false, &beta_pod, &beta), IsOk());
  // Its created container's VM is stopped with it: exited.
  ASSERT_THAT(StopPod(beta_pod), IsOk());
  std::string gamma_pod, gamma;
  ASSERT_THAT(RunPodWithContainer("gamma", /*start=*/false, &gamma_pod, &gamma), IsOk());

  // A filter in protobuf text format, and the ids it selects.
  struct Case {
    std::string filter;
    std::vector<std::string> expected;
  };
  const Case pod_cases[] = {
      {"", {alpha_pod, beta_pod, gamma_pod}},
      {"id: '" + alpha_pod.substr(0, 12) + "'", {alpha_pod}},
      {"state { state: SANDBOX_READY }", {alpha_pod, gamma_pod}},
      {"state { state: SANDBOX_NOTREADY }", {beta_pod}},
      {"label_selector { key: 'io.kubernetes.pod.name' value: 'beta' }", {beta_pod}},
      {"label_selector { key: 'app' value: 'delta' }", {}},
  };
  for (const Case& c : pod_cases) {
    SCOPED_TRACE("ListPodSandbox with filter {" + c.filter + "}");
    v1::ListPodSandboxResponse list;
    ASSERT_THAT(ListPods(ParseText<v1::PodSandboxFilter>(c.filter), &list), IsOk());
    EXPECT_THAT(Ids(list), UnorderedElementsAreArray(c.expected));
  }

  const Case container_cases[] = {
      {"", {alpha, beta, gamma}},
      {"id: '" + beta.substr(0, 12) + "'", {beta}},
      {"state { state: CONTAINER_RUNNING }", {alpha}},
      {"state { state: CONTAINER_CREATED }", {gamma}},
      {"state { state: CONTAINER_EXITED }", {beta}},
      {"label_selector { key: 'io.kubernetes.pod.name' value: 'alpha' }"
       "label_selector { key: 'io.kubernetes.container.name' value: 'main' }",
       {alpha}},
      {"label_selector { key: 'io.kubernetes.container.name' value: 'other' }", {}},
      {"pod_sandbox_id: '" + beta_pod + "'", {beta}},
      {"pod_sandbox_id: '" + alpha_pod + "' state { state: CONTAINER_CREATED }", {}},
  };
  for (const Case& c : container_cases) {
    SCOPED_TRACE("ListContainers with filter {" + c.filter + "}");
    v1::ListContainersResponse list;
    ASSERT_THAT(ListContainers(ParseText<v1::ContainerFilter>(c.filter), &list), IsOk());
    EXPECT_THAT(Ids(list), UnorderedElementsAreArray(c.expected));
  }
}

TEST_F(VmletdTest, AnswersARetriedRunPodSandboxWithTheSameSandbox) {
  const v1::PodSandboxConfig pod = PodConfig("retried");
  std::string first, second;
  ASSERT_THAT(RunPod(pod, &first), IsOk());
  ASSERT_THAT(RunPod(pod, &second), IsOk());
  EXPECT_EQ(second, first);

  v1::ListPodSandboxResponse pods;
  ASSERT_THAT(ListPods({}, &pods), IsOk());
  EXPECT_THAT(Ids(pods), ::testing::ElementsAre(first));
}

// Everything the kubelet can read about the pods and containers.
struct Snapshot {
  v1::ListPodSandboxResponse pods;
  v1::ListContainersResponse containers;
  std::map<std::string, v1::PodSandboxStatusResponse> pod_statuses;
  std::map<std::string, v1::ContainerStatusResponse> container_statuses;
};

class VmletdRestartTest : public VmletdTest {
 protected:
  // Three pods: "running" with a running container, "created" with a
  // container only created, "stopped" stopped by StopPodSandbox (its
  // running container killed with it).
  void MakePods() {
    ASSERT_THAT(RunPodWithContainer("running", true, &running_pod_, &running_), IsOk());
    ASSERT_THAT(RunPodWithContainer("created", false, &created_pod_, &created_), IsOk());
    ASSERT_THAT(RunPodWithContainer("stopped", true, &stopped_pod_, &stopped_), IsOk());
    ASSERT_THAT(StopPod(stopped_pod_), IsOk());
  }

  grpc::Status TakeSnapshot(Snapshot* snapshot) {
    if (grpc::Status status = ListPods({}, &snapshot->pods); !status.ok()) return status;
    if (grpc::Status status = ListContainers({}, &snapshot->containers); !status.ok()) {
      return status;
    }
    for (const v1::PodSandbox& pod : snapshot->pods.items()) {
      grpc::Status status = PodStatus(pod.id(), &snapshot->pod_statuses[pod.id()]);
      if (!status.ok()) return status;
    }
    for (const v1::Container& container : snapshot->containers.containers()) {
      grpc::Status status =
          ContainerStatus(container.id(), &snapshot->container_statuses[container.id()]);
      if (!status.ok()) return status;
    }
    return grpc::Status::OK;
  }

  // Compares two messages; the report names every difference.
  static ::testing::AssertionResult Same(const google::protobuf::Message& before,
                                         const google::protobuf::Message& after) {
    MessageDifferencer differencer;
    // The time of the answer, not a property of the sandbox.
    differencer.IgnoreField(
        v1::PodSandboxStatusResponse::descriptor()->FindFieldByName("timestamp"));
    std::string report;
    differencer.ReportDifferencesToString(&report);
    if (differencer.Compare(before, after)) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << before.GetTypeName() << " differs after the restart:\n"
                                         << report;
  }

  std::string running_pod_, running_, created_pod_, created_, stopped_pod_, stopped_;
};

TEST_F(VmletdRestartTest, RestoresEveryPodAndContainerUnchangedAfterASigkill) {
  ASSERT_NO_FATAL_FAILURE(MakePods());
  Snapshot before;
  ASSERT_THAT(TakeSnapshot(&before), IsOk());
  ASSERT_THAT(before.pods.items(), SizeIs(3));
  ASSERT_THAT(before.containers.containers(), SizeIs(3));
  EXPECT_EQ(before.container_statuses[running_].status().state(), v1::CONTAINER_RUNNING);
  EXPECT_EQ(before.container_statuses[created_].status().state(), v1::CONTAINER_CREATED);
  EXPECT_EQ(before.container_statuses[stopped_].status().state(), v1::CONTAINER_EXITED);
  EXPECT_EQ(before.pod_statuses[stopped_pod_].status().state(), v1::SANDBOX_NOTREADY);

  absl::Status restarted = vmletd_.Restart();  // SIGKILL, then start again.
  ASSERT_TRUE(restarted.ok()) << restarted;

  Snapshot after;
  ASSERT_THAT(TakeSnapshot(&after), IsOk());
  EXPECT_TRUE(Same(before.pods, after.pods));
  EXPECT_TRUE(Same(before.containers, after.containers));
  for (const auto& [id, status] : before.pod_statuses) {
    SCOPED_TRACE("sandbox " + id);
    EXPECT_TRUE(Same(status, after.pod_statuses[id]));
  }
  for (const auto& [id, status] : before.container_statuses) {
    SCOPED_TRACE("container " + id);
    EXPECT_TRUE(Same(status, after.container_statuses[id]));
  }

  // The names are still held: a retried RunPodSandbox finds its sandbox.
  std::string retried;
  ASSERT_THAT(RunPod(PodConfig("running"), &retried), IsOk());
  EXPECT_EQ(retried, running_pod_);
}

TEST_F(VmletdRestartTest, StopsAndRemovesPodsRestoredAfterASigkill) {
  ASSERT_NO_FATAL_FAILURE(MakePods());
  absl::Status restarted = vmletd_.Restart();
  ASSERT_TRUE(restarted.ok()) << restarted;

  // The kubelet's pod stop: the container with its grace period, then the pod.
  ASSERT_THAT(StopContainer(running_, 10), IsOk());
  v1::ContainerStatusResponse container_status;
  ASSERT_THAT(ContainerStatus(running_, &container_status), IsOk());
  EXPECT_EQ(container_status.status().state(), v1::CONTAINER_EXITED);
  EXPECT_EQ(container_status.status().exit_code(), 0);
  EXPECT_EQ(container_status.status().reason(), "Completed");
  EXPECT_GT(container_status.status().finished_at(), 0);
  ASSERT_THAT(StopPod(running_pod_), IsOk());
  v1::PodSandboxStatusResponse pod_status;
  ASSERT_THAT(PodStatus(running_pod_, &pod_status), IsOk());
  EXPECT_EQ(pod_status.status().state(), v1::SANDBOX_NOTREADY);

  // Garbage collection: containers first, then pods.
  ASSERT_THAT(RemoveContainer(running_), IsOk());
  EXPECT_THAT(ContainerStatus(running_, &container_status),
              StatusIs(grpc::StatusCode::NOT_FOUND, HasSubstr(running_)));
  ASSERT_THAT(RemovePod(running_pod_), IsOk());
  EXPECT_THAT(PodStatus(running_pod_, &pod_status),
              StatusIs(grpc::StatusCode::NOT_FOUND, HasSubstr(running_pod_)));
  // A pod removed with its container still there takes it along.
  ASSERT_THAT(StopPod(created_pod_), IsOk());
  ASSERT_THAT(RemovePod(created_pod_), IsOk());
  ASSERT_THAT(RemovePod(stopped_pod_), IsOk());

  // Once more: stop and remove of what is gone succeed.
  EXPECT_THAT(StopContainer(running_, 10), IsOk());
  EXPECT_THAT(RemoveContainer(running_), IsOk());
  EXPECT_THAT(RemoveContainer(created_), IsOk());
  EXPECT_THAT(StopPod(running_pod_), IsOk());
  EXPECT_THAT(RemovePod(running_pod_), IsOk());

  v1::ListPodSandboxResponse pods;
  ASSERT_THAT(ListPods({}, &pods), IsOk());
  EXPECT_THAT(pods.items(), IsEmpty());
  v1::ListContainersResponse containers;
  ASSERT_THAT(ListContainers({}, &containers), IsOk());
  EXPECT_THAT(containers.containers(), IsEmpty());
  // No VM is left behind (the fake driver keeps one file per VM there).
  absl::StatusOr<std::vector<std::string>> vms = ListDirectory(vmletd_.state_dir() + "/fake-vms");
  ASSERT_TRUE(vms.ok()) << vms.status();
  EXPECT_THAT(*vms, IsEmpty());
}

TEST_F(VmletdTest, SucceedsToStopAndRemoveUnknownIds) {
  EXPECT_THAT(StopContainer(kUnknownId, 10), IsOk());
  EXPECT_THAT(RemoveContainer(kUnknownId), IsOk());
  EXPECT_THAT(StopPod(kUnknownId), IsOk());
  EXPECT_THAT(RemovePod(kUnknownId), IsOk());
}

TEST_F(VmletdTest, ReturnsNotFoundForTheStatusOfAnUnknownId) {
  v1::PodSandboxStatusResponse pod_status;
  EXPECT_THAT(PodStatus(kUnknownId, &pod_status),
              StatusIs(grpc::StatusCode::NOT_FOUND, HasSubstr(kUnknownId)));
  v1::ContainerStatusResponse container_status;
  EXPECT_THAT(ContainerStatus(kUnknownId, &container_status),
              StatusIs(grpc::StatusCode::NOT_FOUND, HasSubstr(kUnknownId)));
  EXPECT_THAT(StartContainer(kUnknownId),
              StatusIs(grpc::StatusCode::NOT_FOUND, HasSubstr(kUnknownId)));
  std::string id;
  EXPECT_THAT(
      CreateContainer(kUnknownId, PodConfig("nowhere"), ContainerConfig("nowhere", "main"), &id),
      StatusIs(grpc::StatusCode::NOT_FOUND, HasSubstr(kUnknownId)));
}

TEST_F(VmletdTest, RejectsAContainerWithoutMetadataNamingTheField) {
  const v1::PodSandboxConfig pod = PodConfig("no-metadata");
  std::string pod_id, container_id;
  ASSERT_THAT(RunPod(pod, &pod_id), IsOk());
  v1::ContainerConfig container = ContainerConfig("no-metadata", "main");
  container.clear_metadata();
  EXPECT_THAT(CreateContainer(pod_id, pod, container, &container_id),
              StatusIs(grpc::StatusCode::INVALID_ARGUMENT, HasSubstr("config.metadata")));
  v1::ListContainersResponse containers;
  ASSERT_THAT(ListContainers({}, &containers), IsOk());
  EXPECT_THAT(containers.containers(), IsEmpty());
}

TEST_F(VmletdTest, RefusesASecondDifferentlyNamedContainerInAPod) {
  const v1::PodSandboxConfig pod = PodConfig("one-vm");
  std::string pod_id, first, second;
  ASSERT_THAT(RunPod(pod, &pod_id), IsOk());
  ASSERT_THAT(CreateContainer(pod_id, pod, ContainerConfig("one-vm", "main"), &first), IsOk());
  EXPECT_THAT(CreateContainer(pod_id, pod, ContainerConfig("one-vm", "sidecar"), &second),
              StatusIs(grpc::StatusCode::FAILED_PRECONDITION, HasSubstr("sidecar")));
  v1::ContainerFilter filter;
  filter.set_pod_sandbox_id(pod_id);
  v1::ListContainersResponse containers;
  ASSERT_THAT(ListContainers(filter, &containers), IsOk());
  EXPECT_THAT(Ids(containers), ::testing::ElementsAre(first));
}

TEST_F(VmletdTest, ExitsZeroOnSigtermAndRemovesItsSocket) {
  absl::StatusOr<ExitStatus> ended = vmletd_.Terminate();
  ASSERT_TRUE(ended.ok()) << ended.status();
  EXPECT_EQ(ended->signal, 0);
  EXPECT_EQ(ended->code, 0);
  struct stat st {};
  EXPECT_NE(::lstat(vmletd_.socket_path().c_str(), &st), 0) << "the socket file is still there";
  EXPECT_EQ(errno, ENOENT);
}

TEST_F(VmletdTest, ReplacesTheStaleSocketOfAKilledVmletd) {
  absl::Status killed = vmletd_.Kill();
  ASSERT_TRUE(killed.ok()) << killed;
  struct stat st {};
  ASSERT_EQ(::lstat(vmletd_.socket_path().c_str(), &st), 0) << "SIGKILL left no socket file";
  ASSERT_TRUE(S_ISSOCK(st.st_mode));

  absl::Status started = vmletd_.Start();
  ASSERT_TRUE(started.ok()) << started;
  v1::VersionResponse version;
  EXPECT_THAT(Call(&Stub::Version, v1::VersionRequest(), &version), IsOk());
  ASSERT_EQ(::lstat(vmletd_.socket_path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0660u);
}

TEST_F(VmletdTest, VmletctlPrintsTheVersion) {
  if (VmletctlBinary().empty()) GTEST_SKIP() << "$VMLETCTL is not set";
  absl::StatusOr<ExitStatus> run = RunCommand(
      {VmletctlBinary(), "--endpoint", vmletd_.socket_path(), "--timeout", "10", "cri", "version"});
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->code, 0) << run->output;
  EXPECT_THAT(run->output, AllOf(HasSubstr("0.1.0"), HasSubstr("vmlet"), HasSubstr("v1")));
}

TEST_F(VmletdTest, VmletctlListsPodsAndContainers) {
  if (VmletctlBinary().empty()) GTEST_SKIP() << "$VMLETCTL is not set";
  std::string pod_id, container_id, other_pod_id, other_container_id;
  ASSERT_THAT(RunPodWithContainer("ctl-pod", true, &pod_id, &container_id), IsOk());
  ASSERT_THAT(RunPodWithContainer("ctl-other", false, &other_pod_id, &other_container_id), IsOk());

  absl::StatusOr<ExitStatus> pods = RunCommand(
      {VmletctlBinary(), "--endpoint", vmletd_.socket_path(), "--timeout", "10", "cri", "pods"});
  ASSERT_TRUE(pods.ok()) << pods.status();
  EXPECT_EQ(pods->code, 0) << pods->output;
  EXPECT_THAT(pods->output,
              AllOf(HasSubstr("ctl-pod"), HasSubstr("ctl-other"), HasSubstr(pod_id.substr(0, 13))));

  absl::StatusOr<ExitStatus> ps = RunCommand(
      {VmletctlBinary(), "--endpoint", vmletd_.socket_path(), "--timeout", "10", "cri", "ps"});
  ASSERT_TRUE(ps.ok()) << ps.status();
  EXPECT_EQ(ps->code, 0) << ps->output;
  EXPECT_THAT(ps->output, AllOf(HasSubstr("main"), HasSubstr(container_id.substr(0, 13)),
                                HasSubstr(other_container_id.substr(0, 13)), HasSubstr("RUNNING"),
                                HasSubstr("CREATED")));
}

// A config vmletd must refuse at start-up, and the key its message names.
struct BadConfig {
  std::string name;
  std::string yaml;
  std::string key;
};

class VmletdStartupTest : public ::testing::TestWithParam<BadConfig> {};

TEST_P(VmletdStartupTest, ExitsNonZeroNamingTheBadKey) {
  VmletdProcess vmletd(GetParam().yaml);
  ASSERT_TRUE(vmletd.init_status().ok()) << vmletd.init_status();
  absl::Status spawned = vmletd.Spawn();
  ASSERT_TRUE(spawned.ok()) << spawned;
  absl::StatusOr<ExitStatus> ended = vmletd.WaitForExit();
  ASSERT_TRUE(ended.ok()) << ended.status() << "\n" << vmletd.Log();
  EXPECT_EQ(ended->signal, 0);
  EXPECT_NE(ended->code, 0);
  EXPECT_THAT(vmletd.Log(), HasSubstr(GetParam().key));
  struct stat st {};
  EXPECT_NE(::lstat(vmletd.socket_path().c_str(), &st), 0) << "vmletd created its socket";
}

INSTANTIATE_TEST_SUITE_P(
    BadConfigs, VmletdStartupTest,
    ::testing::Values(BadConfig{"UnknownKey", "bogus_key: 1\n", "\"bogus_key\""},
                      BadConfig{"BadAccelerator", "accelerator: warp\n", "\"accelerator\""},
                      BadConfig{"NegativeShutdownTimeout", "shutdown_timeout_seconds: -1\n",
                                "\"shutdown_timeout_seconds\""}),
    [](const ::testing::TestParamInfo<BadConfig>& info) { return info.param.name; });

}  // namespace
}  // namespace vmlet::e2e
