#include "streaming/server.h"

#include <utility>
#include <variant>

#include "base/logging.h"
#include "base/status.h"
#include "base/str_util.h"
#include "streaming/sessions.h"

namespace vmlet::streaming {
namespace {

constexpr Logger kLog("streaming");

}  // namespace

Server::Server(ServerOptions options, Runtime* runtime)
    : options_(std::move(options)), runtime_(runtime) {}

Server::~Server() { Stop(); }

absl::StatusOr<std::unique_ptr<Server>> Server::Start(ServerOptions options, Runtime* runtime) {
  std::unique_ptr<Server> server(new Server(options, runtime));
  Server* raw = server.get();
  VMLET_ASSIGN_OR_RETURN(
      server->http_,
      HttpServer::Start(options.http, [raw](HttpExchange& exchange) { raw->Handle(exchange); }));
  return server;
}

void Server::Stop() {
  if (http_ != nullptr) http_->Stop();
}

std::string Server::base_url() const { return http_->base_url(); }

absl::StatusOr<std::string> Server::Url(std::string_view kind, Request request) {
  VMLET_ASSIGN_OR_RETURN(std::string token, cache_.Insert(std::move(request)));
  return StrCat(http_->base_url(), "/", kind, "/", token);
}

absl::StatusOr<std::string> Server::GetExecUrl(ExecRequest request) {
  return Url("exec", std::move(request));
}

absl::StatusOr<std::string> Server::GetAttachUrl(AttachRequest request) {
  return Url("attach", std::move(request));
}

absl::StatusOr<std::string> Server::GetPortForwardUrl(PortForwardRequest request) {
  return Url("portforward", std::move(request));
}

void Server::Handle(HttpExchange& exchange) {
  const HttpRequest& http = exchange.request();
  std::string_view path = http.path;
  std::string_view kind;
  for (std::string_view candidate : {"exec", "attach", "portforward"}) {
    std::string prefix = StrCat("/", candidate, "/");
    if (path.substr(0, prefix.size()) == prefix) {
      kind = candidate;
      path.remove_prefix(prefix.size());
      break;
    }
  }
  if (kind.empty() || path.empty() || path.find('/') != std::string_view::npos) {
    exchange.Respond(404, StrCat("no such streaming endpoint \"", http.path,
                                 "\" (expected /exec/TOKEN, /attach/TOKEN or /portforward/TOKEN)"));
    return;
  }
  absl::StatusOr<Request> request = cache_.Consume(std::string(path));
  if (!request.ok()) {
    exchange.Respond(404, std::string(request.status().message()));
    return;
  }
  bool matches = (kind == "exec" && std::holds_alternative<ExecRequest>(*request)) ||
                 (kind == "attach" && std::holds_alternative<AttachRequest>(*request)) ||
                 (kind == "portforward" && std::holds_alternative<PortForwardRequest>(*request));
  if (!matches) {
    // Consumed all the same: a token is good for one try.
    exchange.Respond(404, StrCat("the token is not for /", kind));
    return;
  }
  if (const auto* forward = std::get_if<PortForwardRequest>(&*request)) {
    kLog.Info("port-forward session for pod sandbox {} started", forward->sandbox_id);
    ServePortForward(exchange, *forward, *runtime_, options_);
    kLog.Info("port-forward session for pod sandbox {} ended", forward->sandbox_id);
    return;
  }
  ServeRemoteCommand(exchange, *request, *runtime_, options_);
}

}  // namespace vmlet::streaming
