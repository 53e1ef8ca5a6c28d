#include "cmd/vmletd/metrics_server.h"

#include <utility>

#include "absl/status/status.h"
#include "base/logging.h"
#include "base/status.h"
#include "base/str_util.h"

namespace vmlet {
namespace {

constexpr Logger kLog("metrics");

// Scrapes are small and quick; a few at once is plenty.
constexpr size_t kMaxConnections = 16;

void Serve(MetricsRegistry* registry, streaming::HttpExchange& exchange) {
  const streaming::HttpRequest& request = exchange.request();
  if (request.path != "/metrics") {
    exchange.Respond(404, "not found: metrics are at /metrics\n");
    return;
  }
  if (request.method != "GET") {
    exchange.Respond(405, StrCat("method ", request.method, " is not allowed (expected GET)\n"),
                     {{"Allow", "GET"}});
    return;
  }
  kLog.Debug("serving a scrape");
  // HttpExchange::Respond always sends "Content-Type: text/plain;
  // charset=utf-8", which Prometheus reads as the text format 0.0.4.
  exchange.Respond(200, registry->RenderText());
}

}  // namespace

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(std::string_view address,
                                                                    MetricsRegistry* registry) {
  if (registry == nullptr) {
    return absl::InvalidArgumentError("the metrics server needs a registry (got none)");
  }
  VMLET_ASSIGN_OR_RETURN(HostPort host_port, ParseHostPort(address));
  streaming::HttpServerOptions options;
  options.address = host_port.host;
  options.port = host_port.port;
  options.max_connections = kMaxConnections;
  absl::StatusOr<std::unique_ptr<streaming::HttpServer>> http = streaming::HttpServer::Start(
      options, [registry](streaming::HttpExchange& exchange) { Serve(registry, exchange); });
  if (!http.ok()) {
    return Annotate(http.status(), StrCat("starting the metrics server on ", address));
  }
  kLog.Info("serving metrics at http://{}/metrics",
            host_port.host.find(':') == std::string::npos
                ? StrCat(host_port.host, ":", (*http)->port())
                : StrCat("[", host_port.host, "]:", (*http)->port()));
  return std::unique_ptr<MetricsServer>(new MetricsServer(std::move(*http)));
}

MetricsServer::~MetricsServer() { Stop(); }

}  // namespace vmlet
