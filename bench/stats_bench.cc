// The stats benchmark: ListContainerStats with many VMs, as the kubelet sees
// it, and how many libvirt queries its polls cost.
//
//   meson test -C build --benchmark stats
//   build/bench/stats_bench --pods 110 --polls 300   (with VMLETD, VMLET_GUEST_DIR, ...)
//
// A real vmletd (libvirt driver, TCG, stats_interval_seconds 2) gets N pods
// whose VMs run the small test guest (128 MiB; only running VMs have
// statistics). Once the guests are up and the collector has read all of
// them, the benchmark times ListContainerStats against two baselines
// measured in the same run: ListContainers over the same containers (a pure
// in-memory answer) and one bulk virConnectGetAllDomainStats of the same
// domains (what each call would cost if it asked libvirt). vmletd's
// Prometheus counters give the bulk queries made during the polls: the
// target is one per interval, none per call.
//
// Exit 0 whenever it measured (targets are reported), 1 on failure, 77 where
// libvirtd, QEMU or the guest cannot run. Every pod, domain and file is
// removed, on failure and on SIGINT/SIGTERM too.
#include <arpa/inet.h>
#include <libvirt/libvirt.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "base/id.h"
#include "base/scope_guard.h"
#include "base/status.h"
#include "base/str_util.h"
#include "bench/bench_guest.h"
#include "bench/leftovers.h"
#include "tests/e2e/vmletd_process.h"

namespace vmlet::bench {
namespace {

namespace v1 = ::runtime::v1;
using e2e::VmletdProcess;
using Clock = std::chrono::steady_clock;

constexpr char kImage[] = "vmlet.bench/guest:1";
constexpr char kCmdline[] = "console=ttyS0 quiet panic=-1";
constexpr int kIntervalSeconds = 2;
constexpr int kWindowIntervals = 15;

struct Flags {
  int pods = 110;
  int polls = 300;
  int memory_mib = 128;
  GuestSetup guest;
};

bool ParseFlags(int argc, char** argv, Flags* flags) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::string value;
    if (size_t eq = arg.find('='); eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    } else if (i + 1 < argc) {
      value = argv[++i];
    }
    int* target = arg == "--pods"         ? &flags->pods
                  : arg == "--polls"      ? &flags->polls
                  : arg == "--memory-mib" ? &flags->memory_mib
                                          : nullptr;
    char* end = nullptr;
    long number = target != nullptr ? std::strtol(value.c_str(), &end, 10) : 0;
    if (target == nullptr || value.empty() || *end != '\0' || number < 1 || number > 100000) {
      std::fprintf(
          stderr, "usage: stats_bench [--pods N (110)] [--polls N (300)] [--memory-mib N (128)]\n");
      return false;
    }
    *target = static_cast<int>(number);
  }
  return true;
}

// A free TCP port on 127.0.0.1 (bound and released).
absl::StatusOr<int> FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return ErrnoToStatus(errno, "socket");
  ScopeGuard close_fd([fd] { ::close(fd); });
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t size = sizeof(address);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&address), size) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size) != 0) {
    return ErrnoToStatus(errno, "binding 127.0.0.1:0");
  }
  return ntohs(address.sin_port);
}

// The value of the first sample of `metric` (with its labels, as written
// in the text) in vmletd's /metrics, read with curl.
absl::StatusOr<double> Scrape(int port, std::string_view sample) {
  VMLET_ASSIGN_OR_RETURN(
      e2e::ExitStatus curl,
      e2e::RunCommand({"/usr/bin/curl", "-sf", StrCat("http://127.0.0.1:", port, "/metrics")}));
  if (curl.code != 0) return absl::UnavailableError(StrCat("curl exited with ", curl.code));
  for (size_t at = curl.output.find(sample); at != std::string::npos;
       at = curl.output.find(sample, at + 1)) {
    if (at > 0 && curl.output[at - 1] != '\n') continue;
    const size_t value = at + sample.size();
    if (value < curl.output.size() && curl.output[value] == ' ') {
      return std::strtod(curl.output.c_str() + value + 1, nullptr);
    }
  }
  return 0.0;  // Not counted yet.
}

double Percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  size_t index = static_cast<size_t>(p * (values.size() - 1) + 0.5);
  return values[std::min(index, values.size() - 1)];
}

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

template <typename Call>
absl::StatusOr<std::vector<double>> Time(int count, Call call) {
  std::vector<double> ms;
  ms.reserve(count);
  for (int i = 0; i < count; ++i) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    const Clock::time_point start = Clock::now();
    grpc::Status status = call(&context);
    ms.push_back(Ms(Clock::now() - start));
    if (!status.ok()) return absl::InternalError(status.error_message());
  }
  return ms;
}

// One bulk query of every running domain, as the driver makes it; ms each.
absl::StatusOr<std::vector<double>> TimeBulkQuery(int count, int expected_domains) {
  virConnectPtr conn = virConnectOpen(kLibvirtUri);
  if (conn == nullptr) return absl::UnavailableError("cannot connect to libvirt");
  ScopeGuard close_conn([conn] { virConnectClose(conn); });
  std::vector<double> ms;
  for (int i = 0; i < count; ++i) {
    virDomainStatsRecordPtr* records = nullptr;
    const Clock::time_point start = Clock::now();
    int n = virConnectGetAllDomainStats(conn,
                                        VIR_DOMAIN_STATS_STATE | VIR_DOMAIN_STATS_CPU_TOTAL |
                                            VIR_DOMAIN_STATS_BALLOON | VIR_DOMAIN_STATS_VCPU |
                                            VIR_DOMAIN_STATS_INTERFACE | VIR_DOMAIN_STATS_BLOCK,
                                        &records, VIR_CONNECT_GET_ALL_DOMAINS_STATS_ACTIVE);
    ms.push_back(Ms(Clock::now() - start));
    if (n < 0) return absl::InternalError("virConnectGetAllDomainStats failed");
    virDomainStatsRecordListFree(records);
    if (n < expected_domains) {
      return absl::InternalError(
          StrCat("libvirt lists ", n, " active domains, expected at least ", expected_domains));
    }
  }
  return ms;
}

absl::Status CreatePods(VmletdProcess& vmletd, const Flags& flags, const std::string& ns,
                        std::vector<std::string>* sandboxes) {
  for (int i = 0; i < flags.pods; ++i) {
    v1::RunPodSandboxRequest run;
    run.mutable_config()->mutable_metadata()->set_name(StrCat("stats-", i));
    run.mutable_config()->mutable_metadata()->set_namespace_(ns);
    run.mutable_config()->mutable_metadata()->set_uid(GenerateId().substr(0, 16));
    run.mutable_config()->set_log_directory(StrCat(vmletd.dir(), "/logs/", i));
    v1::RunPodSandboxResponse ran;
    grpc::ClientContext run_context;
    grpc::Status status = vmletd.runtime().RunPodSandbox(&run_context, run, &ran);
    if (!status.ok()) return absl::InternalError(StrCat("RunPodSandbox: ", status.error_message()));
    sandboxes->push_back(ran.pod_sandbox_id());
    v1::CreateContainerRequest create;
    create.set_pod_sandbox_id(ran.pod_sandbox_id());
    create.mutable_config()->mutable_metadata()->set_name("vm");
    create.mutable_config()->mutable_image()->set_image(kImage);
    create.mutable_config()->set_log_path("vm/0.log");
    auto* resources = create.mutable_config()->mutable_linux()->mutable_resources();
    resources->set_memory_limit_in_bytes(int64_t{flags.memory_mib} << 20);
    v1::CreateContainerResponse created;
    grpc::ClientContext create_context;
    status = vmletd.runtime().CreateContainer(&create_context, create, &created);
    if (!status.ok()) {
      return absl::InternalError(StrCat("CreateContainer: ", status.error_message()));
    }
    v1::StartContainerRequest start;
    start.set_container_id(created.container_id());
    v1::StartContainerResponse started;
    grpc::ClientContext start_context;
    status = vmletd.runtime().StartContainer(&start_context, start, &started);
    if (!status.ok()) {
      return absl::InternalError(StrCat("StartContainer: ", status.error_message()));
    }
    if ((i + 1) % 10 == 0 || i + 1 == flags.pods) {
      std::fprintf(stderr, "%d of %d VMs started\n", i + 1, flags.pods);
    }
  }
  return absl::OkStatus();
}

absl::Status RemovePods(VmletdProcess& vmletd, std::vector<std::string>* sandboxes) {
  absl::Status result = vmletd.RemovePodSandboxes(*sandboxes);
  sandboxes->clear();
  return result;
}

absl::Status RunBenchmark(const Flags& flags) {
  char resolved[PATH_MAX];
  if (::realpath(flags.guest.guest_dir.c_str(), resolved) == nullptr) {
    return ErrnoToStatus(errno, StrCat("resolving \"", flags.guest.guest_dir, "\""));
  }
  VMLET_ASSIGN_OR_RETURN(std::string image_dir, MakeGuestImage(resolved, kCmdline));
  VMLET_ASSIGN_OR_RETURN(int port, FreePort());
  const std::string ns = StrCat("bench-", GenerateId().substr(0, 8));
  RegisterNamespace(ns);
  VmletdProcess vmletd(StrCat("vm_driver: libvirt\nlibvirt_uri: ", kLibvirtUri,
                              "\naccelerator: tcg\nstats_interval_seconds: ", kIntervalSeconds,
                              "\nmetrics_address: 127.0.0.1:", port, "\nlocal_images:\n  \"",
                              kImage, "\": ", image_dir, "\n"),
                       /*fake_driver=*/false);
  VMLET_RETURN_IF_ERROR(vmletd.init_status());
  RegisterTempDir(vmletd.dir());
  if (::chmod(vmletd.dir().c_str(), 0711) != 0) return ErrnoToStatus(errno, "chmod");
  VMLET_RETURN_IF_ERROR(Annotate(vmletd.Start(), "starting vmletd"));

  std::vector<std::string> sandboxes;
  ScopeGuard remove_pods([&] { (void)RemovePods(vmletd, &sandboxes); });
  const Clock::time_point create_start = Clock::now();
  VMLET_RETURN_IF_ERROR(CreatePods(vmletd, flags, ns, &sandboxes));
  std::fprintf(stderr, "started %d VMs in %.0f s\n", flags.pods,
               Ms(Clock::now() - create_start) / 1000);

  // Until the collector has read every VM.
  v1::ListContainerStatsResponse stats;
  const absl::Time deadline = absl::Now() + absl::Seconds(300);
  while (true) {
    stats.Clear();
    grpc::ClientContext context;
    grpc::Status status = vmletd.runtime().ListContainerStats(&context, {}, &stats);
    if (!status.ok()) return absl::InternalError(status.error_message());
    int sampled = 0;
    for (const v1::ContainerStats& one : stats.stats()) sampled += one.has_cpu() ? 1 : 0;
    if (sampled >= flags.pods) break;
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError(
          StrCat("after 300 s the stats cover ", sampled, " of ", flags.pods, " VMs"));
    }
    absl::SleepFor(absl::Milliseconds(200));
  }

  const std::string calls_sample =
      "vmlet_cri_requests_total{method=\"ListContainerStats\",code=\"OK\"}";
  VMLET_ASSIGN_OR_RETURN(std::vector<double> stats_ms,
                         Time(flags.polls, [&](grpc::ClientContext* context) {
                           v1::ListContainerStatsResponse response;
                           return vmletd.runtime().ListContainerStats(context, {}, &response);
                         }));
  // A kubelet-like window of kWindowIntervals collection intervals with a
  // call every 100 ms: how many bulk queries vmletd made, per interval
  // and per call, from its own metrics.
  VMLET_ASSIGN_OR_RETURN(double collections_before, Scrape(port, "vmlet_stats_collections_total"));
  VMLET_ASSIGN_OR_RETURN(double calls_before, Scrape(port, calls_sample));
  const Clock::time_point window_start = Clock::now();
  const auto window = std::chrono::seconds(kWindowIntervals * kIntervalSeconds);
  while (Clock::now() - window_start < window) {
    grpc::ClientContext context;
    v1::ListContainerStatsResponse response;
    grpc::Status status = vmletd.runtime().ListContainerStats(&context, {}, &response);
    if (!status.ok()) {
      return absl::InternalError(StrCat("ListContainerStats: ", status.error_message()));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  const double window_seconds = Ms(Clock::now() - window_start) / 1000;
  VMLET_ASSIGN_OR_RETURN(double collections_after, Scrape(port, "vmlet_stats_collections_total"));
  VMLET_ASSIGN_OR_RETURN(double calls_after, Scrape(port, calls_sample));
  VMLET_ASSIGN_OR_RETURN(std::vector<double> list_ms,
                         Time(flags.polls, [&](grpc::ClientContext* context) {
                           v1::ListContainersResponse response;
                           return vmletd.runtime().ListContainers(context, {}, &response);
                         }));
  VMLET_ASSIGN_OR_RETURN(std::vector<double> bulk_ms, TimeBulkQuery(20, flags.pods));

  const double collections = collections_after - collections_before;
  const double calls = calls_after - calls_before;
  const double intervals = window_seconds / kIntervalSeconds;
  std::printf("stats benchmark: %d running VMs (TCG, idle test guest), %d polls of each call\n",
              flags.pods, flags.polls);
  std::printf("  ListContainerStats   p50 %7.2f ms  p99 %7.2f ms  (%d entries)\n",
              Percentile(stats_ms, 0.5), Percentile(stats_ms, 0.99), stats.stats_size());
  std::printf("  ListContainers       p50 %7.2f ms  p99 %7.2f ms  (baseline: from memory)\n",
              Percentile(list_ms, 0.5), Percentile(list_ms, 0.99));
  std::printf(
      "  bulk libvirt query   p50 %7.2f ms  p99 %7.2f ms  (baseline: one "
      "virConnectGetAllDomainStats)\n",
      Percentile(bulk_ms, 0.5), Percentile(bulk_ms, 0.99));
  std::printf("  ratio ListContainerStats / ListContainers p50: %.2f\n",
              Percentile(stats_ms, 0.5) / std::max(Percentile(list_ms, 0.5), 1e-6));
  std::printf("  ratio ListContainerStats / bulk query p50: %.3f\n",
              Percentile(stats_ms, 0.5) / std::max(Percentile(bulk_ms, 0.5), 1e-6));
  std::printf(
      "  during %.1f s of kubelet-like polling (%.0f calls counted by vmletd): %.0f bulk queries, "
      "%.2f per %d s interval (target 1), %.4f per call (target 0)\n",
      window_seconds, calls, collections, collections / std::max(intervals, 1e-6), kIntervalSeconds,
      collections / std::max(calls, 1.0));
  VMLET_RETURN_IF_ERROR(RemovePods(vmletd, &sandboxes));
  remove_pods.Dismiss();
  return absl::OkStatus();
}

int Main(int argc, char** argv) {
  ::setenv("GRPC_CLIENT_CHANNEL_BACKUP_POLL_INTERVAL_MS", "100", /*overwrite=*/0);
  Flags flags{.guest = {.vmletd = Getenv("VMLETD"),
                        .build_guest = Getenv("VMLET_BUILD_GUEST"),
                        .guest_dir = Getenv("VMLET_GUEST_DIR")}};
  if (!ParseFlags(argc, argv, &flags)) return 2;
  StartSignalThread();
  if (int checked = CheckAndBuildGuest(flags.guest); checked != 0) return checked;
  absl::Status result = RunBenchmark(flags);
  absl::StatusOr<int> swept = CleanUpLeftovers();
  if (!result.ok()) std::fprintf(stderr, "stats benchmark failed: %s\n", result.ToString().c_str());
  if (!swept.ok() || *swept > 0) {
    std::fprintf(stderr, "domains of this run were left in libvirt; destroyed them\n");
    return 1;
  }
  return result.ok() ? 0 : 1;
}

}  // namespace
}  // namespace vmlet::bench

int main(int argc, char** argv) { return vmlet::bench::Main(argc, argv); }
