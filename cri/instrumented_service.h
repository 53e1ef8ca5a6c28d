// The gRPC face of the CRI service. These adapters are the one place where
// absl::Status becomes grpc::Status, where each RPC is logged (mutating RPCs
// at info, polling RPCs at debug) and where an exception that escaped a
// handler is turned into INTERNAL instead of reaching gRPC.
#ifndef VMLET_CRI_INSTRUMENTED_SERVICE_H_
#define VMLET_CRI_INSTRUMENTED_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/metrics.h"
#include "cri/cri_service.h"
#include "cri/v1/api.grpc.pb.h"

namespace vmlet::cri {

// What the adapters count, in a registry vmletd serves at metrics_address:
// every call by method and gRPC code, its latency, and the calls that failed
// by vmletd's fault rather than the caller's.
struct RpcMetrics {
  Counter* requests = nullptr;    // vmlet_cri_requests_total{method,code}
  Histogram* duration = nullptr;  // vmlet_cri_request_duration_seconds{method}
  Counter* errors = nullptr;      // vmlet_errors_total{method}

  static absl::StatusOr<RpcMetrics> Register(MetricsRegistry& registry);
};

// The single mapping from absl status to gRPC status (the codes are the
// same numbers; the message is kept).
grpc::Status ToGrpcStatus(const absl::Status& status);

class RuntimeServiceAdapter final : public v1::RuntimeService::Service {
 public:
  // `service` and `metrics` (optional) must outlive the adapter.
  explicit RuntimeServiceAdapter(CriService* service, const RpcMetrics* metrics = nullptr)
      : service_(service), metrics_(metrics) {}

#define VMLET_CRI_RPC(Method)                                                           \
  grpc::Status Method(grpc::ServerContext* context, const v1::Method##Request* request, \
                      v1::Method##Response* response) override;
  VMLET_CRI_RPC(Version)
  VMLET_CRI_RPC(RunPodSandbox)
  VMLET_CRI_RPC(StopPodSandbox)
  VMLET_CRI_RPC(RemovePodSandbox)
  VMLET_CRI_RPC(PodSandboxStatus)
  VMLET_CRI_RPC(ListPodSandbox)
  VMLET_CRI_RPC(CreateContainer)
  VMLET_CRI_RPC(StartContainer)
  VMLET_CRI_RPC(StopContainer)
  VMLET_CRI_RPC(RemoveContainer)
  VMLET_CRI_RPC(ListContainers)
  VMLET_CRI_RPC(ContainerStatus)
  VMLET_CRI_RPC(UpdateContainerResources)
  VMLET_CRI_RPC(ReopenContainerLog)
  VMLET_CRI_RPC(ExecSync)
  VMLET_CRI_RPC(Exec)
  VMLET_CRI_RPC(Attach)
  VMLET_CRI_RPC(PortForward)
  VMLET_CRI_RPC(ContainerStats)
  VMLET_CRI_RPC(ListContainerStats)
  VMLET_CRI_RPC(PodSandboxStats)
  VMLET_CRI_RPC(ListPodSandboxStats)
  VMLET_CRI_RPC(UpdateRuntimeConfig)
  VMLET_CRI_RPC(Status)
  VMLET_CRI_RPC(CheckpointContainer)
  VMLET_CRI_RPC(ListMetricDescriptors)
  VMLET_CRI_RPC(ListPodSandboxMetrics)
  VMLET_CRI_RPC(RuntimeConfig)
  VMLET_CRI_RPC(UpdatePodSandboxResources)

  grpc::Status StreamPodSandboxes(
      grpc::ServerContext* context, const v1::StreamPodSandboxesRequest* request,
      grpc::ServerWriter<v1::StreamPodSandboxesResponse>* writer) override;
  grpc::Status StreamContainers(grpc::ServerContext* context,
                                const v1::StreamContainersRequest* request,
                                grpc::ServerWriter<v1::StreamContainersResponse>* writer) override;
  grpc::Status StreamContainerStats(
      grpc::ServerContext* context, const v1::StreamContainerStatsRequest* request,
      grpc::ServerWriter<v1::StreamContainerStatsResponse>* writer) override;
  grpc::Status StreamPodSandboxStats(
      grpc::ServerContext* context, const v1::StreamPodSandboxStatsRequest* request,
      grpc::ServerWriter<v1::StreamPodSandboxStatsResponse>* writer) override;
  grpc::Status StreamPodSandboxMetrics(
      grpc::ServerContext* context, const v1::StreamPodSandboxMetricsRequest* request,
      grpc::ServerWriter<v1::StreamPodSandboxMetricsResponse>* writer) override;
  grpc::Status GetContainerEvents(grpc::ServerContext* context, const v1::GetEventsRequest* request,
                                  grpc::ServerWriter<v1::ContainerEventResponse>* writer) override;

 private:
  CriService* const service_;
  const RpcMetrics* const metrics_;
};

class ImageServiceAdapter final : public v1::ImageService::Service {
 public:
  explicit ImageServiceAdapter(CriService* service, const RpcMetrics* metrics = nullptr)
      : service_(service), metrics_(metrics) {}

  VMLET_CRI_RPC(ListImages)
  VMLET_CRI_RPC(ImageStatus)
  VMLET_CRI_RPC(PullImage)
  VMLET_CRI_RPC(RemoveImage)
  VMLET_CRI_RPC(ImageFsInfo)
#undef VMLET_CRI_RPC

  grpc::Status StreamImages(grpc::ServerContext* context, const v1::StreamImagesRequest* request,
                            grpc::ServerWriter<v1::StreamImagesResponse>* writer) override;

 private:
  CriService* const service_;
  const RpcMetrics* const metrics_;
};

}  // namespace vmlet::cri

#endif  // VMLET_CRI_INSTRUMENTED_SERVICE_H_
