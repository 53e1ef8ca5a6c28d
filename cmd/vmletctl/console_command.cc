// `vmletctl console NAME [--escape CHAR]`: the serial console of a VM pod,
// interactively, like `virsh console`. Output of the guest goes to stdout;
// stdin is typed into the guest until the escape character (default ^],
// Ctrl-]) or EOF. On a terminal, stdin is put in raw mode so that every key
// (Ctrl-C included) reaches the guest; the terminal is restored on every
// way out, SIGTERM, SIGINT and SIGHUP included.
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <optional>
#include <string>
#include <thread>

#include "base/str_util.h"
#include "cmd/vmletctl/commands.h"
#include "cmd/vmletctl/flags.h"
#include "cmd/vmletctl/pod_lookup.h"
#include "cmd/vmletctl/terminal.h"

namespace vmlet::ctl {

int Console(Client& client, Args args) {
  std::string namespace_ = "default";
  std::string escape_text = "^]";
  FlagSet flags("console",
                "usage: vmletctl [options] console NAME [options]\n"
                "\n"
                "Connects to the serial console of VM pod NAME: prints what the guest\n"
                "writes there and types what you type. Leave with the escape character\n"
                "(Ctrl-] by default) or end the input (EOF). Several consoles may be open\n"
                "on one VM; all see the output, and input from each reaches the guest.\n"
                "\n"
                "Options:\n"
                "  --namespace NS   the pod's namespace (default \"default\")\n"
                "  --escape CHAR    the escape character: ^X for Ctrl-X (default ^])\n");
  flags.AddString("--namespace|-n", &namespace_);
  flags.AddString("--escape|-e", &escape_text);
  if (auto done = flags.Parse(args, 1, 1)) return *done;
  std::optional<char> escape = ParseEscape(escape_text);
  if (!escape.has_value()) {
    return flags.Error(StrCat("--escape \"", escape_text,
                              "\" is invalid: expected one character or ^X for Ctrl-X"));
  }
  const std::string& name = flags.positional()[0];
  std::optional<v1::Container> vm = FindPodVm(client, name, namespace_);
  if (!vm.has_value()) return kExitFailure;

  grpc::ClientContext context;  // No deadline: the session lasts as long as the user likes.
  auto stream = client.Console().Attach(&context);
  vmspec_v1::ConsoleInput first;
  first.set_container_id(vm->id());
  if (!stream->Write(first)) {
    return FailRpc(StrCat("attaching to the console of ", DescribePod(name, namespace_)),
                   stream->Finish());
  }

  RawTerminal terminal;
  std::fprintf(stderr, "Connected to the console of pod %s (escape character is %s)%s",
               name.c_str(), EscapeName(*escape).c_str(), terminal.newline());

  // The output thread tells the input loop that the server ended the stream.
  int wake[2];
  if (::pipe2(wake, O_CLOEXEC) != 0) {
    context.TryCancel();
    (void)stream->Finish();
    return FailRpc("creating a pipe", grpc::Status(grpc::StatusCode::INTERNAL, "pipe2 failed"));
  }
  std::thread output([&] {
    vmspec_v1::ConsoleOutput message;
    while (stream->Read(&message)) {
      if (!WriteAll(STDOUT_FILENO, message.data())) break;
    }
    char byte = 0;
    (void)!::write(wake[1], &byte, 1);
  });

  char buffer[4096];
  bool server_ended = false;
  for (bool done = false; !done;) {
    pollfd fds[2] = {{STDIN_FILENO, POLLIN, 0}, {wake[0], POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[1].revents != 0) {
      server_ended = true;
      break;
    }
    ssize_t n = ::read(STDIN_FILENO, buffer, sizeof(buffer));
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) break;  // EOF or a read error: leave as with the escape.
    std::string_view input(buffer, static_cast<size_t>(n));
    if (size_t at = input.find(*escape); at != std::string_view::npos) {
      input = input.substr(0, at);
      done = true;
    }
    if (input.empty()) continue;
    vmspec_v1::ConsoleInput message;
    message.set_data(std::string(input));
    if (!stream->Write(message)) break;  // The server ended the stream.
  }
  // The server ends the stream once it saw the half-close, after sending
  // what it has; a stream already ended makes this a no-op.
  if (!server_ended) (void)stream->WritesDone();
  output.join();
  ::close(wake[0]);
  ::close(wake[1]);
  grpc::Status status = stream->Finish();
  std::fprintf(stderr, "%sDisconnected from the console of pod %s%s", terminal.newline(),
               name.c_str(), terminal.newline());
  if (!status.ok()) {
    return FailRpc(StrCat("console of ", DescribePod(name, namespace_)), status);
  }
  return kExitOk;
}

}  // namespace vmlet::ctl
