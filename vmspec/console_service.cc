#include "vmspec/console_service.h"

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

#include "base/logging.h"
#include "base/scope_guard.h"
#include "base/status.h"
#include "base/str_util.h"
#include "cri/instrumented_service.h"

namespace vmlet::vmspec {
namespace {

constexpr Logger kLog("vmspec");

// How often the output loop looks at the call's cancellation.
constexpr auto kCancelPoll = std::chrono::milliseconds(100);

// What passes between the console reader (driver's thread), the input
// thread and the output loop (the handler's thread) of one session.
struct Session {
  std::mutex mu;
  std::condition_variable changed;
  std::string output;        // Guarded by mu: not yet sent to the client.
  bool input_done = false;   // Guarded by mu: the input thread has ended.
  absl::Status input_error;  // Guarded by mu: why typing failed, if it did.
};

// The full id of a running container, from its id or unique prefix.
absl::StatusOr<std::string> RunningContainer(cri::CriService& cri, const std::string& id) {
  runtime::v1::ContainerStatusRequest request;
  request.set_container_id(id);
  runtime::v1::ContainerStatusResponse response;
  VMLET_RETURN_IF_ERROR(cri.ContainerStatus(request, &response));
  if (response.status().state() != runtime::v1::CONTAINER_RUNNING) {
    return absl::FailedPreconditionError(
        StrCat("container \"", response.status().id(),
               "\" is not running: its console exists only while it runs"));
  }
  return response.status().id();
}

}  // namespace

grpc::Status ConsoleService::Attach(
    grpc::ServerContext* context,
    grpc::ServerReaderWriter<v1::ConsoleOutput, v1::ConsoleInput>* stream) {
  v1::ConsoleInput first;
  if (!stream->Read(&first)) return grpc::Status::OK;  // The client left at once.
  if (first.container_id().empty()) {
    return cri::ToGrpcStatus(absl::InvalidArgumentError(
        "container_id is empty: expected the first ConsoleInput to name a container"));
  }
  absl::StatusOr<std::string> id = RunningContainer(*cri_, first.container_id());
  if (!id.ok()) return cri::ToGrpcStatus(Annotate(id.status(), "attaching to a console"));

  Session session;
  absl::StatusOr<int> handle = driver_->AttachConsole(*id, [&session](std::string_view bytes) {
    std::lock_guard lock(session.mu);
    session.output.append(bytes);
    if (session.output.size() > kMaxPendingOutputBytes) {
      session.output.erase(0, session.output.size() - kMaxPendingOutputBytes);
    }
    session.changed.notify_one();
  });
  if (!handle.ok()) {
    return cri::ToGrpcStatus(
        Annotate(handle.status(), StrCat("attaching to the console of container \"", *id, "\"")));
  }
  ScopeGuard detach([&] { driver_->DetachConsole(*id, *handle); });
  kLog.Info("container {}: console attached", *id);

  auto type = [&](std::string_view bytes) {
    if (bytes.empty()) return true;
    absl::Status status = driver_->WriteConsole(*id, bytes);
    if (status.ok()) return true;
    std::lock_guard lock(session.mu);
    session.input_error = std::move(status);
    return false;
  };
  // The one concurrent Read next to this thread's Writes that gRPC allows.
  // Read returns false on half-close, cancellation and server shutdown.
  std::thread input([&] {
    if (type(first.data())) {
      v1::ConsoleInput message;
      while (stream->Read(&message) && type(message.data())) {
      }
    }
    std::lock_guard lock(session.mu);
    session.input_done = true;
    session.changed.notify_one();
  });

  bool client_gone = false;
  for (;;) {
    std::string chunk;
    bool input_done;
    {
      std::unique_lock lock(session.mu);
      session.changed.wait_for(lock, kCancelPoll,
                               [&] { return !session.output.empty() || session.input_done; });
      chunk.swap(session.output);
      input_done = session.input_done;
    }
    if (!chunk.empty() && !client_gone) {
      v1::ConsoleOutput output;
      output.set_data(std::move(chunk));
      client_gone = !stream->Write(output);
    }
    if (input_done) break;
    // Unblocks the input thread's Read as well.
    if (client_gone || context->IsCancelled()) context->TryCancel();
  }
  input.join();
  kLog.Info("container {}: console detached", *id);
  std::lock_guard lock(session.mu);
  if (!session.input_error.ok()) {
    return cri::ToGrpcStatus(Annotate(
        session.input_error, StrCat("typing into the console of container \"", *id, "\"")));
  }
  return grpc::Status::OK;
}

}  // namespace vmlet::vmspec
