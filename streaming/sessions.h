// The two kinds of streaming session, once the server has found the
// request behind a token (server.cc). Internal to streaming/.
#ifndef VMLET_STREAMING_SESSIONS_H_
#define VMLET_STREAMING_SESSIONS_H_

#include "streaming/http_server.h"
#include "streaming/request_cache.h"
#include "streaming/runtime.h"
#include "streaming/server.h"

namespace vmlet::streaming {

// Exec or attach (`request` holds one of them): negotiates the protocol,
// upgrades, collects the client's streams and runs the runtime's side.
// Returns when the session is over. The connection's thread.
void ServeRemoteCommand(HttpExchange& exchange, const Request& request, Runtime& runtime,
                        const ServerOptions& options);

// Port-forward: every connection the client opens on this session, until
// it closes the session. The connection's thread.
void ServePortForward(HttpExchange& exchange, const PortForwardRequest& request, Runtime& runtime,
                      const ServerOptions& options);

// Whether the request asks for a WebSocket (Upgrade: websocket).
bool IsWebSocketRequest(const HttpRequest& request);

}  // namespace vmlet::streaming

#endif  // VMLET_STREAMING_SESSIONS_H_
