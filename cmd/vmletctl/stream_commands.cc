// The vmletctl commands that go through vmletd's streaming server, as
// kubectl does through the kubelet: `exec` (live output, -i, -t),
// `attach` (the serial console through the CRI's Attach) and `port-forward`.
// They call the CRI for a URL and speak SPDY/3.1 to it.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "base/str_util.h"
#include "cmd/vmletctl/commands.h"
#include "cmd/vmletctl/flags.h"
#include "cmd/vmletctl/pod_lookup.h"
#include "cmd/vmletctl/terminal.h"
#include "streaming/client.h"

namespace vmlet::ctl {
namespace {

// A pipe that tells PumpStdin to stop.
class Waker {
 public:
  Waker() {
    if (::pipe2(fds_, O_CLOEXEC) != 0) fds_[0] = fds_[1] = -1;
  }
  ~Waker() {
    for (int fd : fds_) {
      if (fd >= 0) ::close(fd);
    }
  }
  int fd() const { return fds_[0]; }
  void Wake() {
    char byte = 0;
    (void)!::write(fds_[1], &byte, 1);
  }

 private:
  int fds_[2];
};

// Copies `stream` to `fd` until its end; false when the stream failed.
bool CopyOut(streaming::Stream& stream, int fd) {
  while (true) {
    absl::StatusOr<std::string> chunk = stream.Read();
    if (!chunk.ok()) return false;
    if (chunk->empty()) return true;
    if (!WriteAll(fd, *chunk)) return false;
  }
}

// Runs a connected exec or attach session against this terminal: output
// to stdout and stderr, stdin (when the session has it) until the session's
// end. The escape character leaves at once (exit code 0); at the end of
// input stdin is closed and the server ends the session. Returns the exit
// code the session reports.
absl::StatusOr<int> RunInteractive(streaming::CommandSession& session, std::optional<char> escape) {
  Waker waker;
  std::atomic<bool> left = false;
  std::thread input;
  if (session.stdin != nullptr) {
    input = std::thread([&] {
      InputEnd end = PumpStdin(escape, waker.fd(), [&](std::string_view data) {
        return session.stdin->Write(data).ok();
      });
      if (end == InputEnd::kEscape) {
        left = true;
        session.Close();  // Ends the output copies below.
        return;
      }
      (void)session.stdin->CloseWrite();
    });
  }
  std::thread err;
  if (session.stderr != nullptr) err = std::thread([&] { CopyOut(*session.stderr, 2); });
  if (session.stdout != nullptr) CopyOut(*session.stdout, 1);
  if (err.joinable()) err.join();
  absl::StatusOr<int> result = left ? absl::StatusOr<int>(0) : session.Wait();
  waker.Wake();
  if (input.joinable()) input.join();
  return result;
}

}  // namespace

int StreamExec(Client& client, const v1::Container& vm, const std::vector<std::string>& cmd,
               bool in, bool tty, const std::string& what) {
  v1::ExecRequest request;
  request.set_container_id(vm.id());
  for (const std::string& arg : cmd) request.add_cmd(arg);
  request.set_stdin(in);
  request.set_stdout(true);
  request.set_stderr(!tty);
  request.set_tty(tty);
  v1::ExecResponse response;
  grpc::Status status = client.Runtime(&v1::RuntimeService::Stub::Exec, request, &response);
  if (!status.ok()) return FailRpc(StrCat("Exec in ", what), status);
  absl::StatusOr<std::unique_ptr<streaming::CommandSession>> session = streaming::ConnectCommand(
      response.url(), {.stdin = in, .stdout = true, .stderr = !tty, .tty = tty});
  if (!session.ok()) return Fail(StrCat("exec in ", what, ": ", session.status().message()));
  absl::StatusOr<int> exit_code;
  {
    RawTerminal terminal(tty && in);
    exit_code = RunInteractive(**session, std::nullopt);
  }
  if (!exit_code.ok()) return Fail(StrCat("exec in ", what, ": ", exit_code.status().message()));
  return *exit_code;
}

int Attach(Client& client, Args args) {
  std::string namespace_ = "default";
  std::string escape_text = "^]";
  bool no_stdin = false;
  FlagSet flags("attach",
                "usage: vmletctl [options] attach NAME [options]\n"
                "\n"
                "Attaches to the serial console of VM pod NAME the way kubectl attach does:\n"
                "through the CRI's Attach and vmletd's streaming server (SPDY). Prints what\n"
                "the guest writes and types what you type; leave with the escape character\n"
                "(Ctrl-] by default) or end the input. Several sessions may watch one VM;\n"
                "one at a time may type.\n"
                "\n"
                "Options:\n"
                "  --namespace NS   the pod's namespace (default \"default\")\n"
                "  --escape CHAR    the escape character: ^X for Ctrl-X (default ^])\n"
                "  --no-stdin       only watch\n");
  flags.AddString("--namespace|-n", &namespace_);
  flags.AddString("--escape|-e", &escape_text);
  flags.AddBool("--no-stdin", &no_stdin);
  if (auto done = flags.Parse(args, 1, 1)) return *done;
  std::optional<char> escape = ParseEscape(escape_text);
  if (!escape.has_value()) {
    return flags.Error(StrCat("--escape \"", escape_text,
                              "\" is invalid: expected one character or ^X for Ctrl-X"));
  }
  const std::string& name = flags.positional()[0];
  std::optional<v1::Container> vm = FindPodVm(client, name, namespace_);
  if (!vm.has_value()) return kExitFailure;
  v1::AttachRequest request;
  request.set_container_id(vm->id());
  request.set_stdin(!no_stdin);
  request.set_stdout(true);
  request.set_tty(true);
  v1::AttachResponse response;
  grpc::Status status = client.Runtime(&v1::RuntimeService::Stub::Attach, request, &response);
  if (!status.ok()) return FailRpc(StrCat("Attach to ", DescribePod(name, namespace_)), status);
  absl::StatusOr<std::unique_ptr<streaming::CommandSession>> session =
      streaming::ConnectCommand(response.url(), {.stdin = !no_stdin, .stderr = false, .tty = true});
  if (!session.ok()) {
    return Fail(
        StrCat("attaching to ", DescribePod(name, namespace_), ": ", session.status().message()));
  }
  absl::StatusOr<int> result;
  {
    RawTerminal terminal(!no_stdin);
    std::fprintf(stderr, "Attached to the console of pod %s (escape character is %s)%s",
                 name.c_str(), EscapeName(*escape).c_str(), terminal.newline());
    result = RunInteractive(**session, escape);
    std::fprintf(stderr, "%sDetached from the console of pod %s%s", terminal.newline(),
                 name.c_str(), terminal.newline());
  }
  if (!result.ok()) {
    return Fail(
        StrCat("console of ", DescribePod(name, namespace_), ": ", result.status().message()));
  }
  return kExitOk;
}

namespace {

struct Mapping {
  int local = 0;
  int remote = 0;
};

// "8080:80" or "80" (the same port on both sides); "0:80" picks a free
// local port.
std::optional<Mapping> ParseMapping(const std::string& text) {
  auto number = [](std::string_view part, int min) -> std::optional<int> {
    int value = -1;
    auto [end, ec] = std::from_chars(part.data(), part.data() + part.size(), value);
    if (ec != std::errc() || end != part.data() + part.size() || value < min || value > 65535) {
      return std::nullopt;
    }
    return value;
  };
  size_t colon = text.find(':');
  std::optional<int> remote =
      number(colon == std::string::npos ? text : std::string_view(text).substr(colon + 1), 1);
  std::optional<int> local =
      colon == std::string::npos ? remote : number(std::string_view(text).substr(0, colon), 0);
  if (!remote.has_value() || !local.has_value()) return std::nullopt;
  return Mapping{*local, *remote};
}

// Copies one accepted local connection to and from a forwarded stream.
void Relay(int fd, streaming::PortForwardSession::Connection connection) {
  std::thread down([fd, data = connection.data] {
    CopyOut(*data, fd);
    ::shutdown(fd, SHUT_WR);
  });
  char buffer[32 * 1024];
  while (true) {
    ssize_t n = ::recv(fd, buffer, sizeof(buffer), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    if (!connection.data->Write(std::string_view(buffer, static_cast<size_t>(n))).ok()) break;
  }
  (void)connection.data->CloseWrite();
  down.join();
  absl::StatusOr<std::string> error = streaming::ReadAll(*connection.error);
  if (error.ok() && !error->empty()) Warn(*error);
}

volatile sig_atomic_t g_stop = 0;
void OnStop(int) { g_stop = 1; }

}  // namespace

int PortForward(Client& client, Args args) {
  std::string namespace_ = "default";
  std::string address = "127.0.0.1";
  FlagSet flags("port-forward",
                "usage: vmletctl [options] port-forward NAME [LOCAL:]REMOTE...\n"
                "\n"
                "Forwards local TCP ports to ports of VM pod NAME, as kubectl port-forward\n"
                "does: through the CRI's PortForward and vmletd's streaming server, to the\n"
                "pod's IP address. LOCAL 0 picks a free port. Runs until interrupted.\n"
                "\n"
                "Options:\n"
                "  --namespace NS    the pod's namespace (default \"default\")\n"
                "  --address ADDR    the local IPv4 address to listen on (default 127.0.0.1)\n");
  flags.AddString("--namespace|-n", &namespace_);
  flags.AddString("--address", &address);
  if (auto done = flags.Parse(args, 2, 64)) return *done;
  const std::vector<std::string>& words = flags.positional();
  std::vector<Mapping> mappings;
  for (size_t i = 1; i < words.size(); ++i) {
    std::optional<Mapping> mapping = ParseMapping(words[i]);
    if (!mapping.has_value()) {
      return flags.Error(StrCat("\"", words[i],
                                "\" is invalid: expected [LOCAL:]REMOTE with ports from 1 to "
                                "65535 (LOCAL 0: any free port)"));
    }
    mappings.push_back(*mapping);
  }
  in_addr listen_address{};
  if (::inet_pton(AF_INET, address.c_str(), &listen_address) != 1) {
    return flags.Error(StrCat("--address \"", address, "\" is invalid: expected an IPv4 address"));
  }
  const std::string& name = words[0];
  std::optional<v1::Container> vm = FindPodVm(client, name, namespace_);
  if (!vm.has_value()) return kExitFailure;
  v1::PortForwardRequest request;
  request.set_pod_sandbox_id(vm->pod_sandbox_id());
  for (const Mapping& mapping : mappings) request.add_port(mapping.remote);
  v1::PortForwardResponse response;
  grpc::Status status = client.Runtime(&v1::RuntimeService::Stub::PortForward, request, &response);
  if (!status.ok()) {
    return FailRpc(StrCat("PortForward to ", DescribePod(name, namespace_)), status);
  }
  absl::StatusOr<std::unique_ptr<streaming::PortForwardSession>> session =
      streaming::ConnectPortForward(response.url(), {});
  if (!session.ok()) {
    return Fail(StrCat("port-forward to ", DescribePod(name, namespace_), ": ",
                       session.status().message()));
  }
  std::vector<pollfd> listeners;
  auto close_listeners = [&] {
    for (const pollfd& listener : listeners) ::close(listener.fd);
  };
  for (const Mapping& mapping : mappings) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in local{.sin_family = AF_INET,
                      .sin_port = htons(static_cast<uint16_t>(mapping.local)),
                      .sin_addr = listen_address};
    socklen_t length = sizeof(local);
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof(local)) != 0 ||
        ::listen(fd, 64) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &length) != 0) {
      int error = errno;
      if (fd >= 0) ::close(fd);
      close_listeners();
      return Fail(StrCat("listening on ", address, ":", mapping.local, ": ", std::strerror(error)));
    }
    listeners.push_back({fd, POLLIN, 0});
    std::printf("Forwarding from %s:%d -> %d\n", address.c_str(), ntohs(local.sin_port),
                mapping.remote);
  }
  std::fflush(stdout);
  ::signal(SIGINT, OnStop);
  ::signal(SIGTERM, OnStop);
  std::list<std::thread> relays;
  std::vector<int> accepted;  // Closed after their relays end.
  auto finish = [&] {
    close_listeners();
    for (int fd : accepted) ::shutdown(fd, SHUT_RDWR);
    (*session)->Close();
    for (std::thread& relay : relays) relay.join();
    for (int fd : accepted) ::close(fd);
  };
  while (!g_stop) {
    int ready = ::poll(listeners.data(), listeners.size(), 500);
    if (ready <= 0) continue;
    for (size_t i = 0; i < listeners.size(); ++i) {
      if ((listeners[i].revents & POLLIN) == 0) continue;
      int fd = ::accept4(listeners[i].fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      absl::StatusOr<streaming::PortForwardSession::Connection> connection =
          (*session)->Open(mappings[i].remote);
      if (!connection.ok()) {
        ::close(fd);
        finish();
        return Fail(StrCat("port-forward to ", DescribePod(name, namespace_), ": ",
                           connection.status().message()));
      }
      std::printf("Handling connection for %d\n", mappings[i].remote);
      std::fflush(stdout);
      accepted.push_back(fd);
      relays.emplace_back(Relay, fd, *std::move(connection));
    }
  }
  finish();
  return kExitOk;
}

}  // namespace vmlet::ctl
