#include "cmd/vmletctl/client.h"

#include <chrono>
#include <cstdio>

#include "base/str_util.h"
#include "cmd/vmletctl/flags.h"

namespace vmlet::ctl {
namespace {

constexpr int64_t kQueryDeadlineSeconds = 10;
constexpr int64_t kChangeDeadlineSeconds = 120;

// A gRPC target for an endpoint given as a path or an address.
std::string Target(const std::string& endpoint) {
  return endpoint.starts_with("/") ? "unix://" + endpoint : endpoint;
}

}  // namespace

Client::Client(const GlobalOptions& options) : options_(options) {
  channel_ = grpc::CreateChannel(Target(options_.endpoint), grpc::InsecureChannelCredentials());
  runtime_ = v1::RuntimeService::NewStub(channel_);
  image_ = v1::ImageService::NewStub(channel_);
}

std::shared_ptr<grpc::Channel> Client::VmspecChannel() {
  if (vmspec_channel_ == nullptr) {
    vmspec_channel_ =
        grpc::CreateChannel(Target(options_.vmspec_endpoint), grpc::InsecureChannelCredentials());
  }
  return vmspec_channel_;
}

vmspec_v1::Images::Stub& Client::Images() {
  if (images_ == nullptr) images_ = vmspec_v1::Images::NewStub(VmspecChannel());
  return *images_;
}

vmspec_v1::Console::Stub& Client::Console() {
  if (console_ == nullptr) console_ = vmspec_v1::Console::NewStub(VmspecChannel());
  return *console_;
}

vmspec_v1::VmSpecs::Stub& Client::VmSpecs() {
  if (vmspecs_ == nullptr) vmspecs_ = vmspec_v1::VmSpecs::NewStub(VmspecChannel());
  return *vmspecs_;
}

void Client::SetDeadline(grpc::ClientContext& context, CallKind kind, int64_t extra_seconds) const {
  if (kind == CallKind::kTransfer && !options_.timeout_seconds.has_value()) return;
  int64_t seconds = options_.timeout_seconds.value_or(
      kind == CallKind::kQuery ? kQueryDeadlineSeconds : kChangeDeadlineSeconds);
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(seconds + extra_seconds));
}

std::string_view CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return "OK";
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::UNKNOWN:
      return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED:
      return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS:
      return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    default:
      return "UNKNOWN_CODE";
  }
}

int FailRpc(std::string_view what, const grpc::Status& status) {
  return Fail(StrCat(what, ": ", status.error_message(), " (", CodeName(status.error_code()), ")"));
}

int Fail(std::string_view message) {
  std::fprintf(stderr, "vmletctl: %s\n", std::string(message).c_str());
  return kExitFailure;
}

void Warn(std::string_view message) {
  std::fprintf(stderr, "vmletctl: warning: %s\n", std::string(message).c_str());
}

}  // namespace vmlet::ctl
