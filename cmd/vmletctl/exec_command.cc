// `vmletctl exec NAME [--timeout SEC] -- COMMAND [ARG...]`: runs a command in
// a VM pod's guest through the CRI's ExecSync (the QEMU guest agent), prints
// its output and exits with its exit code, as `crictl exec -s` does.
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
  FlagSet flags("exec",
                "usage: vmletctl [options] exec NAME [options] -- COMMAND [ARG...]\n"
                "\n"
                "Runs COMMAND in the guest of VM pod NAME through the QEMU guest agent\n"
                "(ExecSync): the guest must run qemu-guest-agent. Prints the command's\n"
                "stdout and stderr and exits with its exit code. The command runs directly,\n"
                "not through a shell: use sh -c '...' for pipes and redirections.\n"
                "\n"
                "Options:\n"
                "  --namespace NS   the pod's namespace (default \"default\")\n"
                "  --timeout SEC    give up after SEC seconds (default 0: no limit); the\n"
                "                   command goes on running in the guest\n");
  flags.AddString("--namespace|-n", &namespace_);
  flags.AddInt("--timeout", &timeout, 0);
  if (auto done = flags.Parse(args, 2, std::numeric_limits<size_t>::max())) return *done;
  const std::vector<std::string>& words = flags.positional();
  std::optional<v1::Container> vm = FindPodVm(client, words[0], namespace_);
  if (!vm.has_value()) return kExitFailure;

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
