// Commands run in the guest through the QEMU guest agent (qemu-ga), for the
// CRI's ExecSync. Every VM has the agent's virtio port
// (kGuestAgentChannel); libvirt connects to it when the guest opens it.
//
//   guest-exec {path, arg, capture-output}  -> {pid}
//   guest-exec-status {pid}                 -> {exited, exitcode | signal,
//                                               out-data, err-data (base64),
//                                               out-truncated, err-truncated}
//
// guest-exec-status is polled (10 ms, backing off to 100 ms) until the
// process has exited. The agent offers no way to stop a process it started:
// a command that outlives its timeout goes on running in the guest, and
// qemu-ga keeps its entry until the guest reboots.
//
// Output: qemu-ga keeps at most 16 MiB of each stream and vmlet cuts each
// at kMaxExecOutputBytes; but libvirt refuses an agent reply larger than
// 10 MB, so a command whose stdout and stderr together exceed about 7 MiB
// (base64 grows them by a third) fails with libvirt's error instead.
#ifndef VMLET_VMDRIVER_LIBVIRT_GUEST_EXEC_H_
#define VMLET_VMDRIVER_LIBVIRT_GUEST_EXEC_H_

#include <libvirt/libvirt.h>

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "vmdriver/vm_driver.h"

namespace vmlet::vmdriver::libvirt {

// One guest agent command: sends the JSON `command`, waits at most
// `timeout` for the answer and returns the agent's JSON reply. An agent
// that is not connected or does not answer, or a VM that is not running, is
// FAILED_PRECONDITION with a message naming the VM; an error the agent
// reports is INTERNAL (as libvirt reports it).
using AgentCommand =
    std::function<absl::StatusOr<std::string>(const std::string& command, absl::Duration timeout)>;

// The agent of a libvirt domain named `vm_name` (virDomainQemuAgentCommand).
// `domain` must stay valid while the result is used. Blocks the calling
// thread for each command; any thread.
AgentCommand LibvirtAgent(virDomainPtr domain, std::string vm_name);

// Runs argv[0] with argv[1..] in the guest of VM `vm_name` and waits for it
// for at most `timeout` (zero: no limit). DEADLINE_EXCEEDED when it runs
// longer; FAILED_PRECONDITION when the agent is not connected or could not
// start the command (no such file, ...); INVALID_ARGUMENT for an empty argv.
// Any thread; blocks it while the command runs.
absl::StatusOr<ExecResult> RunInGuest(const AgentCommand& agent, std::string_view vm_name,
                                      const std::vector<std::string>& argv, absl::Duration timeout);

// The guest-exec command for argv (exposed for tests).
std::string GuestExecCommand(const std::vector<std::string>& argv);

// A guest-exec-status reply: the result once the process has exited,
// nullopt while it runs. Output beyond kMaxExecOutputBytes is cut (exposed
// for tests).
absl::StatusOr<std::optional<ExecResult>> ParseGuestExecStatus(std::string_view reply);

}  // namespace vmlet::vmdriver::libvirt

#endif  // VMLET_VMDRIVER_LIBVIRT_GUEST_EXEC_H_
