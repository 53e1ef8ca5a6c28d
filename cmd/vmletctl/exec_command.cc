// `vmletctl exec NAME [-i] [-t] [--timeout SEC] -- COMMAND [ARG...]`: runs a
// command in a VM pod's guest through the QEMU guest agent and exits with
// its exit code. Without --timeout it streams (the CRI's Exec and vmletd's
// streaming server, as kubectl exec does): output as it comes, stdin with
// -i. With --timeout it uses ExecSync, as `crictl exec -s` does.
#include <cstdio>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "base/str_util.h"
#include "cmd/vmletctl/commands.h"
#include "cmd/vmletctl/flags.h"
#include "cmd/vmletctl/pod_lookup.h"

namespace vmlet::ctl {

int Exec(Client& client, Args args) {
  std::string namespace_ = "default";
  int64_t timeout = 0;
  bool in = false, tty = false;
  FlagSet flags("exec",
                "usage: vmletctl [options] exec NAME [options] -- COMMAND [ARG...]\n"
                "\n"
                "Runs COMMAND in the guest of VM pod NAME through the QEMU guest agent: the\n"
                "guest must run qemu-guest-agent. Prints the command's stdout and stderr as\n"
                "they come and exits with its exit code. The command runs directly, not\n"
                "through a shell: use sh -c '...' for pipes and redirections.\n"
                "\n"
                "Options:\n"
                "  --namespace NS   the pod's namespace (default \"default\")\n"
                "  -i, --stdin      pass stdin to the command\n"
                "  -t, --tty        stderr into stdout, the terminal raw (the guest agent\n"
                "                   has no terminal: programs see pipes)\n"
                "  --timeout SEC    give up after SEC seconds (ExecSync: output at the end,\n"
                "                   no -i/-t); the command goes on running in the guest\n");
  flags.AddString("--namespace|-n", &namespace_);
  flags.AddInt("--timeout", &timeout, 0);
  flags.AddBool("--stdin|-i", &in);
  flags.AddBool("--tty|-t", &tty);
  if (auto done = flags.Parse(args, 2, std::numeric_limits<size_t>::max())) return *done;
  const std::vector<std::string>& words = flags.positional();
  std::optional<v1::Container> vm = FindPodVm(client, words[0], namespace_);
  if (!vm.has_value()) return kExitFailure;
  if (timeout == 0) {
    return StreamExec(client, *vm, std::vector<std::string>(words.begin() + 1, words.end()), in,
                      tty, DescribePod(words[0], namespace_));
  }
  if (in || tty) return flags.Error("--timeout works without -i and -t only");

  v1::ExecSyncRequest request;
  request.set_container_id(vm->id());
  for (size_t i = 1; i < words.size(); ++i) request.add_cmd(words[i]);
  request.set_timeout(timeout);
  v1::ExecSyncResponse response;
  // The command's own time, then the usual deadline for the call.
  grpc::Status status = client.Runtime(&v1::RuntimeService::Stub::ExecSync, request, &response,
                                       CallKind::kQuery, timeout);
  if (!status.ok())
    return FailRpc(StrCat("ExecSync in ", DescribePod(words[0], namespace_)), status);
  std::fwrite(response.stdout().data(), 1, response.stdout().size(), stdout);
  std::fwrite(response.stderr().data(), 1, response.stderr().size(), stderr);
  std::fflush(stdout);
  return response.exit_code();
}

}  // namespace vmlet::ctl
