// The gRPC adapters: the one place where statuses are converted.
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "cri/instrumented_service.h"
#include "tests/cri/cri_test_util.h"

namespace vmlet::cri {
namespace {

using ::testing::HasSubstr;

struct CodeCase {
  absl::Status status;
  grpc::StatusCode code;
};

TEST(ToGrpcStatusTest, KeepsTheCodeAndTheMessage) {
  const CodeCase cases[] = {
      {absl::OkStatus(), grpc::StatusCode::OK},
      {absl::InvalidArgumentError("bad field"), grpc::StatusCode::INVALID_ARGUMENT},
      {absl::NotFoundError("no such sandbox"), grpc::StatusCode::NOT_FOUND},
      {absl::AlreadyExistsError("name taken"), grpc::StatusCode::ALREADY_EXISTS},
      {absl::FailedPreconditionError("not ready"), grpc::StatusCode::FAILED_PRECONDITION},
      {absl::ResourceExhaustedError("disk full"), grpc::StatusCode::RESOURCE_EXHAUSTED},
      {absl::UnavailableError("libvirt down"), grpc::StatusCode::UNAVAILABLE},
      {absl::UnimplementedError("later"), grpc::StatusCode::UNIMPLEMENTED},
      {absl::AbortedError("conflict"), grpc::StatusCode::ABORTED},
      {absl::DeadlineExceededError("slow"), grpc::StatusCode::DEADLINE_EXCEEDED},
      {absl::PermissionDeniedError("no"), grpc::StatusCode::PERMISSION_DENIED},
      {absl::InternalError("bug"), grpc::StatusCode::INTERNAL},
      {absl::DataLossError("corrupt"), grpc::StatusCode::DATA_LOSS},
  };
  for (const CodeCase& c : cases) {
    grpc::Status converted = ToGrpcStatus(c.status);
    EXPECT_EQ(converted.error_code(), c.code) << c.status;
    EXPECT_EQ(converted.error_message(), std::string(c.status.message()));
  }
}

class AdapterTest : public vmlet::testing::CriFixture {
 protected:
  grpc::ServerContext context_;
};

TEST_F(AdapterTest, UnimplementedRpcsSaySoWithAMessage) {
  RuntimeServiceAdapter runtime(service_.get());
  v1::CheckpointContainerRequest request;
  v1::CheckpointContainerResponse response;
  grpc::Status status = runtime.CheckpointContainer(&context_, &request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_THAT(status.error_message(), HasSubstr("CheckpointContainer"));

  ImageServiceAdapter images(service_.get());
  v1::PullImageRequest pull;
  v1::PullImageResponse pulled;
  // A bad reference is refused before any network traffic.
  pull.mutable_image()->set_image("Not A Reference");
  status = images.PullImage(&context_, &pull, &pulled);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("Not A Reference"));

  // A local image is already on the node: pulling it answers its id.
  pull.mutable_image()->set_image(vmlet::testing::kTestImage);
  ASSERT_TRUE(images.PullImage(&context_, &pull, &pulled).ok());
  EXPECT_THAT(pulled.image_ref(), ::testing::StartsWith("sha256:"));
}

TEST_F(AdapterTest, HandlerErrorsReachTheWireWithTheirCode) {
  RuntimeServiceAdapter runtime(service_.get());
  v1::PodSandboxStatusRequest request;
  request.set_pod_sandbox_id(std::string(64, 'e'));
  v1::PodSandboxStatusResponse response;
  grpc::Status status = runtime.PodSandboxStatus(&context_, &request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(status.error_message(), HasSubstr(std::string(64, 'e')));
}

TEST_F(AdapterTest, ExecSyncIsForwarded) {
  RuntimeServiceAdapter runtime(service_.get());
  v1::ExecSyncRequest request;
  request.set_container_id(std::string(64, 'e'));
  request.add_cmd("true");
  v1::ExecSyncResponse response;
  grpc::Status status = runtime.ExecSync(&context_, &request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(status.error_message(), HasSubstr(std::string(64, 'e')));
}

TEST_F(AdapterTest, VersionAnswersWhatTheKubeletRequires) {
  RuntimeServiceAdapter runtime(service_.get());
  v1::VersionRequest request;
  v1::VersionResponse response;
  ASSERT_TRUE(runtime.Version(&context_, &request, &response).ok());
  EXPECT_EQ(response.version(), "0.1.0");
  EXPECT_EQ(response.runtime_name(), "vmlet");
  EXPECT_EQ(response.runtime_api_version(), "v1");
}

TEST_F(AdapterTest, StatusReportsAnUnreachableDriverAsRuntimeNotReady) {
  RuntimeServiceAdapter runtime(service_.get());
  v1::StatusRequest request;
  v1::StatusResponse response;
  ASSERT_TRUE(runtime.Status(&context_, &request, &response).ok());
  ASSERT_EQ(response.status().conditions_size(), 2);
  EXPECT_EQ(response.status().conditions(0).type(), "RuntimeReady");
  EXPECT_TRUE(response.status().conditions(0).status());

  driver_->SetReachable(absl::UnavailableError("libvirtd is not running"));
  response.Clear();
  ASSERT_TRUE(runtime.Status(&context_, &request, &response).ok());
  const v1::RuntimeCondition& runtime_ready = response.status().conditions(0);
  EXPECT_FALSE(runtime_ready.status());
  EXPECT_EQ(runtime_ready.reason(), "VmDriverUnavailable");
  EXPECT_EQ(runtime_ready.message(), "libvirtd is not running");
  // The network is a separate condition: still ready.
  const v1::RuntimeCondition& network_ready = response.status().conditions(1);
  EXPECT_EQ(network_ready.type(), "NetworkReady");
  EXPECT_TRUE(network_ready.status());
}

TEST_F(AdapterTest, ImageFsInfoReportsTheImageDirectory) {
  ImageServiceAdapter images(service_.get());
  v1::ImageFsInfoRequest request;
  v1::ImageFsInfoResponse response;
  ASSERT_TRUE(images.ImageFsInfo(&context_, &request, &response).ok());
  ASSERT_EQ(response.image_filesystems_size(), 1);
  EXPECT_THAT(response.image_filesystems(0).fs_id().mountpoint(), HasSubstr("/images"));
  EXPECT_GT(response.image_filesystems(0).timestamp(), 0);
}

TEST_F(AdapterTest, CallsAreCountedAndTimedByMethodAndCode) {
  MetricsRegistry registry;
  absl::StatusOr<RpcMetrics> metrics = RpcMetrics::Register(registry);
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  RuntimeServiceAdapter runtime(service_.get(), &*metrics);
  v1::VersionRequest version;
  v1::VersionResponse version_response;
  ASSERT_TRUE(runtime.Version(&context_, &version, &version_response).ok());
  ASSERT_TRUE(runtime.Version(&context_, &version, &version_response).ok());
  v1::ContainerStatusRequest status;
  status.set_container_id("abcdef0123456789");
  v1::ContainerStatusResponse status_response;
  EXPECT_FALSE(runtime.ContainerStatus(&context_, &status, &status_response).ok());

  const std::string text = registry.RenderText();
  EXPECT_THAT(text, HasSubstr("vmlet_cri_requests_total{method=\"Version\",code=\"OK\"} 2\n"));
  EXPECT_THAT(
      text, HasSubstr("vmlet_cri_requests_total{method=\"ContainerStatus\",code=\"NOT_FOUND\"} 1"));
  EXPECT_THAT(text, HasSubstr("vmlet_cri_request_duration_seconds_count{method=\"Version\"} 2"));
  // NOT_FOUND is the caller's error, not vmletd's.
  EXPECT_THAT(text, ::testing::Not(HasSubstr("vmlet_errors_total{method=\"ContainerStatus\"}")));
}

}  // namespace
}  // namespace vmlet::cri
