#include "streaming/client.h"

#include <map>
#include <mutex>
#include <thread>
#include <utility>

#include "base/status.h"
#include "base/str_util.h"
#include "streaming/protocols.h"
#include "streaming/spdy_session.h"
#include "streaming/websocket.h"

namespace vmlet::streaming {
namespace {

class SpdyCommandSession final : public CommandSession {
 public:
  SpdyCommandSession(std::shared_ptr<SpdySession> session, std::shared_ptr<Stream> error)
      : session_(std::move(session)), error_(std::move(error)) {}
  ~SpdyCommandSession() override { Close(); }

  absl::StatusOr<int> Wait() override {
    VMLET_ASSIGN_OR_RETURN(std::string content, ReadAll(*error_));
    return ParseErrorStream(protocol, content);
  }
  void Close() override { session_->Close(); }

 private:
  std::shared_ptr<SpdySession> session_;
  std::shared_ptr<Stream> error_;
};

class WebSocketCommandSession final : public CommandSession {
 public:
  WebSocketCommandSession(std::shared_ptr<ChannelConnection> channels,
                          std::shared_ptr<Stream> error)
      : channels_(std::move(channels)), error_(std::move(error)) {}
  ~WebSocketCommandSession() override { Close(); }

  // The error channel has no end of its own before v5: the server writes
  // one status and then closes the connection.
  absl::StatusOr<int> Wait() override {
    std::string content;
    while (true) {
      absl::StatusOr<std::string> chunk = error_->Read();
      if (!chunk.ok() || chunk->empty()) break;
      content += *chunk;
    }
    return ParseErrorStream(protocol, content);
  }
  void Close() override { channels_->Close(); }

 private:
  std::shared_ptr<ChannelConnection> channels_;
  std::shared_ptr<Stream> error_;
};

const std::vector<std::string>& DefaultProtocols(WireProtocol wire) {
  static const std::vector<std::string> spdy = {kProtocolV4, kProtocolV3, kProtocolV2, kProtocolV1};
  static const std::vector<std::string> websocket = {kProtocolV5, kProtocolV4, kProtocolV1};
  return wire == WireProtocol::kSpdy ? spdy : websocket;
}

absl::StatusOr<std::unique_ptr<CommandSession>> ConnectSpdyCommand(
    const std::string& url, const CommandOptions& options,
    const std::vector<std::string>& protocols) {
  VMLET_ASSIGN_OR_RETURN(SpdyDialResult dialed, DialSpdy(url, protocols, options.dial));
  std::shared_ptr<SpdySession> session =
      SpdySession::Start(std::move(dialed.transport), SpdySession::Role::kClient);
  std::string protocol = dialed.protocol.empty() ? kProtocolV1 : dialed.protocol;
  absl::Time deadline = absl::Now() + options.timeout;
  auto open = [&](const char* type) {
    return session->OpenStream({{kHeaderStreamType, type}}, deadline);
  };
  absl::StatusOr<std::shared_ptr<Stream>> error = open(kStreamTypeError);
  if (!error.ok()) {
    session->Close();
    return error.status();
  }
  auto result = std::make_unique<SpdyCommandSession>(session, *error);
  result->protocol = protocol;
  struct Wanted {
    bool wanted;
    const char* type;
    std::shared_ptr<Stream>* slot;
  };
  std::shared_ptr<Stream> resize;
  bool resizable = protocol != kProtocolV1 && protocol != kProtocolV2;
  for (const Wanted& want :
       {Wanted{options.stdin, kStreamTypeStdin, &result->stdin},
        Wanted{options.stdout, kStreamTypeStdout, &result->stdout},
        Wanted{options.stderr && !options.tty, kStreamTypeStderr, &result->stderr},
        Wanted{options.tty && resizable, kStreamTypeResize, &resize}}) {
    if (!want.wanted) continue;
    VMLET_ASSIGN_OR_RETURN(*want.slot, open(want.type));
  }
  return result;
}

absl::StatusOr<std::unique_ptr<CommandSession>> ConnectWebSocketCommand(
    const std::string& url, const CommandOptions& options,
    const std::vector<std::string>& protocols) {
  VMLET_ASSIGN_OR_RETURN(std::unique_ptr<WebSocket> socket,
                         DialWebSocket(url, protocols, options.dial));
  std::string protocol = socket->subprotocol().empty() ? kProtocolV1 : socket->subprotocol();
  auto channels = std::make_shared<ChannelConnection>(std::move(socket), protocol);
  auto result =
      std::make_unique<WebSocketCommandSession>(channels, channels->Channel(kChannelError));
  result->protocol = protocol;
  if (options.stdin) result->stdin = channels->Channel(kChannelStdin);
  if (options.stdout) result->stdout = channels->Channel(kChannelStdout);
  if (options.stderr && !options.tty) result->stderr = channels->Channel(kChannelStderr);
  return result;
}

std::string WithQuery(const std::string& url, const std::vector<int32_t>& ports) {
  std::string out = url;
  char separator = url.find('?') == std::string::npos ? '?' : '&';
  for (int32_t port : ports) {
    StrAppend(&out, std::string(1, separator), kHeaderPort, "=", port);
    separator = '&';
  }
  return out;
}

class SpdyPortForwardSession final : public PortForwardSession {
 public:
  SpdyPortForwardSession(std::shared_ptr<SpdySession> session, absl::Duration timeout)
      : session_(std::move(session)), timeout_(timeout) {}
  ~SpdyPortForwardSession() override { Close(); }

  absl::StatusOr<Connection> Open(int32_t port) override {
    std::string id;
    {
      std::lock_guard lock(mu_);
      id = std::to_string(next_request_id_++);
    }
    absl::Time deadline = absl::Now() + timeout_;
    Headers headers = {{kHeaderStreamType, kStreamTypeError},
                       {kHeaderPort, std::to_string(port)},
                       {kHeaderRequestId, id}};
    Connection connection;
    VMLET_ASSIGN_OR_RETURN(connection.error, session_->OpenStream(headers, deadline));
    // The client never writes to the error stream.
    (void)connection.error->CloseWrite();
    headers[0].second = kStreamTypeData;
    VMLET_ASSIGN_OR_RETURN(connection.data, session_->OpenStream(headers, deadline));
    return connection;
  }
  void Close() override { session_->Close(); }

 private:
  std::shared_ptr<SpdySession> session_;
  const absl::Duration timeout_;
  std::mutex mu_;
  int next_request_id_ = 0;
};

class WebSocketPortForwardSession final : public PortForwardSession {
 public:
  WebSocketPortForwardSession(std::shared_ptr<ChannelConnection> channels,
                              std::vector<int32_t> ports)
      : channels_(std::move(channels)), ports_(std::move(ports)) {}
  ~WebSocketPortForwardSession() override { Close(); }

  absl::StatusOr<Connection> Open(int32_t port) override {
    std::lock_guard lock(mu_);
    for (size_t i = 0; i < ports_.size(); ++i) {
      if (ports_[i] != port || opened_.count(i) != 0) continue;
      opened_.insert({i, true});
      Connection connection{.data = channels_->Channel(static_cast<uint8_t>(2 * i)),
                            .error = channels_->Channel(static_cast<uint8_t>(2 * i + 1))};
      // Each channel starts with its port, two bytes little endian.
      for (Stream* stream : {connection.data.get(), connection.error.get()}) {
        std::string prefix;
        while (prefix.size() < 2) {
          VMLET_ASSIGN_OR_RETURN(std::string chunk, stream->Read());
          if (chunk.empty()) return absl::UnavailableError("the port-forward session ended");
          prefix += chunk;
        }
        if (prefix.size() > 2) {
          return absl::InternalError("data arrived in the same message as the port prefix");
        }
      }
      return connection;
    }
    return absl::InvalidArgumentError(
        StrCat("port ", port, " was not named when the WebSocket session opened, or is in use"));
  }
  void Close() override { channels_->Close(); }

 private:
  std::shared_ptr<ChannelConnection> channels_;
  const std::vector<int32_t> ports_;
  std::mutex mu_;
  std::map<size_t, bool> opened_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<CommandSession>> ConnectCommand(const std::string& url,
                                                               const CommandOptions& options) {
  const std::vector<std::string>& protocols =
      options.protocols.empty() ? DefaultProtocols(options.wire) : options.protocols;
  if (options.wire == WireProtocol::kSpdy) return ConnectSpdyCommand(url, options, protocols);
  return ConnectWebSocketCommand(url, options, protocols);
}

absl::StatusOr<std::string> ReadAll(Stream& stream) {
  std::string out;
  while (true) {
    VMLET_ASSIGN_OR_RETURN(std::string chunk, stream.Read());
    if (chunk.empty()) return out;
    out += chunk;
  }
}

absl::StatusOr<CommandOutput> RunCommand(CommandSession& session, std::string_view input) {
  if (session.stdin != nullptr) {
    VMLET_RETURN_IF_ERROR(session.stdin->Write(input));
    VMLET_RETURN_IF_ERROR(session.stdin->CloseWrite());
  }
  CommandOutput output;
  absl::Status err_status = absl::OkStatus();
  std::thread err_reader;
  if (session.stderr != nullptr) {
    err_reader = std::thread([&] {
      absl::StatusOr<std::string> data = ReadAll(*session.stderr);
      if (data.ok()) {
        output.stderr_data = *std::move(data);
      } else {
        err_status = data.status();
      }
    });
  }
  absl::Status out_status = absl::OkStatus();
  if (session.stdout != nullptr) {
    absl::StatusOr<std::string> data = ReadAll(*session.stdout);
    if (data.ok()) {
      output.stdout_data = *std::move(data);
    } else {
      out_status = data.status();
    }
  }
  if (err_reader.joinable()) err_reader.join();
  VMLET_RETURN_IF_ERROR(out_status);
  VMLET_RETURN_IF_ERROR(err_status);
  VMLET_ASSIGN_OR_RETURN(output.exit_code, session.Wait());
  return output;
}

absl::StatusOr<std::unique_ptr<PortForwardSession>> ConnectPortForward(
    const std::string& url, const PortForwardOptions& options) {
  if (options.wire == WireProtocol::kSpdy) {
    VMLET_ASSIGN_OR_RETURN(SpdyDialResult dialed,
                           DialSpdy(url, {kProtocolPortForward}, options.dial));
    return std::make_unique<SpdyPortForwardSession>(
        SpdySession::Start(std::move(dialed.transport), SpdySession::Role::kClient),
        options.timeout);
  }
  VMLET_ASSIGN_OR_RETURN(std::unique_ptr<WebSocket> socket,
                         DialWebSocket(WithQuery(url, options.ports), {kProtocolV4}, options.dial));
  auto channels = std::make_shared<ChannelConnection>(std::move(socket), kProtocolV4);
  return std::make_unique<WebSocketPortForwardSession>(channels, options.ports);
}

}  // namespace vmlet::streaming
