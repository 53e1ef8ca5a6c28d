// Exec, Attach and PortForward: check the request, then hand it to the
// streaming server, which returns the URL the client connects to. The
// session itself runs in streaming_runtime.cc.
#include <string>
#include <utility>
#include <vector>

#include "base/status.h"
#include "base/str_util.h"
#include "cri/convert.h"
#include "cri/cri_service.h"
#include "cri/validate.h"

namespace vmlet::cri {
namespace {

// The standard streams of an exec or attach request.
absl::Status ValidateStreams(bool in, bool out, bool err, bool tty) {
  if (!in && !out && !err) {
    return absl::InvalidArgumentError(
        "stdin, stdout, stderr: all false: expected at least one of them to be true");
  }
  if (tty && err) {
    return absl::InvalidArgumentError(
        "tty and stderr: both true: with a terminal, stderr goes to stdout; set stderr to false");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ContainerRecord> CriService::GetRunningContainer(std::string_view id,
                                                                std::string_view only_then) {
  VMLET_ASSIGN_OR_RETURN(ContainerRecord container, containers_.Get(id));
  if (container.state() != state::v1::CONTAINER_STATE_RUNNING) {
    return absl::FailedPreconditionError(StrCat("container \"", container.id(), "\" is ",
                                                StateName(container.state()), ": ", only_then));
  }
  return container;
}

absl::StatusOr<streaming::Server*> CriService::StreamingServer() const {
  if (streaming_server_ == nullptr) {
    return absl::UnavailableError("the streaming server of vmletd is not running");
  }
  return streaming_server_;
}

absl::Status CriService::Exec(const v1::ExecRequest& req, v1::ExecResponse* resp) {
  VMLET_RETURN_IF_ERROR(ValidateIdField("container_id", req.container_id()));
  VMLET_RETURN_IF_ERROR(ValidateCommand(req.cmd()));
  VMLET_RETURN_IF_ERROR(ValidateStreams(req.stdin(), req.stdout(), req.stderr(), req.tty()));
  VMLET_ASSIGN_OR_RETURN(
      ContainerRecord container,
      GetRunningContainer(req.container_id(), "commands run only in a running container"));
  VMLET_ASSIGN_OR_RETURN(streaming::Server * server, StreamingServer());
  VMLET_ASSIGN_OR_RETURN(
      std::string url,
      server->GetExecUrl({.container_id = container.id(),
                          .cmd = std::vector<std::string>(req.cmd().begin(), req.cmd().end()),
                          .tty = req.tty(),
                          .stdin = req.stdin(),
                          .stdout = req.stdout(),
                          .stderr = req.stderr()}));
  resp->set_url(std::move(url));
  return absl::OkStatus();
}

absl::Status CriService::Attach(const v1::AttachRequest& req, v1::AttachResponse* resp) {
  VMLET_RETURN_IF_ERROR(ValidateIdField("container_id", req.container_id()));
  VMLET_RETURN_IF_ERROR(ValidateStreams(req.stdin(), req.stdout(), req.stderr(), req.tty()));
  VMLET_ASSIGN_OR_RETURN(
      ContainerRecord container,
      GetRunningContainer(req.container_id(), "only a running VM has a console to attach to"));
  VMLET_ASSIGN_OR_RETURN(streaming::Server * server, StreamingServer());
  VMLET_ASSIGN_OR_RETURN(std::string url, server->GetAttachUrl({.container_id = container.id(),
                                                                .tty = req.tty(),
                                                                .stdin = req.stdin(),
                                                                .stdout = req.stdout(),
                                                                .stderr = req.stderr()}));
  resp->set_url(std::move(url));
  return absl::OkStatus();
}

absl::Status CriService::PortForward(const v1::PortForwardRequest& req,
                                     v1::PortForwardResponse* resp) {
  VMLET_RETURN_IF_ERROR(ValidateIdField("pod_sandbox_id", req.pod_sandbox_id()));
  std::vector<int32_t> ports;
  for (int i = 0; i < req.port_size(); ++i) {
    if (req.port(i) < 1 || req.port(i) > 65535) {
      return absl::InvalidArgumentError(
          StrCat("port[", i, "]: ", req.port(i), ": expected a port number from 1 to 65535"));
    }
    ports.push_back(req.port(i));
  }
  VMLET_ASSIGN_OR_RETURN(SandboxRecord sandbox, sandboxes_.Get(req.pod_sandbox_id()));
  if (sandbox.state() != state::v1::SANDBOX_STATE_READY) {
    return absl::FailedPreconditionError(
        StrCat("pod sandbox \"", sandbox.id(), "\" is not ready: port-forward needs its network"));
  }
  if (sandbox.network().ips().empty()) {
    return absl::FailedPreconditionError(
        StrCat("pod sandbox \"", sandbox.id(),
               "\" has no IP address (pod_network: none?): there is nothing to forward to"));
  }
  VMLET_ASSIGN_OR_RETURN(streaming::Server * server, StreamingServer());
  VMLET_ASSIGN_OR_RETURN(std::string url,
                         server->GetPortForwardUrl({.sandbox_id = sandbox.id(), .ports = ports}));
  resp->set_url(std::move(url));
  return absl::OkStatus();
}

}  // namespace vmlet::cri
