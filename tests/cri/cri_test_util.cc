#include "tests/cri/cri_test_util.h"

#include <stdlib.h>

#include <cstdlib>

#include "base/file_util.h"

namespace vmlet::testing {

TempDir::TempDir() {
  const char* base = std::getenv("TEST_TMPDIR");
  std::string templ = std::string(base != nullptr ? base : "/tmp") + "/vmlet-test-XXXXXX";
  char* made = ::mkdtemp(templ.data());
  if (made == nullptr) std::abort();
  path_ = made;
}

TempDir::~TempDir() { (void)RemoveTree(path_); }

runtime::v1::PodSandboxConfig SandboxConfig(const std::string& name, uint32_t attempt) {
  runtime::v1::PodSandboxConfig config;
  config.mutable_metadata()->set_name(name);
  config.mutable_metadata()->set_namespace_("default");
  config.mutable_metadata()->set_uid("uid-" + name);
  config.mutable_metadata()->set_attempt(attempt);
  config.set_log_directory("/var/log/pods/default_" + name + "_uid-" + name);
  (*config.mutable_labels())["io.kubernetes.pod.name"] = name;
  (*config.mutable_labels())["io.kubernetes.pod.namespace"] = "default";
  (*config.mutable_labels())["io.kubernetes.pod.uid"] = "uid-" + name;
  (*config.mutable_annotations())["kubernetes.io/config.seen"] = "2026-11-22T10:00:00Z";
  return config;
}

runtime::v1::ContainerConfig ContainerConfig(const std::string& name, uint32_t attempt) {
  runtime::v1::ContainerConfig config;
  config.mutable_metadata()->set_name(name);
  config.mutable_metadata()->set_attempt(attempt);
  config.mutable_image()->set_image(kTestImage);
  config.set_log_path(name + "/" + std::to_string(attempt) + ".log");
  (*config.mutable_labels())["io.kubernetes.container.name"] = name;
  (*config.mutable_annotations())["io.kubernetes.container.restartCount"] = std::to_string(attempt);
  return config;
}

void CriFixture::Restart() {
  service_.reset();
  driver_ = std::make_unique<vmdriver::FakeVmDriver>(dir_.path() + "/fake-vms");
  ASSERT_TRUE(driver_->Load().ok());
  const std::string image_dir = dir_.path() + "/images/tiny";
  ASSERT_TRUE(MakeDirs(image_dir + "/boot").ok());
  ASSERT_TRUE(WriteFileAtomically(image_dir + "/boot/vmlinuz", "not a kernel", 0644).ok());
  service_ =
      std::make_unique<cri::CriService>(cri::CriOptions{.state_dir = dir_.path() + "/state",
                                                        .run_dir = dir_.path() + "/run",
                                                        // Tests collect with CollectNow.
                                                        .stats_interval = absl::ZeroDuration(),
                                                        .local_images = {{kTestImage, image_dir}}},
                                        driver_.get(), &network_);
  absl::Status status = service_->Init();
  ASSERT_TRUE(status.ok()) << status;
}

std::string CriFixture::RunSandbox(const std::string& name, uint32_t attempt) {
  runtime::v1::RunPodSandboxRequest request;
  *request.mutable_config() = SandboxConfig(name, attempt);
  runtime::v1::RunPodSandboxResponse response;
  absl::Status status = service_->RunPodSandbox(request, &response);
  EXPECT_TRUE(status.ok()) << status;
  return response.pod_sandbox_id();
}

std::string CriFixture::CreateContainer(const std::string& sandbox_id, const std::string& name,
                                        uint32_t attempt) {
  runtime::v1::CreateContainerRequest request;
  request.set_pod_sandbox_id(sandbox_id);
  *request.mutable_config() = ContainerConfig(name, attempt);
  *request.mutable_sandbox_config() = SandboxConfig("ignored");
  runtime::v1::CreateContainerResponse response;
  absl::Status status = service_->CreateContainer(request, &response);
  EXPECT_TRUE(status.ok()) << status;
  return response.container_id();
}

runtime::v1::PodSandboxStatus CriFixture::SandboxStatus(const std::string& id) {
  runtime::v1::PodSandboxStatusRequest request;
  request.set_pod_sandbox_id(id);
  runtime::v1::PodSandboxStatusResponse response;
  absl::Status status = service_->PodSandboxStatus(request, &response);
  EXPECT_TRUE(status.ok()) << status;
  return response.status();
}

runtime::v1::ContainerStatus CriFixture::ContainerStatus(const std::string& id) {
  runtime::v1::ContainerStatusRequest request;
  request.set_container_id(id);
  runtime::v1::ContainerStatusResponse response;
  absl::Status status = service_->ContainerStatus(request, &response);
  EXPECT_TRUE(status.ok()) << status;
  return response.status();
}

}  // namespace vmlet::testing
