// A pod bound to a VM spec by vmlet.io/vmspec, with the fake driver: the
// binding, a missing spec, precedence, the record's fields, cloud-init
// seeds, RenderVm, GetVmStatus and PodsWithOlderSpec.
#include <map>
#include <mutex>
#include <string>
#include <utility>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "base/file_util.h"
#include "tests/cri/cri_test_util.h"

namespace vmlet::testing {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::StartsWith;

namespace v1 = ::runtime::v1;
namespace vs = ::vmlet::vmspec::v1;

constexpr int64_t kMiB = int64_t{1} << 20;
constexpr char kSshKey[] = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHxyz alice@laptop";

// A CriService whose options find specs in a map the test fills.
class VmSpecBindingTest : public CriFixture {
 protected:
  VmSpecBindingTest() { StartWithSpecs(); }

  void StartWithSpecs() {
    service_.reset();
    cri::CriOptions options{.state_dir = dir_.path() + "/state",
                            .run_dir = dir_.path() + "/run",
                            .stats_interval = absl::ZeroDuration(),
                            .local_images = {{kTestImage, dir_.path() + "/images/tiny"}}};
    options.find_vmspec = [this](std::string_view ns,
                                 std::string_view name) -> absl::StatusOr<vs::VmSpec> {
      std::lock_guard lock(mu_);
      auto it = specs_.find(std::string(ns) + "/" + std::string(name));
      if (it == specs_.end()) return absl::NotFoundError("no such spec");
      return it->second;
    };
    service_ = std::make_unique<cri::CriService>(std::move(options), driver_.get(), &network_);
    absl::Status status = service_->Init();
    ASSERT_TRUE(status.ok()) << status;
  }

  void PutSpec(const std::string& name, int64_t generation, const vs::Machine& machine) {
    vs::VmSpec spec;
    spec.mutable_metadata()->set_namespace_("default");
    spec.mutable_metadata()->set_name(name);
    spec.mutable_metadata()->set_generation(generation);
    *spec.mutable_spec() = machine;
    std::lock_guard lock(mu_);
    specs_["default/" + name] = spec;
  }

  // A pod with `annotations`; its id.
  std::string RunPod(const std::string& name,
                     const std::map<std::string, std::string>& annotations) {
    v1::RunPodSandboxRequest request;
    *request.mutable_config() = SandboxConfig(name);
    for (const auto& [key, value] : annotations) {
      (*request.mutable_config()->mutable_annotations())[key] = value;
    }
    v1::RunPodSandboxResponse response;
    absl::Status status = service_->RunPodSandbox(request, &response);
    EXPECT_TRUE(status.ok()) << status;
    return response.pod_sandbox_id();
  }

  absl::StatusOr<std::string> Create(const std::string& sandbox_id, int cpus = 0,
                                     int64_t memory = 0) {
    v1::CreateContainerRequest request;
    request.set_pod_sandbox_id(sandbox_id);
    *request.mutable_config() = ContainerConfig("vm");
    if (cpus > 0) {
      request.mutable_config()->mutable_linux()->mutable_resources()->set_cpu_period(100000);
      request.mutable_config()->mutable_linux()->mutable_resources()->set_cpu_quota(cpus * 100000);
    }
    if (memory > 0) {
      request.mutable_config()->mutable_linux()->mutable_resources()->set_memory_limit_in_bytes(
          memory);
    }
    v1::CreateContainerResponse response;
    VMLET_RETURN_IF_ERROR(service_->CreateContainer(request, &response));
    return response.container_id();
  }

  void Start(const std::string& id) {
    v1::StartContainerRequest request;
    request.set_container_id(id);
    v1::StartContainerResponse response;
    absl::Status status = service_->StartContainer(request, &response);
    ASSERT_TRUE(status.ok()) << status;
  }

  absl::Status Remove(const std::string& id) {
    v1::RemoveContainerRequest request;
    request.set_container_id(id);
    v1::RemoveContainerResponse response;
    return service_->RemoveContainer(request, &response);
  }

  vmdriver::VmConfig VmOf(const std::string& id) {
    absl::StatusOr<vmdriver::VmConfig> config = driver_->ConfigOf(id);
    EXPECT_TRUE(config.ok()) << config.status();
    return config.ok() ? *config : vmdriver::VmConfig{};
  }

  std::string RecordOf(const std::string& id) {
    absl::StatusOr<std::string> json = ReadFile(dir_.path() + "/state/containers/" + id + ".json");
    EXPECT_TRUE(json.ok()) << json.status();
    return json.ok() ? *json : "";
  }

  vs::VmStatus StatusOf(const std::string& sandbox_id) {
    vs::GetVmStatusRequest request;
    request.set_pod_sandbox_id(sandbox_id);
    absl::StatusOr<vs::VmStatus> status = service_->GetVmStatus(request);
    EXPECT_TRUE(status.ok()) << status.status();
    return status.ok() ? *status : vs::VmStatus{};
  }

  std::mutex mu_;
  std::map<std::string, vs::VmSpec> specs_;
};

vs::Machine Cpus(int count, const std::string& memory = "") {
  vs::Machine machine;
  machine.mutable_cpu()->set_count(count);
  if (!memory.empty()) machine.mutable_memory()->set_size(memory);
  return machine;
}

TEST_F(VmSpecBindingTest, APodBoundToASpecGetsItsMachineAndRecordsIt) {
  vs::Machine machine = Cpus(4, "1Gi");
  machine.set_machine_type("q35");
  PutSpec("big", 3, machine);
  const std::string pod = RunPod("web", {{"vmlet.io/vmspec", "big"}});
  absl::StatusOr<std::string> id = Create(pod);
  ASSERT_TRUE(id.ok()) << id.status();
  vmdriver::VmConfig vm = VmOf(*id);
  EXPECT_EQ(vm.vcpus, 4);
  EXPECT_EQ(vm.memory_bytes, 1024 * kMiB);
  EXPECT_EQ(vm.machine.machine_type(), "q35");
  EXPECT_EQ(vm.vmspec, "default/big");
  EXPECT_EQ(vm.vmspec_generation, 3);
  const std::string record = RecordOf(*id);
  EXPECT_THAT(record, AllOf(HasSubstr("\"vmspec\": \"default/big\""),
                            HasSubstr("\"vmspec_generation\": \"3\""), HasSubstr("\"vcpus\": 4")));
}

TEST_F(VmSpecBindingTest, AMissingSpecIsAFailedPreconditionThatLeavesNothing) {
  const std::string pod = RunPod("web", {{"vmlet.io/vmspec", "big"}});
  absl::StatusOr<std::string> id = Create(pod);
  EXPECT_EQ(id.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(id.status().message()),
              AllOf(HasSubstr("vmlet.io/vmspec"), HasSubstr("\"default/big\""),
                    HasSubstr("apply it"), HasSubstr("retries")));
  v1::ListContainersResponse list;
  ASSERT_TRUE(service_->ListContainers(v1::ListContainersRequest(), &list).ok());
  EXPECT_EQ(list.containers_size(), 0);
  EXPECT_THAT(*driver_->List(), IsEmpty());

  // Once applied, the kubelet's retry succeeds.
  PutSpec("big", 1, Cpus(2));
  id = Create(pod);
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(VmOf(*id).vcpus, 2);
}

TEST_F(VmSpecBindingTest, WithoutVmSpecSupportTheAnnotationIsAFailedPrecondition) {
  Restart();  // The plain fixture: no find_vmspec.
  const std::string pod = RunPod("web", {{"vmlet.io/vmspec", "big"}});
  absl::StatusOr<std::string> id = Create(pod);
  EXPECT_EQ(id.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(id.status().message()), HasSubstr("no VM-spec API"));
}

TEST_F(VmSpecBindingTest, PrecedenceCriThenAnnotationsThenSpec) {
  PutSpec("three", 1, Cpus(3));
  const std::string pod = RunPod(
      "web", {{"vmlet.io/vmspec", "three"}, {"vmlet.io/memory", "2Gi"}, {"vmlet.io/vcpus", "6"}});
  absl::StatusOr<std::string> id = Create(pod, /*cpus=*/2, /*memory=*/256 * kMiB);
  ASSERT_TRUE(id.ok()) << id.status();
  vmdriver::VmConfig vm = VmOf(*id);
  EXPECT_EQ(vm.vcpus, 3);                   // The spec's, over the annotation's and the CRI's.
  EXPECT_EQ(vm.memory_bytes, 2048 * kMiB);  // The annotation's, over the CRI's.
}

TEST_F(VmSpecBindingTest, PodKeysOnAContainerAndBadPodAnnotationsAreRefused) {
  const std::string pod = RunPod("web", {});
  v1::CreateContainerRequest request;
  request.set_pod_sandbox_id(pod);
  *request.mutable_config() = ContainerConfig("vm");
  (*request.mutable_config()->mutable_annotations())["vmlet.io/vmspec"] = "big";
  v1::CreateContainerResponse response;
  absl::Status status = service_->CreateContainer(request, &response);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("is a pod annotation"));

  v1::RunPodSandboxRequest run;
  *run.mutable_config() = SandboxConfig("bad");
  (*run.mutable_config()->mutable_annotations())["vmlet.io/ssh-keys"] = "not a key";
  v1::RunPodSandboxResponse ran;
  status = service_->RunPodSandbox(run, &ran);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("config.annotations[\"vmlet.io/ssh-keys\"]"));
}

TEST_F(VmSpecBindingTest, WithoutCloudInitInputTheVmUsesTheSandboxSeed) {
  const std::string pod = RunPod("web", {});
  absl::StatusOr<std::string> id = Create(pod);
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(VmOf(*id).seed_path, dir_.path() + "/state/pods/" + pod + "/seed.iso");
}

TEST_F(VmSpecBindingTest, CloudInitInputGivesTheVmItsOwnSeedWhereTheSpecWins) {
  vs::Machine machine;
  machine.mutable_cloud_init()->set_user_data("#cloud-config\nfrom: spec-user-data\n");
  PutSpec("ci", 1, machine);
  const std::string pod =
      RunPod("web", {{"vmlet.io/vmspec", "ci"},
                     {"vmlet.io/cloud-init-user-data", "#cloud-config\nfrom: pod-user-data\n"},
                     {"vmlet.io/ssh-keys", kSshKey}});
  // The sandbox's seed has the pod's own input.
  absl::StatusOr<std::string> sandbox_seed =
      ReadFile(dir_.path() + "/state/pods/" + pod + "/seed.iso");
  ASSERT_TRUE(sandbox_seed.ok()) << sandbox_seed.status();
  EXPECT_THAT(*sandbox_seed, AllOf(HasSubstr("pod-user-data"), HasSubstr(kSshKey)));

  absl::StatusOr<std::string> id = Create(pod);
  ASSERT_TRUE(id.ok()) << id.status();
  const std::string seed_path = VmOf(*id).seed_path;
  EXPECT_EQ(seed_path, dir_.path() + "/state/pods/" + pod + "/seed-" + *id + ".iso");
  absl::StatusOr<std::string> seed = ReadFile(seed_path);
  ASSERT_TRUE(seed.ok()) << seed.status();
  EXPECT_THAT(*seed, AllOf(HasSubstr("spec-user-data"), Not(HasSubstr("pod-user-data")),
                           HasSubstr("public-keys"), HasSubstr(kSshKey)));
  EXPECT_THAT(RecordOf(*id), HasSubstr("seed-" + *id + ".iso"));

  // RemoveContainer removes it.
  ASSERT_TRUE(Remove(*id).ok());
  EXPECT_FALSE(ReadFile(seed_path).ok());

  // So does a CreateContainer that fails after writing it.
  driver_->FailNext("Create", absl::InternalError("injected"));
  absl::StatusOr<std::string> failed = Create(pod);
  ASSERT_FALSE(failed.ok());
  absl::StatusOr<std::vector<std::string>> files =
      ListDirectory(dir_.path() + "/state/pods/" + pod);
  ASSERT_TRUE(files.ok()) << files.status();
  EXPECT_THAT(*files, ElementsAre("seed.iso"));
}

TEST_F(VmSpecBindingTest, RenderVmForAPodAndForAPlaceholder) {
  const std::string pod = RunPod("web", {{"vmlet.io/vcpus", "2"}});
  absl::StatusOr<std::string> id = Create(pod);
  ASSERT_TRUE(id.ok()) << id.status();

  vs::RenderRequest request;
  request.mutable_vm_spec()->mutable_metadata()->set_name("draft");
  request.mutable_vm_spec()->mutable_spec()->mutable_memory()->set_size("768Mi");
  request.set_pod_sandbox_id(pod);
  absl::StatusOr<std::string> xml = service_->RenderVm(request);
  ASSERT_TRUE(xml.ok()) << xml.status();
  // The fake's text: the pod's container, its annotation, the spec.
  EXPECT_EQ(*xml, "fake domain " + *id + ": 2 vCPUs, " + std::to_string(768 * kMiB) +
                      " bytes of memory\n");

  request.clear_pod_sandbox_id();
  request.set_pod_namespace("default");
  request.set_pod_name("web");
  xml = service_->RenderVm(request);
  ASSERT_TRUE(xml.ok()) << xml.status();
  EXPECT_THAT(*xml, StartsWith("fake domain " + *id));

  // No such pod: a placeholder with vmletd's defaults under the spec.
  request.set_pod_name("nobody");
  xml = service_->RenderVm(request);
  ASSERT_TRUE(xml.ok()) << xml.status();
  EXPECT_THAT(*xml, StartsWith("fake domain " + std::string(64, '0') + ": 1 vCPUs"));
  request.clear_pod_namespace();
  request.clear_pod_name();
  request.mutable_vm_spec()->mutable_spec()->add_disks()->mutable_root()->set_size("10Gi");
  xml = service_->RenderVm(request);
  EXPECT_TRUE(xml.ok()) << xml.status();  // A placeholder disk takes a root size.

  // Validation errors as CreateContainer's: the pod's image boots a kernel.
  request.set_pod_sandbox_id(pod);
  xml = service_->RenderVm(request);
  EXPECT_EQ(xml.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(xml.status().message()),
              AllOf(HasSubstr("spec.disks[0].root.size"), HasSubstr("boots a kernel")));
}

TEST_F(VmSpecBindingTest, GetVmStatus) {
  vs::GetVmStatusRequest unknown;
  unknown.set_pod_namespace("default");
  unknown.set_pod_name("nobody");
  EXPECT_EQ(service_->GetVmStatus(unknown).status().code(), absl::StatusCode::kNotFound);
  unknown.set_pod_sandbox_id("abcdef");
  EXPECT_EQ(service_->GetVmStatus(unknown).status().code(), absl::StatusCode::kNotFound);

  PutSpec("big", 3, Cpus(2, "1Gi"));
  const std::string pod = RunPod("web", {{"vmlet.io/vmspec", "big"}});
  vs::VmStatus status = StatusOf(pod);
  EXPECT_EQ(status.state(), "none");
  EXPECT_THAT(status.addresses(), ElementsAre(StartsWith("10.88.0."), StartsWith("fd00::")));

  absl::StatusOr<std::string> id = Create(pod);
  ASSERT_TRUE(id.ok()) << id.status();
  status = StatusOf(pod);
  EXPECT_EQ(status.pod_sandbox_id(), pod);
  EXPECT_EQ(status.container_id(), *id);
  EXPECT_EQ(status.state(), "created");
  EXPECT_EQ(status.vmspec_name(), "big");
  EXPECT_EQ(status.vmspec_generation(), 3);
  EXPECT_EQ(status.vmspec_current_generation(), 3);
  EXPECT_FALSE(status.spec_pending());
  EXPECT_EQ(status.vcpus(), 2u);
  EXPECT_EQ(status.memory_bytes(), uint64_t{1} << 30);
  EXPECT_FALSE(status.guest_agent_connected());  // Not running.

  Start(*id);
  // A live update, as the statistics see it.
  ASSERT_TRUE(driver_->UpdateResources(*id, {.memory_bytes = 512 * kMiB}).ok());
  ASSERT_TRUE(service_->stats()->CollectNow().ok());
  PutSpec("big", 5, Cpus(4));
  vs::GetVmStatusRequest by_name;
  by_name.set_pod_namespace("default");
  by_name.set_pod_name("web");
  absl::StatusOr<vs::VmStatus> running = service_->GetVmStatus(by_name);
  ASSERT_TRUE(running.ok()) << running.status();
  EXPECT_EQ(running->state(), "running");
  EXPECT_EQ(running->domain_name(), "fake-" + running->container_id().substr(0, 12));
  EXPECT_EQ(running->vcpus(), 2u);
  EXPECT_EQ(running->memory_bytes(), uint64_t{512} << 20);
  EXPECT_TRUE(running->guest_agent_connected());
  EXPECT_EQ(running->vmspec_generation(), 3);
  EXPECT_EQ(running->vmspec_current_generation(), 5);
  EXPECT_TRUE(running->spec_pending());

  driver_->FailNext("Exec", absl::FailedPreconditionError("no guest agent"));
  EXPECT_FALSE(StatusOf(pod).guest_agent_connected());
}

TEST_F(VmSpecBindingTest, PodsWithOlderSpec) {
  PutSpec("big", 3, Cpus(2));
  PutSpec("other", 1, Cpus(1));
  const std::string a = RunPod("a", {{"vmlet.io/vmspec", "big"}});
  const std::string b = RunPod("b", {{"vmlet.io/vmspec", "big"}});
  const std::string c = RunPod("c", {{"vmlet.io/vmspec", "other"}});
  const std::string d = RunPod("d", {});
  for (const std::string& pod : {a, b, c, d}) ASSERT_TRUE(Create(pod).ok());

  std::vector<std::string> expected = {a, b};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(service_->PodsWithOlderSpec("default", "big", 4), expected);
  EXPECT_THAT(service_->PodsWithOlderSpec("default", "big", 3), IsEmpty());
  EXPECT_THAT(service_->PodsWithOlderSpec("other-ns", "big", 4), IsEmpty());
  EXPECT_THAT(service_->PodsWithOlderSpec("default", "other", 2), ElementsAre(c));
}

}  // namespace
}  // namespace vmlet::testing
