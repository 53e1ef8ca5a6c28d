#include "cri/instrumented_service.h"

#include <exception>
#include <string>
#include <utility>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "base/logging.h"
#include "base/str_util.h"

namespace vmlet::cri {
namespace {

constexpr Logger kLog("cri");

// The kubelet polls these every few seconds; they are logged at debug level.
bool IsPolling(std::string_view method) {
  static constexpr std::string_view kPolling[] = {"Version",
                                                  "Status",
                                                  "ListPodSandbox",
                                                  "PodSandboxStatus",
                                                  "ListContainers",
                                                  "ContainerStatus",
                                                  "ImageFsInfo",
                                                  "ListImages",
                                                  "ImageStatus",
                                                  "ContainerStats",
                                                  "ListContainerStats",
                                                  "ExecSync",  // Exec probes.
                                                  "PodSandboxStats",
                                                  "ListPodSandboxStats",
                                                  "StreamPodSandboxes",
                                                  "StreamContainers",
                                                  "StreamImages"};
  for (std::string_view polling : kPolling) {
    if (method == polling) return true;
  }
  return false;
}

// Errors that describe the request rather than a fault of vmletd.
bool IsCallerError(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kUnimplemented:
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kCancelled:
    // A deadline the caller set: ExecSync's timeout (a probe that timed out).
    case absl::StatusCode::kDeadlineExceeded:
      return true;
    default:
      return false;
  }
}

// The ids a request names ("pod_sandbox_id=...", "container_id=..."), so that
// every log line of an RPC says what it was about.
std::string Subject(const google::protobuf::Message& request) {
  const google::protobuf::Descriptor* descriptor = request.GetDescriptor();
  const google::protobuf::Reflection* reflection = request.GetReflection();
  std::string subject;
  for (int i = 0; i < descriptor->field_count(); ++i) {
    const google::protobuf::FieldDescriptor* field = descriptor->field(i);
    if (field->is_repeated() || field->type() != google::protobuf::FieldDescriptor::TYPE_STRING ||
        !field->name().ends_with("_id")) {
      continue;
    }
    std::string value = reflection->GetString(request, field);
    if (value.size() > 64) value = value.substr(0, 64) + "...";
    StrAppend(&subject, " ", field->name(), "=", value);
  }
  return subject;
}

template <typename Fn>
grpc::Status Instrument(std::string_view method, const google::protobuf::Message& request,
                        Fn&& handler) {
  absl::Time start = absl::Now();
  absl::Status status;
  try {
    status = handler();
  } catch (const std::exception& e) {
    status = absl::InternalError(StrCat(method, ": unexpected exception: ", e.what()));
  } catch (...) {
    status = absl::InternalError(StrCat(method, ": unexpected exception"));
  }
  const bool polling = IsPolling(method);
  LogLevel level = LogLevel::kDebug;
  if (!status.ok()) {
    level = !IsCallerError(status.code()) ? LogLevel::kError
            : polling                     ? LogLevel::kDebug
                                          : LogLevel::kWarning;
  }
  kLog.Log(level, "{}{}: {} in {}{}{}", method, Subject(request),
           absl::StatusCodeToString(status.code()), absl::FormatDuration(absl::Now() - start),
           status.ok() ? "" : ": ", status.message());
  return ToGrpcStatus(status);
}

absl::Status NotYet(std::string_view method, std::string_view what) {
  return absl::UnimplementedError(StrCat("vmlet does not implement ", method, " yet (", what, ")"));
}

// Sends `items` in chunks of at most kChunk entries.
template <typename Response, typename Item, typename Add>
absl::Status WriteChunked(grpc::ServerWriter<Response>* writer,
                          const google::protobuf::RepeatedPtrField<Item>& items, Add add) {
  constexpr int kChunk = 100;
  for (int begin = 0; begin < items.size() || begin == 0; begin += kChunk) {
    Response chunk;
    for (int i = begin; i < items.size() && i < begin + kChunk; ++i) *add(chunk) = items[i];
    if (!writer->Write(chunk)) return absl::CancelledError("the client went away");
    if (items.empty()) break;
  }
  return absl::OkStatus();
}

}  // namespace

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

#define VMLET_FORWARD(Adapter, Method)                                                          \
  grpc::Status Adapter::Method(grpc::ServerContext*, const v1::Method##Request* request,        \
                               v1::Method##Response* response) {                                \
    return Instrument(#Method, *request, [&] { return service_->Method(*request, response); }); \
  }
#define VMLET_NOT_YET(Adapter, Method, what)                                             \
  grpc::Status Adapter::Method(grpc::ServerContext*, const v1::Method##Request* request, \
                               v1::Method##Response*) {                                  \
    return Instrument(#Method, *request, [&] { return NotYet(#Method, what); });         \
  }

VMLET_FORWARD(RuntimeServiceAdapter, Version)
VMLET_FORWARD(RuntimeServiceAdapter, RunPodSandbox)
VMLET_FORWARD(RuntimeServiceAdapter, StopPodSandbox)
VMLET_FORWARD(RuntimeServiceAdapter, RemovePodSandbox)
VMLET_FORWARD(RuntimeServiceAdapter, PodSandboxStatus)
VMLET_FORWARD(RuntimeServiceAdapter, ListPodSandbox)
VMLET_FORWARD(RuntimeServiceAdapter, CreateContainer)
VMLET_FORWARD(RuntimeServiceAdapter, StartContainer)
VMLET_FORWARD(RuntimeServiceAdapter, StopContainer)
VMLET_FORWARD(RuntimeServiceAdapter, RemoveContainer)
VMLET_FORWARD(RuntimeServiceAdapter, ListContainers)
VMLET_FORWARD(RuntimeServiceAdapter, ContainerStatus)
VMLET_FORWARD(RuntimeServiceAdapter, UpdateRuntimeConfig)
VMLET_FORWARD(RuntimeServiceAdapter, Status)
VMLET_FORWARD(RuntimeServiceAdapter, ReopenContainerLog)
VMLET_FORWARD(RuntimeServiceAdapter, ExecSync)
VMLET_NOT_YET(RuntimeServiceAdapter, UpdateContainerResources,
              "vCPU and memory changes of running VMs are planned")
VMLET_FORWARD(RuntimeServiceAdapter, Exec)
VMLET_FORWARD(RuntimeServiceAdapter, Attach)
VMLET_FORWARD(RuntimeServiceAdapter, PortForward)
VMLET_NOT_YET(RuntimeServiceAdapter, ContainerStats, "VM statistics are planned")
VMLET_NOT_YET(RuntimeServiceAdapter, ListContainerStats, "VM statistics are planned")
VMLET_NOT_YET(RuntimeServiceAdapter, PodSandboxStats, "VM statistics are planned")
VMLET_NOT_YET(RuntimeServiceAdapter, ListPodSandboxStats, "VM statistics are planned")
VMLET_NOT_YET(RuntimeServiceAdapter, CheckpointContainer,
              "checkpointing VMs through the CRI is not planned")
VMLET_NOT_YET(RuntimeServiceAdapter, ListMetricDescriptors, "VM metrics are planned")
VMLET_NOT_YET(RuntimeServiceAdapter, ListPodSandboxMetrics, "VM metrics are planned")
VMLET_NOT_YET(RuntimeServiceAdapter, RuntimeConfig,
              "the kubelet falls back to its own cgroup driver setting")
VMLET_NOT_YET(RuntimeServiceAdapter, UpdatePodSandboxResources,
              "vCPU and memory changes of running VMs are planned")

VMLET_FORWARD(ImageServiceAdapter, ListImages)
VMLET_FORWARD(ImageServiceAdapter, ImageStatus)
VMLET_FORWARD(ImageServiceAdapter, RemoveImage)
VMLET_FORWARD(ImageServiceAdapter, ImageFsInfo)
VMLET_FORWARD(ImageServiceAdapter, PullImage)

#undef VMLET_FORWARD
#undef VMLET_NOT_YET

grpc::Status RuntimeServiceAdapter::StreamPodSandboxes(
    grpc::ServerContext*, const v1::StreamPodSandboxesRequest* request,
    grpc::ServerWriter<v1::StreamPodSandboxesResponse>* writer) {
  return Instrument("StreamPodSandboxes", *request, [&]() -> absl::Status {
    v1::ListPodSandboxRequest list_request;
    *list_request.mutable_filter() = request->filter();
    v1::ListPodSandboxResponse list;
    if (absl::Status status = service_->ListPodSandbox(list_request, &list); !status.ok()) {
      return status;
    }
    return WriteChunked(writer, list.items(),
                        [](v1::StreamPodSandboxesResponse& r) { return r.add_pod_sandboxes(); });
  });
}

grpc::Status RuntimeServiceAdapter::StreamContainers(
    grpc::ServerContext*, const v1::StreamContainersRequest* request,
    grpc::ServerWriter<v1::StreamContainersResponse>* writer) {
  return Instrument("StreamContainers", *request, [&]() -> absl::Status {
    v1::ListContainersRequest list_request;
    *list_request.mutable_filter() = request->filter();
    v1::ListContainersResponse list;
    if (absl::Status status = service_->ListContainers(list_request, &list); !status.ok()) {
      return status;
    }
    return WriteChunked(writer, list.containers(),
                        [](v1::StreamContainersResponse& r) { return r.add_containers(); });
  });
}

grpc::Status RuntimeServiceAdapter::StreamContainerStats(
    grpc::ServerContext*, const v1::StreamContainerStatsRequest* request,
    grpc::ServerWriter<v1::StreamContainerStatsResponse>*) {
  return Instrument("StreamContainerStats", *request,
                    [] { return NotYet("StreamContainerStats", "VM statistics are planned"); });
}

grpc::Status RuntimeServiceAdapter::StreamPodSandboxStats(
    grpc::ServerContext*, const v1::StreamPodSandboxStatsRequest* request,
    grpc::ServerWriter<v1::StreamPodSandboxStatsResponse>*) {
  return Instrument("StreamPodSandboxStats", *request,
                    [] { return NotYet("StreamPodSandboxStats", "VM statistics are planned"); });
}

grpc::Status RuntimeServiceAdapter::StreamPodSandboxMetrics(
    grpc::ServerContext*, const v1::StreamPodSandboxMetricsRequest* request,
    grpc::ServerWriter<v1::StreamPodSandboxMetricsResponse>*) {
  return Instrument("StreamPodSandboxMetrics", *request,
                    [] { return NotYet("StreamPodSandboxMetrics", "VM metrics are planned"); });
}

grpc::Status RuntimeServiceAdapter::GetContainerEvents(
    grpc::ServerContext*, const v1::GetEventsRequest* request,
    grpc::ServerWriter<v1::ContainerEventResponse>*) {
  return Instrument("GetContainerEvents", *request, [] {
    return NotYet("GetContainerEvents", "the kubelet relists instead (generic PLEG)");
  });
}

grpc::Status ImageServiceAdapter::StreamImages(
    grpc::ServerContext*, const v1::StreamImagesRequest* request,
    grpc::ServerWriter<v1::StreamImagesResponse>* writer) {
  return Instrument("StreamImages", *request, [&]() -> absl::Status {
    v1::ListImagesRequest list_request;
    *list_request.mutable_filter() = request->filter();
    v1::ListImagesResponse list;
    if (absl::Status status = service_->ListImages(list_request, &list); !status.ok()) {
      return status;
    }
    return WriteChunked(writer, list.images(),
                        [](v1::StreamImagesResponse& r) { return r.add_images(); });
  });
}

}  // namespace vmlet::cri
