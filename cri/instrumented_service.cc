#include "cri/instrumented_service.h"

#include <exception>
#include <string>
#include <utility>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "base/logging.h"
#include "base/status.h"
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
                                                  "StreamImages",
                                                  "StreamContainerStats",
                                                  "StreamPodSandboxStats",
                                                  "ListMetricDescriptors",
                                                  "ListPodSandboxMetrics",
                                                  "StreamPodSandboxMetrics",
                                                  "RuntimeConfig"};
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
grpc::Status Instrument(std::string_view method, const RpcMetrics* metrics,
                        const google::protobuf::Message& request, Fn&& handler) {
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
  const absl::Duration elapsed = absl::Now() - start;
  kLog.Log(level, "{}{}: {} in {}{}{}", method, Subject(request),
           absl::StatusCodeToString(status.code()), absl::FormatDuration(elapsed),
           status.ok() ? "" : ": ", status.message());
  if (metrics != nullptr) {
    const std::string code = absl::StatusCodeToString(status.code());
    metrics->requests->Inc({method, code});
    metrics->duration->Observe({method}, absl::ToDoubleSeconds(elapsed));
    if (!status.ok() && !IsCallerError(status.code())) metrics->errors->Inc({method});
  }
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

absl::StatusOr<RpcMetrics> RpcMetrics::Register(MetricsRegistry& registry) {
  RpcMetrics metrics;
  VMLET_ASSIGN_OR_RETURN(metrics.requests, registry.AddCounter("vmlet_cri_requests_total",
                                                               "CRI calls by method and gRPC code.",
                                                               {"method", "code"}));
  VMLET_ASSIGN_OR_RETURN(
      metrics.duration, registry.AddHistogram("vmlet_cri_request_duration_seconds",
                                              "Time vmletd took to answer CRI calls.", {"method"}));
  VMLET_ASSIGN_OR_RETURN(
      metrics.errors,
      registry.AddCounter("vmlet_errors_total",
                          "CRI calls that failed by vmletd's fault (not the caller's).",
                          {"method"}));
  return metrics;
}

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

#define VMLET_FORWARD(Adapter, Method)                                                   \
  grpc::Status Adapter::Method(grpc::ServerContext*, const v1::Method##Request* request, \
                               v1::Method##Response* response) {                         \
    return Instrument(#Method, metrics_, *request,                                       \
                      [&] { return service_->Method(*request, response); });             \
  }
#define VMLET_NOT_YET(Adapter, Method, what)                                               \
  grpc::Status Adapter::Method(grpc::ServerContext*, const v1::Method##Request* request,   \
                               v1::Method##Response*) {                                    \
    return Instrument(#Method, metrics_, *request, [&] { return NotYet(#Method, what); }); \
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
VMLET_FORWARD(RuntimeServiceAdapter, UpdateContainerResources)
VMLET_FORWARD(RuntimeServiceAdapter, Exec)
VMLET_FORWARD(RuntimeServiceAdapter, Attach)
VMLET_FORWARD(RuntimeServiceAdapter, PortForward)
VMLET_FORWARD(RuntimeServiceAdapter, ContainerStats)
VMLET_FORWARD(RuntimeServiceAdapter, ListContainerStats)
VMLET_FORWARD(RuntimeServiceAdapter, PodSandboxStats)
VMLET_FORWARD(RuntimeServiceAdapter, ListPodSandboxStats)
VMLET_NOT_YET(RuntimeServiceAdapter, CheckpointContainer,
              "checkpointing a VM to an archive through the CRI is not built")
VMLET_FORWARD(RuntimeServiceAdapter, ListMetricDescriptors)
VMLET_FORWARD(RuntimeServiceAdapter, ListPodSandboxMetrics)
VMLET_FORWARD(RuntimeServiceAdapter, RuntimeConfig)
VMLET_FORWARD(RuntimeServiceAdapter, UpdatePodSandboxResources)

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
  return Instrument("StreamPodSandboxes", metrics_, *request, [&]() -> absl::Status {
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
  return Instrument("StreamContainers", metrics_, *request, [&]() -> absl::Status {
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
    grpc::ServerWriter<v1::StreamContainerStatsResponse>* writer) {
  return Instrument("StreamContainerStats", metrics_, *request, [&]() -> absl::Status {
    v1::ListContainerStatsRequest list_request;
    *list_request.mutable_filter() = request->filter();
    v1::ListContainerStatsResponse list;
    VMLET_RETURN_IF_ERROR(service_->ListContainerStats(list_request, &list));
    return WriteChunked(writer, list.stats(), [](v1::StreamContainerStatsResponse& r) {
      return r.add_container_stats();
    });
  });
}

grpc::Status RuntimeServiceAdapter::StreamPodSandboxStats(
    grpc::ServerContext*, const v1::StreamPodSandboxStatsRequest* request,
    grpc::ServerWriter<v1::StreamPodSandboxStatsResponse>* writer) {
  return Instrument("StreamPodSandboxStats", metrics_, *request, [&]() -> absl::Status {
    v1::ListPodSandboxStatsRequest list_request;
    *list_request.mutable_filter() = request->filter();
    v1::ListPodSandboxStatsResponse list;
    VMLET_RETURN_IF_ERROR(service_->ListPodSandboxStats(list_request, &list));
    return WriteChunked(writer, list.stats(), [](v1::StreamPodSandboxStatsResponse& r) {
      return r.add_pod_sandbox_stats();
    });
  });
}

grpc::Status RuntimeServiceAdapter::StreamPodSandboxMetrics(
    grpc::ServerContext*, const v1::StreamPodSandboxMetricsRequest* request,
    grpc::ServerWriter<v1::StreamPodSandboxMetricsResponse>* writer) {
  return Instrument("StreamPodSandboxMetrics", metrics_, *request, [&]() -> absl::Status {
    v1::ListPodSandboxMetricsResponse list;
    VMLET_RETURN_IF_ERROR(service_->ListPodSandboxMetrics({}, &list));
    return WriteChunked(writer, list.pod_metrics(), [](v1::StreamPodSandboxMetricsResponse& r) {
      return r.add_pod_sandbox_metrics();
    });
  });
}

grpc::Status RuntimeServiceAdapter::GetContainerEvents(
    grpc::ServerContext* context, const v1::GetEventsRequest* request,
    grpc::ServerWriter<v1::ContainerEventResponse>* writer) {
  // Logged when the stream ends; it lasts as long as the subscriber stays.
  return Instrument("GetContainerEvents", metrics_, *request, [&]() -> absl::Status {
    std::shared_ptr<ContainerEventHub::Subscription> subscription =
        service_->container_events()->Subscribe();
    // Tell the client that it is subscribed (headers), so that it knows
    // events from now on reach it.
    writer->SendInitialMetadata();
    while (true) {
      VMLET_ASSIGN_OR_RETURN(std::optional<v1::ContainerEventResponse> event,
                             subscription->Next([context] { return context->IsCancelled(); }));
      // The subscriber went away: the normal end of this stream.
      if (!event.has_value() || !writer->Write(*event)) return absl::OkStatus();
    }
  });
}

grpc::Status ImageServiceAdapter::StreamImages(
    grpc::ServerContext*, const v1::StreamImagesRequest* request,
    grpc::ServerWriter<v1::StreamImagesResponse>* writer) {
  return Instrument("StreamImages", metrics_, *request, [&]() -> absl::Status {
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
