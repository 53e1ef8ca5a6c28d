// What a restart of vmletd finds: records reload unchanged, interrupted work
// is undone, and VMs that changed while vmletd was down are reconciled.
#include <string>

#include <gmock/gmock.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include "base/file_util.h"
#include "base/id.h"
#include "base/str_util.h"
#include "cri/store/record_file.h"
#include "tests/cri/cri_test_util.h"

namespace vmlet::cri {
namespace {

using ::google::protobuf::util::MessageDifferencer;
using ::testing::SizeIs;

class RestartTest : public vmlet::testing::CriFixture {
 protected:
  std::string StateDir() const { return dir_.path() + "/state"; }

  v1::ListPodSandboxResponse Sandboxes() {
    v1::ListPodSandboxResponse response;
    EXPECT_TRUE(service_->ListPodSandbox({}, &response).ok());
    return response;
  }
  v1::ListContainersResponse Containers() {
    v1::ListContainersResponse response;
    EXPECT_TRUE(service_->ListContainers({}, &response).ok());
    return response;
  }
  void Start(const std::string& id) {
    v1::StartContainerRequest request;
    request.set_container_id(id);
    v1::StartContainerResponse response;
    ASSERT_TRUE(service_->StartContainer(request, &response).ok());
  }
};

TEST_F(RestartTest, EveryRecordComesBackUnchanged) {
  std::string ready = RunSandbox("ready");
  std::string running = CreateContainer(ready, "vm");
  Start(running);
  std::string other = RunSandbox("other");
  std::string created = CreateContainer(other, "vm");
  std::string stopped = RunSandbox("stopped");
  v1::StopPodSandboxRequest stop;
  stop.set_pod_sandbox_id(stopped);
  v1::StopPodSandboxResponse stop_response;
  ASSERT_TRUE(service_->StopPodSandbox(stop, &stop_response).ok());

  v1::ListPodSandboxResponse sandboxes = Sandboxes();
  v1::ListContainersResponse containers = Containers();
  v1::PodSandboxStatus ready_status = SandboxStatus(ready);
  v1::ContainerStatus running_status = ContainerStatus(running);
  v1::ContainerStatus created_status = ContainerStatus(created);

  Restart();

  EXPECT_TRUE(MessageDifferencer::Equals(Sandboxes(), sandboxes));
  EXPECT_TRUE(MessageDifferencer::Equals(Containers(), containers));
  EXPECT_TRUE(MessageDifferencer::Equals(SandboxStatus(ready), ready_status));
  EXPECT_TRUE(MessageDifferencer::Equals(ContainerStatus(running), running_status));
  EXPECT_TRUE(MessageDifferencer::Equals(ContainerStatus(created), created_status));
  // Names are reserved again: a retry is still recognised after the restart.
  EXPECT_EQ(RunSandbox("ready"), ready);
  EXPECT_EQ(CreateContainer(other, "vm"), created);
}

TEST_F(RestartTest, AnInterruptedRunPodSandboxIsUndone) {
  state::v1::SandboxRecord record;
  record.set_id(GenerateId());
  *record.mutable_config() = vmlet::testing::SandboxConfig("web");
  record.set_state(state::v1::SANDBOX_STATE_CREATING);
  record.set_created_at(NowNanos());
  service_.reset();
  ASSERT_TRUE(
      store::WriteRecordFile(StrCat(StateDir(), "/sandboxes/", record.id(), ".json"), record).ok());
  ASSERT_TRUE(MakeDirs(StrCat(StateDir(), "/pods/", record.id())).ok());

  Restart();

  EXPECT_THAT(Sandboxes().items(), SizeIs(0));
  EXPECT_EQ(ReadFile(StrCat(StateDir(), "/sandboxes/", record.id(), ".json")).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(ListDirectory(StrCat(StateDir(), "/pods/", record.id())).status().code(),
            absl::StatusCode::kNotFound);
  // The kubelet's retry of the interrupted call succeeds.
  EXPECT_NE(RunSandbox("web"), "");
}

TEST_F(RestartTest, ASandboxWhoseNetworkIsGoneIsReportedNotReady) {
  std::string id = RunSandbox("web");
  network_.LoseNamespaces();  // As after a reboot of the node.
  Restart();
  v1::PodSandboxStatus status = SandboxStatus(id);
  EXPECT_EQ(status.state(), v1::SANDBOX_NOTREADY);
  EXPECT_THAT(network_.Active(), ::testing::IsEmpty());
}

TEST_F(RestartTest, AFailingTeardownDoesNotKeepVmletdFromStarting) {
  std::string ready = RunSandbox("web");
  // An interrupted RunPodSandbox whose network cannot be torn down now.
  state::v1::SandboxRecord creating;
  creating.set_id(GenerateId());
  *creating.mutable_config() = vmlet::testing::SandboxConfig("db");
  creating.set_state(state::v1::SANDBOX_STATE_CREATING);
  creating.mutable_network()->set_netns_path("/fake/netns/" + creating.id());
  service_.reset();
  ASSERT_TRUE(
      store::WriteRecordFile(StrCat(StateDir(), "/sandboxes/", creating.id(), ".json"), creating)
          .ok());
  network_.LoseNamespaces();
  network_.FailTeardown(absl::InternalError("CNI plugin \"bridge\" failed DEL: busy"));

  Restart();  // Init succeeds.

  EXPECT_EQ(SandboxStatus(ready).state(), v1::SANDBOX_NOTREADY);
  // Kept, visible and not ready, so that the kubelet removes it (and the
  // teardown is tried again then).
  EXPECT_EQ(SandboxStatus(creating.id()).state(), v1::SANDBOX_NOTREADY);
  network_.FailTeardown(absl::OkStatus());
  v1::RemovePodSandboxRequest remove;
  remove.set_pod_sandbox_id(creating.id());
  v1::RemovePodSandboxResponse removed;
  EXPECT_TRUE(service_->RemovePodSandbox(remove, &removed).ok());
}

TEST_F(RestartTest, AReadySandboxGetsItsNetworkBack) {
  std::string id = RunSandbox("web");
  Restart();
  EXPECT_EQ(SandboxStatus(id).state(), v1::SANDBOX_READY);
  EXPECT_EQ(SandboxStatus(id).network().ip(), "10.88.0.1");
  EXPECT_THAT(network_.Active(), ::testing::ElementsAre(id));
}

TEST_F(RestartTest, AnInterruptedCreateContainerIsUndoneWithItsVm) {
  std::string sandbox = RunSandbox("web");
  state::v1::ContainerRecord record;
  record.set_id(GenerateId());
  record.set_sandbox_id(sandbox);
  *record.mutable_config() = vmlet::testing::ContainerConfig("vm");
  record.set_state(state::v1::CONTAINER_STATE_CREATING);
  ASSERT_TRUE(
      store::WriteRecordFile(StrCat(StateDir(), "/containers/", record.id(), ".json"), record)
          .ok());
  vmdriver::VmConfig vm;
  vm.id = record.id();
  vm.sandbox_id = sandbox;
  ASSERT_TRUE(driver_->Create(vm).ok());

  Restart();

  EXPECT_THAT(Containers().containers(), SizeIs(0));
  EXPECT_EQ(driver_->Inspect(record.id()).status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(CreateContainer(sandbox, "vm"), "");
}

TEST_F(RestartTest, AnInterruptedCreateContainerLeavesNoSeedBehind) {
  // The VM's own cloud-init seed is written before the VM is defined; a
  // crash after that left it in the sandbox's directory for good.
  std::string sandbox = RunSandbox("web");
  state::v1::ContainerRecord record;
  record.set_id(GenerateId());
  record.set_sandbox_id(sandbox);
  *record.mutable_config() = vmlet::testing::ContainerConfig("vm");
  record.set_state(state::v1::CONTAINER_STATE_CREATING);
  const std::string seed = StrCat(StateDir(), "/pods/", sandbox, "/seed-", record.id(), ".iso");
  record.set_seed_path(seed);
  service_.reset();
  ASSERT_TRUE(
      store::WriteRecordFile(StrCat(StateDir(), "/containers/", record.id(), ".json"), record)
          .ok());
  ASSERT_TRUE(WriteFileAtomically(seed, "a seed").ok());

  Restart();

  EXPECT_THAT(Containers().containers(), SizeIs(0));
  EXPECT_EQ(ReadFile(seed).status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(ReadFile(StrCat(StateDir(), "/pods/", sandbox, "/seed.iso")).ok());
}

TEST_F(RestartTest, AVmStartedJustBeforeACrashIsRunningWithAStartTime) {
  // StartContainer resumed the VM, then vmletd died before recording it;
  // a restarted driver adopts the running VM without knowing its start.
  std::string id = CreateContainer(RunSandbox("web"), "vm");
  service_.reset();
  ASSERT_TRUE(driver_->Start(id).ok());
  const std::string persisted = StrCat(dir_.path(), "/fake-vms/", id);
  absl::StatusOr<std::string> vm = ReadFile(persisted);
  ASSERT_TRUE(vm.ok()) << vm.status();
  const size_t at = vm->find("started_at=");
  ASSERT_NE(at, std::string::npos);
  vm->replace(at, vm->find('\n', at) - at, "started_at=0");
  ASSERT_TRUE(WriteFileAtomically(persisted, *vm).ok());
  const int64_t before_restart = NowNanos();

  Restart();

  v1::ContainerStatus status = ContainerStatus(id);
  EXPECT_EQ(status.state(), v1::CONTAINER_RUNNING);
  EXPECT_GE(status.started_at(), before_restart);
}

TEST_F(RestartTest, AVmThatExitedWhileVmletdWasDownIsRecordedAsExited) {
  std::string id = CreateContainer(RunSandbox("web"), "vm");
  Start(id);
  service_.reset();  // vmletd is down; the guest powers off meanwhile.
  ASSERT_TRUE(driver_->SimulateExit(id, 0, "Completed").ok());

  Restart();

  v1::ContainerStatus status = ContainerStatus(id);
  EXPECT_EQ(status.state(), v1::CONTAINER_EXITED);
  EXPECT_EQ(status.reason(), "Completed");
}

TEST_F(RestartTest, AVmThatVanishedWhileVmletdWasDownIsRecordedAsUnknown) {
  std::string id = CreateContainer(RunSandbox("web"), "vm");
  Start(id);
  service_.reset();
  ASSERT_TRUE(driver_->Remove(id).ok());

  Restart();

  v1::ContainerStatus status = ContainerStatus(id);
  EXPECT_EQ(status.state(), v1::CONTAINER_EXITED);
  EXPECT_EQ(status.reason(), "Unknown");
  EXPECT_EQ(status.exit_code(), 255);
  EXPECT_NE(status.exit_code(), 0);
}

TEST_F(RestartTest, ACorruptRecordIsMovedAsideAndTheRestLoads) {
  std::string good = RunSandbox("good");
  std::string bad_id = GenerateId();
  service_.reset();
  std::string bad_path = StrCat(StateDir(), "/sandboxes/", bad_id, ".json");
  ASSERT_TRUE(WriteFileAtomically(bad_path, "{ this is not json").ok());

  Restart();

  ASSERT_THAT(Sandboxes().items(), SizeIs(1));
  EXPECT_EQ(Sandboxes().items(0).id(), good);
  EXPECT_TRUE(ReadFile(bad_path + ".corrupt").ok());  // Kept for a human.
}

}  // namespace
}  // namespace vmlet::cri
