// An in-process VmDriver for tests. It keeps VMs in memory and, when given a
// directory, also in one small file per VM there, so that VMs outlive a
// restart of vmletd the way libvirt domains do. Tests can inject failures
// and simulate guest exits.
#ifndef VMLET_VMDRIVER_FAKE_VM_DRIVER_H_
#define VMLET_VMDRIVER_FAKE_VM_DRIVER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "vmdriver/vm_driver.h"

namespace vmlet::vmdriver {

class FakeVmDriver : public VmDriver {
 public:
  // With an empty `persist_dir` VMs live in memory only.
  explicit FakeVmDriver(std::string persist_dir = "");

  // Reads the VMs persisted by an earlier instance.
  absl::Status Load();

  std::string_view Name() const override { return "fake"; }
  absl::Status CheckReachable() override;
  absl::Status Create(const VmConfig& config) override;
  // A short deterministic text (not libvirt XML) that names the VM id, its
  // vCPUs and memory; INVALID_ARGUMENT for an empty id. Honours failures
  // injected for "RenderDomainXml".
  absl::StatusOr<std::string> RenderDomainXml(const VmConfig& config) override;
  absl::Status Start(std::string_view id) override;
  absl::Status Stop(std::string_view id, absl::Duration timeout) override;
  absl::Status Destroy(std::string_view id) override;
  absl::Status Remove(std::string_view id) override;
  absl::StatusOr<VmInfo> Inspect(std::string_view id) override;
  absl::StatusOr<std::vector<VmInfo>> List() override;
  void Watch(VmEventHandler handler) override;
  absl::Status ReopenLog(std::string_view id) override;
  // For a running VM: what the exec handler answers; without a handler, an
  // echo (exit code 0, argv joined by spaces and a newline on stdout).
  absl::StatusOr<ExecResult> Exec(std::string_view id, const std::vector<std::string>& argv,
                                  absl::Duration timeout) override;
  // For a running VM: what the streaming exec handler does; without one,
  // argv joined by spaces and a newline on stdout, then all of stdin copied
  // to stdout, exit code 0. The streams are used on the calling thread.
  absl::StatusOr<int> ExecStreaming(std::string_view id, const std::vector<std::string>& argv,
                                    const ExecStreams& streams) override;
  // The fake's console echoes what is written to it back to its readers,
  // as a terminal line discipline would.
  absl::StatusOr<int> AttachConsole(std::string_view id, ConsoleReader reader) override;
  void DetachConsole(std::string_view id, int handle) override;
  absl::Status WriteConsole(std::string_view id, std::string_view bytes) override;
  // A VmStats for each running VM: what SetStats fixed for it, else figures
  // that move: cpu_time_ns grows by 10 ms per call, vCPUs and memory are the
  // config's, rss and the guest's view derived from its memory.
  absl::StatusOr<std::vector<VmStats>> CollectStats() override;
  // The checks and messages of the libvirt driver against the VM's config
  // (limits: max_vcpus and max_memory_bytes as created, 0 meaning the
  // start value; cpuset CPUs below std::thread::hardware_concurrency()),
  // then the new values go into the config (see ConfigOf).
  absl::Status UpdateResources(std::string_view id, const VmResourceUpdate& update) override;

  // How many times CollectStats has queried the (fake) engine.
  uint64_t bulk_stats_queries() const { return bulk_stats_queries_.load(); }

  // Test controls.
  // The next call of `operation` ("Create", "Start", "Stop", "Destroy",
  // "Remove", "Exec", "ExecStreaming", "CollectStats", "UpdateResources",
  // "RenderDomainXml") fails with `status` and changes nothing.
  void FailNext(std::string_view operation, absl::Status status);
  // Makes CheckReachable and every operation answer `status` until reset
  // with an OK status.
  void SetReachable(absl::Status status);
  // Ends a running VM as a guest would, and sends the event.
  absl::Status SimulateExit(std::string_view id, int32_t exit_code, std::string reason);
  // Answers every later Exec of a running VM. Called without the driver's
  // lock held, on the thread that called Exec.
  using ExecHandler = std::function<absl::StatusOr<ExecResult>(
      std::string_view id, const std::vector<std::string>& argv, absl::Duration timeout)>;
  void SetExecHandler(ExecHandler handler);
  // Runs every later ExecStreaming of a running VM. Called without the
  // driver's lock held, on the thread that called ExecStreaming.
  using ExecStreamingHandler = std::function<absl::StatusOr<int>(
      std::string_view id, const std::vector<std::string>& argv, const ExecStreams& streams)>;
  void SetExecStreamingHandler(ExecStreamingHandler handler);
  // Sends `bytes` to the console readers of VM `id`, as if the guest had
  // printed them.
  void SimulateConsoleOutput(std::string_view id, std::string_view bytes);
  // The config a VM was created with, as UpdateResources changed it.
  absl::StatusOr<VmConfig> ConfigOf(std::string_view id);
  // Makes CollectStats return `stats` (with the VM's id) for VM `id` while
  // it runs. NOT_FOUND for an unknown VM.
  absl::Status SetStats(std::string_view id, VmStats stats);

 private:
  struct Vm {
    VmConfig config;
    VmInfo info;
    // What UpdateResources may raise vCPUs and memory to: the config's
    // maximum, or its start value.
    int vcpu_limit = 0;
    int64_t memory_limit = 0;
    uint64_t cpu_time_ns = 0;            // Grows with every CollectStats.
    std::optional<VmStats> fixed_stats;  // From SetStats.
  };

  // Runs under mu_: the injected failure for `operation`, if any.
  absl::Status TakeFailure(std::string_view operation);
  absl::Status Persist(const Vm& vm);
  // Records the exit of a running VM, persists it and returns the event.
  absl::StatusOr<VmEvent> ExitLocked(Vm& vm, int32_t exit_code, std::string reason,
                                     std::string message);
  void Emit(const VmEvent& event);

  const std::string persist_dir_;
  std::mutex mu_;
  std::map<std::string, Vm, std::less<>> vms_;
  std::map<std::string, absl::Status, std::less<>> failures_;
  absl::Status reachable_;
  VmEventHandler handler_;
  ExecHandler exec_handler_;
  ExecStreamingHandler exec_streaming_handler_;
  std::atomic<uint64_t> bulk_stats_queries_{0};

  // Held while readers run, so that DetachConsole waits for a running one.
  // Never taken before mu_ is released; mu_ is never taken under it.
  std::mutex console_mu_;
  // VM id -> handle -> reader. Guarded by console_mu_.
  std::map<std::string, std::map<int, ConsoleReader>, std::less<>> consoles_;
  int next_console_handle_ = 1;  // Guarded by console_mu_.
};

// A driver that answers UNAVAILABLE to everything, with the reason given.
// vmletd uses it when the configured engine cannot be used.
class UnavailableVmDriver : public VmDriver {
 public:
  explicit UnavailableVmDriver(std::string reason) : reason_(std::move(reason)) {}

  std::string_view Name() const override { return "unavailable"; }
  absl::Status CheckReachable() override { return Error(); }
  absl::Status Create(const VmConfig&) override { return Error(); }
  absl::StatusOr<std::string> RenderDomainXml(const VmConfig&) override { return Error(); }
  absl::Status Start(std::string_view) override { return Error(); }
  absl::Status Stop(std::string_view, absl::Duration) override { return Error(); }
  absl::Status Destroy(std::string_view) override { return Error(); }
  absl::Status Remove(std::string_view) override { return Error(); }
  absl::StatusOr<VmInfo> Inspect(std::string_view) override { return Error(); }
  absl::StatusOr<std::vector<VmInfo>> List() override { return Error(); }
  void Watch(VmEventHandler) override {}
  absl::Status ReopenLog(std::string_view) override { return Error(); }
  absl::StatusOr<ExecResult> Exec(std::string_view, const std::vector<std::string>&,
                                  absl::Duration) override {
    return Error();
  }
  absl::StatusOr<int> ExecStreaming(std::string_view, const std::vector<std::string>&,
                                    const ExecStreams&) override {
    return Error();
  }
  absl::StatusOr<int> AttachConsole(std::string_view, ConsoleReader) override { return Error(); }
  void DetachConsole(std::string_view, int) override {}
  absl::Status WriteConsole(std::string_view, std::string_view) override { return Error(); }
  absl::StatusOr<std::vector<VmStats>> CollectStats() override { return Error(); }
  absl::Status UpdateResources(std::string_view, const VmResourceUpdate&) override {
    return Error();
  }

 private:
  absl::Status Error() const { return absl::UnavailableError(reason_); }
  std::string reason_;
};

}  // namespace vmlet::vmdriver

#endif  // VMLET_VMDRIVER_FAKE_VM_DRIVER_H_
