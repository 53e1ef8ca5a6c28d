// The commands of vmletctl. Each takes the words after its own name and
// returns the process's exit code (see flags.h).
#ifndef VMLET_CMD_VMLETCTL_COMMANDS_H_
#define VMLET_CMD_VMLETCTL_COMMANDS_H_

#include <span>
#include <string>
#include <vector>

#include "cmd/vmletctl/client.h"

namespace vmlet::ctl {

using Args = std::span<const std::string>;

// `cri COMMAND ...`: the CRI client for scripts (cri_commands.cc).
int CriCommand(Client& client, Args args);

// `cri runp|create|start|stop|rm|stopp|rmp ...` (cri_lifecycle.cc).
int CriRunPod(Client& client, Args args);
int CriCreate(Client& client, Args args);
int CriStart(Client& client, Args args);
int CriStop(Client& client, Args args);
int CriRemove(Client& client, Args args);
int CriStopPod(Client& client, Args args);
int CriRemovePod(Client& client, Args args);
// `cri stats|statsp|update|events|runtime-config ...`
// (cri_stats_commands.cc).
int CriStats(Client& client, Args args);
int CriStatsPod(Client& client, Args args);
int CriUpdate(Client& client, Args args);
int CriEvents(Client& client, Args args);
int CriRuntimeConfig(Client& client, Args args);

// The VM pod commands (pod_commands.cc, logs_command.cc).
int RunPod(Client& client, Args args);
int RemovePod(Client& client, Args args);
int ListPods(Client& client, Args args);
int Logs(Client& client, Args args);
// `exec NAME -- COMMAND...` (exec_command.cc).
int Exec(Client& client, Args args);
// The streaming commands (stream_commands.cc): exec's streaming path (a
// CRI Exec URL, live output, stdin), `attach NAME` (the console through the
// CRI's Attach) and `port-forward NAME [LOCAL:]REMOTE...`.
int StreamExec(Client& client, const v1::Container& vm, const std::vector<std::string>& cmd,
               bool in, bool tty, const std::string& what);
int Attach(Client& client, Args args);
int PortForward(Client& client, Args args);
// `console NAME [--escape CHAR]`: the VM's serial console, interactively
// (console_command.cc).
int Console(Client& client, Args args);

// `image pull|ls|rm|inspect|import ...` (image_commands.cc); `images` is
// `image ls`.
int ImageCommand(Client& client, Args args);
int ListImages(Client& client, Args args);

// `spec apply|get|list|delete|validate|render ...` and `vm status POD`: VM
// specs and what a pod's VM runs with (spec_commands.cc).
int SpecCommand(Client& client, Args args);
int VmStatus(Client& client, Args args);

// `doctor`: checks the node and explains what blocks running VMs
// (doctor.cc).
int Doctor(Client& client, Args args);

}  // namespace vmlet::ctl

#endif  // VMLET_CMD_VMLETCTL_COMMANDS_H_
