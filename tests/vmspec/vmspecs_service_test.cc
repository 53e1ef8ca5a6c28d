// The VmSpecs service over its real unix socket (PeerAuthServer), with a
// CriService on the fake VM driver: apply, get, list, delete, validate,
// render, status and pending restarts, persistence across a restart of the
// service, and the access control (a caller outside the group may read but
// not change; a caller without access to the socket cannot connect).
#include "vmspec/vmspecs_service.h"

#include <fcntl.h>
#include <grp.h>
#include <grpcpp/create_channel_posix.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "annotations/annotations.h"
#include "base/file_util.h"
#include "base/scope_guard.h"
#include "base/str_util.h"
#include "tests/cri/cri_test_util.h"
#include "tests/cri/fake_pod_network.h"
#include "vmdriver/fake_vm_driver.h"
#include "vmspec/peer_auth.h"
#include "vmspec/spec_store.h"

namespace vmlet::vmspec {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

v1::VmSpec Spec(const std::string& name, uint32_t vcpus) {
  v1::VmSpec spec;
  spec.mutable_metadata()->set_namespace_("default");
  spec.mutable_metadata()->set_name(name);
  spec.mutable_spec()->mutable_cpu()->set_count(vcpus);
  return spec;
}

std::unique_ptr<grpc::ClientContext> Context() {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  return context;
}

// Everything vmletd puts behind the VM-spec socket, on a temporary
// directory; Stop() and Start() again is a restart of vmletd.
class VmSpecsServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Others must reach the socket through the directory (the socket's own
    // mode is what is under test).
    ASSERT_EQ(::chmod(tmp_.path().c_str(), 0711), 0);
    Start();
  }

  void TearDown() override { Stop(); }

  std::string socket_path() const { return tmp_.path() + "/vmspec.sock"; }

  void Start() {
    absl::StatusOr<std::unique_ptr<SpecStore>> store =
        SpecStore::Open({.dir = tmp_.path() + "/state/vmspecs"});
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    driver_ = std::make_unique<vmdriver::FakeVmDriver>(tmp_.path() + "/fake-vms");
    ASSERT_TRUE(driver_->Load().ok());
    const std::string image_dir = tmp_.path() + "/images/tiny";
    ASSERT_TRUE(MakeDirs(image_dir + "/boot").ok());
    ASSERT_TRUE(WriteFileAtomically(image_dir + "/boot/vmlinuz", "not a kernel", 0644).ok());
    SpecStore* store_ptr = store_.get();
    cri_ = std::make_unique<cri::CriService>(
        cri::CriOptions{
            .state_dir = tmp_.path() + "/state",
            .run_dir = tmp_.path() + "/run",
            .stats_interval = absl::ZeroDuration(),
            .local_images = {{testing::kTestImage, image_dir}},
            .find_vmspec = [store_ptr](std::string_view ns,
                                       std::string_view name) { return store_ptr->Get(ns, name); }},
        driver_.get(), &network_);
    absl::Status init = cri_->Init();
    ASSERT_TRUE(init.ok()) << init;

    access_ = std::make_unique<PeerAccess>(AccessGroup{});  // root's group
    service_ = std::make_unique<VmSpecsService>(store_.get(), cri_.get());
    read_only_service_ = std::make_unique<VmSpecsService>(store_.get(), cri_.get(), access_.get());
    denied_images_ = std::make_unique<DeniedImagesService>(access_.get());
    denied_console_ = std::make_unique<DeniedConsoleService>(access_.get());
    absl::StatusOr<std::unique_ptr<PeerAuthServer>> server = PeerAuthServer::Start({
        .socket_path = socket_path(),
        .access = access_.get(),
        .services = {service_.get()},
        .read_only_services = {read_only_service_.get(), denied_images_.get(),
                               denied_console_.get()},
    });
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    channel_ = grpc::CreateChannel("unix:" + socket_path(), grpc::InsecureChannelCredentials());
    stub_ = v1::VmSpecs::NewStub(channel_);
  }

  void Stop() {
    stub_.reset();
    channel_.reset();
    if (server_ != nullptr) server_->Shutdown(std::chrono::system_clock::now());
    server_.reset();
    if (cri_ != nullptr) cri_->Shutdown();
    cri_.reset();
    driver_.reset();
    store_.reset();
  }

  absl::StatusOr<v1::ApplyResponse> Apply(const v1::VmSpec& spec) {
    v1::ApplyRequest request;
    *request.mutable_vm_spec() = spec;
    v1::ApplyResponse response;
    grpc::Status status = stub_->Apply(Context().get(), request, &response);
    if (!status.ok()) {
      return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                          status.error_message());
    }
    return response;
  }

  grpc::Status Get(const std::string& name, v1::GetResponse* response) {
    v1::GetRequest request;
    request.set_namespace_("default");
    request.set_name(name);
    return stub_->Get(Context().get(), request, response);
  }

  // A pod bound to spec `vmspec`, with its VM created and started.
  std::string RunPodWithSpec(const std::string& name, const std::string& vmspec) {
    runtime::v1::RunPodSandboxRequest run;
    *run.mutable_config() = testing::SandboxConfig(name);
    (*run.mutable_config()->mutable_annotations())[std::string(annotations::kVmSpec)] = vmspec;
    runtime::v1::RunPodSandboxResponse ran;
    absl::Status status = cri_->RunPodSandbox(run, &ran);
    EXPECT_TRUE(status.ok()) << status;
    runtime::v1::CreateContainerRequest create;
    create.set_pod_sandbox_id(ran.pod_sandbox_id());
    *create.mutable_config() = testing::ContainerConfig("vm");
    *create.mutable_sandbox_config() = run.config();
    runtime::v1::CreateContainerResponse created;
    status = cri_->CreateContainer(create, &created);
    EXPECT_TRUE(status.ok()) << status;
    runtime::v1::StartContainerRequest start;
    start.set_container_id(created.container_id());
    runtime::v1::StartContainerResponse started;
    status = cri_->StartContainer(start, &started);
    EXPECT_TRUE(status.ok()) << status;
    return ran.pod_sandbox_id();
  }

  testing::TempDir tmp_;
  testing::FakePodNetwork network_;
  std::unique_ptr<SpecStore> store_;
  std::unique_ptr<vmdriver::FakeVmDriver> driver_;
  std::unique_ptr<cri::CriService> cri_;
  std::unique_ptr<PeerAccess> access_;
  std::unique_ptr<VmSpecsService> service_;
  std::unique_ptr<VmSpecsService> read_only_service_;
  std::unique_ptr<DeniedImagesService> denied_images_;
  std::unique_ptr<DeniedConsoleService> denied_console_;
  std::unique_ptr<PeerAuthServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::VmSpecs::Stub> stub_;
};

TEST_F(VmSpecsServiceTest, AppliesGetsListsAndDeletesSpecs) {
  absl::StatusOr<v1::ApplyResponse> applied = Apply(Spec("web", 2));
  ASSERT_TRUE(applied.ok()) << applied.status();
  EXPECT_EQ(applied->vm_spec().metadata().generation(), 1);
  EXPECT_EQ(applied->vm_spec().metadata().source(), "api");
  EXPECT_THAT(applied->pending_restart(), IsEmpty());
  ASSERT_TRUE(Apply(Spec("db", 4)).ok());

  v1::GetResponse got;
  ASSERT_TRUE(Get("web", &got).ok());
  EXPECT_EQ(got.vm_spec().SerializeAsString(), applied->vm_spec().SerializeAsString());

  v1::ListRequest list_request;
  v1::ListResponse listed;
  ASSERT_TRUE(stub_->List(Context().get(), list_request, &listed).ok());
  std::vector<std::string> names;
  for (const v1::VmSpec& spec : listed.vm_specs()) names.push_back(spec.metadata().name());
  EXPECT_THAT(names, ElementsAre("db", "web"));
  list_request.set_namespace_("prod");
  ASSERT_TRUE(stub_->List(Context().get(), list_request, &listed).ok());
  EXPECT_THAT(listed.vm_specs(), IsEmpty());

  v1::DeleteRequest delete_request;
  delete_request.set_namespace_("default");
  delete_request.set_name("web");
  v1::DeleteResponse deleted;
  ASSERT_TRUE(stub_->Delete(Context().get(), delete_request, &deleted).ok());
  // Again: a missing spec is deleted already.
  ASSERT_TRUE(stub_->Delete(Context().get(), delete_request, &deleted).ok());
  grpc::Status status = Get("web", &got);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(status.error_message(), HasSubstr("default/web"));
}

TEST_F(VmSpecsServiceTest, ValidatesWithoutStoringAndRefusesBadSpecs) {
  v1::ValidateRequest request;
  *request.mutable_vm_spec() = Spec("web", 2);
  v1::ValidateResponse response;
  EXPECT_TRUE(stub_->Validate(Context().get(), request, &response).ok());
  v1::GetResponse got;
  EXPECT_EQ(Get("web", &got).error_code(), grpc::StatusCode::NOT_FOUND);

  request.mutable_vm_spec()->mutable_spec()->mutable_firmware()->set_type("coreboot");
  grpc::Status status = stub_->Validate(Context().get(), request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("spec.firmware.type"));

  absl::StatusOr<v1::ApplyResponse> applied = Apply(request.vm_spec());
  EXPECT_EQ(applied.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(applied.status().message(), HasSubstr("spec.firmware.type"));
  EXPECT_EQ(Apply(v1::VmSpec()).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(VmSpecsServiceTest, RendersASpecForAPlaceholderPod) {
  v1::RenderRequest request;
  *request.mutable_vm_spec() = Spec("web", 3);
  request.set_pod_namespace("default");
  request.set_pod_name("nobody");
  v1::RenderResponse response;
  grpc::Status status = stub_->Render(Context().get(), request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  // The fake driver's rendering names the VM's size (the libvirt driver's
  // XML has its own golden tests).
  EXPECT_THAT(response.domain_xml(), HasSubstr("3 vCPUs"));

  request.mutable_vm_spec()->mutable_spec()->mutable_cpu()->set_count(100000);
  EXPECT_EQ(stub_->Render(Context().get(), request, &response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(VmSpecsServiceTest, ListsPodsPendingARestartAndTheirStatus) {
  ASSERT_TRUE(Apply(Spec("web", 2)).ok());
  const std::string pod = RunPodWithSpec("web-0", "web");

  v1::GetVmStatusRequest status_request;
  status_request.set_pod_namespace("default");
  status_request.set_pod_name("web-0");
  v1::VmStatus vm;
  grpc::Status status = stub_->GetVmStatus(Context().get(), status_request, &vm);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(vm.pod_sandbox_id(), pod);
  EXPECT_EQ(vm.state(), "running");
  EXPECT_EQ(vm.vmspec_name(), "web");
  EXPECT_EQ(vm.vmspec_generation(), 1);
  EXPECT_EQ(vm.vcpus(), 2u);
  EXPECT_FALSE(vm.spec_pending());

  // The same spec again changes nothing; a new one waits for the next start.
  absl::StatusOr<v1::ApplyResponse> same = Apply(Spec("web", 2));
  ASSERT_TRUE(same.ok());
  EXPECT_THAT(same->pending_restart(), IsEmpty());
  absl::StatusOr<v1::ApplyResponse> bigger = Apply(Spec("web", 4));
  ASSERT_TRUE(bigger.ok()) << bigger.status();
  EXPECT_EQ(bigger->vm_spec().metadata().generation(), 2);
  EXPECT_THAT(bigger->pending_restart(), ElementsAre(pod));
  ASSERT_TRUE(stub_->GetVmStatus(Context().get(), status_request, &vm).ok());
  EXPECT_EQ(vm.vmspec_generation(), 1);
  EXPECT_EQ(vm.vmspec_current_generation(), 2);
  EXPECT_TRUE(vm.spec_pending());

  status_request.set_pod_name("nobody");
  EXPECT_EQ(stub_->GetVmStatus(Context().get(), status_request, &vm).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(VmSpecsServiceTest, KeepsSpecsAcrossARestart) {
  ASSERT_TRUE(Apply(Spec("web", 2)).ok());
  ASSERT_TRUE(Apply(Spec("web", 4)).ok());
  Stop();
  struct stat st;
  EXPECT_NE(::stat(socket_path().c_str(), &st), 0) << "the socket outlived the server";
  Start();
  v1::GetResponse got;
  ASSERT_TRUE(Get("web", &got).ok());
  EXPECT_EQ(got.vm_spec().metadata().generation(), 2);
  EXPECT_EQ(got.vm_spec().spec().cpu().count(), 4u);
}

// ---- access control ----

constexpr uid_t kNobody = 65534;

// In a forked child: becomes uid/gid 65534 with no supplementary groups,
// keeping CAP_DAC_OVERRIDE when `keep_dac_override`, connects to `path` and
// sends the connection over `channel`. Exits 0, or errno of what failed
// (connect's, 100 + errno for the others). Only system calls: the parent
// has threads.
[[noreturn]] void ConnectAsNobody(const std::string& path, int channel, bool keep_dac_override) {
  if (::prctl(PR_SET_KEEPCAPS, 1) != 0 || ::setgroups(0, nullptr) != 0 || ::setgid(kNobody) != 0 ||
      ::setuid(kNobody) != 0) {
    ::_exit(100 + errno);
  }
  __user_cap_header_struct header{.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
  __user_cap_data_struct data[2] = {};
  if (keep_dac_override) {
    data[0].effective = data[0].permitted = 1u << CAP_DAC_OVERRIDE;
  }
  if (::syscall(SYS_capset, &header, data) != 0) ::_exit(100 + errno);
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) ::_exit(100 + errno);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size());
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) ::_exit(errno);
  char byte = 0;
  iovec iov{.iov_base = &byte, .iov_len = 1};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr message{};
  message.msg_iov = &iov;
  message.msg_iovlen = 1;
  message.msg_control = control;
  message.msg_controllen = sizeof(control);
  cmsghdr* cmsg = CMSG_FIRSTHDR(&message);
  cmsg->cmsg_level = SOL_SOCKET;
  cmsg->cmsg_type = SCM_RIGHTS;
  cmsg->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
  if (::sendmsg(channel, &message, 0) != 1) ::_exit(100 + errno);
  ::_exit(0);
}

// Runs ConnectAsNobody in a child; its exit code, and in `*fd` the
// connection it made (whose peer credentials stay the child's), or -1.
int ConnectedAsNobody(const std::string& path, bool keep_dac_override, int* fd) {
  *fd = -1;
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) return -1;
  ScopeGuard close_pair([&pair] {
    ::close(pair[0]);
    ::close(pair[1]);
  });
  const pid_t pid = ::fork();
  if (pid < 0) return -1;
  if (pid == 0) ConnectAsNobody(path, pair[1], keep_dac_override);
  int wait_status = 0;
  while (::waitpid(pid, &wait_status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(wait_status)) return -1;
  if (WEXITSTATUS(wait_status) != 0) return WEXITSTATUS(wait_status);
  char byte;
  iovec iov{.iov_base = &byte, .iov_len = 1};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr message{};
  message.msg_iov = &iov;
  message.msg_iovlen = 1;
  message.msg_control = control;
  message.msg_controllen = sizeof(control);
  if (::recvmsg(pair[0], &message, MSG_CMSG_CLOEXEC) != 1) return -1;
  cmsghdr* cmsg = CMSG_FIRSTHDR(&message);
  if (cmsg == nullptr || cmsg->cmsg_type != SCM_RIGHTS) return -1;
  std::memcpy(fd, CMSG_DATA(cmsg), sizeof(int));
  return 0;
}

TEST_F(VmSpecsServiceTest, LetsACallerOutsideTheGroupReadButNotChange) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to become another user";
  ASSERT_TRUE(Apply(Spec("web", 2)).ok());
  struct stat st;
  ASSERT_EQ(::stat(socket_path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0660u);
  EXPECT_EQ(st.st_gid, 0u);

  int fd = -1;
  ASSERT_EQ(ConnectedAsNobody(socket_path(), /*keep_dac_override=*/true, &fd), 0);
  // gRPC owns `fd` from here.
  std::shared_ptr<grpc::Channel> channel = grpc::CreateInsecureChannelFromFd("vmspec.sock", fd);
  std::unique_ptr<v1::VmSpecs::Stub> stub = v1::VmSpecs::NewStub(channel);

  v1::GetRequest get;
  get.set_namespace_("default");
  get.set_name("web");
  v1::GetResponse got;
  grpc::Status status = stub->Get(Context().get(), get, &got);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(got.vm_spec().spec().cpu().count(), 2u);

  v1::ApplyRequest apply;
  *apply.mutable_vm_spec() = Spec("web", 8);
  v1::ApplyResponse applied;
  status = stub->Apply(Context().get(), apply, &applied);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(status.error_message(), HasSubstr("uid 65534"));
  EXPECT_THAT(status.error_message(), HasSubstr("\"root\""));
  v1::DeleteRequest remove;
  remove.set_namespace_("default");
  remove.set_name("web");
  v1::DeleteResponse removed;
  EXPECT_EQ(stub->Delete(Context().get(), remove, &removed).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  // Nor may it pull images.
  std::unique_ptr<v1::Images::Stub> images = v1::Images::NewStub(channel);
  v1::PullImageRequest pull;
  pull.set_image("example.com/x:1");
  auto context = Context();
  auto reader = images->PullImage(context.get(), pull);
  v1::PullImageProgress progress;
  while (reader->Read(&progress)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::PERMISSION_DENIED);

  // Nothing changed.
  ASSERT_TRUE(Get("web", &got).ok());
  EXPECT_EQ(got.vm_spec().spec().cpu().count(), 2u);
  EXPECT_EQ(got.vm_spec().metadata().generation(), 1);
}

TEST_F(VmSpecsServiceTest, ACallerWithoutAccessToTheSocketCannotConnect) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to become another user";
  int fd = -1;
  EXPECT_EQ(ConnectedAsNobody(socket_path(), /*keep_dac_override=*/false, &fd), EACCES);
  EXPECT_EQ(fd, -1);
}

TEST(ResolveAccessGroupTest, NamesTheKeyForAnUnknownGroup) {
  absl::StatusOr<AccessGroup> root = ResolveAccessGroup("");
  ASSERT_TRUE(root.ok());
  EXPECT_EQ(root->gid, 0u);
  absl::StatusOr<AccessGroup> named = ResolveAccessGroup("root");
  ASSERT_TRUE(named.ok());
  EXPECT_EQ(named->gid, 0u);
  absl::StatusOr<AccessGroup> unknown = ResolveAccessGroup("no-such-group-vmlet");
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(unknown.status().message(), HasSubstr("vmspec_group"));
  EXPECT_THAT(unknown.status().message(), HasSubstr("no-such-group-vmlet"));
}

TEST(PeerAccessTest, LetsRootAndMembersOfTheGroupChange) {
  PeerAccess access(AccessGroup{.gid = 990, .name = "vmlet"});
  EXPECT_TRUE(access.MayChange({.uid = 0, .gid = 0}));
  EXPECT_TRUE(access.MayChange({.uid = 1000, .gid = 990}));
  EXPECT_TRUE(access.MayChange({.uid = 1000, .gid = 1000, .groups = {27, 990}}));
  EXPECT_FALSE(access.MayChange({.uid = 1000, .gid = 1000, .groups = {27}}));
  EXPECT_FALSE(access.MayChange({.uid = 1000, .gid = 0 + 1}));
}

}  // namespace
}  // namespace vmlet::vmspec
