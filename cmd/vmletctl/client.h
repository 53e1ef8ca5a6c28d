// The connection to vmletd and the options every command shares.
//
// Threading: single-threaded, as the whole CLI is.
#ifndef VMLET_CMD_VMLETCTL_CLIENT_H_
#define VMLET_CMD_VMLETCTL_CLIENT_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <grpcpp/grpcpp.h>

#include "cri/v1/api.grpc.pb.h"
#include "vmlet/vmspec/v1/console.grpc.pb.h"
#include "vmlet/vmspec/v1/images.grpc.pb.h"
#include "vmlet/vmspec/v1/vmspec.grpc.pb.h"

namespace vmlet::ctl {

namespace v1 = ::runtime::v1;
namespace vmspec_v1 = ::vmlet::vmspec::v1;

// The options given before the command.
struct GlobalOptions {
  std::string endpoint = "unix:///run/vmlet/cri.sock";
  // vmletd's own API (VM specs, VM status, pull with progress, import,
  // console).
  std::string vmspec_endpoint = "unix:///run/vmlet/vmspec.sock";
  // Per-call deadline; when unset, it depends on the CallKind.
  std::optional<int64_t> timeout_seconds;
  std::string output = "table";  // "table", "json" or "yaml".
};

// What a call does, which decides its default deadline.
enum class CallKind {
  kQuery,   // Answered from vmletd's memory: 10 s.
  kChange,  // Creates, starts, stops or removes a VM or pod: 120 s.
  // Moves image content (pull, import), which takes as long as the image is
  // big: no deadline unless --timeout is given.
  kTransfer,
};

class Client {
 public:
  explicit Client(const GlobalOptions& options);

  const GlobalOptions& options() const { return options_; }

  // Calls `method` of the RuntimeService or ImageService stub with the
  // deadline of `kind`, `extra_seconds` later (e.g. a stop's grace period).
  template <typename Stub, typename Request, typename Response>
  grpc::Status Call(Stub& stub,
                    grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&, Response*),
                    const Request& request, Response* response, CallKind kind = CallKind::kQuery,
                    int64_t extra_seconds = 0) {
    grpc::ClientContext context;
    SetDeadline(context, kind, extra_seconds);
    return (stub.*method)(&context, request, response);
  }

  template <typename Request, typename Response>
  grpc::Status Runtime(grpc::Status (v1::RuntimeService::Stub::*method)(grpc::ClientContext*,
                                                                        const Request&, Response*),
                       const Request& request, Response* response, CallKind kind = CallKind::kQuery,
                       int64_t extra_seconds = 0) {
    return Call(*runtime_, method, request, response, kind, extra_seconds);
  }

  template <typename Request, typename Response>
  grpc::Status Image(grpc::Status (v1::ImageService::Stub::*method)(grpc::ClientContext*,
                                                                    const Request&, Response*),
                     const Request& request, Response* response, CallKind kind = CallKind::kQuery) {
    return Call(*image_, method, request, response, kind);
  }

  // The Images service of vmletd's own API on the VM-spec endpoint; its
  // channel is made on first use, so that commands that only talk to the
  // CRI never need that socket.
  vmspec_v1::Images::Stub& Images();
  // The Console service on the same endpoint and channel.
  vmspec_v1::Console::Stub& Console();
  // The VmSpecs service on the same endpoint and channel.
  vmspec_v1::VmSpecs::Stub& VmSpecs();

  // Sets the deadline of `kind` on `context` (none for kTransfer without
  // --timeout); for streaming calls, whose context the caller holds.
  void SetDeadline(grpc::ClientContext& context, CallKind kind, int64_t extra_seconds = 0) const;

 private:
  GlobalOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::RuntimeService::Stub> runtime_;
  std::unique_ptr<v1::ImageService::Stub> image_;
  // Null until Images(), Console() or VmSpecs() is first called.
  std::shared_ptr<grpc::Channel> vmspec_channel_;
  std::shared_ptr<grpc::Channel> VmspecChannel();
  std::unique_ptr<vmspec_v1::Images::Stub> images_;
  std::unique_ptr<vmspec_v1::Console::Stub> console_;
  std::unique_ptr<vmspec_v1::VmSpecs::Stub> vmspecs_;
};

// "NOT_FOUND" for grpc::StatusCode::NOT_FOUND, and so on.
std::string_view CodeName(grpc::StatusCode code);

// Prints "vmletctl: <what>: <message> (<CODE>)" to stderr; returns
// kExitFailure.
int FailRpc(std::string_view what, const grpc::Status& status);

// Prints "vmletctl: <message>" to stderr; returns kExitFailure.
int Fail(std::string_view message);

// Prints "vmletctl: warning: <message>" to stderr.
void Warn(std::string_view message);

}  // namespace vmlet::ctl

#endif  // VMLET_CMD_VMLETCTL_CLIENT_H_
