#include "tests/e2e/test_guest.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include <gtest/gtest.h>

#include "base/file_util.h"
#include "base/status.h"
#include "base/str_util.h"
#include "tests/e2e/vmletd_process.h"

namespace vmlet::e2e {
namespace {

std::string& MutableGuestDir() {
  static auto* dir = new std::string();
  return *dir;
}

}  // namespace

int PrepareTestGuest(const std::vector<std::string>& tools) {
  const char* builder = std::getenv("VMLET_BUILD_GUEST");
  const char* guest_dir = std::getenv("VMLET_GUEST_DIR");
  if (VmletdBinary().empty() || builder == nullptr || guest_dir == nullptr) {
    std::fprintf(stderr, "VMLETD, VMLET_BUILD_GUEST or VMLET_GUEST_DIR unset; skipping\n");
    return 77;
  }
  std::vector<std::string> needed = {"/usr/bin/qemu-system-x86_64", kVirsh};
  needed.insert(needed.end(), tools.begin(), tools.end());
  for (const std::string& tool : needed) {
    if (::access(tool.c_str(), X_OK) != 0) {
      std::fprintf(stderr, "%s is not installed; skipping (exit 77)\n", tool.c_str());
      return 77;
    }
  }
  auto version = RunCommand({kVirsh, "-c", kLibvirtUri, "version"});
  if (!version.ok() || version->code != 0) {
    std::fprintf(stderr, "libvirtd is not reachable at %s; skipping (exit 77)\n", kLibvirtUri);
    return 77;
  }
  auto built = RunCommand({"/bin/sh", builder, guest_dir}, absl::Minutes(2));
  if (!built.ok() || built->code == 77) {
    std::fprintf(stderr, "the test guest cannot be built here; skipping (exit 77)\n");
    return 77;
  }
  if (built->code != 0) {
    std::fprintf(stderr, "building the test guest failed (exit %d)\n", built->code);
    return 1;
  }
  MutableGuestDir() = guest_dir;
  return 0;
}

const std::string& GuestDir() { return MutableGuestDir(); }

absl::Status MakeGuestLayout(const std::string& dir, const std::string& cmdline) {
  VMLET_RETURN_IF_ERROR(RemoveTree(dir));
  VMLET_RETURN_IF_ERROR(MakeDirs(dir + "/boot", 0755));
  // Hard links: image layouts must be regular files (symlinks are refused).
  if (::link((GuestDir() + "/vmlinuz").c_str(), (dir + "/boot/vmlinuz").c_str()) != 0 ||
      ::link((GuestDir() + "/initrd.gz").c_str(), (dir + "/boot/initrd").c_str()) != 0) {
    return ErrnoToStatus(errno, StrCat("linking the guest into ", dir));
  }
  return WriteFileAtomically(dir + "/boot/cmdline", cmdline, 0644);
}

std::string CreateAndStartVm(runtime::v1::RuntimeService::Stub& runtime,
                             const std::string& sandbox_id, const std::string& image) {
  grpc::ClientContext context;
  runtime::v1::CreateContainerRequest request;
  request.set_pod_sandbox_id(sandbox_id);
  request.mutable_config()->mutable_metadata()->set_name("vm");
  request.mutable_config()->mutable_image()->set_image(image);
  request.mutable_config()->set_log_path("vm/0.log");
  request.mutable_config()->mutable_linux()->mutable_resources()->set_memory_limit_in_bytes(256
                                                                                            << 20);
  runtime::v1::CreateContainerResponse created;
  grpc::Status status = runtime.CreateContainer(&context, request, &created);
  EXPECT_TRUE(status.ok()) << status.error_message();
  grpc::ClientContext start_context;
  runtime::v1::StartContainerRequest start;
  start.set_container_id(created.container_id());
  runtime::v1::StartContainerResponse started;
  status = runtime.StartContainer(&start_context, start, &started);
  EXPECT_TRUE(status.ok()) << status.error_message();
  return created.container_id();
}

std::string CreateAndStartVm(runtime::v1::RuntimeService::Stub& runtime,
                             const std::string& sandbox_id, const std::string& image,
                             const runtime::v1::LinuxContainerResources& resources) {
  grpc::ClientContext context;
  runtime::v1::CreateContainerRequest request;
  request.set_pod_sandbox_id(sandbox_id);
  request.mutable_config()->mutable_metadata()->set_name("vm");
  request.mutable_config()->mutable_image()->set_image(image);
  request.mutable_config()->set_log_path("vm/0.log");
  *request.mutable_config()->mutable_linux()->mutable_resources() = resources;
  runtime::v1::CreateContainerResponse created;
  grpc::Status status = runtime.CreateContainer(&context, request, &created);
  EXPECT_TRUE(status.ok()) << status.error_message();
  if (!status.ok()) return "";
  grpc::ClientContext start_context;
  runtime::v1::StartContainerRequest start;
  start.set_container_id(created.container_id());
  runtime::v1::StartContainerResponse started;
  status = runtime.StartContainer(&start_context, start, &started);
  EXPECT_TRUE(status.ok()) << status.error_message();
  return created.container_id();
}

std::string ReadAll(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFile(path);
  return text.ok() ? *text : "";
}

std::string Virsh(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {kVirsh, "-c", kLibvirtUri};
  argv.insert(argv.end(), args.begin(), args.end());
  absl::StatusOr<ExitStatus> result = RunCommand(argv, absl::Seconds(30));
  return result.ok() ? result->output : "";
}

}  // namespace vmlet::e2e
