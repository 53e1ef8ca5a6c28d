// vmletd's Prometheus endpoint (config key `metrics_address`): GET /metrics
// answers with the registry's text exposition format over plain HTTP.
//
// Threads: Start, port and Stop from any thread; each scrape runs on a
// connection thread of the HTTP server (the registry's collectors run there).
#ifndef VMLET_CMD_VMLETD_METRICS_SERVER_H_
#define VMLET_CMD_VMLETD_METRICS_SERVER_H_

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "base/host_port.h"
#include "base/metrics.h"
#include "streaming/http_server.h"

namespace vmlet {

class MetricsServer {
 public:
  // Listens on `address` (see ParseHostPort) and serves `registry`, which
  // must outlive the server: GET /metrics is 200 with RenderText (the query
  // string is ignored), another path 404, another method on /metrics 405.
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(std::string_view address,
                                                              MetricsRegistry* registry);
  ~MetricsServer();  // Stop().
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // The port it listens on (the chosen one for port 0).
  int port() const { return http_->port(); }
  // Stops listening and waits for scrapes in progress. Idempotent.
  void Stop() { http_->Stop(); }

 private:
  explicit MetricsServer(std::unique_ptr<streaming::HttpServer> http) : http_(std::move(http)) {}

  std::unique_ptr<streaming::HttpServer> http_;
};

}  // namespace vmlet

#endif  // VMLET_CMD_VMLETD_METRICS_SERVER_H_
