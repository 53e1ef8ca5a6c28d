// The streaming server behind the CRI's Exec, Attach and PortForward: the
// CRI call stores the request and returns a URL with a single-use token
// (request_cache.h); the kubelet (or crictl, or vmletctl) connects there and
// upgrades to SPDY/3.1 or WebSocket; the server then collects the client's
// streams and hands them to the Runtime.
//
//   GET/POST /exec/<token>          remotecommand: v4 .. v1 (SPDY), v5 .. v1 (WebSocket)
//   GET/POST /attach/<token>        the same protocols
//   GET/POST /portforward/<token>   portforward.k8s.io (SPDY); v4.channel.k8s.io (WebSocket)
#ifndef VMLET_STREAMING_SERVER_H_
#define VMLET_STREAMING_SERVER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "streaming/http_server.h"
#include "streaming/request_cache.h"
#include "streaming/runtime.h"

namespace vmlet::streaming {

struct ServerOptions {
  HttpServerOptions http;
  // How long a client has, once upgraded, to open the streams it asked
  // for (the kubelet's default).
  absl::Duration stream_creation_timeout = absl::Seconds(30);
  // How long the server waits, after the last status is written, for the
  // client to close the connection before it closes it itself.
  absl::Duration linger = absl::Seconds(5);
};

// All methods: any thread.
class Server {
 public:
  // Listens and serves; `runtime` must outlive the server.
  static absl::StatusOr<std::unique_ptr<Server>> Start(ServerOptions options, Runtime* runtime);
  ~Server();

  // The URL for one exec, attach or port-forward session.
  // RESOURCE_EXHAUSTED when too many requests wait for their client.
  absl::StatusOr<std::string> GetExecUrl(ExecRequest request);
  absl::StatusOr<std::string> GetAttachUrl(AttachRequest request);
  absl::StatusOr<std::string> GetPortForwardUrl(PortForwardRequest request);

  // "http://127.0.0.1:PORT" (https with TLS).
  std::string base_url() const;

  // Stops listening and ends every session; returns once all are gone.
  void Stop();

 private:
  Server(ServerOptions options, Runtime* runtime);
  absl::StatusOr<std::string> Url(std::string_view kind, Request request);
  void Handle(HttpExchange& exchange);

  const ServerOptions options_;
  Runtime* const runtime_;
  RequestCache cache_;
  std::unique_ptr<HttpServer> http_;
};

}  // namespace vmlet::streaming

#endif  // VMLET_STREAMING_SERVER_H_
