// End-to-end tests of issue 9 with a real VM: statistics, container events,
// live resource updates and the metrics endpoint. vmletd with the libvirt
// driver boots the test guest (tests/guest/build-guest.sh) under TCG with 1
// vCPU and 192 MiB, and room to grow to 2 vCPUs and 256 MiB (max_vcpus,
// max_memory_mib); statistics are collected every second.
//
// The VM boots once for the whole suite; a second pod lives and dies within
// the events test. Skipped (exit 77) without libvirtd, QEMU or the guest's
// packages (qemu-guest-agent among them). Like every test that starts a
// vmletd with the libvirt driver, it must not run beside another such test
// on the same libvirtd: a vmletd removes at start the vmlet domains that its
// own records do not know (CriService::ReconcileContainers).
//
// Threads: the tests run on gtest's main thread; the events test reads its
// two streams on threads of its own, and the CPU burn runs ExecSync on one.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/time/clock.h"
#include "base/id.h"
#include "base/process.h"
#include "base/scope_guard.h"
#include "base/status.h"
#include "base/str_util.h"
#include "tests/e2e/test_guest.h"
#include "tests/e2e/vmletd_process.h"

namespace vmlet::e2e {
namespace {

namespace v1 = ::runtime::v1;
using ::testing::ContainsRegex;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kImage[] = "vmlet.test/stats:agent";
constexpr int64_t kMiB = int64_t{1} << 20;
constexpr int64_t kPeriod = 100000;

std::string Layout() { return StrCat(GuestDir(), "/layouts/stats-agent"); }

// The resources the suite's VM starts with: 1 vCPU, 192 MiB.
v1::LinuxContainerResources StartResources() {
  v1::LinuxContainerResources resources;
  resources.set_cpu_period(kPeriod);
  resources.set_cpu_quota(kPeriod);
  resources.set_memory_limit_in_bytes(192 * kMiB);
  return resources;
}

// A TCP port on 127.0.0.1 that was free a moment ago; 0 when none was found.
int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  ScopeGuard close_fd([fd] { ::close(fd); });
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    return 0;
  }
  return ntohs(address.sin_port);
}

// GET `target` from 127.0.0.1:port over HTTP/1.0: all that comes back until
// the server closes (at most 20 s), or "" when the connection fails.
std::string HttpGet(int port, const std::string& target) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return "";
  ScopeGuard close_fd([fd] { ::close(fd); });
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(static_cast<uint16_t>(port));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) return "";
  const std::string request =
      StrCat("GET ", target, " HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
  if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size())) {
    return "";
  }
  std::string out;
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  char buffer[4096];
  while (absl::Now() < deadline && out.size() < (size_t{16} << 20)) {
    pollfd pfd = {fd, POLLIN, 0};
    if (::poll(&pfd, 1, 100) <= 0) continue;
    ssize_t n = ::recv(fd, buffer, sizeof(buffer), 0);
    if (n <= 0) break;
    out.append(buffer, static_cast<size_t>(n));
  }
  return out;
}

// A python3 that has prometheus_client (Debian's first: a python3 earlier
// in PATH may be another installation), or "".
std::string PythonWithParser() {
  for (const char* python : {"/usr/bin/python3", "python3"}) {
    absl::StatusOr<ProcessResult> result =
        RunProcess({python, "-c", "import prometheus_client.parser"}, absl::Seconds(60));
    if (result.ok() && result->exit_code == 0) return python;
  }
  return "";
}

// The first unsigned number in `text` after `key`, or nullopt.
std::optional<int64_t> NumberAfter(const std::string& text, std::string_view key) {
  size_t at = text.find(key);
  if (at == std::string::npos) return std::nullopt;
  at = text.find_first_of("0123456789", at + key.size());
  if (at == std::string::npos) return std::nullopt;
  int64_t value = 0;
  auto [end, error] = std::from_chars(text.data() + at, text.data() + text.size(), value);
  if (error != std::errc()) return std::nullopt;
  return value;
}

class StatsTest : public ::testing::Test {
 protected:
  // One vmletd and one pod ("stats") for the suite.
  static void SetUpTestSuite() {
    namespace_ = new std::string(StrCat("e2e-", GenerateId().substr(0, 8)));
    metrics_port_ = FreePort();
    const std::string yaml =
        StrCat("vm_driver: libvirt\nlibvirt_uri: ", kLibvirtUri,
               "\naccelerator: tcg\nstats_interval_seconds: 1\nmax_vcpus: 2\nmax_memory_mib: 256\n",
               "metrics_address: 127.0.0.1:", metrics_port_, "\nlocal_images:\n  \"", kImage,
               "\": ", Layout(), "\n");
    vmletd_ = new VmletdProcess(yaml, /*fake_driver=*/false);
    setup_error_ = new std::string(Boot());
  }

  // Boots the VM and waits until its agent answers; what went wrong, or "".
  static std::string Boot() {
    if (metrics_port_ == 0) return "no free port on 127.0.0.1 for the metrics endpoint";
    if (!vmletd_->init_status().ok()) return std::string(vmletd_->init_status().message());
    // QEMU runs as libvirt's own user: it must reach the per-VM files.
    if (::chmod(vmletd_->dir().c_str(), 0711) != 0) return "chmod of the test directory failed";
    if (absl::Status started = vmletd_->Start(); !started.ok()) {
      return StrCat("starting vmletd: ", started.message());
    }
    const std::string sandbox = RunPod("stats");
    if (sandbox.empty()) return "RunPodSandbox of pod \"stats\" failed";
    vm_ = new std::string(CreateAndStartVm(vmletd_->runtime(), sandbox, kImage, StartResources()));
    if (vm_->empty()) return "creating or starting the VM of pod \"stats\" failed";
    if (!WaitFor(
            [] { return LogOf("stats").find("VMLET-GUEST-AGENT-READY") != std::string::npos; })) {
      return StrCat("no VMLET-GUEST-AGENT-READY in the console log:\n", LogOf("stats"));
    }
    if (!WaitFor(
            [] {
              v1::ExecSyncResponse response;
              return Exec(*vm_, {"true"}, 10, &response).error_code() !=
                     grpc::StatusCode::FAILED_PRECONDITION;
            },
            absl::Seconds(20))) {
      return "the guest agent did not answer within 20s of VMLET-GUEST-AGENT-READY";
    }
    return "";
  }

  static void TearDownTestSuite() {
    if (absl::Status removed = vmletd_->RemovePodSandboxes(sandboxes_); !removed.ok()) {
      std::fprintf(stderr, "%s\n", std::string(removed.message()).c_str());
    }
    // Never leave a domain behind, even when a test failed.
    std::istringstream lines(Virsh({"list", "--all", "--name"}));
    for (std::string name; std::getline(lines, name);) {
      if (name.find(*namespace_) == std::string::npos) continue;
      std::fprintf(stderr, "a domain of this test is left: %s; removing it\n", name.c_str());
      Virsh({"destroy", name});
      Virsh({"undefine", name});
    }
    if (!setup_error_->empty() || ::testing::UnitTest::GetInstance()->failed_test_count() > 0) {
      std::fprintf(stderr, "vmletd log:\n%s\nconsole log of pod \"stats\":\n%s\n",
                   vmletd_->Log().c_str(), LogOf("stats").c_str());
    }
    delete vmletd_;  // Kills vmletd and removes its directory.
    vmletd_ = nullptr;
  }

  void SetUp() override {
    if (!setup_error_->empty()) GTEST_FAIL() << *setup_error_;
  }

  static std::string RunPod(const std::string& name) {
    grpc::ClientContext context;
    v1::RunPodSandboxRequest request;
    v1::PodSandboxConfig* config = request.mutable_config();
    config->mutable_metadata()->set_name(name);
    config->mutable_metadata()->set_namespace_(*namespace_);
    config->mutable_metadata()->set_uid(GenerateId().substr(0, 16));
    config->set_log_directory(StrCat(vmletd_->dir(), "/logs/", name));
    v1::RunPodSandboxResponse response;
    grpc::Status status = vmletd_->runtime().RunPodSandbox(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    if (!status.ok()) return "";
    sandboxes_.push_back(response.pod_sandbox_id());
    return response.pod_sandbox_id();
  }

  static std::string LogOf(const std::string& pod) {
    return ReadAll(StrCat(vmletd_->dir(), "/logs/", pod, "/vm/0.log"));
  }

  // Thread-safe (gRPC stubs are).
  static grpc::Status Exec(const std::string& id, const std::vector<std::string>& cmd,
                           int64_t timeout, v1::ExecSyncResponse* response) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(timeout + 60));
    v1::ExecSyncRequest request;
    request.set_container_id(id);
    for (const std::string& arg : cmd) request.add_cmd(arg);
    request.set_timeout(timeout);
    return vmletd_->runtime().ExecSync(&context, request, response);
  }

  // What `script` prints in the guest (sh -c), with a gtest failure when it
  // cannot run or exits non-zero.
  static std::string Shell(const std::string& script, int64_t timeout = 60) {
    v1::ExecSyncResponse response;
    grpc::Status status = Exec(*vm_, {"sh", "-c", script}, timeout, &response);
    EXPECT_TRUE(status.ok()) << script << ": " << status.error_message();
    EXPECT_EQ(response.exit_code(), 0) << script << ": " << response.stderr();
    return response.stdout();
  }

  // The guest's online CPUs (/proc/cpuinfo), or -1.
  static int GuestCpus() {
    v1::ExecSyncResponse response;
    if (!Exec(*vm_, {"grep", "-c", "^processor", "/proc/cpuinfo"}, 30, &response).ok()) return -1;
    return static_cast<int>(NumberAfter(response.stdout(), "").value_or(-1));
  }

  // MemTotal of /proc/meminfo in the guest, in KiB, or -1.
  static int64_t GuestMemTotalKib() {
    v1::ExecSyncResponse response;
    if (!Exec(*vm_, {"grep", "MemTotal", "/proc/meminfo"}, 30, &response).ok()) return -1;
    return NumberAfter(response.stdout(), "MemTotal:").value_or(-1);
  }

  static grpc::Status ListContainerStats(const std::string& id, v1::ContainerStats* out) {
    grpc::ClientContext context;
    v1::ListContainerStatsRequest request;
    request.mutable_filter()->set_id(id);
    v1::ListContainerStatsResponse response;
    grpc::Status status = vmletd_->runtime().ListContainerStats(&context, request, &response);
    if (!status.ok()) return status;
    if (response.stats_size() != 1) {
      return grpc::Status(grpc::StatusCode::INTERNAL,
                          StrCat("ListContainerStats filtered by id gave ", response.stats_size(),
                                 " entries, expected 1"));
    }
    *out = response.stats(0);
    return status;
  }

  // Samples until the container's CPU figure is newer than `after_ns`.
  static v1::ContainerStats StatsNewerThan(int64_t after_ns) {
    v1::ContainerStats stats;
    EXPECT_TRUE(WaitFor(
        [&] { return ListContainerStats(*vm_, &stats).ok() && stats.cpu().timestamp() > after_ns; },
        absl::Seconds(20)))
        << "no new sample within 20s: " << stats.DebugString();
    return stats;
  }

  static grpc::Status Update(const v1::LinuxContainerResources& resources) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
    v1::UpdateContainerResourcesRequest request;
    request.set_container_id(*vm_);
    *request.mutable_linux() = resources;
    v1::UpdateContainerResourcesResponse response;
    return vmletd_->runtime().UpdateContainerResources(&context, request, &response);
  }

  static v1::LinuxContainerResources StatusResources() {
    grpc::ClientContext context;
    v1::ContainerStatusRequest request;
    request.set_container_id(*vm_);
    v1::ContainerStatusResponse response;
    grpc::Status status = vmletd_->runtime().ContainerStatus(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.status().resources().linux();
  }

  static inline VmletdProcess* vmletd_ = nullptr;
  static inline std::string* namespace_ = nullptr;
  static inline std::string* setup_error_ = nullptr;
  static inline std::string* vm_ = nullptr;
  static inline int metrics_port_ = 0;
  static inline std::vector<std::string> sandboxes_;
};

TEST_F(StatsTest, RuntimeConfigNamesTheHostsCgroupDriver) {
  grpc::ClientContext context;
  v1::RuntimeConfigResponse response;
  grpc::Status status =
      vmletd_->runtime().RuntimeConfig(&context, v1::RuntimeConfigRequest(), &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  // cgroup_driver "auto": systemd when it runs the host (sd_booted()).
  struct stat st;
  const bool systemd = ::stat("/run/systemd/system", &st) == 0 && S_ISDIR(st.st_mode);
  EXPECT_EQ(response.linux().cgroup_driver(), systemd ? v1::SYSTEMD : v1::CGROUPFS);
}

TEST_F(StatsTest, VerboseStatusCountsStatsCollections) {
  std::string collections;
  EXPECT_TRUE(WaitFor(
      [&] {
        grpc::ClientContext context;
        v1::StatusRequest request;
        request.set_verbose(true);
        v1::StatusResponse response;
        if (!vmletd_->runtime().Status(&context, request, &response).ok()) return false;
        auto it = response.info().find("statsCollections");
        collections = it == response.info().end() ? "(absent)" : it->second;
        return NumberAfter(collections, "").value_or(0) > 0;
      },
      absl::Seconds(10)))
      << "statsCollections: " << collections;
}

TEST_F(StatsTest, CpuAndMemoryFiguresMoveWithTheGuestsWork) {
  const v1::ContainerStats before = StatsNewerThan(0);
  ASSERT_TRUE(before.has_cpu() && before.cpu().has_usage_core_nano_seconds())
      << before.DebugString();
  ASSERT_TRUE(before.has_memory() && before.memory().has_working_set_bytes())
      << before.DebugString();
  EXPECT_EQ(before.attributes().id(), *vm_);
  EXPECT_EQ(before.attributes().metadata().name(), "vm");

  // A busy loop in the guest, sampled while it runs: for at least 3 s, and
  // on until the VM's CPU time grew by 1.2 s (the machine may be shared:
  // the vCPU thread then gets less than a core), 60 s at most. It stops
  // when /tmp/stop-burn appears.
  const uint64_t cpu_before = before.cpu().usage_core_nano_seconds().value();
  grpc::Status burn_status;
  v1::ExecSyncResponse burn_response;
  std::thread burner([&] {
    burn_status =
        Exec(*vm_, {"sh", "-c", "rm -f /tmp/stop-burn; while [ ! -e /tmp/stop-burn ]; do :; done"},
             120, &burn_response);
  });
  auto stop_burn = [&] {
    if (!burner.joinable()) return;
    v1::ExecSyncResponse response;
    grpc::Status stopped = Exec(*vm_, {"sh", "-c", ": >/tmp/stop-burn"}, 60, &response);
    EXPECT_TRUE(stopped.ok()) << stopped.error_message();
    burner.join();  // At most the burn's ExecSync timeout.
    (void)Exec(*vm_, {"rm", "-f", "/tmp/stop-burn"}, 30, &response);
  };
  ScopeGuard stop_on_failure(stop_burn);
  const absl::Time burn_start = absl::Now();
  uint64_t max_nano_cores = 0;
  int samples_during_burn = 0;
  while (absl::Now() - burn_start < absl::Seconds(60)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    v1::ContainerStats during;
    if (!ListContainerStats(*vm_, &during).ok()) continue;
    if (during.cpu().has_usage_nano_cores()) {
      max_nano_cores = std::max(max_nano_cores, during.cpu().usage_nano_cores().value());
      ++samples_during_burn;
    }
    if (absl::Now() - burn_start >= absl::Seconds(3) &&
        during.cpu().usage_core_nano_seconds().value() >= cpu_before + 1'200'000'000u) {
      break;
    }
  }
  const absl::Duration burnt = absl::Now() - burn_start;
  stop_burn();
  ASSERT_TRUE(burn_status.ok()) << burn_status.error_message();
  EXPECT_EQ(burn_response.exit_code(), 0) << burn_response.stderr();
  EXPECT_GT(samples_during_burn, 0);
  EXPECT_GT(max_nano_cores, 0u);
  std::fprintf(stderr, "burnt for %s; usage_nano_cores at most %llu over %d samples\n",
               absl::FormatDuration(burnt).c_str(), static_cast<unsigned long long>(max_nano_cores),
               samples_during_burn);

  // 48 MiB into /tmp, which is RAM in the initramfs guest.
  ScopeGuard remove_fill([] {
    v1::ExecSyncResponse response;
    (void)Exec(*vm_, {"rm", "-f", "/tmp/fill"}, 30, &response);
  });
  Shell("dd if=/dev/zero of=/tmp/fill bs=1048576 count=48 2>/dev/null && cat /tmp/fill >/dev/null");
  // Two to three stats intervals (1 s each).
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  const v1::ContainerStats after = StatsNewerThan(before.cpu().timestamp());

  EXPECT_GT(after.cpu().timestamp(), before.cpu().timestamp());
  EXPECT_GT(after.memory().timestamp(), before.memory().timestamp());
  const uint64_t cpu_after = after.cpu().usage_core_nano_seconds().value();
  EXPECT_GE(cpu_after, cpu_before + 1'000'000'000u)
      << "CPU time grew by " << (cpu_after - cpu_before) / 1e9 << " s during a "
      << absl::FormatDuration(burnt) << " burn";
  const uint64_t rss_before = before.memory().rss_bytes().value();
  const uint64_t rss_after = after.memory().rss_bytes().value();
  EXPECT_GE(rss_after, rss_before + 24 * kMiB)
      << "RSS went from " << rss_before / kMiB << " to " << rss_after / kMiB
      << " MiB after the guest wrote 48 MiB into RAM";
  EXPECT_GE(after.memory().working_set_bytes().value(),
            before.memory().working_set_bytes().value() + 24 * kMiB);
  std::fprintf(stderr, "CPU %.2f -> %.2f s, RSS %llu -> %llu MiB\n", cpu_before / 1e9,
               cpu_after / 1e9, static_cast<unsigned long long>(rss_before / kMiB),
               static_cast<unsigned long long>(rss_after / kMiB));

  // ContainerStats answers from the same samples.
  grpc::ClientContext context;
  v1::ContainerStatsRequest request;
  request.set_container_id(*vm_);
  v1::ContainerStatsResponse single;
  grpc::Status status = vmletd_->runtime().ContainerStats(&context, request, &single);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(single.stats().attributes().id(), *vm_);
  EXPECT_GE(single.stats().cpu().timestamp(), after.cpu().timestamp());
  EXPECT_GE(single.stats().cpu().usage_core_nano_seconds().value(), cpu_after);
}

TEST_F(StatsTest, PodStatsCarryTheVmsFiguresAndEth0) {
  const v1::ContainerStats container = StatsNewerThan(0);
  grpc::ClientContext context;
  v1::ListPodSandboxStatsRequest request;
  request.mutable_filter()->set_id(sandboxes_.front());
  v1::ListPodSandboxStatsResponse response;
  grpc::Status status = vmletd_->runtime().ListPodSandboxStats(&context, request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.stats_size(), 1) << response.DebugString();
  const v1::PodSandboxStats& pod = response.stats(0);
  EXPECT_EQ(pod.attributes().id(), sandboxes_.front());
  EXPECT_EQ(pod.attributes().metadata().name(), "stats");
  const v1::LinuxPodSandboxStats& linux = pod.linux();
  ASSERT_EQ(linux.containers_size(), 1) << pod.DebugString();
  EXPECT_EQ(linux.containers(0).attributes().id(), *vm_);
  // The pod's usage is its one VM's, from the same sample.
  ASSERT_TRUE(linux.cpu().has_usage_core_nano_seconds()) << pod.DebugString();
  EXPECT_EQ(linux.cpu().usage_core_nano_seconds().value(),
            linux.containers(0).cpu().usage_core_nano_seconds().value());
  EXPECT_EQ(linux.cpu().timestamp(), linux.containers(0).cpu().timestamp());
  EXPECT_GE(linux.cpu().usage_core_nano_seconds().value(),
            container.cpu().usage_core_nano_seconds().value());
  EXPECT_EQ(linux.memory().working_set_bytes().value(),
            linux.containers(0).memory().working_set_bytes().value());
  // These pods have no network (pod_network: none), so the VM has no NIC and
  // no network figures are reported, rather than zeros.
  EXPECT_FALSE(linux.has_network()) << pod.DebugString();

  v1::PodSandboxStatsResponse single;
  grpc::ClientContext single_context;
  v1::PodSandboxStatsRequest single_request;
  single_request.set_pod_sandbox_id(sandboxes_.front());
  status = vmletd_->runtime().PodSandboxStats(&single_context, single_request, &single);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(single.stats().attributes().id(), sandboxes_.front());
  EXPECT_GE(single.stats().linux().cpu().usage_core_nano_seconds().value(),
            linux.cpu().usage_core_nano_seconds().value());
}

// One GetContainerEvents stream read on a thread of its own, `delay`
// before each Read. Shared with the thread, which may outlive the test if
// the stream never ends (it is then leaked, not freed under the thread).
struct EventStream {
  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientReader<v1::ContainerEventResponse>> reader;
  absl::Duration delay;
  std::mutex mu;
  std::vector<std::pair<v1::ContainerEventResponse, absl::Time>> events;  // Guarded by mu.
  grpc::Status end;                                                       // Guarded by mu.
  std::atomic<bool> ended{false};
  std::thread thread;

  // The types of the events about `id`, in order, and when the last came.
  std::vector<v1::ContainerEventType> TypesFor(const std::string& id, absl::Time* last = nullptr) {
    std::lock_guard lock(mu);
    std::vector<v1::ContainerEventType> types;
    for (const auto& [event, at] : events) {
      if (event.container_id() != id) continue;
      types.push_back(event.container_event_type());
      if (last != nullptr) *last = at;
    }
    return types;
  }
};

std::shared_ptr<EventStream> OpenEvents(v1::RuntimeService::Stub& runtime, absl::Duration delay) {
  auto stream = std::make_shared<EventStream>();
  stream->delay = delay;
  // Bounds the stream should the test never cancel it.
  stream->context.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(10));
  stream->reader = runtime.GetContainerEvents(&stream->context, v1::GetEventsRequest());
  // vmletd sends the headers once it has subscribed: events from now on
  // reach this stream.
  stream->reader->WaitForInitialMetadata();
  stream->thread = std::thread([stream] {
    while (true) {
      std::this_thread::sleep_for(absl::ToChronoMilliseconds(stream->delay));
      v1::ContainerEventResponse event;
      if (!stream->reader->Read(&event)) break;
      std::lock_guard lock(stream->mu);
      stream->events.emplace_back(std::move(event), absl::Now());
    }
    grpc::Status end = stream->reader->Finish();
    {
      std::lock_guard lock(stream->mu);
      stream->end = end;
    }
    stream->ended = true;
  });
  return stream;
}

TEST_F(StatsTest, TwoEventStreamsSeeAWholeLifecycleAndASlowOneHoldsNothingUp) {
  std::shared_ptr<EventStream> fast = OpenEvents(vmletd_->runtime(), absl::ZeroDuration());
  std::shared_ptr<EventStream> slow = OpenEvents(vmletd_->runtime(), absl::Milliseconds(1500));
  // Cancels both streams and checks that their readers end.
  auto end_streams = [&] {
    for (const std::shared_ptr<EventStream>& stream : {fast, slow}) {
      if (!stream->thread.joinable()) continue;
      stream->context.TryCancel();
      if (WaitFor([&] { return stream->ended.load(); }, absl::Seconds(15))) {
        stream->thread.join();
      } else {
        ADD_FAILURE() << "an event stream's reader did not end within 15s of its cancel";
        stream->thread.detach();  // Leaked with the stream it shares.
      }
    }
  };
  ScopeGuard end_on_failure(end_streams);

  // The second pod's whole life, with its real VM.
  const std::string sandbox = RunPod("events");
  ASSERT_FALSE(sandbox.empty());
  const std::string id = CreateAndStartVm(vmletd_->runtime(), sandbox, kImage, StartResources());
  ASSERT_FALSE(id.empty());
  // Stopped by the ACPI power button once the guest waits for it (a
  // destroy when it does not in time: the event is STOPPED either way).
  WaitFor([] { return LogOf("events").find("VMLET-GUEST-READY") != std::string::npos; },
          absl::Seconds(90));
  {
    grpc::ClientContext context;
    v1::StopContainerRequest request;
    request.set_container_id(id);
    request.set_timeout(30);
    v1::StopContainerResponse response;
    grpc::Status status = vmletd_->runtime().StopContainer(&context, request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  {
    grpc::ClientContext context;
    v1::RemoveContainerRequest request;
    request.set_container_id(id);
    v1::RemoveContainerResponse response;
    grpc::Status status = vmletd_->runtime().RemoveContainer(&context, request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  const absl::Time removed = absl::Now();
  {
    grpc::ClientContext context;
    v1::StopPodSandboxRequest request;
    request.set_pod_sandbox_id(sandbox);
    v1::StopPodSandboxResponse response;
    grpc::Status status = vmletd_->runtime().StopPodSandbox(&context, request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  {
    grpc::ClientContext context;
    v1::RemovePodSandboxRequest request;
    request.set_pod_sandbox_id(sandbox);
    v1::RemovePodSandboxResponse response;
    grpc::Status status = vmletd_->runtime().RemovePodSandbox(&context, request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }

  const auto kLifecycle = ElementsAre(v1::CONTAINER_CREATED_EVENT, v1::CONTAINER_STARTED_EVENT,
                                      v1::CONTAINER_STOPPED_EVENT, v1::CONTAINER_DELETED_EVENT);
  absl::Time fast_done, slow_done;
  EXPECT_TRUE(WaitFor([&] { return fast->TypesFor(id).size() >= 4; }, absl::Seconds(20)));
  EXPECT_TRUE(WaitFor([&] { return slow->TypesFor(id).size() >= 4; }, absl::Seconds(60)));
  EXPECT_THAT(fast->TypesFor(id, &fast_done), kLifecycle);
  EXPECT_THAT(slow->TypesFor(id, &slow_done), kLifecycle);
  // The fast reader had them all at once, before the slow one was through.
  EXPECT_LT(fast_done, slow_done);
  EXPECT_LT(fast_done - removed, absl::Seconds(2))
      << "the fast stream got DELETED " << absl::FormatDuration(fast_done - removed)
      << " after RemoveContainer returned";
  for (const std::shared_ptr<EventStream>& stream : {fast, slow}) {
    std::lock_guard lock(stream->mu);
    for (const auto& [event, at] : stream->events) {
      if (event.container_id() != id) continue;
      EXPECT_EQ(event.pod_sandbox_status().metadata().name(), "events") << event.DebugString();
      EXPECT_EQ(event.pod_sandbox_status().id(), sandbox) << event.DebugString();
      EXPECT_GT(event.created_at(), 0);
    }
  }

  end_streams();
  for (const std::shared_ptr<EventStream>& stream : {fast, slow}) {
    ASSERT_TRUE(stream->ended);
    std::lock_guard lock(stream->mu);
    EXPECT_EQ(stream->end.error_code(), grpc::StatusCode::CANCELLED) << stream->end.error_message();
  }
}

TEST_F(StatsTest, AnUpdateBeyondTheVmsRoomIsRefusedAndChangesNothing) {
  const v1::LinuxContainerResources before = StatusResources();
  const int cpus_before = GuestCpus();
  ASSERT_GT(cpus_before, 0);

  v1::LinuxContainerResources resources = before;
  resources.set_cpu_period(kPeriod);
  resources.set_cpu_quota(3 * kPeriod);
  grpc::Status status = Update(resources);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::OUT_OF_RANGE) << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr("vcpus"));
  // The limit, max_vcpus: a "2" that is not part of an id or another number.
  EXPECT_THAT(status.error_message(), ContainsRegex("(^|[^0-9a-z])2([^0-9a-z]|$)"));

  resources = before;
  resources.set_memory_limit_in_bytes(512 * kMiB);
  status = Update(resources);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::OUT_OF_RANGE) << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr("memory"));

  resources = before;
  resources.set_cpuset_cpus("1-0");
  status = Update(resources);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr("linux.cpuset_cpus"));

  EXPECT_EQ(StatusResources().DebugString(), before.DebugString());
  EXPECT_EQ(GuestCpus(), cpus_before);
}

TEST_F(StatsTest, ALiveUpdateShowsInTheGuestAndOnItsConsole) {
  v1::LinuxContainerResources resources = StartResources();
  resources.set_cpu_quota(2 * kPeriod);
  resources.set_memory_limit_in_bytes(128 * kMiB);
  grpc::Status status = Update(resources);
  ASSERT_TRUE(status.ok()) << status.error_message();

  int cpus = -1;
  int64_t mem_total_kib = -1;
  EXPECT_TRUE(WaitFor(
      [&] {
        cpus = GuestCpus();
        mem_total_kib = GuestMemTotalKib();
        return cpus == 2 && mem_total_kib > 0 && mem_total_kib < 140 * 1024;
      },
      absl::Seconds(30)))
      << "the guest has " << cpus << " CPUs online and MemTotal " << mem_total_kib << " kB";

  // The guest tells its console, which is the container's log.
  const std::string marker = StrCat("VMLET-STATS-", GenerateId().substr(0, 8));
  Shell(StrCat("echo ", marker, " CPUS=$(grep -c ^processor /proc/cpuinfo)",
               " $(grep MemTotal /proc/meminfo) >/dev/console"));
  std::string line;
  EXPECT_TRUE(WaitFor(
      [&] {
        const std::string log = LogOf("stats");
        size_t at = log.find(marker);
        if (at == std::string::npos) return false;
        line = log.substr(at, log.find('\n', at) - at);
        return true;
      },
      absl::Seconds(30)))
      << LogOf("stats");
  EXPECT_THAT(line, HasSubstr(" CPUS=2 "));
  EXPECT_LT(NumberAfter(line, "MemTotal:").value_or(1 << 30), 140 * 1024) << line;

  const v1::LinuxContainerResources recorded = StatusResources();
  EXPECT_EQ(recorded.cpu_quota(), 2 * kPeriod);
  EXPECT_EQ(recorded.cpu_period(), kPeriod);
  EXPECT_EQ(recorded.memory_limit_in_bytes(), 128 * kMiB);

  // Memory goes back down through the balloon; vCPUs are only ever added,
  // so asking for 1 again is refused and changes nothing.
  resources = StartResources();
  resources.set_cpu_quota(2 * kPeriod);
  status = Update(resources);
  EXPECT_TRUE(status.ok()) << status.error_message();
  status = Update(StartResources());
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr("can only be added"));
  EXPECT_EQ(StatusResources().cpu_quota(), 2 * kPeriod);
  EXPECT_EQ(GuestCpus(), 2);
}

TEST_F(StatsTest, TheMetricsEndpointServesTheCriAndVmFamilies) {
  v1::ContainerStats stats;
  ASSERT_TRUE(ListContainerStats(*vm_, &stats).ok());
  const std::string response = HttpGet(metrics_port_, "/metrics");
  ASSERT_THAT(response, ContainsRegex("^HTTP/1\\.[01] 200 ")) << response.substr(0, 512);
  const size_t body_at = response.find("\r\n\r\n");
  ASSERT_NE(body_at, std::string::npos);
  const std::string body = response.substr(body_at + 4);

  static const std::string python = PythonWithParser();
  if (python.empty()) {
    GTEST_SKIP() << "python3 with prometheus_client (Debian: python3-prometheus-client) is "
                    "missing: the body is not parsed";
  }
  // One line per family ("family NAME TYPE") and per sample ("sample NAME
  // k=v,...").
  static constexpr char kScript[] = R"(
import sys
from prometheus_client.parser import text_string_to_metric_families as p
for family in p(sys.stdin.read()):
    print('family %s %s' % (family.name, family.type))
    for s in family.samples:
        print('sample %s %s' % (s.name, ','.join('%s=%s' % kv for kv in sorted(s.labels.items()))))
)";
  absl::StatusOr<ProcessResult> parsed = RunProcess(
      {python, "-c", kScript},
      ProcessOptions{.stdin_data = body, .separate_stderr = true, .timeout = absl::Seconds(60)});
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_EQ(parsed->exit_code, 0) << parsed->error_output << "\n" << body;
  const std::string& out = parsed->output;
  // prometheus_client names a counter's family without "_total".
  EXPECT_THAT(out, HasSubstr("family vmlet_cri_requests counter\n")) << body;
  EXPECT_THAT(out, ContainsRegex("sample vmlet_cri_requests_total [^\n]*method=ListContainerStats"))
      << body;
  EXPECT_THAT(out, HasSubstr("family vmlet_cri_request_duration_seconds histogram\n")) << body;
  EXPECT_THAT(out, HasSubstr("family vmlet_vms ")) << body;
}

}  // namespace
}  // namespace vmlet::e2e

int main(int argc, char** argv) {
  ::setenv("GRPC_CLIENT_CHANNEL_BACKUP_POLL_INTERVAL_MS", "100", /*overwrite=*/0);
  ::testing::InitGoogleMock(&argc, argv);
  if (int prepared = vmlet::e2e::PrepareTestGuest({"/usr/sbin/qemu-ga"}); prepared != 0) {
    return prepared;
  }
  if (absl::Status laid_out =
          vmlet::e2e::MakeGuestLayout(vmlet::e2e::Layout(), "console=ttyS0 quiet panic=-1");
      !laid_out.ok()) {
    std::fprintf(stderr, "%s\n", std::string(laid_out.message()).c_str());
    return 1;
  }
  return RUN_ALL_TESTS();
}
