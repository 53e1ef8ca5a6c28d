// The seam between the CRI layer and the VM engine. cri/ asks a VmDriver to
// create, start, stop, destroy, inspect and remove VMs; LibvirtDriver is the
// real implementation, FakeVmDriver serves unit and end-to-end tests of the
// layers above, and UnavailableVmDriver stands in when no engine is usable.
#ifndef VMLET_VMDRIVER_VM_DRIVER_H_
#define VMLET_VMDRIVER_VM_DRIVER_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "vmdriver/vm_config.h"

namespace vmlet::vmdriver {

// The life of a VM as a driver sees it:
//
//   Create            Start              guest power-off / crash / Stop / Destroy
//   ------> kCreated -------> kRunning -------------------------------------> kExited
//             |                                                                  ^
//             +------------------------- Stop / Destroy -------------------------+
//
// Remove deletes a VM in any state (a running one is destroyed first).
enum class VmState { kCreated, kRunning, kExited };

std::string_view VmStateName(VmState state);

struct VmInfo {
  std::string id;
  VmState state = VmState::kCreated;
  int64_t started_at = 0;   // Nanoseconds since the epoch; 0 if never started.
  int64_t finished_at = 0;  // Nanoseconds since the epoch; 0 unless exited.
  int32_t exit_code = 0;
  std::string reason;   // "Completed", "Error", "Killed", ... when exited.
  std::string message;  // Human-readable detail for the reason.
  // The engine's own name for the VM (the libvirt domain), when it has one.
  std::string domain_name;
};

// A change of state, delivered to the handler passed to Watch.
struct VmEvent {
  VmInfo info;
};

using VmEventHandler = std::function<void(const VmEvent&)>;

// Receives the raw bytes the guest writes to its serial console, in order,
// on a thread of the driver's; it must return quickly (buffer, never block)
// and must not call the driver.
using ConsoleReader = std::function<void(std::string_view bytes)>;

// The most of each of stdout and stderr that Exec returns (the CRI caps
// ExecSync output at the same size).
inline constexpr size_t kMaxExecOutputBytes = size_t{16} << 20;  // 16 MiB.

// What a command run in the guest by Exec did.
struct ExecResult {
  int exit_code = 0;  // The command's exit code, or 128 + the signal that ended it.
  std::string stdout_data, stderr_data;
  // stdout or stderr was longer than kMaxExecOutputBytes and was cut there.
  bool output_truncated = false;
};

// The standard streams of a command that ExecStreaming runs. Each function
// is called on the thread that called ExecStreaming or on a thread of the
// driver's, never two of one kind at once.
struct ExecStreams {
  // The next bytes for the command's stdin; "" at end of input. Null: the
  // command reads /dev/null. May block until input arrives; an error ends
  // the input (as end of input does).
  std::function<absl::StatusOr<std::string>()> read_stdin;
  // Makes a read_stdin that blocks return "" at once (and later ones too).
  // Set whenever read_stdin is; the driver calls it when the command has
  // ended, before it waits for the thread that calls read_stdin: a client
  // may keep stdin open after the command is gone.
  std::function<void()> cancel_stdin;
  // Output as it arrives. Null: discarded. An error (the client went away)
  // ends the exec: the driver stops relaying and tries to end the command.
  std::function<absl::Status(std::string_view)> write_stdout;
  std::function<absl::Status(std::string_view)> write_stderr;
  // Polled while the command runs (null: never): true once the client has
  // gone, which ends the exec as a failed write does, also when the command
  // prints nothing.
  std::function<bool()> client_gone;
};

// What one VM used, from one bulk query of the engine (CollectStats).
// Counters are cumulative since the VM started.
struct VmStats {
  std::string id;
  int64_t timestamp_ns = 0;   // When the figures were read; nanoseconds since the epoch.
  uint64_t cpu_time_ns = 0;   // CPU time of the whole VM (vCPUs, emulator, I/O threads).
  int vcpus = 0;              // vCPUs the VM has now.
  uint64_t memory_bytes = 0;  // Memory given to the guest now (the balloon's current size).
  uint64_t rss_bytes = 0;     // Resident memory of the VM's process, as the host sees it.
  // The guest's own view, when its balloon driver reports it (else false and 0).
  bool guest_memory_reported = false;
  uint64_t guest_total_bytes = 0;      // MemTotal.
  uint64_t guest_unused_bytes = 0;     // MemFree.
  uint64_t guest_available_bytes = 0;  // MemAvailable.
  // Summed over the VM's NICs the engine knows, when it knows one (else
  // false and 0).
  bool network_reported = false;
  uint64_t rx_bytes = 0, rx_errors = 0, tx_bytes = 0, tx_errors = 0;
  // Host bytes allocated to the VM's writable disks (its overlays).
  uint64_t disk_allocated_bytes = 0;
};

// A live change of a running VM's resources (UpdateResources). Unset
// fields stay as they are.
struct VmResourceUpdate {
  std::optional<int> vcpus;
  std::optional<int64_t> memory_bytes;
  // Host CPUs the vCPUs and the emulator threads may run on; empty: all.
  std::optional<std::vector<int>> cpuset;
};

// All methods may be called from any thread concurrently. Operations on one
// VM are serialised by the driver. Events are delivered on a thread of the
// driver's; handlers must not block for long.
class VmDriver {
 public:
  virtual ~VmDriver() = default;

  // A short name for logs and Status ("libvirt", "fake", ...).
  virtual std::string_view Name() const = 0;

  // OK when the engine can be used; otherwise UNAVAILABLE with the reason.
  virtual absl::Status CheckReachable() = 0;

  // Defines the VM and brings it up paused, so that Start only resumes it.
  // ALREADY_EXISTS if a VM with this id exists.
  virtual absl::Status Create(const VmConfig& config) = 0;

  // The domain XML Create would define for `config` (placeholder paths for
  // files Create would make), without defining or creating anything.
  // INVALID_ARGUMENT as Create. Any thread.
  virtual absl::StatusOr<std::string> RenderDomainXml(const VmConfig& config) = 0;

  // Lets a created VM run. FAILED_PRECONDITION unless the VM is kCreated.
  // A VM whose machine has lifecycle.start_paused stays paused (kRunning
  // for the CRI: the container runs, its guest does not yet).
  virtual absl::Status Start(std::string_view id) = 0;

  // Asks the guest to power off and destroys the VM when `timeout` expires
  // first. A created (never started) VM becomes exited; an exited VM is
  // left as it is. OK in all these cases.
  virtual absl::Status Stop(std::string_view id, absl::Duration timeout) = 0;

  // Stops the VM at once. A created VM becomes exited; an exited VM is left
  // as it is; OK.
  virtual absl::Status Destroy(std::string_view id) = 0;

  // Deletes the VM and everything the driver made for it (definition,
  // disks). A VM that does not exist is not an error.
  virtual absl::Status Remove(std::string_view id) = 0;

  // NOT_FOUND if the driver has no VM with this id.
  virtual absl::StatusOr<VmInfo> Inspect(std::string_view id) = 0;

  virtual absl::StatusOr<std::vector<VmInfo>> List() = 0;

  // Registers the one handler that receives every state change. Call before
  // the first operation.
  virtual void Watch(VmEventHandler handler) = 0;

  // Reopens the VM's console log file (after the kubelet rotated it).
  // NOT_FOUND for an unknown VM.
  virtual absl::Status ReopenLog(std::string_view id) = 0;

  // Runs argv[0] with argv[1..] in the guest (guest-exec, output
  // captured), waits at most `timeout` (zero: no limit). DEADLINE_EXCEEDED
  // when it runs longer; FAILED_PRECONDITION when the VM is not running or
  // has no guest agent connected; NOT_FOUND for an unknown id;
  // INVALID_ARGUMENT for an empty argv. Blocks the calling thread while the
  // command runs. Not serialised with the VM's other operations: several
  // Execs may run in one VM at once, and a Stop ends them.
  virtual absl::StatusOr<ExecResult> Exec(std::string_view id, const std::vector<std::string>& argv,
                                          absl::Duration timeout) = 0;

  // Runs argv[0] with argv[1..] in the guest like Exec, but relays stdin
  // and the output as they come (for the streaming exec of kubectl) and
  // returns the exit code (128 + signal) once the command has ended and its
  // output is relayed. No timeout. Errors as Exec; also the error of a
  // stream function that failed. Blocks the calling thread while the
  // command runs.
  virtual absl::StatusOr<int> ExecStreaming(std::string_view id,
                                            const std::vector<std::string>& argv,
                                            const ExecStreams& streams) = 0;

  // Adds a reader of the VM's serial console (several may read at once) and
  // returns the handle for DetachConsole. The reader sees what the guest
  // prints from now on. NOT_FOUND for an unknown VM; FAILED_PRECONDITION
  // when the VM has no console (never started, or exited).
  virtual absl::StatusOr<int> AttachConsole(std::string_view id, ConsoleReader reader) = 0;

  // Removes a reader; once this returns it is not running and will not be
  // called again. Unknown VMs and handles are ignored.
  virtual void DetachConsole(std::string_view id, int handle) = 0;

  // Types `bytes` into the VM's serial console. NOT_FOUND for an unknown
  // VM; FAILED_PRECONDITION when the VM is not running or its console is
  // not connected. Writers are not serialised against each other beyond
  // each call's bytes staying together.
  virtual absl::Status WriteConsole(std::string_view id, std::string_view bytes) = 0;

  // The figures of every running VM (of this driver), read with one bulk
  // query of the engine. UNAVAILABLE when the engine cannot be reached.
  virtual absl::StatusOr<std::vector<VmStats>> CollectStats() = 0;

  // Changes the resources of a running VM live, and in its definition so
  // that they survive a restart of the VM. vCPUs go from 1 up to the VM's
  // max_vcpus (hot-plug and unplug, onlined in the guest through its agent
  // when it has one); memory from 16 MiB up to max_memory_bytes (the
  // balloon). NOT_FOUND for an unknown VM; FAILED_PRECONDITION when it is
  // not running; OUT_OF_RANGE naming the field, the value and the limit
  // when a value is beyond what the VM was started with; INVALID_ARGUMENT
  // for a CPU the host does not have. Nothing changes when a check fails.
  virtual absl::Status UpdateResources(std::string_view id, const VmResourceUpdate& update) = 0;

  // Facts for the runtime's verbose Status (accelerator, versions, ...).
  virtual std::vector<std::pair<std::string, std::string>> StatusInfo() { return {}; }
};

}  // namespace vmlet::vmdriver

#endif  // VMLET_VMDRIVER_VM_DRIVER_H_
