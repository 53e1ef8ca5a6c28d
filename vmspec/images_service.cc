#include "vmspec/images_service.h"

#include <chrono>

#include "base/logging.h"
#include "base/str_util.h"
#include "cri/instrumented_service.h"

namespace vmlet::vmspec {
namespace {

constexpr Logger kLog("vmspec");

// Progress messages go out when the phase changes and at most five times a
// second otherwise.
constexpr auto kProgressInterval = std::chrono::milliseconds(200);

}  // namespace

grpc::Status ImagesService::PullImage(grpc::ServerContext* /*context*/,
                                      const v1::PullImageRequest* request,
                                      grpc::ServerWriter<v1::PullImageProgress>* writer) {
  if (request->image().empty()) {
    return cri::ToGrpcStatus(
        absl::InvalidArgumentError("image is empty: expected an image reference"));
  }
  kLog.Info("PullImage {}", request->image());
  std::string last_phase;
  auto last_sent = std::chrono::steady_clock::time_point();
  absl::StatusOr<std::string> id =
      store_->Pull(request->image(),
                   image::Credentials{.username = request->auth().username(),
                                      .password = request->auth().password(),
                                      .registry_token = request->auth().registry_token()},
                   [&](const image::PullProgress& progress) {
                     auto now = std::chrono::steady_clock::now();
                     if (progress.phase == last_phase && now - last_sent < kProgressInterval)
                       return;
                     last_phase = progress.phase;
                     last_sent = now;
                     v1::PullImageProgress message;
                     message.set_phase(progress.phase);
                     message.set_bytes_done(progress.bytes_done);
                     message.set_bytes_total(progress.bytes_total);
                     // A client that went away does not stop the pull: the image is
                     // still wanted by whoever asks next.
                     (void)writer->Write(message);
                   });
  if (!id.ok()) {
    kLog.Warning("PullImage {} failed: {}", request->image(), id.status().message());
    return cri::ToGrpcStatus(id.status());
  }
  v1::PullImageProgress done;
  done.set_phase("done");
  done.set_image_id(*id);
  (void)writer->Write(done);
  return grpc::Status::OK;
}

grpc::Status ImagesService::ImportImage(grpc::ServerContext* /*context*/,
                                        const v1::ImportImageRequest* request,
                                        v1::ImportImageResponse* response) {
  if (request->path().empty() || request->path()[0] != '/') {
    return cri::ToGrpcStatus(absl::InvalidArgumentError(StrCat(
        "path \"", request->path(), "\" is invalid: expected an absolute path vmletd can read")));
  }
  if (request->name().empty()) {
    return cri::ToGrpcStatus(
        absl::InvalidArgumentError("name is empty: expected an image name such as vms/disk:1"));
  }
  kLog.Info("ImportImage {} as {}", request->path(), request->name());
  absl::StatusOr<std::string> id = store_->Import(request->path(), request->name());
  if (!id.ok()) return cri::ToGrpcStatus(id.status());
  response->set_image_id(*id);
  return grpc::Status::OK;
}

}  // namespace vmlet::vmspec
