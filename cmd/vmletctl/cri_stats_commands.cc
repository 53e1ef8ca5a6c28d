// `vmletctl cri stats|statsp|update|events|runtime-config`: the CRI calls
// for what the VMs use (ListContainerStats, ListPodSandboxStats), live
// resource changes (UpdateContainerResources), the container event stream
// (GetContainerEvents) and RuntimeConfig, with crictl's names and flags.
//
// Threading: single-threaded, as the whole CLI is, except that `events`
// cancels its stream from a thread of its own when interrupted.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <google/protobuf/util/json_util.h>

#include "absl/time/time.h"
#include "base/str_util.h"
#include "cmd/vmletctl/commands.h"
#include "cmd/vmletctl/flags.h"
#include "cmd/vmletctl/output.h"

namespace vmlet::ctl {
namespace {

using Labels = std::map<std::string, std::string>;

// The options that select what a stats command reports: -l K=V may be
// given many times, which FlagSet does not offer, so they are taken out of
// the arguments first (the FlagSet still knows -l, to report a -l without
// a value).
struct StatsSelection {
  std::vector<std::string> rest;  // The arguments for the FlagSet.
  std::vector<std::string> labels;
};

// Splits `args` into the -l/--label values and the rest. `valued` names the
// command's other options that take a value, whose values are never taken
// for labels.
StatsSelection TakeLabels(Args args, std::initializer_list<std::string_view> valued) {
  StatsSelection out;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--") {
      out.rest.insert(out.rest.end(), args.begin() + static_cast<std::ptrdiff_t>(i), args.end());
      break;
    }
    if (arg.starts_with("-l=") || arg.starts_with("--label=")) {
      out.labels.push_back(arg.substr(arg.find('=') + 1));
    } else if ((arg == "-l" || arg == "--label") && i + 1 < args.size()) {
      out.labels.push_back(args[++i]);
    } else {
      out.rest.push_back(arg);
      for (std::string_view name : valued) {
        if (arg == name && i + 1 < args.size()) out.rest.push_back(args[++i]);
      }
    }
  }
  return out;
}

// KEY=VALUE label selectors into `labels`; false after a usage error.
bool ParseLabels(const FlagSet& flags, const std::vector<std::string>& texts, Labels* labels) {
  for (const std::string& text : texts) {
    const size_t equals = text.find('=');
    if (equals == std::string::npos || equals == 0) {
      flags.Error(StrCat("-l \"", text, "\" is invalid: expected KEY=VALUE, such as app=web"));
      return false;
    }
    (*labels)[text.substr(0, equals)] = text.substr(equals + 1);
  }
  return true;
}

// "12.34" (percent of one core) from a CpuUsage, as crictl shows it; "-"
// before the VM's second sample.
std::string CpuPercent(const v1::CpuUsage& cpu) {
  if (!cpu.has_usage_nano_cores()) return "-";
  return fmt::format("{:.2f}", static_cast<double>(cpu.usage_nano_cores().value()) / 1e7);
}

std::string Bytes(bool present, const v1::UInt64Value& value) {
  return present ? FormatBytes(value.value()) : "-";
}

constexpr char kStatsUsage[] =
    "usage: vmletctl [options] cri stats [ID] [options]\n"
    "\n"
    "ListContainerStats: the CPU, memory and disk use of each container's VM, from\n"
    "vmletd's last sample (taken every stats_interval_seconds). CPU % is the share of\n"
    "one core over the last interval (\"-\" until a VM's second sample); MEM is the VM's\n"
    "working set (its resident memory); DISK the host space of its writable disks.\n"
    "\n"
    "Options:\n"
    "  -a, --all         also containers without figures (not running, or not\n"
    "                    sampled yet)\n"
    "  --id ID           only the container with this id (or id prefix); the same as ID\n"
    "  -p, --pod POD_ID  only the containers of this pod sandbox (id or prefix)\n"
    "  -l, --label K=V   only containers with this label; may be repeated\n"
    "  -o FORMAT         table, json or yaml\n";

}  // namespace

int CriStats(Client& client, Args args) {
  std::string output = client.options().output;
  bool all = false;
  std::string id, pod, label;
  FlagSet flags("cri stats", kStatsUsage);
  flags.AddBool("-a|--all", &all);
  flags.AddString("--id", &id);
  flags.AddString("-p|--pod", &pod);
  flags.AddString("-l|--label", &label);
  flags.AddOutput(&output);
  StatsSelection selection = TakeLabels(args, {"--id", "-p", "--pod", "-o", "--output"});
  if (auto done = flags.Parse(selection.rest, 0, 1)) return *done;
  if (!flags.positional().empty()) {
    if (!id.empty() && id != flags.positional()[0])
      return flags.Error("give the container's id either as ID or with --id, not both");
    id = flags.positional()[0];
  }
  v1::ListContainerStatsRequest request;
  v1::ContainerStatsFilter* filter = request.mutable_filter();
  filter->set_id(id);
  filter->set_pod_sandbox_id(pod);
  Labels labels;
  if (!ParseLabels(flags, selection.labels, &labels)) return kExitUsage;
  filter->mutable_label_selector()->insert(labels.begin(), labels.end());
  v1::ListContainerStatsResponse response;
  grpc::Status status =
      client.Runtime(&v1::RuntimeService::Stub::ListContainerStats, request, &response);
  if (!status.ok()) return FailRpc("ListContainerStats", status);

  // As crictl: without -a, only the containers that have figures.
  v1::ListContainerStatsResponse shown;
  for (v1::ContainerStats& stats : *response.mutable_stats()) {
    if (all || stats.has_cpu() || stats.has_memory()) *shown.add_stats() = std::move(stats);
  }
  if (output != "table") {
    PrintMessage(shown, output);
    return kExitOk;
  }
  Table table({"CONTAINER", "NAME", "CPU %", "MEM", "DISK"});
  for (const v1::ContainerStats& stats : shown.stats()) {
    table.AddRow(
        {ShortId(stats.attributes().id()), stats.attributes().metadata().name(),
         CpuPercent(stats.cpu()),
         Bytes(stats.memory().has_working_set_bytes(), stats.memory().working_set_bytes()),
         Bytes(stats.writable_layer().has_used_bytes(), stats.writable_layer().used_bytes())});
  }
  table.Print();
  return kExitOk;
}

int CriStatsPod(Client& client, Args args) {
  std::string output = client.options().output;
  std::string id, label;
  FlagSet flags("cri statsp",
                "usage: vmletctl [options] cri statsp [POD_ID] [options]\n"
                "\n"
                "ListPodSandboxStats: the CPU, memory and network use of each pod sandbox (its\n"
                "VM's), from vmletd's last sample. NET RX / TX are the bytes the pod's VM\n"
                "received and sent since it started.\n"
                "\n"
                "Options:\n"
                "  --id POD_ID       only this pod sandbox (id or prefix); the same as POD_ID\n"
                "  -l, --label K=V   only pod sandboxes with this label; may be repeated\n"
                "  -o FORMAT         table, json or yaml\n");
  flags.AddString("--id", &id);
  flags.AddString("-l|--label", &label);
  flags.AddOutput(&output);
  StatsSelection selection = TakeLabels(args, {"--id", "-o", "--output"});
  if (auto done = flags.Parse(selection.rest, 0, 1)) return *done;
  if (!flags.positional().empty()) {
    if (!id.empty() && id != flags.positional()[0])
      return flags.Error("give the pod sandbox's id either as POD_ID or with --id, not both");
    id = flags.positional()[0];
  }
  v1::ListPodSandboxStatsRequest request;
  request.mutable_filter()->set_id(id);
  Labels labels;
  if (!ParseLabels(flags, selection.labels, &labels)) return kExitUsage;
  request.mutable_filter()->mutable_label_selector()->insert(labels.begin(), labels.end());
  v1::ListPodSandboxStatsResponse response;
  grpc::Status status =
      client.Runtime(&v1::RuntimeService::Stub::ListPodSandboxStats, request, &response);
  if (!status.ok()) return FailRpc("ListPodSandboxStats", status);
  if (output != "table") {
    PrintMessage(response, output);
    return kExitOk;
  }
  Table table({"POD ID", "NAME", "CPU %", "MEM", "NET RX / TX"});
  for (const v1::PodSandboxStats& stats : response.stats()) {
    const v1::LinuxPodSandboxStats& linux = stats.linux();
    const v1::NetworkInterfaceUsage& net = linux.network().default_interface();
    table.AddRow({ShortId(stats.attributes().id()), stats.attributes().metadata().name(),
                  CpuPercent(linux.cpu()),
                  Bytes(linux.memory().has_working_set_bytes(), linux.memory().working_set_bytes()),
                  linux.has_network() ? StrCat(FormatBytes(net.rx_bytes().value()), " / ",
                                               FormatBytes(net.tx_bytes().value()))
                                      : "-"});
  }
  table.Print();
  return kExitOk;
}

namespace {

// Bytes from "536870912" or a quantity with a binary suffix ("512Mi",
// "2Gi"); nullopt unless it is a whole number of at least one byte that
// fits in 63 bits.
std::optional<int64_t> ParseMemory(std::string_view text) {
  static constexpr std::pair<std::string_view, int> kSuffixes[] = {
      {"Ki", 10}, {"Mi", 20}, {"Gi", 30}, {"Ti", 40}};
  int shift = 0;
  for (const auto& [suffix, bits] : kSuffixes) {
    if (text.ends_with(suffix)) {
      text.remove_suffix(suffix.size());
      shift = bits;
      break;
    }
  }
  if (text.empty() || text.find_first_not_of("0123456789") != std::string_view::npos)
    return std::nullopt;
  int64_t number = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), number);
  if (error != std::errc() || end != text.data() + text.size() || number < 1 ||
      number > (std::numeric_limits<int64_t>::max() >> shift)) {
    return std::nullopt;
  }
  return number << shift;
}

}  // namespace

int CriUpdate(Client& client, Args args) {
  int64_t cpu_period = 0, cpu_quota = 0;
  std::string memory_text, cpuset;
  FlagSet flags("cri update",
                "usage: vmletctl [options] cri update [options] ID...\n"
                "\n"
                "UpdateContainerResources: changes the resources of each container's VM while\n"
                "it runs: vCPUs (quota / period, rounded up; hot-plugged), memory (the balloon)\n"
                "and the host CPUs it may run on. What is not given stays as it is. A VM\n"
                "cannot grow beyond what it was started with room for (vmletd's max_vcpus and\n"
                "max_memory_mib).\n"
                "\n"
                "Options:\n"
                "  --cpu-period N        CPU CFS period in microseconds (usually 100000)\n"
                "  --cpu-quota N         CPU CFS quota in microseconds: vCPUs = quota / period\n"
                "  --memory BYTES        memory limit: bytes, or with a Ki, Mi, Gi or Ti suffix\n"
                "                        (such as 512Mi)\n"
                "  --cpuset-cpus LIST    host CPUs to run on, such as 0-3,8\n");
  flags.AddInt("--cpu-period", &cpu_period, 1);
  flags.AddInt("--cpu-quota", &cpu_quota, 1);
  flags.AddString("--memory", &memory_text);
  flags.AddString("--cpuset-cpus", &cpuset);
  if (auto done = flags.Parse(args, 1, SIZE_MAX)) return *done;
  // Whether option `name` was given (an empty value is still a value).
  auto given = [&args](std::string_view name) {
    for (const std::string& arg : args) {
      if (arg == "--") break;
      if (arg == name ||
          (arg.starts_with(name) && arg.size() > name.size() && arg[name.size()] == '=')) {
        return true;
      }
    }
    return false;
  };
  std::optional<int64_t> memory;
  if (given("--memory") && !(memory = ParseMemory(memory_text)).has_value()) {
    return flags.Error(StrCat(
        "--memory \"", memory_text,
        "\" is invalid: expected bytes, or a number with a Ki, Mi, Gi or Ti suffix (512Mi)"));
  }
  if (given("--cpuset-cpus") &&
      (cpuset.empty() || cpuset.find_first_not_of("0123456789,-") != std::string::npos)) {
    return flags.Error(
        StrCat("--cpuset-cpus \"", cpuset, "\" is invalid: expected a CPU list such as 0-3,8"));
  }
  if (cpu_period == 0 && cpu_quota == 0 && !memory.has_value() && cpuset.empty()) {
    return flags.Error(
        "nothing to update: expected --cpu-period, --cpu-quota, --memory or --cpuset-cpus");
  }
  for (const std::string& id : flags.positional()) {
    // vmletd records the resources of a request as the container's whole
    // resources (as the kubelet sends them): start from the current ones so
    // that what is not given stays.
    v1::ContainerStatusRequest status_request;
    status_request.set_container_id(id);
    v1::ContainerStatusResponse current;
    grpc::Status status =
        client.Runtime(&v1::RuntimeService::Stub::ContainerStatus, status_request, &current);
    if (!status.ok()) return FailRpc(StrCat("ContainerStatus \"", id, "\""), status);
    v1::UpdateContainerResourcesRequest request;
    request.set_container_id(current.status().id());
    v1::LinuxContainerResources* linux = request.mutable_linux();
    *linux = current.status().resources().linux();
    if (cpu_period > 0) linux->set_cpu_period(cpu_period);
    if (cpu_quota > 0) linux->set_cpu_quota(cpu_quota);
    if (memory.has_value()) linux->set_memory_limit_in_bytes(*memory);
    if (!cpuset.empty()) linux->set_cpuset_cpus(cpuset);
    v1::UpdateContainerResourcesResponse response;
    status = client.Runtime(&v1::RuntimeService::Stub::UpdateContainerResources, request, &response,
                            CallKind::kChange);
    if (!status.ok()) return FailRpc(StrCat("UpdateContainerResources \"", id, "\""), status);
    std::printf("%s\n", id.c_str());
  }
  return kExitOk;
}

int CriRuntimeConfig(Client& client, Args args) {
  std::string output = client.options().output;
  FlagSet flags("cri runtime-config",
                "usage: vmletctl [options] cri runtime-config [-o FORMAT]\n"
                "\n"
                "RuntimeConfig: the configuration the kubelet takes from the runtime (the\n"
                "cgroup driver).\n"
                "\n"
                "Options:\n"
                "  -o FORMAT   table, json or yaml\n");
  flags.AddOutput(&output);
  if (auto done = flags.Parse(args, 0, 0)) return *done;
  v1::RuntimeConfigResponse response;
  grpc::Status status = client.Runtime(&v1::RuntimeService::Stub::RuntimeConfig,
                                       v1::RuntimeConfigRequest(), &response);
  if (!status.ok()) return FailRpc("RuntimeConfig", status);
  if (output != "table") {
    PrintMessage(response, output);
    return kExitOk;
  }
  std::printf("cgroup driver: %s\n",
              response.linux().cgroup_driver() == v1::SYSTEMD ? "systemd" : "cgroupfs");
  return kExitOk;
}

namespace {

// The write end of CancelOnInterrupt's pipe, for its signal handler.
std::atomic<int> interrupt_fd{-1};

void OnInterrupt(int /*signal*/) {
  const int saved_errno = errno;
  const int fd = interrupt_fd.load();
  if (fd >= 0) (void)!::write(fd, "i", 1);
  errno = saved_errno;
}

// Cancels `context`'s call when SIGINT or SIGTERM arrives, for as long as
// it lives. The handler only writes a byte to a pipe (it may run on any
// thread, gRPC's included); a thread of this object's reads it and cancels
// the call. One at a time; construct and destroy on the main thread.
class CancelOnInterrupt {
 public:
  explicit CancelOnInterrupt(grpc::ClientContext* context) {
    if (::pipe2(fds_, O_CLOEXEC) != 0) {
      fds_[0] = fds_[1] = -1;
      return;  // Interrupts then end the process, as by default.
    }
    interrupt_fd.store(fds_[1]);
    struct sigaction action {};
    action.sa_handler = OnInterrupt;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    ::sigaction(SIGINT, &action, &old_int_);
    ::sigaction(SIGTERM, &action, &old_term_);
    watcher_ = std::thread([this, context] {
      char byte = 0;
      while (true) {
        const ssize_t n = ::read(fds_[0], &byte, 1);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0 || byte == 'q') return;
        interrupted_ = true;
        context->TryCancel();
      }
    });
  }

  ~CancelOnInterrupt() {
    if (fds_[0] < 0) return;
    ::sigaction(SIGINT, &old_int_, nullptr);
    ::sigaction(SIGTERM, &old_term_, nullptr);
    interrupt_fd.store(-1);
    (void)!::write(fds_[1], "q", 1);
    watcher_.join();
    ::close(fds_[0]);
    ::close(fds_[1]);
  }

  CancelOnInterrupt(const CancelOnInterrupt&) = delete;
  CancelOnInterrupt& operator=(const CancelOnInterrupt&) = delete;

  bool interrupted() const { return interrupted_; }

 private:
  int fds_[2];
  struct sigaction old_int_ {};
  struct sigaction old_term_ {};
  std::atomic<bool> interrupted_ = false;
  std::thread watcher_;
};

// "CREATED" for CONTAINER_CREATED_EVENT.
std::string EventTypeName(v1::ContainerEventType type) {
  std::string name = v1::ContainerEventType_Name(type);
  if (name.starts_with("CONTAINER_")) name.erase(0, 10);
  if (name.ends_with("_EVENT")) name.resize(name.size() - 6);
  return name.empty() ? StrCat(static_cast<int>(type)) : name;
}

constexpr char kEventsFormat[] = "{:<30}   {:<13}   {:<7}   {}\n";

// One event as printed: a table line, one line of JSON, or a YAML document.
std::string FormatEvent(const v1::ContainerEventResponse& event, std::string_view output) {
  if (output == "table") {
    const v1::PodSandboxStatus& pod = event.pod_sandbox_status();
    std::string pod_name = pod.metadata().name();
    if (pod_name.empty()) pod_name = pod.id().empty() ? "-" : ShortId(pod.id());
    return fmt::format(
        kEventsFormat,
        absl::FormatTime("%Y-%m-%dT%H:%M:%E9SZ", absl::FromUnixNanos(event.created_at()),
                         absl::UTCTimeZone()),
        ShortId(event.container_id()), EventTypeName(event.container_event_type()), pod_name);
  }
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;  // Else CONTAINER_CREATED_EVENT (0) is left out.
  std::string json;
  (void)google::protobuf::util::MessageToJsonString(event, &json, options);
  return output == "json" ? json + "\n" : StrCat("---\n", JsonToYaml(json));
}

// A gRPC target for an endpoint given as a path or an address (as the
// Client makes it).
std::string Target(const std::string& endpoint) {
  return endpoint.starts_with("/") ? "unix://" + endpoint : endpoint;
}

}  // namespace

int CriEvents(Client& client, Args args) {
  std::string output = client.options().output;
  FlagSet flags("cri events",
                "usage: vmletctl [options] cri events [-o FORMAT]\n"
                "\n"
                "GetContainerEvents: prints each container event (CREATED, STARTED, STOPPED,\n"
                "DELETED) as it happens, one line each (TIME CONTAINER TYPE POD), or one JSON\n"
                "object a line with -o json, or one YAML document each with -o yaml, until\n"
                "interrupted (exit code 0), the global --timeout passes (exit code 0) or vmletd\n"
                "ends the stream. Each line is flushed at once, for scripts to read it live.\n"
                "\"Watching container events\" on stderr tells that the stream is open.\n"
                "\n"
                "Options:\n"
                "  -o FORMAT   table, json or yaml\n");
  flags.AddOutput(&output);
  if (auto done = flags.Parse(args, 0, 0)) return *done;

  // The stream needs the stub itself, which Client keeps to unary calls.
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateChannel(Target(client.options().endpoint), grpc::InsecureChannelCredentials());
  std::unique_ptr<v1::RuntimeService::Stub> stub = v1::RuntimeService::NewStub(channel);
  grpc::ClientContext context;
  client.SetDeadline(context, CallKind::kTransfer);  // None unless --timeout is given.
  CancelOnInterrupt cancel(&context);
  std::unique_ptr<grpc::ClientReader<v1::ContainerEventResponse>> reader =
      stub->GetContainerEvents(&context, v1::GetEventsRequest());
  // vmletd sends its headers once it has subscribed the stream: from here
  // on, no event is missed.
  reader->WaitForInitialMetadata();
  if (channel->GetState(/*try_to_connect=*/false) == GRPC_CHANNEL_READY && !cancel.interrupted()) {
    std::fputs("Watching container events; interrupt to stop.\n", stderr);
    if (output == "table") {
      std::fputs(fmt::format(kEventsFormat, "TIME", "CONTAINER", "TYPE", "POD").c_str(), stdout);
      std::fflush(stdout);
    }
  }
  v1::ContainerEventResponse event;
  int write_errno = 0;
  while (reader->Read(&event)) {
    const std::string text = FormatEvent(event, output);
    if (std::fputs(text.c_str(), stdout) == EOF || std::fflush(stdout) != 0) {
      write_errno = errno;
      context.TryCancel();
      break;
    }
  }
  grpc::Status status = reader->Finish();
  if (cancel.interrupted()) return kExitOk;
  if (write_errno == EPIPE) return kExitOk;  // The reader went away (`| head`).
  if (write_errno != 0)
    return Fail(StrCat("writing the events to stdout: ", std::strerror(write_errno)));
  if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED &&
      client.options().timeout_seconds.has_value()) {
    return kExitOk;  // The watch lasted as long as asked.
  }
  if (!status.ok()) return FailRpc("GetContainerEvents", status);
  return kExitOk;
}

}  // namespace vmlet::ctl
