// End-to-end tests against the real thing: vmletd with the libvirt driver,
// libvirtd and QEMU under TCG, booting the tiny test guest that
// tests/guest/build-guest.sh makes from Debian packages. Skipped (exit 77)
// where libvirtd, QEMU or the guest's packages are missing.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/time/clock.h"
#include "base/file_util.h"
#include "base/id.h"
#include "base/status.h"
#include "base/str_util.h"
#include "tests/e2e/test_guest.h"
#include "tests/e2e/vmletd_process.h"

namespace vmlet::e2e {
namespace {

namespace v1 = ::runtime::v1;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr const char* kUri = kLibvirtUri;

// Guest variants, by kernel command line (see build-guest.sh).
struct GuestImage {
  const char* name;
  const char* mode;  // Appended to the command line; empty for the default.
};
constexpr GuestImage kGuests[] = {
    {"vmlet.test/guest:acpi", ""},
    {"vmlet.test/guest:ignore-acpi", "vmlet_test=ignore-acpi"},
    {"vmlet.test/guest:poweroff", "vmlet_test=poweroff:2"},
    {"vmlet.test/guest:ticker", "vmlet_test=ticker"},
};

// The image layout of a guest variant, under the guest directory.
std::string LayoutDir(const GuestImage& guest) {
  return StrCat(GuestDir(), "/layouts/", std::string(guest.name).substr(17));
}

std::string DiskLayoutDir() { return StrCat(GuestDir(), "/layouts/disk"); }
constexpr char kDiskImage[] = "vmlet.test/disk:1";

// Lays out one VM image per variant: the same kernel and initrd (linked),
// each with its own command line.
absl::Status MakeLayouts() {
  for (const GuestImage& guest : kGuests) {
    VMLET_RETURN_IF_ERROR(
        MakeGuestLayout(LayoutDir(guest), StrCat("console=ttyS0 quiet panic=-1 ", guest.mode)));
  }
  // A disk image (empty: the firmware finds nothing to boot, which is
  // enough to run the VM on its overlay).
  const std::string disk_dir = DiskLayoutDir();
  VMLET_RETURN_IF_ERROR(RemoveTree(disk_dir));
  VMLET_RETURN_IF_ERROR(MakeDirs(disk_dir + "/disk", 0755));
  auto created = RunCommand(
      {"/usr/bin/qemu-img", "create", "-q", "-f", "qcow2", disk_dir + "/disk/root.qcow2", "64M"});
  if (!created.ok() || created->code != 0) return absl::InternalError("qemu-img create failed");
  return absl::OkStatus();
}

class LibvirtVmTest : public ::testing::Test {
 protected:
  void SetUp() override {
    namespace_ = StrCat("e2e-", GenerateId().substr(0, 8));
    std::string yaml =
        StrCat("vm_driver: libvirt\nlibvirt_uri: ", kUri, "\naccelerator: tcg\nlocal_images:\n");
    for (const GuestImage& guest : kGuests) {
      StrAppend(&yaml, "  \"", guest.name, "\": ", LayoutDir(guest), "\n");
    }
    StrAppend(&yaml, "  \"", kDiskImage, "\": ", DiskLayoutDir(), "\n");
    vmletd_ = std::make_unique<VmletdProcess>(yaml, /*fake_driver=*/false);
    ASSERT_TRUE(vmletd_->init_status().ok()) << vmletd_->init_status();
    // QEMU runs as libvirt's own user: it must reach the per-VM files.
    ASSERT_EQ(::chmod(vmletd_->dir().c_str(), 0711), 0);
    absl::Status started = vmletd_->Start();
    ASSERT_TRUE(started.ok()) << started << "\n" << vmletd_->Log();
  }

  void TearDown() override {
    if (!vmletd_) return;
    // Remove every pod this test made, then check libvirt and the disk.
    if (vmletd_->running()) {
      absl::Status removed = vmletd_->RemovePodSandboxes(sandboxes_);
      EXPECT_TRUE(removed.ok()) << removed;
    }
    std::string domains = Virsh({"list", "--all", "--name"});
    EXPECT_THAT(domains, Not(HasSubstr(namespace_))) << "a domain of this test is left";
    // Never leave a domain behind, even when the test failed.
    std::istringstream lines(domains);
    for (std::string name; std::getline(lines, name);) {
      if (name.find(namespace_) == std::string::npos) continue;
      Virsh({"destroy", name});
      Virsh({"undefine", name});
    }
    absl::StatusOr<std::vector<std::string>> vm_dirs = ListDirectory(vmletd_->state_dir() + "/vms");
    if (vm_dirs.ok()) {
      EXPECT_THAT(*vm_dirs, ::testing::IsEmpty()) << "an overlay is left";
    }
    if (HasFailure()) std::fprintf(stderr, "vmletd log:\n%s\n", vmletd_->Log().c_str());
  }

  std::string RunPod(const std::string& name) {
    grpc::ClientContext context;
    v1::RunPodSandboxRequest request;
    v1::PodSandboxConfig* config = request.mutable_config();
    config->mutable_metadata()->set_name(name);
    config->mutable_metadata()->set_namespace_(namespace_);
    config->mutable_metadata()->set_uid(GenerateId().substr(0, 16));
    config->set_log_directory(StrCat(vmletd_->dir(), "/logs/", name));
    v1::RunPodSandboxResponse response;
    grpc::Status status = vmletd_->runtime().RunPodSandbox(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    sandboxes_.push_back(response.pod_sandbox_id());
    return response.pod_sandbox_id();
  }

  // Creates and starts the VM of a pod from `image`; its log is LogPath(pod).
  std::string StartVm(const std::string& /*pod*/, const std::string& sandbox, const char* image) {
    return CreateAndStartVm(vmletd_->runtime(), sandbox, image);
  }

  std::string LogPath(const std::string& pod) {
    return StrCat(vmletd_->dir(), "/logs/", pod, "/vm/0.log");
  }

  v1::ContainerStatus Status(const std::string& id) {
    grpc::ClientContext context;
    v1::ContainerStatusRequest request;
    request.set_container_id(id);
    v1::ContainerStatusResponse response;
    grpc::Status status = vmletd_->runtime().ContainerStatus(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.status();
  }

  grpc::Status Stop(const std::string& id, int64_t timeout) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(timeout + 60));
    v1::StopContainerRequest request;
    request.set_container_id(id);
    request.set_timeout(timeout);
    v1::StopContainerResponse response;
    return vmletd_->runtime().StopContainer(&context, request, &response);
  }

  std::unique_ptr<VmletdProcess> vmletd_;
  std::string namespace_;
  std::vector<std::string> sandboxes_;
};

TEST_F(LibvirtVmTest, BootsAVmAndWritesItsConsoleToTheCriLog) {
  std::string sandbox = RunPod("boot");
  std::string id = StartVm("boot", sandbox, kGuests[0].name);
  ASSERT_TRUE(WaitFor([&] {
    return ReadAll(LogPath("boot")).find("VMLET-GUEST-READY") != std::string::npos;
  })) << "no marker in the log:\n"
      << ReadAll(LogPath("boot"));
  EXPECT_EQ(Status(id).state(), v1::CONTAINER_RUNNING);

  // Every line is "<RFC3339Nano> stdout F|P <text>"; the text keeps the
  // guest's bytes (a CR before the newline, escape sequences).
  std::istringstream lines(ReadAll(LogPath("boot")));
  std::regex prefix(R"(^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z stdout [FP] )");
  int count = 0;
  for (std::string line; std::getline(lines, line); ++count) {
    EXPECT_TRUE(std::regex_search(line, prefix)) << line;
  }
  EXPECT_GT(count, 0);
  // An operator sees the pod in virsh.
  EXPECT_THAT(Virsh({"list", "--name"}), HasSubstr(StrCat("vmlet-", namespace_, "-boot-")));
}

TEST_F(LibvirtVmTest, StopContainerPowersTheGuestOffAndRemoveDeletesTheDomain) {
  std::string sandbox = RunPod("stop");
  std::string id = StartVm("stop", sandbox, kGuests[0].name);
  ASSERT_TRUE(WaitFor(
      [&] { return ReadAll(LogPath("stop")).find("VMLET-GUEST-READY") != std::string::npos; }));
  grpc::Status stopped = Stop(id, 60);
  ASSERT_TRUE(stopped.ok()) << stopped.error_message();
  v1::ContainerStatus status = Status(id);
  EXPECT_EQ(status.state(), v1::CONTAINER_EXITED);
  EXPECT_EQ(status.exit_code(), 0);
  EXPECT_EQ(status.reason(), "Completed");
  EXPECT_GT(status.finished_at(), status.started_at());
  EXPECT_TRUE(WaitFor(
      [&] {
        return ReadAll(LogPath("stop")).find("VMLET-GUEST-POWERING-OFF") != std::string::npos;
      },
      absl::Seconds(10)));

  grpc::ClientContext context;
  v1::RemoveContainerRequest remove;
  remove.set_container_id(id);
  v1::RemoveContainerResponse removed;
  ASSERT_TRUE(vmletd_->runtime().RemoveContainer(&context, remove, &removed).ok());
  EXPECT_THAT(Virsh({"list", "--all", "--name"}), Not(HasSubstr(StrCat(namespace_, "-stop-"))));
}

TEST_F(LibvirtVmTest, AGuestThatIgnoresAcpiIsDestroyedAfterTheTimeout) {
  std::string sandbox = RunPod("stubborn");
  std::string id = StartVm("stubborn", sandbox, kGuests[1].name);
  ASSERT_TRUE(WaitFor(
      [&] { return ReadAll(LogPath("stubborn")).find("mode=ignore-acpi") != std::string::npos; }));
  grpc::Status stopped = Stop(id, 2);
  ASSERT_TRUE(stopped.ok()) << stopped.error_message();
  v1::ContainerStatus status = Status(id);
  EXPECT_EQ(status.state(), v1::CONTAINER_EXITED);
  EXPECT_EQ(status.exit_code(), 137);
  EXPECT_EQ(status.reason(), "Killed");
}

TEST_F(LibvirtVmTest, AGuestThatPowersOffByItselfIsCompleted) {
  std::string sandbox = RunPod("done");
  std::string id = StartVm("done", sandbox, kGuests[2].name);
  ASSERT_TRUE(WaitFor([&] { return Status(id).state() == v1::CONTAINER_EXITED; }))
      << ReadAll(LogPath("done"));
  v1::ContainerStatus status = Status(id);
  EXPECT_EQ(status.exit_code(), 0);
  EXPECT_EQ(status.reason(), "Completed");
}

TEST_F(LibvirtVmTest, AVmSurvivesAVmletdCrashAndItsLogContinues) {
  std::string sandbox = RunPod("crash");
  std::string id = StartVm("crash", sandbox, kGuests[3].name);
  ASSERT_TRUE(
      WaitFor([&] { return ReadAll(LogPath("crash")).find("tick 3") != std::string::npos; }));
  ASSERT_TRUE(vmletd_->Kill().ok());
  size_t size_at_kill = ReadAll(LogPath("crash")).size();
  absl::Status restarted = vmletd_->Start();
  ASSERT_TRUE(restarted.ok()) << restarted;
  EXPECT_EQ(Status(id).state(), v1::CONTAINER_RUNNING);
  // The log goes on: ticks printed after the restart reach the same file.
  EXPECT_TRUE(WaitFor([&] { return ReadAll(LogPath("crash")).size() > size_at_kill + 200; },
                      absl::Seconds(60)));
}

// Two vmletds on one libvirtd (two state dirs): each reconciles only its own
// domains, so the second one's start neither adopts nor destroys the
// first one's VM.
TEST_F(LibvirtVmTest, AnotherVmletdOnTheHostLeavesThisOnesVmsAlone) {
  std::string sandbox = RunPod("neighbour");
  std::string id = StartVm("neighbour", sandbox, kGuests[3].name);
  ASSERT_TRUE(
      WaitFor([&] { return ReadAll(LogPath("neighbour")).find("tick 2") != std::string::npos; }));

  VmletdProcess other(StrCat("vm_driver: libvirt\nlibvirt_uri: ", kUri, "\naccelerator: tcg\n"),
                      /*fake_driver=*/false);
  ASSERT_TRUE(other.init_status().ok()) << other.init_status();
  absl::Status started = other.Start();
  ASSERT_TRUE(started.ok()) << started << "\n" << other.Log();
  grpc::ClientContext context;
  v1::ListContainersResponse listed;
  ASSERT_TRUE(other.runtime().ListContainers(&context, {}, &listed).ok());
  EXPECT_EQ(listed.containers_size(), 0) << "the other vmletd adopted this one's VM";
  ASSERT_TRUE(other.Terminate().ok());

  EXPECT_EQ(Status(id).state(), v1::CONTAINER_RUNNING);
  size_t size = ReadAll(LogPath("neighbour")).size();
  EXPECT_TRUE(
      WaitFor([&] { return ReadAll(LogPath("neighbour")).size() > size + 100; }, absl::Seconds(60)))
      << "the guest stopped ticking";
}

TEST_F(LibvirtVmTest, ADiskImageRunsOnItsOwnOverlayAndIsNeverWritten) {
  const std::string image = DiskLayoutDir() + "/disk/root.qcow2";
  const std::string before = ReadAll(image);
  std::string sandbox = RunPod("disk");
  std::string id = StartVm("disk", sandbox, kDiskImage);
  EXPECT_EQ(Status(id).state(), v1::CONTAINER_RUNNING);
  const std::string overlay = StrCat(vmletd_->state_dir(), "/vms/", id, "/root.qcow2");
  auto info = RunCommand({"/usr/bin/qemu-img", "info", "-U", overlay});
  ASSERT_TRUE(info.ok());
  EXPECT_THAT(info->output, HasSubstr(StrCat("backing file: ", image)));
  ASSERT_TRUE(Stop(id, 0).ok());
  grpc::ClientContext context;
  v1::RemoveContainerRequest remove;
  remove.set_container_id(id);
  v1::RemoveContainerResponse removed;
  ASSERT_TRUE(vmletd_->runtime().RemoveContainer(&context, remove, &removed).ok());
  EXPECT_FALSE(ReadFile(overlay).ok()) << "the overlay is left";
  EXPECT_TRUE(ReadAll(image) == before) << "the image was written";
}

// Restarts libvirtd the way this machine runs it (systemd or a plain daemon).
bool RestartLibvirtd() {
  if (::access("/run/systemd/system", F_OK) == 0) {
    auto result = RunCommand({"/bin/systemctl", "restart", "libvirtd"}, absl::Seconds(60));
    return result.ok() && result->code == 0;
  }
  auto killed = RunCommand({"/usr/bin/pkill", "-x", "libvirtd"});
  if (!killed.ok()) return false;
  WaitFor(
      [] {
        return RunCommand({"/usr/bin/pgrep", "-x", "libvirtd"})->code != 0;
      },
      absl::Seconds(30));
  auto started = RunCommand({"/usr/sbin/libvirtd", "-d"});
  return started.ok() && started->code == 0;
}

// Last in the suite: it restarts the machine's libvirtd.
TEST_F(LibvirtVmTest, ZzAVmKeepsRunningAcrossALibvirtdRestartAndEventsResume) {
  std::string sandbox = RunPod("libvirtd");
  std::string id = StartVm("libvirtd", sandbox, kGuests[0].name);
  ASSERT_TRUE(WaitFor(
      [&] { return ReadAll(LogPath("libvirtd")).find("VMLET-GUEST-READY") != std::string::npos; }));
  ASSERT_TRUE(RestartLibvirtd());
  auto runtime_ready = [&] {
    grpc::ClientContext context;
    v1::StatusRequest request;
    v1::StatusResponse response;
    if (!vmletd_->runtime().Status(&context, request, &response).ok()) return false;
    return response.status().conditions_size() > 0 && response.status().conditions(0).status();
  };
  // vmletd reconnects on its own (keepalive / close callback).
  ASSERT_TRUE(WaitFor(runtime_ready, absl::Seconds(60))) << vmletd_->Log();
  EXPECT_THAT(vmletd_->Log(), HasSubstr("closed (reason"));  // It noticed, and came back.
  EXPECT_EQ(Status(id).state(), v1::CONTAINER_RUNNING);
  // Events flow again: a stop is seen and recorded.
  grpc::Status stopped = Stop(id, 60);
  ASSERT_TRUE(stopped.ok()) << stopped.error_message();
  EXPECT_EQ(Status(id).reason(), "Completed");
}

}  // namespace
}  // namespace vmlet::e2e

int main(int argc, char** argv) {
  ::setenv("GRPC_CLIENT_CHANNEL_BACKUP_POLL_INTERVAL_MS", "100", /*overwrite=*/0);
  ::testing::InitGoogleMock(&argc, argv);
  if (int prepared = vmlet::e2e::PrepareTestGuest(); prepared != 0) return prepared;
  if (absl::Status laid_out = vmlet::e2e::MakeLayouts(); !laid_out.ok()) {
    std::fprintf(stderr, "%s\n", std::string(laid_out.message()).c_str());
    return 1;
  }
  return RUN_ALL_TESTS();
}
