#include "vmdriver/fake_vm_driver.h"

#include <algorithm>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "base/file_util.h"
#include "base/id.h"
#include "base/status.h"
#include "base/str_util.h"

namespace vmlet::vmdriver {
namespace {

// The least memory UpdateResources gives a VM (as the libvirt driver).
constexpr int64_t kMinLiveMemoryBytes = 16 * kMiB;

std::string JoinCpus(const std::vector<int>& cpus) {
  std::string out;
  for (size_t i = 0; i < cpus.size(); ++i) StrAppend(&out, i == 0 ? "" : ",", cpus[i]);
  return out;
}

bool ParseCpus(std::string_view text, std::vector<int>* cpus) {
  cpus->clear();
  while (!text.empty()) {
    size_t comma = text.find(',');
    int cpu = 0;
    if (!absl::SimpleAtoi(std::string(text.substr(0, comma)), &cpu)) return false;
    cpus->push_back(cpu);
    text = comma == std::string_view::npos ? "" : text.substr(comma + 1);
  }
  return true;
}

// One VM per file, one "key=value" per line; values never hold newlines
// because tests choose them.
std::string Serialize(const VmConfig& config, const VmInfo& info, int vcpu_limit,
                      int64_t memory_limit) {
  return StrCat("id=", config.id, "\nsandbox_id=", config.sandbox_id, "\nname=", config.name,
                "\nvcpus=", config.vcpus, "\nmemory_bytes=", config.memory_bytes,
                "\nmax_vcpus=", config.max_vcpus, "\nmax_memory_bytes=", config.max_memory_bytes,
                "\ncpuset=", JoinCpus(config.cpuset), "\nvcpu_limit=", vcpu_limit,
                "\nmemory_limit=", memory_limit, "\nimage=", config.image,
                "\nlog_path=", config.log_path, "\nstate=", static_cast<int>(info.state),
                "\nstarted_at=", info.started_at, "\nfinished_at=", info.finished_at,
                "\nexit_code=", info.exit_code, "\nreason=", info.reason,
                "\nmessage=", info.message, "\n");
}

// What UpdateResources may raise a VM created with `config` to.
int VcpuLimitOf(const VmConfig& config) { return std::max(config.vcpus, config.max_vcpus); }
int64_t MemoryLimitOf(const VmConfig& config) {
  return std::max(config.memory_bytes, config.max_memory_bytes);
}

absl::Status Parse(std::string_view text, VmConfig& config, VmInfo& info, int& vcpu_limit,
                   int64_t& memory_limit) {
  std::map<std::string, std::string> fields;
  size_t begin = 0;
  while (begin < text.size()) {
    size_t end = text.find('\n', begin);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(begin, end - begin);
    begin = end + 1;
    size_t equals = line.find('=');
    if (equals == std::string_view::npos) continue;
    fields[std::string(line.substr(0, equals))] = std::string(line.substr(equals + 1));
  }
  int state = 0;
  if (!absl::SimpleAtoi(fields["vcpus"], &config.vcpus) ||
      !absl::SimpleAtoi(fields["memory_bytes"], &config.memory_bytes) ||
      !absl::SimpleAtoi(fields["state"], &state) || state < 0 || state > 2 ||
      !absl::SimpleAtoi(fields["started_at"], &info.started_at) ||
      !absl::SimpleAtoi(fields["finished_at"], &info.finished_at) ||
      !absl::SimpleAtoi(fields["exit_code"], &info.exit_code)) {
    return absl::DataLossError("fake VM record is malformed");
  }
  // Written since UpdateResources exists; absent from older records.
  if ((fields.contains("max_vcpus") && !absl::SimpleAtoi(fields["max_vcpus"], &config.max_vcpus)) ||
      (fields.contains("max_memory_bytes") &&
       !absl::SimpleAtoi(fields["max_memory_bytes"], &config.max_memory_bytes)) ||
      !ParseCpus(fields["cpuset"], &config.cpuset)) {
    return absl::DataLossError("fake VM record is malformed");
  }
  vcpu_limit = VcpuLimitOf(config);
  memory_limit = MemoryLimitOf(config);
  if ((fields.contains("vcpu_limit") && !absl::SimpleAtoi(fields["vcpu_limit"], &vcpu_limit)) ||
      (fields.contains("memory_limit") &&
       !absl::SimpleAtoi(fields["memory_limit"], &memory_limit))) {
    return absl::DataLossError("fake VM record is malformed");
  }
  config.id = info.id = fields["id"];
  config.sandbox_id = fields["sandbox_id"];
  config.name = fields["name"];
  config.image = fields["image"];
  config.log_path = fields["log_path"];
  info.state = static_cast<VmState>(state);
  info.reason = fields["reason"];
  info.message = fields["message"];
  return absl::OkStatus();
}

absl::Status NotFound(std::string_view id) {
  return absl::NotFoundError(StrCat("VM \"", id, "\" does not exist"));
}

}  // namespace

FakeVmDriver::FakeVmDriver(std::string persist_dir) : persist_dir_(std::move(persist_dir)) {}

absl::Status FakeVmDriver::Load() {
  if (persist_dir_.empty()) return absl::OkStatus();
  VMLET_RETURN_IF_ERROR(MakeDirs(persist_dir_, 0700));
  VMLET_ASSIGN_OR_RETURN(std::vector<std::string> names, ListDirectory(persist_dir_));
  std::lock_guard lock(mu_);
  for (const std::string& name : names) {
    if (!IsHexId(name)) continue;  // Temporary files of an interrupted write.
    VMLET_ASSIGN_OR_RETURN(std::string text, ReadFile(StrCat(persist_dir_, "/", name)));
    Vm vm;
    VMLET_RETURN_IF_ERROR(
        Annotate(Parse(text, vm.config, vm.info, vm.vcpu_limit, vm.memory_limit), name));
    vms_[name] = std::move(vm);
  }
  return absl::OkStatus();
}

absl::Status FakeVmDriver::CheckReachable() {
  std::lock_guard lock(mu_);
  return reachable_;
}

absl::Status FakeVmDriver::TakeFailure(std::string_view operation) {
  if (!reachable_.ok()) return reachable_;
  auto it = failures_.find(operation);
  if (it == failures_.end()) return absl::OkStatus();
  absl::Status status = it->second;
  failures_.erase(it);
  return status;
}

absl::Status FakeVmDriver::Persist(const Vm& vm) {
  if (persist_dir_.empty()) return absl::OkStatus();
  return WriteFileAtomically(StrCat(persist_dir_, "/", vm.config.id),
                             Serialize(vm.config, vm.info, vm.vcpu_limit, vm.memory_limit));
}

absl::Status FakeVmDriver::Create(const VmConfig& config) {
  std::lock_guard lock(mu_);
  VMLET_RETURN_IF_ERROR(TakeFailure("Create"));
  if (vms_.contains(config.id)) {
    return absl::AlreadyExistsError(StrCat("VM \"", config.id, "\" already exists"));
  }
  Vm vm{.config = config,
        .info = {.id = config.id},
        .vcpu_limit = VcpuLimitOf(config),
        .memory_limit = MemoryLimitOf(config)};
  VMLET_RETURN_IF_ERROR(Persist(vm));
  vms_[config.id] = std::move(vm);
  return absl::OkStatus();
}

absl::StatusOr<std::string> FakeVmDriver::RenderDomainXml(const VmConfig& config) {
  std::lock_guard lock(mu_);
  VMLET_RETURN_IF_ERROR(TakeFailure("RenderDomainXml"));
  if (config.id.empty()) return absl::InvalidArgumentError("id: empty: expected a container id");
  return StrCat("fake domain ", config.id, ": ", config.vcpus, " vCPUs, ", config.memory_bytes,
                " bytes of memory\n");
}

absl::Status FakeVmDriver::Start(std::string_view id) {
  VmEvent event;
  {
    std::lock_guard lock(mu_);
    VMLET_RETURN_IF_ERROR(TakeFailure("Start"));
    auto it = vms_.find(id);
    if (it == vms_.end()) return NotFound(id);
    Vm updated = it->second;
    if (updated.info.state != VmState::kCreated) {
      return absl::FailedPreconditionError(
          StrCat("VM \"", id, "\" is ", VmStateName(updated.info.state), ", not created"));
    }
    updated.info.state = VmState::kRunning;
    updated.info.started_at = NowNanos();
    VMLET_RETURN_IF_ERROR(Persist(updated));
    it->second = updated;
    event.info = updated.info;
  }
  Emit(event);
  return absl::OkStatus();
}

absl::StatusOr<VmEvent> FakeVmDriver::ExitLocked(Vm& vm, int32_t exit_code, std::string reason,
                                                 std::string message) {
  Vm updated = vm;
  updated.info.state = VmState::kExited;
  updated.info.finished_at = NowNanos();
  updated.info.exit_code = exit_code;
  updated.info.reason = std::move(reason);
  updated.info.message = std::move(message);
  VMLET_RETURN_IF_ERROR(Persist(updated));
  vm = std::move(updated);
  return VmEvent{.info = vm.info};
}

absl::Status FakeVmDriver::Stop(std::string_view id, absl::Duration /*timeout*/) {
  VmEvent event;
  {
    std::lock_guard lock(mu_);
    VMLET_RETURN_IF_ERROR(TakeFailure("Stop"));
    auto it = vms_.find(id);
    if (it == vms_.end()) return NotFound(id);
    if (it->second.info.state == VmState::kExited) return absl::OkStatus();
    // The fake guest always honours the power-off request.
    VMLET_ASSIGN_OR_RETURN(
        event, ExitLocked(it->second, 0, "Completed", "the guest powered off on request"));
  }
  Emit(event);
  return absl::OkStatus();
}

absl::Status FakeVmDriver::Destroy(std::string_view id) {
  VmEvent event;
  {
    std::lock_guard lock(mu_);
    VMLET_RETURN_IF_ERROR(TakeFailure("Destroy"));
    auto it = vms_.find(id);
    if (it == vms_.end()) return NotFound(id);
    if (it->second.info.state == VmState::kExited) return absl::OkStatus();
    VMLET_ASSIGN_OR_RETURN(event, ExitLocked(it->second, 137, "Killed", "the VM was destroyed"));
  }
  Emit(event);
  return absl::OkStatus();
}

absl::Status FakeVmDriver::Remove(std::string_view id) {
  std::lock_guard lock(mu_);
  VMLET_RETURN_IF_ERROR(TakeFailure("Remove"));
  auto it = vms_.find(id);
  if (it == vms_.end()) return absl::OkStatus();
  if (!persist_dir_.empty()) {
    VMLET_RETURN_IF_ERROR(RemoveFileIfExists(StrCat(persist_dir_, "/", id)));
  }
  vms_.erase(it);
  return absl::OkStatus();
}

absl::StatusOr<VmInfo> FakeVmDriver::Inspect(std::string_view id) {
  std::lock_guard lock(mu_);
  if (!reachable_.ok()) return reachable_;
  auto it = vms_.find(id);
  if (it == vms_.end()) return NotFound(id);
  VmInfo info = it->second.info;
  info.domain_name = StrCat("fake-", id.substr(0, 12));  // As a domain name would be.
  return info;
}

absl::StatusOr<std::vector<VmInfo>> FakeVmDriver::List() {
  std::lock_guard lock(mu_);
  if (!reachable_.ok()) return reachable_;
  std::vector<VmInfo> infos;
  for (const auto& [id, vm] : vms_) infos.push_back(vm.info);
  return infos;
}

void FakeVmDriver::Watch(VmEventHandler handler) {
  std::lock_guard lock(mu_);
  handler_ = std::move(handler);
}

absl::Status FakeVmDriver::ReopenLog(std::string_view id) {
  std::lock_guard lock(mu_);
  if (!reachable_.ok()) return reachable_;
  if (!vms_.contains(id)) return NotFound(id);
  return absl::OkStatus();  // The fake writes no log.
}

absl::StatusOr<ExecResult> FakeVmDriver::Exec(std::string_view id,
                                              const std::vector<std::string>& argv,
                                              absl::Duration timeout) {
  ExecHandler handler;
  {
    std::lock_guard lock(mu_);
    VMLET_RETURN_IF_ERROR(TakeFailure("Exec"));
    auto it = vms_.find(id);
    if (it == vms_.end()) return NotFound(id);
    if (it->second.info.state != VmState::kRunning) {
      return absl::FailedPreconditionError(
          StrCat("VM \"", id, "\" is ", VmStateName(it->second.info.state), ", not running"));
    }
    if (argv.empty()) return absl::InvalidArgumentError("argv: empty: expected a command");
    handler = exec_handler_;
  }
  if (handler) return handler(id, argv, timeout);
  ExecResult echo;
  for (size_t i = 0; i < argv.size(); ++i) {
    StrAppend(&echo.stdout_data, i == 0 ? "" : " ", argv[i]);
  }
  echo.stdout_data.push_back('\n');
  return echo;
}

absl::StatusOr<int> FakeVmDriver::ExecStreaming(std::string_view id,
                                                const std::vector<std::string>& argv,
                                                const ExecStreams& streams) {
  ExecStreamingHandler handler;
  {
    std::lock_guard lock(mu_);
    VMLET_RETURN_IF_ERROR(TakeFailure("ExecStreaming"));
    auto it = vms_.find(id);
    if (it == vms_.end()) return NotFound(id);
    if (it->second.info.state != VmState::kRunning) {
      return absl::FailedPreconditionError(
          StrCat("VM \"", id, "\" is ", VmStateName(it->second.info.state), ", not running"));
    }
    if (argv.empty()) return absl::InvalidArgumentError("argv: empty: expected a command");
    handler = exec_streaming_handler_;
  }
  if (handler) return handler(id, argv, streams);
  std::string echo;
  for (size_t i = 0; i < argv.size(); ++i) StrAppend(&echo, i == 0 ? "" : " ", argv[i]);
  echo.push_back('\n');
  if (streams.write_stdout) VMLET_RETURN_IF_ERROR(streams.write_stdout(echo));
  if (!streams.read_stdin) return 0;
  while (true) {
    absl::StatusOr<std::string> input = streams.read_stdin();
    if (!input.ok() || input->empty()) return 0;  // An error ends the input as its end does.
    if (streams.write_stdout) VMLET_RETURN_IF_ERROR(streams.write_stdout(*input));
  }
}

absl::StatusOr<int> FakeVmDriver::AttachConsole(std::string_view id, ConsoleReader reader) {
  {
    std::lock_guard lock(mu_);
    if (!reachable_.ok()) return reachable_;
    if (!vms_.contains(id)) return NotFound(id);
  }
  std::lock_guard lock(console_mu_);
  int handle = next_console_handle_++;
  consoles_[std::string(id)][handle] = std::move(reader);
  return handle;
}

void FakeVmDriver::DetachConsole(std::string_view id, int handle) {
  std::lock_guard lock(console_mu_);
  auto it = consoles_.find(id);
  if (it == consoles_.end()) return;
  it->second.erase(handle);
  if (it->second.empty()) consoles_.erase(it);
}

absl::Status FakeVmDriver::WriteConsole(std::string_view id, std::string_view bytes) {
  {
    std::lock_guard lock(mu_);
    if (!reachable_.ok()) return reachable_;
    auto it = vms_.find(id);
    if (it == vms_.end()) return NotFound(id);
    if (it->second.info.state != VmState::kRunning) {
      return absl::FailedPreconditionError(
          StrCat("console of VM \"", id, "\" not connected: the VM is ",
                 VmStateName(it->second.info.state), ", not running"));
    }
  }
  SimulateConsoleOutput(id, bytes);
  return absl::OkStatus();
}

void FakeVmDriver::SimulateConsoleOutput(std::string_view id, std::string_view bytes) {
  std::lock_guard lock(console_mu_);
  auto it = consoles_.find(id);
  if (it == consoles_.end()) return;
  for (auto& [handle, reader] : it->second) reader(bytes);
}

void FakeVmDriver::SetExecHandler(ExecHandler handler) {
  std::lock_guard lock(mu_);
  exec_handler_ = std::move(handler);
}

void FakeVmDriver::SetExecStreamingHandler(ExecStreamingHandler handler) {
  std::lock_guard lock(mu_);
  exec_streaming_handler_ = std::move(handler);
}

void FakeVmDriver::FailNext(std::string_view operation, absl::Status status) {
  std::lock_guard lock(mu_);
  failures_[std::string(operation)] = std::move(status);
}

void FakeVmDriver::SetReachable(absl::Status status) {
  std::lock_guard lock(mu_);
  reachable_ = std::move(status);
}

absl::Status FakeVmDriver::SimulateExit(std::string_view id, int32_t exit_code,
                                        std::string reason) {
  VmEvent event;
  {
    std::lock_guard lock(mu_);
    auto it = vms_.find(id);
    if (it == vms_.end()) return NotFound(id);
    if (it->second.info.state != VmState::kRunning) {
      return absl::FailedPreconditionError(StrCat("VM \"", id, "\" is not running"));
    }
    VMLET_ASSIGN_OR_RETURN(event, ExitLocked(it->second, exit_code, std::move(reason), ""));
  }
  Emit(event);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<VmStats>> FakeVmDriver::CollectStats() {
  std::lock_guard lock(mu_);
  VMLET_RETURN_IF_ERROR(TakeFailure("CollectStats"));
  bulk_stats_queries_.fetch_add(1);
  const int64_t now = NowNanos();
  std::vector<VmStats> all;
  for (auto& [id, vm] : vms_) {
    if (vm.info.state != VmState::kRunning) continue;
    if (vm.fixed_stats) {
      all.push_back(*vm.fixed_stats);
      all.back().id = id;
      continue;
    }
    vm.cpu_time_ns += 10'000'000;  // 10 ms of CPU per collect.
    const auto memory = static_cast<uint64_t>(vm.config.memory_bytes);
    all.push_back(VmStats{
        .id = id,
        .timestamp_ns = now,
        .cpu_time_ns = vm.cpu_time_ns,
        .vcpus = vm.config.vcpus,
        .memory_bytes = memory,
        .rss_bytes = memory / 2,
        .guest_memory_reported = true,
        .guest_total_bytes = memory,
        .guest_unused_bytes = memory / 4,
        .guest_available_bytes = memory / 2,
    });
  }
  return all;
}

absl::Status FakeVmDriver::UpdateResources(std::string_view id, const VmResourceUpdate& update) {
  std::lock_guard lock(mu_);
  VMLET_RETURN_IF_ERROR(TakeFailure("UpdateResources"));
  auto it = vms_.find(id);
  if (it == vms_.end()) return NotFound(id);
  Vm updated = it->second;
  if (updated.info.state != VmState::kRunning) {
    return absl::FailedPreconditionError(
        StrCat("VM \"", id, "\" is ", VmStateName(updated.info.state),
               ", not running: resources change only while it runs"));
  }
  // The same checks, in the same order and words, as the libvirt driver's
  // (vmdriver/libvirt/live_resources.cc).
  if (update.vcpus) {
    const int vcpus = *update.vcpus;
    if (vcpus < 1) {
      return absl::OutOfRangeError(StrCat("vcpus: ", vcpus, " is less than 1: expected 1 to ",
                                          updated.vcpu_limit, " (max_vcpus)"));
    }
    if (vcpus > updated.vcpu_limit) {
      return absl::OutOfRangeError(StrCat("vcpus: ", vcpus, " is more than the ",
                                          updated.vcpu_limit,
                                          " vCPUs this VM was started with room for (max_vcpus)"));
    }
    updated.config.vcpus = vcpus;
  }
  if (update.memory_bytes) {
    const int64_t bytes = *update.memory_bytes;
    const int64_t limit = updated.memory_limit;
    if (bytes < kMinLiveMemoryBytes) {
      return absl::OutOfRangeError(StrCat(
          "memory_bytes: ", bytes, " is less than ", kMinLiveMemoryBytes, " (16 MiB): expected ",
          kMinLiveMemoryBytes, " to ", limit, " (max_memory_bytes)"));
    }
    if (bytes > limit) {
      return absl::OutOfRangeError(
          StrCat("memory_bytes: ", bytes, " is more than the ", limit, " bytes",
                 limit % kMiB == 0 ? StrCat(" (", limit / kMiB, " MiB)") : "",
                 " this VM was started with room for (max_memory_bytes)"));
    }
    updated.config.memory_bytes = bytes;
  }
  if (update.cpuset) {
    const int host_cpus = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
    std::set<int> seen;
    for (int cpu : *update.cpuset) {
      if (cpu < 0 || cpu >= host_cpus) {
        return absl::InvalidArgumentError(StrCat(
            "cpuset: CPU ", cpu, " is not on this host: expected CPUs ",
            host_cpus == 1 ? "0" : StrCat("0-", host_cpus - 1), " (the host's online CPUs)"));
      }
      if (!seen.insert(cpu).second) {
        return absl::InvalidArgumentError(
            StrCat("cpuset: CPU ", cpu, " is listed twice: expected each CPU once"));
      }
    }
    updated.config.cpuset = *update.cpuset;
  }
  VMLET_RETURN_IF_ERROR(Persist(updated));
  it->second = std::move(updated);
  return absl::OkStatus();
}

absl::Status FakeVmDriver::SetStats(std::string_view id, VmStats stats) {
  std::lock_guard lock(mu_);
  auto it = vms_.find(id);
  if (it == vms_.end()) return NotFound(id);
  it->second.fixed_stats = std::move(stats);
  return absl::OkStatus();
}

absl::StatusOr<VmConfig> FakeVmDriver::ConfigOf(std::string_view id) {
  std::lock_guard lock(mu_);
  auto it = vms_.find(id);
  if (it == vms_.end()) return NotFound(id);
  return it->second.config;
}

void FakeVmDriver::Emit(const VmEvent& event) {
  VmEventHandler handler;
  {
    std::lock_guard lock(mu_);
    handler = handler_;
  }
  if (handler) handler(event);
}

}  // namespace vmlet::vmdriver
