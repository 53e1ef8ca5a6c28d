// End to end for issue 6: a VM spec applied through the VM-spec API (its
// real unix socket) and a pod bound to it with the vmlet.io/vmspec
// annotation boot a real VM (libvirt, TCG) with the spec's vCPUs, memory and
// a second disk. The guest reports what it was given on its console
// (VMLET-GUEST-INVENTORY, tests/guest/build-guest.sh), which is the
// container's log. A second pod with annotations alone checks that layer.
//
// Skipped (exit 77) without libvirtd, QEMU or the guest's packages. Runs on
// gtest's main thread only.
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <map>
#include <memory>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "base/id.h"
#include "base/str_util.h"
#include "cri/v1/api.grpc.pb.h"
#include "tests/e2e/test_guest.h"
#include "tests/e2e/vmletd_process.h"
#include "vmlet/vmspec/v1/vmspec.grpc.pb.h"

namespace vmlet::e2e {
namespace {

namespace v1 = ::runtime::v1;
namespace spec_v1 = ::vmlet::vmspec::v1;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kImage[] = "vmlet.test/vmspec:1";
constexpr int64_t kMiB = int64_t{1} << 20;

std::string Layout() { return StrCat(GuestDir(), "/layouts/vmspec"); }

// What one VMLET-GUEST-INVENTORY line says.
struct Inventory {
  int cpus = 0;
  int64_t mem_kb = 0;
  std::string blocks;  // " vda:131072:vmlet-data ..."
};

std::optional<Inventory> FindInventory(const std::string& log) {
  static const std::regex kLine(
      "VMLET-GUEST-INVENTORY cpus=([0-9]+) mem_kb=([0-9]+) blocks=([^\n]*)");
  std::smatch match;
  if (!std::regex_search(log, match, kLine)) return std::nullopt;
  return Inventory{.cpus = std::stoi(match[1]), .mem_kb = std::stoll(match[2]), .blocks = match[3]};
}

class VmSpecTest : public ::testing::Test {
 protected:
  void SetUp() override {
    namespace_ = StrCat("e2e-spec-", GenerateId().substr(0, 6));
    vmletd_ = std::make_unique<VmletdProcess>(
        StrCat("vm_driver: libvirt\nlibvirt_uri: ", kLibvirtUri,
               "\naccelerator: tcg\nmax_vcpus: 4\nlocal_images:\n  \"", kImage, "\": ", Layout(),
               "\n"),
        /*fake_driver=*/false);
    ASSERT_TRUE(vmletd_->init_status().ok()) << vmletd_->init_status();
    ASSERT_EQ(::chmod(vmletd_->dir().c_str(), 0711), 0);
    absl::Status started = vmletd_->Start();
    ASSERT_TRUE(started.ok()) << started << "\n" << vmletd_->Log();
    specs_ = spec_v1::VmSpecs::NewStub(grpc::CreateChannel(
        StrCat("unix:", vmletd_->dir(), "/vmspec.sock"), grpc::InsecureChannelCredentials()));
  }

  void TearDown() override {
    if (!vmletd_) return;
    if (vmletd_->running()) {
      absl::Status removed = vmletd_->RemovePodSandboxes(sandboxes_);
      EXPECT_TRUE(removed.ok()) << removed;
    }
    std::string domains = Virsh({"list", "--all", "--name"});
    EXPECT_THAT(domains, Not(HasSubstr(namespace_))) << "a domain of this test is left";
    std::istringstream lines(domains);
    for (std::string name; std::getline(lines, name);) {
      if (name.find(namespace_) == std::string::npos) continue;
      Virsh({"destroy", name});
      Virsh({"undefine", name});
    }
    if (HasFailure()) std::fprintf(stderr, "vmletd log:\n%s\n", vmletd_->Log().c_str());
  }

  std::string RunPod(const std::string& name,
                     const std::map<std::string, std::string>& annotations) {
    grpc::ClientContext context;
    v1::RunPodSandboxRequest request;
    v1::PodSandboxConfig* config = request.mutable_config();
    config->mutable_metadata()->set_name(name);
    config->mutable_metadata()->set_namespace_(namespace_);
    config->mutable_metadata()->set_uid(GenerateId().substr(0, 16));
    config->set_log_directory(StrCat(vmletd_->dir(), "/logs/", name));
    config->mutable_annotations()->insert(annotations.begin(), annotations.end());
    v1::RunPodSandboxResponse response;
    grpc::Status status = vmletd_->runtime().RunPodSandbox(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    sandboxes_.push_back(response.pod_sandbox_id());
    return response.pod_sandbox_id();
  }

  std::string LogPath(const std::string& pod) {
    return StrCat(vmletd_->dir(), "/logs/", pod, "/vm/0.log");
  }

  // The guest's inventory line, once it is in the pod's log.
  std::optional<Inventory> WaitForInventory(const std::string& pod) {
    std::optional<Inventory> inventory;
    WaitFor([&] { return (inventory = FindInventory(ReadAll(LogPath(pod)))).has_value(); });
    return inventory;
  }

  std::unique_ptr<VmletdProcess> vmletd_;
  std::unique_ptr<spec_v1::VmSpecs::Stub> specs_;
  std::string namespace_;
  std::vector<std::string> sandboxes_;
};

TEST_F(VmSpecTest, APodBoundToASpecBootsWithItsCpusMemoryAndSecondDisk) {
  spec_v1::ApplyRequest apply;
  spec_v1::VmSpec* spec = apply.mutable_vm_spec();
  spec->mutable_metadata()->set_namespace_(namespace_);
  spec->mutable_metadata()->set_name("pet");
  spec_v1::Machine* machine = spec->mutable_spec();
  machine->mutable_cpu()->set_count(2);
  machine->mutable_cpu()->mutable_topology()->set_sockets(1);
  machine->mutable_cpu()->mutable_topology()->set_cores(2);
  machine->mutable_cpu()->mutable_topology()->set_threads(1);
  machine->mutable_memory()->set_size("320Mi");
  spec_v1::Disk* data = machine->add_disks();
  data->set_name("data");
  data->mutable_empty()->set_size("64Mi");
  data->set_serial("vmlet-data");
  spec_v1::ApplyResponse applied;
  {
    grpc::ClientContext context;
    grpc::Status status = specs_->Apply(&context, apply, &applied);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  EXPECT_EQ(applied.vm_spec().metadata().generation(), 1);

  // The pod's own resources (1 vCPU, 256 MiB) lose to the spec.
  const std::string sandbox = RunPod("pet", {{"vmlet.io/vmspec", "pet"}});
  const std::string id = CreateAndStartVm(vmletd_->runtime(), sandbox, kImage);
  ASSERT_FALSE(id.empty());
  std::optional<Inventory> inventory = WaitForInventory("pet");
  ASSERT_TRUE(inventory.has_value()) << "no inventory in the console log:\n"
                                     << ReadAll(LogPath("pet"));
  EXPECT_EQ(inventory->cpus, 2);
  // MemTotal is what the kernel keeps after its own reservations (about
  // 35 MiB here): under the 320 MiB given, over the pod's 256 MiB limit.
  EXPECT_GT(inventory->mem_kb, 256 * 1024);
  EXPECT_LE(inventory->mem_kb, 320 * 1024);
  // 64 MiB = 131072 sectors, with the spec's serial.
  EXPECT_THAT(inventory->blocks, HasSubstr(":131072:vmlet-data")) << inventory->blocks;

  // GetVmStatus tells what the VM runs with, and which spec generation.
  spec_v1::GetVmStatusRequest status_request;
  status_request.set_pod_sandbox_id(sandbox);
  spec_v1::VmStatus vm_status;
  {
    grpc::ClientContext context;
    grpc::Status status = specs_->GetVmStatus(&context, status_request, &vm_status);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  EXPECT_EQ(vm_status.container_id(), id);
  EXPECT_EQ(vm_status.vcpus(), 2u);
  EXPECT_EQ(vm_status.memory_bytes(), static_cast<uint64_t>(320 * kMiB));
  EXPECT_EQ(vm_status.vmspec_generation(), 1);
  EXPECT_FALSE(vm_status.spec_pending());

  // A changed spec applies at the VM's next start: the running pod is
  // listed as pending, and its status says so.
  machine->mutable_memory()->set_size("384Mi");
  {
    grpc::ClientContext context;
    grpc::Status status = specs_->Apply(&context, apply, &applied);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  EXPECT_EQ(applied.vm_spec().metadata().generation(), 2);
  EXPECT_THAT(
      std::vector<std::string>(applied.pending_restart().begin(), applied.pending_restart().end()),
      ::testing::Contains(sandbox));
  {
    grpc::ClientContext context;
    ASSERT_TRUE(specs_->GetVmStatus(&context, status_request, &vm_status).ok());
  }
  EXPECT_TRUE(vm_status.spec_pending());
  EXPECT_EQ(vm_status.vmspec_current_generation(), 2);
}

TEST_F(VmSpecTest, AnnotationsAloneShapeTheVm) {
  const std::string sandbox = RunPod("annotated", {});
  v1::CreateContainerRequest create;
  create.set_pod_sandbox_id(sandbox);
  v1::ContainerConfig* config = create.mutable_config();
  config->mutable_metadata()->set_name("vm");
  config->mutable_image()->set_image(kImage);
  config->set_log_path("vm/0.log");
  (*config->mutable_annotations())["vmlet.io/vcpus"] = "3";
  (*config->mutable_annotations())["vmlet.io/memory"] = "288Mi";
  v1::CreateContainerResponse created;
  {
    grpc::ClientContext context;
    grpc::Status status = vmletd_->runtime().CreateContainer(&context, create, &created);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  {
    grpc::ClientContext context;
    v1::StartContainerRequest start;
    start.set_container_id(created.container_id());
    v1::StartContainerResponse started;
    grpc::Status status = vmletd_->runtime().StartContainer(&context, start, &started);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  std::optional<Inventory> inventory = WaitForInventory("annotated");
  ASSERT_TRUE(inventory.has_value()) << ReadAll(LogPath("annotated"));
  EXPECT_EQ(inventory->cpus, 3);
  // Under the 288 MiB given, far under vmletd's default of 512 MiB.
  EXPECT_GT(inventory->mem_kb, 224 * 1024);
  EXPECT_LE(inventory->mem_kb, 288 * 1024);
}

TEST_F(VmSpecTest, ASpecUuidBelongsToOneVmAtATime) {
  constexpr char kUuid[] = "6a1f0c2e-8d4b-4f3a-9e71-2b5c8d9e0f1a";
  spec_v1::ApplyRequest apply;
  apply.mutable_vm_spec()->mutable_metadata()->set_namespace_(namespace_);
  apply.mutable_vm_spec()->mutable_metadata()->set_name("fixed");
  apply.mutable_vm_spec()->mutable_spec()->mutable_firmware()->set_uuid(kUuid);
  {
    grpc::ClientContext context;
    spec_v1::ApplyResponse applied;
    grpc::Status status = specs_->Apply(&context, apply, &applied);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  auto create = [&](const std::string& sandbox, uint32_t attempt, std::string* id) {
    grpc::ClientContext context;
    v1::CreateContainerRequest request;
    request.set_pod_sandbox_id(sandbox);
    request.mutable_config()->mutable_metadata()->set_name("vm");
    request.mutable_config()->mutable_metadata()->set_attempt(attempt);
    request.mutable_config()->mutable_image()->set_image(kImage);
    request.mutable_config()->set_log_path(StrCat("vm/", attempt, ".log"));
    v1::CreateContainerResponse response;
    grpc::Status status = vmletd_->runtime().CreateContainer(&context, request, &response);
    *id = response.container_id();
    return status;
  };
  const std::string a = RunPod("uuid-a", {{"vmlet.io/vmspec", "fixed"}});
  const std::string b = RunPod("uuid-b", {{"vmlet.io/vmspec", "fixed"}});
  std::string first;
  grpc::Status status = create(a, 0, &first);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_THAT(Virsh({"domname", kUuid}), HasSubstr(first.substr(0, 8)));

  // While pod a's VM holds the UUID (created: QEMU is up, paused), pod b
  // cannot have it.
  std::string second;
  status = create(b, 0, &second);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr(kUuid));
  EXPECT_THAT(status.error_message(), HasSubstr(first));

  // Once that VM has run and exited, the pod's next VM takes the UUID over.
  {
    grpc::ClientContext context;
    v1::StartContainerRequest start;
    start.set_container_id(first);
    v1::StartContainerResponse started;
    ASSERT_TRUE(vmletd_->runtime().StartContainer(&context, start, &started).ok());
  }
  {
    grpc::ClientContext context;
    v1::StopContainerRequest stop;
    stop.set_container_id(first);
    v1::StopContainerResponse stopped;
    ASSERT_TRUE(vmletd_->runtime().StopContainer(&context, stop, &stopped).ok());
  }
  std::string next;
  status = create(a, 1, &next);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_THAT(Virsh({"domname", kUuid}), HasSubstr(next.substr(0, 8)));
  // Removing the exited VM leaves its successor alone.
  {
    grpc::ClientContext context;
    v1::RemoveContainerRequest remove;
    remove.set_container_id(first);
    v1::RemoveContainerResponse removed;
    ASSERT_TRUE(vmletd_->runtime().RemoveContainer(&context, remove, &removed).ok());
  }
  EXPECT_THAT(Virsh({"domname", kUuid}), HasSubstr(next.substr(0, 8)));
}

TEST_F(VmSpecTest, ABadAnnotationOrAMissingSpecFailsWithAClearError) {
  const std::string sandbox = RunPod("bad", {});
  v1::CreateContainerRequest create;
  create.set_pod_sandbox_id(sandbox);
  v1::ContainerConfig* config = create.mutable_config();
  config->mutable_metadata()->set_name("vm");
  config->mutable_image()->set_image(kImage);
  (*config->mutable_annotations())["vmlet.io/vcpus"] = "many";
  v1::CreateContainerResponse created;
  {
    grpc::ClientContext context;
    grpc::Status status = vmletd_->runtime().CreateContainer(&context, create, &created);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(status.error_message(), HasSubstr("vmlet.io/vcpus"));
    EXPECT_THAT(status.error_message(), HasSubstr("many"));
  }
  // A pod bound to a spec that is not there (yet): the kubelet retries.
  create.set_pod_sandbox_id(RunPod("unbound", {{"vmlet.io/vmspec", "absent"}}));
  config->mutable_annotations()->clear();
  {
    grpc::ClientContext context;
    grpc::Status status = vmletd_->runtime().CreateContainer(&context, create, &created);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
    EXPECT_THAT(status.error_message(), HasSubstr("absent"));
  }
  // Nothing was left behind.
  grpc::ClientContext context;
  v1::ListContainersResponse listed;
  ASSERT_TRUE(vmletd_->runtime().ListContainers(&context, {}, &listed).ok());
  EXPECT_EQ(listed.containers_size(), 0);
  EXPECT_THAT(Virsh({"list", "--all", "--name"}), Not(HasSubstr(namespace_)));
}

}  // namespace
}  // namespace vmlet::e2e

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  if (int prepared = vmlet::e2e::PrepareTestGuest(); prepared != 0) return prepared;
  absl::Status laid_out =
      vmlet::e2e::MakeGuestLayout(vmlet::e2e::Layout(), "console=ttyS0 quiet panic=-1");
  if (!laid_out.ok()) {
    std::fprintf(stderr, "laying out the guest image: %s\n", laid_out.ToString().c_str());
    return 1;
  }
  return RUN_ALL_TESTS();
}
